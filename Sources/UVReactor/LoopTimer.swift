import CLibUV
import Synchronization

/// A one-shot or repeating timer on an event loop (a `uv_timer_t`).
///
/// Create one with ``EventLoop/scheduleTimer(after:repeating:_:)`` (fire and forget: it closes
/// itself after firing once or when cancelled) or ``EventLoop/makeTimer(_:)`` (re-armable with
/// ``schedule(after:repeating:)``, for example a connection's keep-alive deadline; call
/// ``close()`` when done).
///
/// Stale-fire protection: every ``schedule(after:repeating:)`` and ``cancel()`` starts a new
/// generation, and a firing whose generation is no longer current is ignored. So a timer that is
/// cancelled after it became due (from another thread while the loop was busy, or by a callback
/// that ran earlier in the same loop iteration) never runs its handler.
///
/// The handler runs on the loop thread. ``cancel()`` is safe from any thread; everything else is
/// loop thread only.
public final class LoopTimer: @unchecked Sendable {
    /// The loop the timer runs on.
    public let loop: EventLoop
    private let handle: UnsafeMutablePointer<uv_timer_t>
    private let generation = Atomic<Int>(0)
    private let closesWhenDone: Bool
    // Loop thread only.
    private var handler: (() -> Void)?
    private var armedGeneration = -1
    private var isRepeating = false
    private var closed = false

    init(loop: EventLoop, closesWhenDone: Bool, handler: @escaping () -> Void) {
        loop.assertInLoop("LoopTimer.init")
        self.loop = loop
        self.closesWhenDone = closesWhenDone
        self.handler = handler
        self.handle = .allocate(capacity: 1)
        uv_timer_init(loop.uvLoop, handle)
        // Released in the close callback.
        handle.pointee.data = Unmanaged.passRetained(self as AnyObject).toOpaque()
        loop.register(self)
    }

    /// Whether the timer is armed (scheduled and neither fired, if one-shot, nor cancelled).
    /// Loop thread only.
    public var isScheduled: Bool {
        loop.assertInLoop()
        return !closed && uv_is_active(uvHandle(handle)) != 0
            && generation.load(ordering: .acquiring) == armedGeneration
    }

    /// Arms the timer, replacing any earlier schedule. Loop thread only.
    ///
    /// - Parameters:
    ///   - delay: Time until the first firing (rounded up to whole milliseconds).
    ///   - interval: When given, the timer then fires every `interval` until cancelled.
    public func schedule(after delay: Duration, repeating interval: Duration? = nil) {
        loop.assertInLoop()
        guard !closed else { return }
        armedGeneration = generation.add(1, ordering: .acquiringAndReleasing).newValue
        isRepeating = interval != nil
        // libuv measures from the time cached at the start of the iteration; refresh it so that
        // work done earlier in this iteration does not make the timer fire early.
        uv_update_time(loop.uvLoop)
        let repeatMilliseconds = interval.map { max(1, uvMilliseconds($0)) } ?? 0
        uv_timer_start(handle, { handle in
            guard let data = handle?.pointee.data else { return }
            (Unmanaged<AnyObject>.fromOpaque(data).takeUnretainedValue() as? LoopTimer)?.fire()
        }, uvMilliseconds(delay), repeatMilliseconds)
    }

    /// Cancels the timer: its handler does not run again, even when it is already due. Safe from
    /// any thread. A timer made by ``EventLoop/scheduleTimer(after:repeating:_:)`` also closes.
    public func cancel() {
        let cancelled = generation.add(1, ordering: .acquiringAndReleasing).newValue
        if loop.inEventLoop {
            stopIfStill(cancelled)
        } else {
            loop.execute { self.stopIfStill(cancelled) }
        }
    }

    /// Stops the libuv timer unless it was re-armed after the cancel.
    private func stopIfStill(_ cancelledGeneration: Int) {
        guard !closed, generation.load(ordering: .acquiring) == cancelledGeneration else { return }
        uv_timer_stop(handle)
        if closesWhenDone { close() }
    }

    private func fire() {
        guard !closed else { return }
        guard generation.load(ordering: .acquiring) == armedGeneration else {
            // Cancelled after it was due: stale.
            uv_timer_stop(handle)
            return
        }
        let firedGeneration = armedGeneration
        handler?()
        if closesWhenDone && !isRepeating && !closed && armedGeneration == firedGeneration {
            close()
        }
    }

    /// Stops the timer and releases its handle. Idempotent. Loop thread only.
    public func close() {
        loop.assertInLoop()
        guard !closed else { return }
        closed = true
        handler = nil
        generation.add(1, ordering: .acquiringAndReleasing)
        uv_timer_stop(handle)
        loop.unregister(self)
        uv_close(uvHandle(handle), releasingCloseCallback)
    }
}

extension LoopTimer: LoopResource {
    func closeForShutdown() { close() }
}

extension EventLoop {
    /// Runs `handler` on the loop thread after `delay` (and then every `interval`, if given).
    ///
    /// The timer closes itself after a one-shot firing or when cancelled; keep the returned timer
    /// only to cancel it. Loop thread only.
    ///
    /// - Parameters:
    ///   - delay: Time until the first firing (rounded up to whole milliseconds).
    ///   - interval: When given, the timer repeats until cancelled.
    ///   - handler: Runs on the loop thread.
    /// - Returns: The timer, for ``LoopTimer/cancel()``.
    @discardableResult
    public func scheduleTimer(after delay: Duration, repeating interval: Duration? = nil,
                              _ handler: @escaping () -> Void) -> LoopTimer {
        let timer = LoopTimer(loop: self, closesWhenDone: true, handler: handler)
        timer.schedule(after: delay, repeating: interval)
        return timer
    }

    /// Creates an unarmed, re-armable timer. Arm it with ``LoopTimer/schedule(after:repeating:)``
    /// as often as needed and ``LoopTimer/close()`` it when done. Loop thread only.
    ///
    /// - Parameter handler: Runs on the loop thread at each firing.
    public func makeTimer(_ handler: @escaping () -> Void) -> LoopTimer {
        LoopTimer(loop: self, closesWhenDone: false, handler: handler)
    }
}
