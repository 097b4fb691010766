/// Paces connection attempts on one event loop: at most ``maximumConcurrentAttempts`` run at a
/// time, the rest wait in the order they asked.
///
/// A thousand clients started at once on one loop would otherwise open a thousand sockets and
/// TLS handshakes in the same instant (issue 9). Each attempt calls ``acquire(_:)`` with the
/// code that starts it and ``release()`` exactly once when it is over (connected, failed, or
/// abandoned after being admitted); the release admits the next waiting attempt.
///
/// Loop thread only: use the loop's gate, ``EventLoop/connectGate``. `start` runs on the loop
/// thread, inline in ``acquire(_:)`` or ``release()``; a `start` that fails at once and calls
/// ``release()`` from inside is fine (admission is a loop, not a recursion).
package final class ConnectionAttemptGate {
    /// The most attempts admitted at once.
    package let maximumConcurrentAttempts: Int
    /// Attempts admitted and not yet released.
    package private(set) var attemptsInFlight = 0
    /// Waiting attempts, oldest at `head` (the array is compacted as it drains).
    private var waiting: [() -> Void] = []
    private var head = 0
    /// Whether an `admit()` is on the stack (a re-entrant call leaves the work to it).
    private var admitting = false

    /// The default limit of ``maximumConcurrentAttempts``.
    package static let defaultMaximumConcurrentAttempts = 64

    /// Creates a gate.
    ///
    /// - Parameter maximumConcurrentAttempts: The most attempts admitted at once, at least 1.
    package init(maximumConcurrentAttempts: Int = ConnectionAttemptGate.defaultMaximumConcurrentAttempts) {
        precondition(maximumConcurrentAttempts >= 1,
                     "maximumConcurrentAttempts must be at least 1, got \(maximumConcurrentAttempts)")
        self.maximumConcurrentAttempts = maximumConcurrentAttempts
    }

    /// Attempts waiting for admission.
    package var waitingCount: Int { waiting.count - head }

    /// Runs `start` now when fewer than ``maximumConcurrentAttempts`` attempts are in flight and
    /// none waits; otherwise queues it behind the waiting ones.
    ///
    /// - Parameter start: Starts the attempt. The attempt must call ``release()`` once it ends.
    package func acquire(_ start: @escaping () -> Void) {
        waiting.append(start)
        admit()
    }

    /// Ends one admitted attempt and admits the next waiting one, if any.
    package func release() {
        precondition(attemptsInFlight > 0, "ConnectionAttemptGate.release() without an admitted attempt")
        attemptsInFlight -= 1
        admit()
    }

    /// Starts every waiting attempt now, over the limit: for loop shutdown (see
    /// ``EventLoop/connectGate``).
    func admitAllWaiting() {
        // Re-entrant acquire() and release() only queue and count; this loop starts everything.
        admitting = true
        defer { admitting = false }
        while head < waiting.count {
            let start = waiting[head]
            waiting[head] = {}
            head += 1
            attemptsInFlight += 1
            start()
        }
        waiting.removeAll()
        head = 0
    }

    private func admit() {
        guard !admitting else { return }
        admitting = true
        defer { admitting = false }
        while attemptsInFlight < maximumConcurrentAttempts && head < waiting.count {
            let start = waiting[head]
            waiting[head] = {}  // drop the closure's captures now
            head += 1
            if head == waiting.count {
                waiting.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= 64 && head * 2 >= waiting.count {
                waiting.removeFirst(head)
                head = 0
            }
            attemptsInFlight += 1
            start()
        }
    }
}

extension EventLoop {
    /// The loop's admission queue for connection attempts (at most
    /// ``ConnectionAttemptGate/defaultMaximumConcurrentAttempts`` in flight). Loop thread only.
    ///
    /// Nothing uses it yet: the client layer is to acquire it before each connect and release it
    /// when the attempt ends. When the loop shuts down, attempts still waiting are started at
    /// once (the loop is closing, so each fails with `io(ECANCELED)` and reports it), so that no
    /// attempt is left waiting forever.
    package var connectGate: ConnectionAttemptGate {
        assertInLoop()
        return core.connectGate
    }
}

extension EventLoop {
    /// One object the layer above the reactor keeps per loop (the client engines' shared
    /// scratch: one action list per loop instead of one per client). Loop thread only.
    package var loopLocalObject: AnyObject? {
        get {
            assertInLoop()
            return core.loopLocalObject
        }
        set {
            assertInLoop()
            core.loopLocalObject = newValue
        }
    }
}
