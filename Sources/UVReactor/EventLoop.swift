import CLibUV
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The thread-specific slot that names the event loop running on the current thread.
private let currentLoopKey: pthread_key_t = {
    var key = pthread_key_t()
    let status = pthread_key_create(&key, nil)
    precondition(status == 0, "pthread_key_create failed: \(status)")
    return key
}()

/// Something on the loop that must be closed when the loop shuts down (a connection, a listener,
/// a timer). Loop thread only.
protocol LoopResource: AnyObject {
    /// Closes the resource immediately (abort, no flush); its close callback completes later.
    func closeForShutdown()
}

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
/// ```swift
/// let loop = EventLoop()
/// loop.start()
/// loop.execute { /* on the loop thread */ }
/// try loop.shutdown()
/// ```
public final class EventLoop: @unchecked Sendable {
    /// The libuv loop. Loop thread only (libuv is not thread-safe apart from `uv_async_send`).
    let uvLoop: UnsafeMutablePointer<uv_loop_t>
    private let wakeup: UnsafeMutablePointer<uv_async_t>
    private let prepareHandle: UnsafeMutablePointer<uv_prepare_t>
    private let checkHandle: UnsafeMutablePointer<uv_check_t>

    private enum RunState { case idle, running, finished }

    private let lock = PThreadMutex()
    // Protected by `lock`.
    private var submitted: [Work] = []
    private var stopRequested = false
    private var acceptingWork = true
    private var runState = RunState.idle
    private var thread: pthread_t?
    private var closeStatus: Int32 = 0

    // Loop thread only. The flush lists are `@exclusivity(unchecked)` (per-iteration path).
    private var draining: [Work] = []
    private var resources: [ObjectIdentifier: any LoopResource] = [:]
    @exclusivity(unchecked) private var pendingFlushes: [TCPConnection] = []
    @exclusivity(unchecked) private var flushBatch: [TCPConnection] = []
    @exclusivity(unchecked) private var iterationHooksActive = false
    /// Whether shutdown has begun (new resources are closed as soon as they register).
    private(set) var isClosing = false

    private enum Work {
        case closure(@Sendable () -> Void)
        case job(UnownedJob)
    }

    /// Creates a loop. Nothing runs until ``start()`` or ``run()``.
    public init() {
        uvLoop = .allocate(capacity: 1)
        wakeup = .allocate(capacity: 1)
        prepareHandle = .allocate(capacity: 1)
        checkHandle = .allocate(capacity: 1)
        submitted.reserveCapacity(64)
        draining.reserveCapacity(64)
        var status = uv_loop_init(uvLoop)
        precondition(status == 0, "uv_loop_init failed: \(UVError(status))")
        status = uv_async_init(uvLoop, wakeup) { handle in
            guard let data = handle?.pointee.data else { return }
            Unmanaged<EventLoop>.fromOpaque(data).takeUnretainedValue().drainSubmitted()
        }
        precondition(status == 0, "uv_async_init failed: \(UVError(status))")
        uv_prepare_init(uvLoop, prepareHandle)
        uv_check_init(uvLoop, checkHandle)
        // The loop object owns these three handles and outlives them: no retain.
        let me = Unmanaged.passUnretained(self).toOpaque()
        wakeup.pointee.data = me
        prepareHandle.pointee.data = me
        checkHandle.pointee.data = me
    }

    deinit {
        let neverRan = lock.withLock { runState == .idle }
        if neverRan {
            closeInternalHandles()
            uv_run(uvLoop, UV_RUN_DEFAULT)
            uv_loop_close(uvLoop)
        }
        uvLoop.deallocate()
        wakeup.deallocate()
        prepareHandle.deallocate()
        checkHandle.deallocate()
    }

    // MARK: Threads

    /// The loop running on the current thread, if any.
    public static var current: EventLoop? {
        guard let pointer = pthread_getspecific(currentLoopKey) else { return nil }
        return Unmanaged<EventLoop>.fromOpaque(pointer).takeUnretainedValue()
    }

