import Foundation
import UVMQTT

/// The end of a command, decided on the loop thread and awaited on the main thread.
///
/// The first ``finish(_:)`` wins; ``wait(timeout:)`` blocks the main thread (bounded) until then.
final class Outcome: @unchecked Sendable {
    private let condition = NSCondition()
    private var result: Int32?
    private var ended = false

    /// Whether the connection is known to be gone (no DISCONNECT needed at the end).
    var connectionEnded: Bool {
        get { condition.lock(); defer { condition.unlock() }; return ended }
        set { condition.lock(); ended = newValue; condition.unlock() }
    }

    /// Records the exit status (first call wins) and wakes the waiter.
    func finish(_ status: Int32) {
        condition.lock()
        if result == nil { result = status }
        condition.broadcast()
        condition.unlock()
    }

    /// Whether a result was recorded.
    var isFinished: Bool {
        condition.lock()
        defer { condition.unlock() }
        return result != nil
    }

    /// Waits until a result is recorded or the deadline passes; nil on timeout.
    func wait(timeout: Double?) -> Int32? {
        // (`wait(until: .distantFuture)` traps in swift-corelibs-foundation: wait without one.)
        let deadline = timeout.map { Date(timeIntervalSinceNow: $0) }
        condition.lock()
        defer { condition.unlock() }
        while result == nil {
            if let deadline {
                if !condition.wait(until: deadline) { break }
            } else {
                condition.wait()
            }
        }
        return result
    }
}

/// Closes the client (DISCONNECT, graceful close) and waits, bounded, for the `offline` event so
/// that the DISCONNECT really left before the process ends.
func closeAndWait(_ client: NodeMCUClient, timeout: Double = 2) {
    let closed = Outcome()
    client.on(.offline) { _ in closed.finish(0) }
    client.close()
    _ = closed.wait(timeout: timeout)
}
