import CLibUV
import RingBuffers
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The thread-specific slot that names the loop core running on the current thread.
let currentLoopKey: pthread_key_t = {
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

/// Everything an ``EventLoop`` runs on: the `uv_loop_t`, its internal handles, the submission
/// queue and the loop thread's bookkeeping.
///
/// Split from `EventLoop` for ownership: the loop thread retains the core, never the
/// `EventLoop`, so that dropping the last reference to an `EventLoop` runs its `deinit`, which
/// stops the loop; the thread then closes the loop, detaches itself and releases the core (see
/// ``threadFinished()``). Users' objects (connections, timers, actors, closures) hold the
/// `EventLoop`, so a loop with open resources or queued work is never dropped.
///
/// Thread ownership, the one rule: whoever stops the loop, a thread started by ``start()`` is
/// either joined by ``shutdown()`` (called on another thread, it claims the join before the
/// thread ends) or detaches itself when `uv_run` returns. So no joinable thread is ever left
/// behind (each kept 8 MiB of stack mapped and was a ThreadSanitizer "thread leak").
final class EventLoopCore: @unchecked Sendable {
    /// The libuv loop. Loop thread only (libuv is not thread-safe apart from `uv_async_send`).
    let uvLoop: UnsafeMutablePointer<uv_loop_t>
    private let wakeup: UnsafeMutablePointer<uv_async_t>
    private let prepareHandle: UnsafeMutablePointer<uv_prepare_t>
    private let checkHandle: UnsafeMutablePointer<uv_check_t>

    /// The public face, for ``EventLoop/current``. Weak: the face owns the core.
    weak var owner: EventLoop?

    private enum RunState { case idle, running, finished }

    /// Who ends the thread started by ``start()``.
    private enum ThreadState {
        /// ``start()`` was not called (the loop never runs, or runs in ``run()``).
        case notStarted
        /// Between `pthread_create` and recording its handle.
        case starting
        /// Joinable; nobody claimed it yet.
        case running(pthread_t)
        /// ``shutdown()`` joins it.
        case joining
        /// The thread detached itself when it finished.
        case detached
    }

    private let lock = PThreadMutex()
    private let finishedCondition = PThreadCondition()
    // Protected by `lock`.
    private var submitted: [Work] = []
    private var stopRequested = false
    private var acceptingWork = true
    private var runState = RunState.idle
    private var threadState = ThreadState.notStarted
    /// Whether the started thread has passed ``threadFinished()`` (it touches nothing after).
    private var threadEnded = false
    private var closeStatus: Int32 = 0
    private var finishWaiters: [CheckedContinuation<Void, Never>] = []

    // Loop thread only. The flush lists are `@exclusivity(unchecked)` (per-iteration path).
    private var draining: [Work] = []
    private var resources: [ObjectIdentifier: any LoopResource] = [:]
    @exclusivity(unchecked) private var pendingFlushes: [TCPConnection] = []
    @exclusivity(unchecked) private var flushBatch: [TCPConnection] = []
    @exclusivity(unchecked) private var iterationHooksActive = false
    /// Whether shutdown has begun (new resources are closed as soon as they register).
    private(set) var isClosing = false
    /// ``EventLoop/connectGate``.
    let connectGate: ConnectionAttemptGate
    /// ``EventLoop/loopLocalObject`` (loop thread only).
    var loopLocalObject: AnyObject?
    /// The read buffer the loop's TCP connections share (loop thread only).
    let sharedReadBuffer = SharedReadBuffer()
    /// Send-buffer blocks the loop's TCP connections share (loop thread only): a connection
    /// holds one only while it has unsent bytes.
    let outboundPool = OutboundStoragePool(smallestBlock: 1024, largestBlock: 8 * 1024 * 1024,
                                           maximumFreeBlocks: 16, maximumFreeBytes: 16 * 1024 * 1024)

    private enum Work {
        case closure(@Sendable () -> Void)
        case job(UnownedJob)
    }

    init(maximumConcurrentConnectionAttempts: Int = ConnectionAttemptGate.defaultMaximumConcurrentAttempts) {
        connectGate = ConnectionAttemptGate(maximumConcurrentAttempts: maximumConcurrentConnectionAttempts)
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
            Unmanaged<EventLoopCore>.fromOpaque(data).takeUnretainedValue().drainSubmitted()
        }
        precondition(status == 0, "uv_async_init failed: \(UVError(status))")
        uv_prepare_init(uvLoop, prepareHandle)
        uv_check_init(uvLoop, checkHandle)
        // The core owns these three handles and outlives them: no retain.
        let me = Unmanaged.passUnretained(self).toOpaque()
        wakeup.pointee.data = me
        prepareHandle.pointee.data = me
        checkHandle.pointee.data = me
    }

    deinit {
        // A core that ran was closed by its run; one that never ran closes here. (A running
        // core cannot reach deinit: its thread or `run()`'s caller holds it.)
        if lock.withLock({ runState == .idle }) {
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

    /// Whether the caller runs on this loop's thread (inside one of its callbacks).
    @inline(__always)
    var inEventLoop: Bool {
        pthread_getspecific(currentLoopKey) == Unmanaged.passUnretained(self).toOpaque()
    }

    /// Starts the loop thread. The thread retains the core (not the `EventLoop`) until it ends.
    func start() {
        lock.withLock {
            guard case .notStarted = threadState, runState == .idle else {
                preconditionFailure("an EventLoop runs once: start() called on a loop that was started or run")
            }
            threadState = .starting
        }
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let status = pthread_create(&thread, nil, { context in
            let core = Unmanaged<EventLoopCore>.fromOpaque(context!).takeRetainedValue()
            core.runOnCurrentThread()
            core.threadFinished()
            return nil
        }, context)
        precondition(status == 0, "pthread_create failed: \(status)")
        lock.withLock {
            // The thread may have finished (and detached itself) already.
            if case .starting = threadState { threadState = .running(thread) }
        }
    }

    /// Runs the loop until it is stopped and every handle closed, then closes the loop.
    func runOnCurrentThread() {
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
        let waiters = lock.withLock { () -> [CheckedContinuation<Void, Never>] in
            closeStatus = status
            runState = .finished
            // In `run()` mode the run is all there is to wait for; a started thread resumes
            // its waiters in `threadFinished()`, once it decided between join and detach.
            guard case .notStarted = threadState else { return [] }
            finishedCondition.broadcast()
            return takeFinishWaiters()
        }
        for waiter in waiters { waiter.resume() }
    }

    /// The last thing the loop thread does: detaches itself unless ``shutdown()`` claimed the
    /// join, then wakes everyone waiting for the end.
    private func threadFinished() {
        let waiters = lock.withLock { () -> [CheckedContinuation<Void, Never>] in
            if case .joining = threadState {
                // shutdown() joins.
            } else {
                pthread_detach(pthread_self())
                threadState = .detached
            }
            threadEnded = true
            finishedCondition.broadcast()
            return takeFinishWaiters()
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Under `lock`.
    private func takeFinishWaiters() -> [CheckedContinuation<Void, Never>] {
        let waiters = finishWaiters
        finishWaiters = []
        return waiters
    }

    /// Asks the loop to shut down. Any thread.
    func stop() {
        lock.withLock {
            stopRequested = true
            // `uv_async_send` only while the handle is open; under the lock so that the loop
            // thread cannot close it in between.
            if acceptingWork { uv_async_send(wakeup) }
        }
    }

    /// Stops the loop and waits for its thread: joins it when still joinable, otherwise (it
    /// detached itself, or another caller joins it) waits until it has finished. Not on the loop
    /// thread.
    func shutdown() throws(UVError) {
        stop()
        let joinable = lock.withLock { () -> pthread_t? in
            switch threadState {
            case .running(let thread):
                threadState = .joining
                return thread
            case .starting, .joining, .detached:
                // Detached itself, or another caller joins it: wait for its end.
                while !threadEnded { lock.wait(for: finishedCondition) }
                return nil
            case .notStarted:
                return nil
            }
        }
        if let joinable {
            pthread_join(joinable, nil)
        }
        try checkCloseStatus()
    }

    /// Stops the loop and suspends until the loop has finished (its thread, if started, is
    /// about to exit and will not touch the loop again). Never blocks a thread.
    func shutdownGracefully() async {
        stop()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let finished = lock.withLock { () -> Bool in
                if case .notStarted = threadState {
                    // Never ran (deinit closes it), or already returned from `run()`.
                    if runState != .running { return true }
                } else if threadEnded {
                    return true
                }
                finishWaiters.append(continuation)
                return false
            }
            if finished { continuation.resume() }
        }
    }

    func checkCloseStatus() throws(UVError) {
        let status = lock.withLock { closeStatus }
        if status != 0 { throw UVError(status) }
    }

    // MARK: Work submission

    func execute(_ work: @escaping @Sendable () -> Void) {
        submit(.closure(work))
    }

    func submit<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
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
        // Releasing the closures may release the last reference to the `EventLoop` (its deinit
        // then calls `stop()`): fine here, outside the lock, and the core stays alive (the
        // thread holds it).
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

    /// The number of open connections, listeners and timers. Loop thread only.
    var openResourceCount: Int { resources.count }

    private func beginShutdown() {
        isClosing = true
        for resource in Array(resources.values) {
            resource.closeForShutdown()
        }
        // Waiting connection attempts start now and fail (closing loop): none waits forever.
        connectGate.admitAllWaiting()
        pendingFlushes.removeAll()
        closeInternalHandles()
    }

    private func closeInternalHandles() {
        // Their memory belongs to the core and is freed in deinit: no close callback.
        uv_close(uvHandle(wakeup), nil)
        uv_close(uvHandle(prepareHandle), nil)
        uv_close(uvHandle(checkHandle), nil)
    }

    // MARK: End-of-iteration flushing

    /// Asks for `connection.performFlush()` at the end of the current loop iteration. Loop
    /// thread only (see ``EventLoop/scheduleFlush(_:)``).
    func scheduleFlush(_ connection: TCPConnection) {
        pendingFlushes.append(connection)
        if !iterationHooksActive && !isClosing {
            iterationHooksActive = true
            // Check runs right after the poll phase (I/O and wake-up callbacks); prepare runs
            // after timers and before the next poll. Between them every phase is covered.
            uv_check_start(checkHandle) { handle in
                guard let data = handle?.pointee.data else { return }
                Unmanaged<EventLoopCore>.fromOpaque(data).takeUnretainedValue().runPendingFlushes()
            }
            uv_prepare_start(prepareHandle) { handle in
                guard let data = handle?.pointee.data else { return }
                Unmanaged<EventLoopCore>.fromOpaque(data).takeUnretainedValue().runPendingFlushes()
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

/// The core is the executor behind ``EventLoop/asUnownedSerialExecutor()``: jobs then run and
/// check isolation against the object the loop thread holds.
extension EventLoopCore: SerialExecutor {
    func enqueue(_ job: consuming ExecutorJob) {
        submit(.job(UnownedJob(job)))
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    func checkIsolated() {
        precondition(inEventLoop, "not on the event loop thread")
    }
}