    /// Whether the caller runs on this loop's thread (inside one of its callbacks).
    public var inEventLoop: Bool {
        pthread_getspecific(currentLoopKey) == Unmanaged.passUnretained(self).toOpaque()
    }

    /// Traps unless called on the loop thread. Guards the loop-thread-only entry points.
    @inline(__always)
    func assertInLoop(_ function: StaticString = #function) {
        precondition(inEventLoop, "\(function) must be called on the event loop thread")
    }

    /// Runs the loop on a new thread.
    ///
    /// Returns immediately. Call ``shutdown()`` to stop it and wait for the thread.
    public func start() {
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let status = pthread_create(&thread, nil, { context in
            let loop = Unmanaged<EventLoop>.fromOpaque(context!).takeRetainedValue()
            loop.runOnCurrentThread()
            return nil
        }, context)
        precondition(status == 0, "pthread_create failed: \(status)")
        lock.withLock { self.thread = thread }
    }

    /// Runs the loop on the caller's thread until ``stop()`` is called (from any thread, or from
    /// a callback on the loop), then closes every handle and the loop.
    ///
    /// - Throws: `UVError` when `uv_loop_close` fails (`EBUSY`: a handle or request was still open).
    public func run() throws(UVError) {
        runOnCurrentThread()
        try checkCloseStatus()
    }

    /// Asks the loop to shut down: it closes every handle, finishes their close callbacks and
    /// closes the loop. Returns immediately; safe from any thread.
    public func stop() {
        lock.withLock {
            stopRequested = true
            // `uv_async_send` only while the handle is open; under the lock so that the loop
            // thread cannot close it in between.
            if acceptingWork { uv_async_send(wakeup) }
        }
    }

    /// Stops the loop started with ``start()`` and waits for its thread to finish.
    ///
    /// Must not be called on the loop thread. Calling it on a loop that never ran just closes it.
    ///
    /// - Throws: `UVError` when `uv_loop_close` failed (`EBUSY`: a handle or request was leaked).
    public func shutdown() throws(UVError) {
        precondition(!inEventLoop, "shutdown() would wait for itself; use stop() on the loop thread")
        stop()
        let thread = lock.withLock { () -> pthread_t? in
            defer { self.thread = nil }
            return self.thread
        }
        if let thread {
            pthread_join(thread, nil)
        }
        try checkCloseStatus()
    }

    private func checkCloseStatus() throws(UVError) {
        let status = lock.withLock { closeStatus }
        if status != 0 { throw UVError(status) }
    }

    private func runOnCurrentThread() {
        lock.withLock {
            precondition(runState == .idle, "an EventLoop runs once")
            runState = .running
        }
        pthread_setspecific(currentLoopKey, Unmanaged.passUnretained(self).toOpaque())
        // Returns only when no handle or request is left, which happens after shutdown closed
        // them all (the wake-up handle keeps the loop alive until then).
        uv_run(uvLoop, UV_RUN_DEFAULT)
        let status = uv_loop_close(uvLoop)
        pthread_setspecific(currentLoopKey, nil)
        lock.withLock {
            closeStatus = status
            runState = .finished
        }
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
        submit(.closure(work))
    }

