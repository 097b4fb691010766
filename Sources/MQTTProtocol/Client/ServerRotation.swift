/// Which server of a list the next connection attempt goes to: the policy of a client with
/// several servers (a cluster, a bridged pair).
///
/// The servers are tried in order (or in an order shuffled once, when the rotation is made, to
/// spread a fleet of clients over the list). A failed attempt moves on to the next server at
/// once; only a failure of the last server of a pass ends the pass, and the client's reconnect
/// back-off applies between passes, one back-off round per pass. A connection that was
/// accepted and then lost moves on to the next server too (the one it was on just failed).
///
/// | event | next server | wait |
/// |---|---|---|
/// | attempt failed, servers left in the pass | next in the order | none |
/// | attempt failed on the last of the pass | first in the order (new pass) | back-off(n), n + 1 |
/// | connection lost | next in the order | none with two or more servers, else back-off(0) |
///
/// Pure and deterministic (the shuffle takes a seed), owned by ``MQTTClientStateMachine``.
public struct ServerRotation: Sendable, Hashable {
    /// The server indices in the order they are tried.
    public let order: [Int]
    private var position = 0
    /// Attempts made in the current pass (a pass ends after `order.count`).
    private var triedInPass = 0

    /// Creates a rotation over `count` servers.
    ///
    /// - Parameters:
    ///   - count: How many servers (at least 1; fewer counts as 1).
    ///   - shuffleSeed: Shuffle the order once with this seed, or nil to keep the list's order.
    public init(count: Int, shuffleSeed: UInt64? = nil) {
        var order = Array(0..<max(1, count))
        if let shuffleSeed {
            var generator = JitterGenerator(seed: shuffleSeed)
            // Fisher-Yates with the seeded generator.
            for index in stride(from: order.count - 1, to: 0, by: -1) {
                let other = Int(generator.next() % UInt64(index + 1))
                order.swapAt(index, other)
            }
        }
        self.order = order
    }

    /// How many servers the rotation covers.
    public var count: Int { order.count }

    /// Whether a pass is under way with servers left to try (an attempt failed and the next
    /// server is tried at once).
    public var isMidPass: Bool { triedInPass > 0 }

    /// The index (in the caller's list) of the server the next attempt goes to.
    public var current: Int { order[position] }

    /// Starts a new pass at the first server of the order (a new `connect`).
    public mutating func reset() {
        position = 0
        triedInPass = 0
    }

    /// The attempt on ``current`` failed: moves to the next server.
    ///
    /// - Returns: true when the pass is over (every server failed once): the caller backs off
    ///   before the next pass, which starts at the first server of the order.
    public mutating func attemptFailed() -> Bool {
        triedInPass += 1
        position = (position + 1) % order.count
        if triedInPass >= order.count {
            triedInPass = 0
            position = 0
            return true
        }
        return false
    }

    /// A CONNACK accepted the connection on ``current``: the pass is over.
    public mutating func connected() {
        triedInPass = 0
    }

    /// The accepted connection was lost: the next attempt goes to the next server, and a new
    /// pass starts there.
    public mutating func connectionLost() {
        position = (position + 1) % order.count
        triedInPass = 0
    }
}
