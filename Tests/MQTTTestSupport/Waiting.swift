// Bounded polling for things another process does (a broker logging a packet, a child printing
// a line): no test waits without a deadline.
#if canImport(Glibc)
import Glibc
#endif

/// Polls `predicate` every 10 ms until it holds or `timeout` has passed (then checks it once
/// more). Blocks the calling thread: for synchronous tests, or inside ``blockingCall(_:)``.
///
/// - Returns: Whether the predicate held in time.
public func eventually(within timeout: Duration = .seconds(5), _ predicate: () -> Bool) -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if predicate() { return true }
        usleep(10_000)
    }
    return predicate()
}

extension MosquittoBroker {
    /// Waits (bounded) until the broker has sent `count` SUBACKs to `clientID`, read from its
    /// `log_type all` log ("Sending SUBACK to <id>"): the client's subscription is then in place,
    /// so a message published afterwards reaches it.
    ///
    /// - Returns: Whether it happened within `timeout`.
    public func waitForSubscription(of clientID: String, count: Int = 1, within timeout: Duration = .seconds(5)) -> Bool {
        eventually(within: timeout) {
            log().components(separatedBy: "Sending SUBACK to \(clientID)").count - 1 >= count
        }
    }
}
