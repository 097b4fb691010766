import CLibUV
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A libuv event loop (`uv_loop_t`) with cross-thread work submission and a serial executor.
///
/// The loop runs either on its own thread (``start()`` then ``shutdown()``) or on the caller's
/// thread (``run()`` until ``stop()``). Everything it owns (connections, listeners, timers) is
/// used on the loop thread only; other threads hand work over with ``execute(_:)`` or run actors
/// on it through ``asUnownedSerialExecutor()``.
///
/// Shutdown closes every handle (connections are aborted and report
/// `TransportError.io(ECANCELED)`), waits for their close callbacks and checks that
/// `uv_loop_close` succeeds, so a leaked handle shows up as an error instead of going unnoticed.
/// A loop runs once: after shutdown it cannot be started again, and work submitted after the
/// shutdown began is dropped.
///
/// A started loop never leaves its thread behind, however it ends:
///
/// | How it ends | What happens to the thread |
/// |---|---|
/// | ``shutdown()`` from another thread | joined before `shutdown()` returns |
/// | ``shutdownGracefully()`` | the caller resumes when the thread has finished; it detached itself |
/// | ``stop()`` from any thread, also inside a loop callback | detaches itself when the loop has closed |
/// | the last reference to the `EventLoop` dropped (any thread, also inside a callback) | `deinit` calls ``stop()`` |
///
/// Connections, listeners, timers, actors and queued closures hold the loop, so dropping the
/// last reference ends a loop only once nothing on it is open.
///
/// ```swift
/// let loop = EventLoop()
/// loop.start()
/// loop.execute { /* on the loop thread */ }
/// try loop.shutdown()
/// ```
public final class EventLoop: @unchecked Sendable {
    /// What the loop thread runs on and retains (this object it does not retain).
    let core: EventLoopCore
    /// The libuv loop (`core.uvLoop`, kept here for one load less). Loop thread only.
    let uvLoop: UnsafeMutablePointer<uv_loop_t>

    /// Creates a loop. Nothing runs until ``start()`` or ``run()``.
    public init() {
        core = EventLoopCore()
        uvLoop = core.uvLoop
        core.owner = self
    }

    deinit {
        // The last reference is gone: nothing can submit work any more, so end the loop. On the
        // loop thread (inside a callback) or any other, this only asks; the thread closes the
        // loop, detaches itself and releases the core. A loop that never ran closes in the
        // core's deinit.
        core.stop()
    }

    // MARK: Threads

    /// The loop running on the current thread, if any.
    ///
    /// Nil also on a loop thread whose `EventLoop` is gone (its last reference was dropped and
    /// the loop is closing).
    public static var current: EventLoop? {
        guard let pointer = pthread_getspecific(currentLoopKey) else { return nil }
        return Unmanaged<EventLoopCore>.fromOpaque(pointer).takeUnretainedValue().owner
    }

    /// Whether the caller runs on this loop's thread (inside one of its callbacks).
    public var inEventLoop: Bool {
        core.inEventLoop
    }

    /// Traps unless called on the loop thread. Guards the loop-thread-only entry points.
    @inline(__always)
    func assertInLoop(_ function: StaticString = #function) {
        precondition(core.inEventLoop, "\(function) must be called on the event loop thread")
    }

    /// Runs the loop on a new thread.
    ///
    /// Returns immediately. End it with ``shutdown()`` (waits for the thread),
    /// ``shutdownGracefully()`` (suspends until the thread has finished) or ``stop()`` (from any
    /// thread, also on the loop; the thread then detaches itself). Dropping the last reference
    /// to the loop stops it too.
    public func start() {
        core.start()
    }

    /// Runs the loop on the caller's thread until ``stop()`` is called (from any thread, or from
    /// a callback on the loop), then closes every handle and the loop.
    ///
    /// - Throws: `UVError` when `uv_loop_close` fails (`EBUSY`: a handle or request was still open).
    public func run() throws(UVError) {
        core.runOnCurrentThread()
        try core.checkCloseStatus()
    }

    /// Asks the loop to shut down: it closes every handle, finishes their close callbacks and
    /// closes the loop. Returns immediately; safe from any thread, including the loop thread.
    ///
    /// A thread started by ``start()`` detaches itself when the loop has closed, unless
    /// ``shutdown()`` joins it: nothing is left behind either way.
    public func stop() {
        core.stop()
    }

    /// Stops the loop started with ``start()`` and waits for its thread to finish.
    ///
    /// Must not be called on the loop thread (use ``stop()`` there). Calling it on a loop that
    /// never ran just closes it; on a loop running in ``run()`` it only stops it. When the thread
    /// had already ended on its own (after ``stop()``), it returns at once.
    ///
    /// - Throws: `UVError` when `uv_loop_close` failed (`EBUSY`: a handle or request was leaked).
    public func shutdown() throws(UVError) {
        precondition(!inEventLoop, "shutdown() would wait for itself; use stop() on the loop thread")
        try core.shutdown()
    }