    /// Runs `body` on the loop thread and returns its result to the awaiting caller.
    ///
    /// - Parameter body: Runs on the loop thread.
    /// - Returns: What `body` returned.
    /// - Throws: What `body` threw, or `UVError(ECANCELED)` when the loop shut down first.
    public func submit<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let accepted = lock.withLock { () -> Bool in
                guard acceptingWork else { return false }
                submitted.append(.closure({ continuation.resume(with: Result { try body() }) }))
                uv_async_send(wakeup)
                return true
            }
            if !accepted { continuation.resume(throwing: UVError(UV_ECANCELED.rawValue)) }
        }
    }

    private func submit(_ work: Work) {
        lock.withLock {
            guard acceptingWork else { return }
            submitted.append(work)
            uv_async_send(wakeup)
        }
    }

    /// The wake-up callback: runs everything submitted so far, then begins shutdown if asked.
    private func drainSubmitted() {
        while true {
            let stopping = lock.withLock { () -> Bool in
                swap(&submitted, &draining)
                // Stop accepting only once the queue is empty, atomically with the check, so
                // that nothing accepted is ever dropped.
                if stopRequested && draining.isEmpty { acceptingWork = false }
                return stopRequested
            }
            if draining.isEmpty {
                if stopping && !isClosing { beginShutdown() }
                return
            }
            runDraining()
            // Work submitted while this batch ran has sent its own wake-up.
            if !stopping { return }
        }
    }

    private func runDraining() {
        var index = 0
        while index < draining.count {
            switch draining[index] {
            case .closure(let work): work()
            case .job(let job): job.runSynchronously(on: asUnownedSerialExecutor())
            }
            index += 1
        }
        draining.removeAll(keepingCapacity: true)
    }

    // MARK: Resources and shutdown

    /// Records a resource so that shutdown closes it. Loop thread only.
    func register(_ resource: any LoopResource) {
        resources[ObjectIdentifier(resource)] = resource
        if isClosing { resource.closeForShutdown() }
    }

    /// Forgets a resource (it closed). Loop thread only.
    func unregister(_ resource: any LoopResource) {
        resources.removeValue(forKey: ObjectIdentifier(resource))
    }

    /// The number of open connections, listeners and timers. Loop thread only (tests use it to
    /// check that nothing leaks).
    public var openResourceCount: Int {
        assertInLoop()
        return resources.count
    }

    private func beginShutdown() {
        isClosing = true
        for resource in Array(resources.values) {
            resource.closeForShutdown()
        }
        pendingFlushes.removeAll()
        closeInternalHandles()
    }

    private func closeInternalHandles() {
        // Their memory belongs to the loop object and is freed in deinit: no close callback.
        uv_close(uvHandle(wakeup), nil)
        uv_close(uvHandle(prepareHandle), nil)
        uv_close(uvHandle(checkHandle), nil)
    }

    // MARK: End-of-iteration flushing

    /// Asks for `connection.performFlush()` at the end of the current loop iteration, after the
    /// callbacks of this phase (I/O, wake-ups, timers) ran, so that everything they queued goes
    /// out together. Loop thread only.
    func scheduleFlush(_ connection: TCPConnection) {
        pendingFlushes.append(connection)
        if !iterationHooksActive && !isClosing {
            iterationHooksActive = true
            // Check runs right after the poll phase (I/O and wake-up callbacks); prepare runs
            // after timers and before the next poll. Between them every phase is covered.
            uv_check_start(checkHandle) { handle in
                guard let data = handle?.pointee.data else { return }
                Unmanaged<EventLoop>.fromOpaque(data).takeUnretainedValue().runPendingFlushes()
            }
            uv_prepare_start(prepareHandle) { handle in
                guard let data = handle?.pointee.data else { return }
                Unmanaged<EventLoop>.fromOpaque(data).takeUnretainedValue().runPendingFlushes()
            }
        }
    }

    private func runPendingFlushes() {
        while !pendingFlushes.isEmpty {
            swap(&pendingFlushes, &flushBatch)
            var index = 0
            while index < flushBatch.count {
                flushBatch[index].performFlush()
                index += 1
            }
            flushBatch.removeAll(keepingCapacity: true)
        }
        if iterationHooksActive {
            iterationHooksActive = false
            uv_check_stop(checkHandle)
            uv_prepare_stop(prepareHandle)
        }
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
        submit(.job(UnownedJob(job)))
    }

    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    /// Lets `assumeIsolated` succeed inside raw libuv callbacks on the loop thread.
    public func checkIsolated() {
        precondition(inEventLoop, "not on the event loop thread")
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
