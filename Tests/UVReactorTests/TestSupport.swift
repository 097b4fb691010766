import Testing
import RingBuffers
@testable import UVReactor
#if canImport(Glibc)
import Glibc
#endif

/// A one-time result that a loop callback fulfils and a test awaits with a deadline.
final class Outcome<Value: Sendable>: @unchecked Sendable {
    private let lock = PThreadMutex()
    private var value: Value?
    private var continuation: CheckedContinuation<Value?, Never>?
    private var finished = false

    /// Sets the value; only the first call counts.
    func fulfil(_ newValue: Value) {
        let waiter = lock.withLock { () -> CheckedContinuation<Value?, Never>? in
            guard !finished, value == nil else { return nil }
            value = newValue
            guard let continuation else { return nil }
            finished = true
            self.continuation = nil
            return continuation
        }
        waiter?.resume(returning: newValue)
    }

    /// Whether a value was set (polling, for loops that must not suspend).
    var isFulfilled: Bool { lock.withLock { value != nil } }

    /// Waits for the value for at most `timeout`; nil when it did not come in time. The default
    /// is generous (a loaded 2-core CI machine); the wait ends as soon as the value is set.
    func wait(timeout: Duration = .seconds(30)) async -> Value? {
        let timer = Task {
            try? await Task.sleep(for: timeout)
            self.expire()
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { (continuation: CheckedContinuation<Value?, Never>) in
            let immediate = lock.withLock { () -> (Bool, Value?) in
                if finished { return (true, value) }
                if let value {
                    finished = true
                    return (true, value)
                }
                self.continuation = continuation
                return (false, nil)
            }
            if immediate.0 { continuation.resume(returning: immediate.1) }
        }
    }

    private func expire() {
        let waiter = lock.withLock { () -> CheckedContinuation<Value?, Never>? in
            guard !finished, let continuation else { return nil }
            finished = true
            self.continuation = nil
            return continuation
        }
        waiter?.resume(returning: nil)
    }
}

/// Runs `body` with a loop running on its own thread, then shuts the loop down and checks that
/// it closed cleanly: every test that uses this gets the suite-wide "no handle left open" check
/// (`uv_loop_close` must return 0, which it does not while any handle or request is open).
///
/// - Parameter expectNoResources: Also check, before shutdown, that the test closed everything
///   it opened (connections, listeners, timers).
func withLoop(expectNoResources: Bool = true,
              _ body: (EventLoop) async throws -> Void) async throws {
    let loop = EventLoop()
    loop.start()
    do {
        try await body(loop)
    } catch {
        try? loop.shutdown()
        throw error
    }
    if expectNoResources {
        // Close callbacks run one iteration after uv_close: give them a bounded moment.
        var open = -1
        for _ in 0..<200 {
            open = try await loop.submit { loop.openResourceCount }
            if open == 0 { break }
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(open == 0, "resources still open at the end of the test")
    }
    #expect(throws: Never.self) { try loop.shutdown() }
}

/// A deterministic byte pattern (a 32-bit xorshift stream) for byte-exact transfer checks.
struct Pattern {
    private var state: UInt32

    init(seed: UInt32) { state = seed == 0 ? 0x9E37_79B9 : seed }

    mutating func next() -> UInt8 {
        state ^= state << 13
        state ^= state >> 17
        state ^= state << 5
        return UInt8(truncatingIfNeeded: state)
    }

    static func bytes(seed: UInt32, count: Int) -> [UInt8] {
        var pattern = Pattern(seed: seed)
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialised in
            for index in 0..<count { buffer[index] = pattern.next() }
            initialised = count
        }
    }
}

/// Starts an echo server on the reactor: every byte received is written back.
func startEchoServer(on loop: EventLoop, host: String = "127.0.0.1",
                     options: TCPOptions = TCPOptions()) throws -> TCPListener {
    try loop.listen(host: host, port: 0, options: options) { connection in
        connection.onRead = { connection in
            let ring = connection.inbound
            while !ring.isEmpty {
                let region = ring.firstReadableRegion
                connection.outbound.writeBytes(region)
                ring.consume(region.count)
            }
            connection.flush()
        }
        connection.onClose = { _ in }
    }
}

/// Milliseconds elapsed since `start` on the continuous clock.
func millisecondsSince(_ start: ContinuousClock.Instant) -> Double {
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
}

/// Checks a received stream against the expected bytes, region by region (`memcmp`).
final class StreamChecker {
    let expected: [UInt8]
    private(set) var received = 0
    private(set) var mismatchAt: Int?

    init(seed: UInt32, count: Int) { expected = Pattern.bytes(seed: seed, count: count) }

    var isComplete: Bool { received == expected.count }

    /// Compares and consumes everything readable in `ring`.
    func consume(_ ring: ByteRing) {
        while !ring.isEmpty {
            let region = ring.firstReadableRegion
            let count = region.count
            if mismatchAt == nil {
                if received + count > expected.count {
                    mismatchAt = expected.count
                } else {
                    let equal = expected.withUnsafeBytes { all in
                        memcmp(all.baseAddress! + received, region.baseAddress!, count) == 0
                    }
                    if !equal { mismatchAt = received }
                }
            }
            received += count
            ring.consume(count)
        }
    }
}
