// Bounded polling for things another process does (a broker logging a packet, a child printing
// a line): no test waits without a deadline.
import Foundation
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

/// A wait that ran out of time.
public struct TimeoutError: Error, CustomStringConvertible {
    public var description: String

    public init(description: String) {
        self.description = description
    }
}

/// A value behind a pthread-based lock (seen by ThreadSanitizer), shareable between tasks.
private final class DeadlineSlot<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<R>(_ body: (inout Value) -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}

/// Runs `body` with a deadline: its result, or ``TimeoutError`` after `seconds` (the body is
/// cancelled then; a body that ignores cancellation is abandoned, never awaited).
@discardableResult
public func withDeadline<T: Sendable>(
    _ seconds: Double, _ what: String = "operation", _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let slot = DeadlineSlot<CheckedContinuation<T, any Error>?>(nil)
    let work = DeadlineSlot<Task<Void, Never>?>(nil)
    @Sendable func finish(_ result: Result<T, any Error>) {
        let continuation = slot.withLock { c -> CheckedContinuation<T, any Error>? in
            let taken = c
            c = nil
            return taken
        }
        continuation?.resume(with: result)
    }
    return try await withCheckedThrowingContinuation { continuation in
        slot.withLock { $0 = continuation }
        work.withLock { $0 = Task {
            do { finish(.success(try await body())) } catch { finish(.failure(error)) }
        } }
        Task {
            try? await Task.sleep(for: .seconds(seconds))
            finish(.failure(TimeoutError(description: "\(what) did not finish within \(seconds) s")))
            work.withLock { $0?.cancel() }
        }
    }
}