    /// Stops the loop and suspends until it has finished: every handle closed, the loop closed,
    /// and its thread (from ``start()``) done with it and exiting on its own.
    ///
    /// Unlike ``shutdown()`` it never blocks a thread, so it suits async code on Swift's
    /// cooperative pool (like swift-nio's `EventLoopGroup.shutdownGracefully()`). The caller is
    /// resumed from the loop thread's exit. Returns at once for a loop that never ran or has
    /// already finished. Must not be called from code running on this loop (an actor on it):
    /// the loop would have to run the caller's continuation after it ended.
    ///
    /// A leaked handle (`uv_loop_close` returning `EBUSY`) is not reported here; ``shutdown()``
    /// reports it.
    public func shutdownGracefully() async {
        precondition(!inEventLoop, "shutdownGracefully() awaits the loop's end on the loop itself; use stop()")
        await core.shutdownGracefully()
    }

    // MARK: Work submission

    /// Runs `work` on the loop thread, soon. Safe from any thread, including the loop thread
    /// (the work then runs on a later wake-up, never inline).
    ///
    /// Work submitted from one thread runs in submission order. Several submissions made before
    /// the loop wakes up run in one batch (one wake-up), so submit in batches where possible: a
    /// cross-thread hand-over costs microseconds. Work submitted after shutdown began is dropped.
    ///
    /// - Parameter work: The closure to run on the loop thread.
    public func execute(_ work: @escaping @Sendable () -> Void) {
        core.execute(work)
    }

    /// Runs `body` on the loop thread and returns its result to the awaiting caller.
    ///
    /// - Parameter body: Runs on the loop thread.
    /// - Returns: What `body` returned.
    /// - Throws: What `body` threw, or `UVError(ECANCELED)` when the loop shut down first.
    public func submit<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await core.submit(body)
    }

    // MARK: Resources

    /// Records a resource so that shutdown closes it. Loop thread only.
    @inline(__always)
    func register(_ resource: any LoopResource) {
        core.register(resource)
    }

    /// Forgets a resource (it closed). Loop thread only.
    @inline(__always)
    func unregister(_ resource: any LoopResource) {
        core.unregister(resource)
    }

    /// The number of open connections, listeners and timers. Loop thread only (tests use it to
    /// check that nothing leaks).
    public var openResourceCount: Int {
        assertInLoop()
        return core.openResourceCount
    }

    /// Asks for `connection.performFlush()` at the end of the current loop iteration, after the
    /// callbacks of this phase (I/O, wake-ups, timers) ran, so that everything they queued goes
    /// out together. Loop thread only.
    @inline(__always)
    func scheduleFlush(_ connection: TCPConnection) {
        core.scheduleFlush(connection)
    }
}

// MARK: - Serial executor

extension EventLoop: SerialExecutor {
    /// Runs a job on the loop thread (the executor of actors whose `unownedExecutor` is this loop).
    ///
    /// ```swift
    /// actor Session {
    ///     let loop: EventLoop
    ///     nonisolated var unownedExecutor: UnownedSerialExecutor { loop.asUnownedSerialExecutor() }
    /// }
    /// ```
    public func enqueue(_ job: consuming ExecutorJob) {
        core.enqueue(job)
    }

    /// The loop's executor. It refers to the loop's internal state, which the loop thread keeps
    /// alive; an actor using it must hold the `EventLoop` (as in the example of ``enqueue(_:)``).
    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        core.asUnownedSerialExecutor()
    }

    /// Lets `assumeIsolated` succeed inside raw libuv callbacks on the loop thread.
    public func checkIsolated() {
        core.checkIsolated()
    }
}

// MARK: - Loop-bound values

/// A value that may be passed between threads but is used only on its loop's thread.
///
/// Lets loop-thread objects (connections, timers' state) travel through `@Sendable` closures
/// such as ``EventLoop/execute(_:)``; every access checks that it happens on the loop thread.
public struct LoopBound<Value>: @unchecked Sendable {
    /// The loop whose thread may use the value.
    public let loop: EventLoop
    private let storage: Box

    private final class Box {
        var value: Value
        init(_ value: Value) { self.value = value }
    }

    /// Wraps `value` (created on any thread; used only on `loop`'s thread from now on).
    public init(_ value: Value, loop: EventLoop) {
        self.loop = loop
        self.storage = Box(value)
    }

    /// The value. Traps when read or written off the loop thread.
    public var value: Value {
        get {
            loop.assertInLoop()
            return storage.value
        }
        nonmutating set {
            loop.assertInLoop()
            storage.value = newValue
        }
    }
}
