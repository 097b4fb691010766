import CLibUV
import Testing
@testable import UVReactor
#if canImport(Glibc)
import Glibc
#endif

/// An actor whose jobs run on the event loop thread.
actor LoopActor {
    let loop: EventLoop
    private(set) var count = 0
    private var offLoop = 0

    init(loop: EventLoop) { self.loop = loop }

    nonisolated var unownedExecutor: UnownedSerialExecutor { loop.asUnownedSerialExecutor() }

    func bump() {
        if !loop.inEventLoop { offLoop += 1 }
        count += 1
    }

    func report() -> (count: Int, offLoop: Int) { (count, offLoop) }
}

@Suite struct EventLoopTests {
    @Test func executeRunsOnTheLoopThread() async throws {
        try await withLoop { loop in
            #expect(!loop.inEventLoop)
            #expect(EventLoop.current == nil)
            let seen = Outcome<(Bool, Bool)>()
            loop.execute { seen.fulfil((loop.inEventLoop, EventLoop.current === loop)) }
            let result = await seen.wait()
            #expect(result?.0 == true)
            #expect(result?.1 == true)
        }
    }

    /// Several threads submit thousands of closures each; every one runs exactly once, and the
    /// closures of one thread run in the order that thread submitted them.
    @Test func crossThreadSubmissionsRunOnceInOrderPerThread() async throws {
        let threads = 4
        let perThread = 5_000
        try await withLoop { loop in
            // Loop-thread-only state, reached through LoopBound from the submitting threads.
            let sequences = LoopBound([[Int]](repeating: [], count: threads), loop: loop)
            let done = Outcome<Bool>()
            let finishedThreads = LoopBound(0, loop: loop)

            final class Context: @unchecked Sendable {
                let loop: EventLoop
                let index: Int
                let count: Int
                let record: @Sendable (Int, Int) -> Void
                let finish: @Sendable () -> Void
                init(loop: EventLoop, index: Int, count: Int,
                     record: @escaping @Sendable (Int, Int) -> Void, finish: @escaping @Sendable () -> Void) {
                    self.loop = loop; self.index = index; self.count = count
                    self.record = record; self.finish = finish
                }
            }
            var pthreads: [pthread_t] = []
            for index in 0..<threads {
                let context = Context(loop: loop, index: index, count: perThread, record: { thread, value in
                    sequences.value[thread].append(value)
                }, finish: {
                    finishedThreads.value += 1
                    if finishedThreads.value == threads { done.fulfil(true) }
                })
                var thread = pthread_t()
                let status = pthread_create(&thread, nil, { raw in
                    let context = Unmanaged<Context>.fromOpaque(raw!).takeRetainedValue()
                    for value in 0..<context.count {
                        let index = context.index
                        let record = context.record
                        context.loop.execute { record(index, value) }
                    }
                    let finish = context.finish
                    context.loop.execute { finish() }
                    return nil
                }, Unmanaged.passRetained(context).toOpaque())
                #expect(status == 0)
                pthreads.append(thread)
            }
            for thread in pthreads { pthread_join(thread, nil) }
            #expect(await done.wait() == true)
            let collected = try await loop.submit { sequences.value }
            for index in 0..<threads {
                #expect(collected[index] == Array(0..<perThread), "thread \(index) out of order or lost work")
            }
        }
    }

    @Test func actorRunsOnTheLoopExecutor() async throws {
        try await withLoop { loop in
            let actor = LoopActor(loop: loop)
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        for _ in 0..<250 { await actor.bump() }
                    }
                }
            }
            let report = await actor.report()
            #expect(report.count == 2_000)
            #expect(report.offLoop == 0)
        }
    }

    @Test func assumeIsolatedWorksInLoopCallbacks() async throws {
        try await withLoop { loop in
            let actor = LoopActor(loop: loop)
            let done = Outcome<Int>()
            loop.execute {
                let count = actor.assumeIsolated { actor in
                    actor.bump()
                    return actor.count
                }
                done.fulfil(count)
            }
            #expect(await done.wait() == 1)
        }
    }

    /// `run()` on the caller's thread returns after `stop()` from a callback, with the loop
    /// closed.
    @Test func runOnCallerThreadUntilStopped() throws {
        let loop = EventLoop()
        let ran = LoopBound(false, loop: loop)
        nonisolated(unsafe) var ranValue = false
        loop.execute {
            loop.scheduleTimer(after: .milliseconds(5)) {
                ran.value = true
                ranValue = ran.value
                loop.stop()
            }
        }
        // Watchdog: a test must never hang.
        let watchdog = EventLoop()
        watchdog.start()
        watchdog.execute {
            watchdog.scheduleTimer(after: .seconds(10)) { loop.stop() }
        }
        try loop.run()
        #expect(ranValue)
        try watchdog.shutdown()
    }

    /// Shutdown closes what a test left open (a listener, connections, a timer) and the loop
    /// still closes cleanly; open connections report `io(ECANCELED)`.
    @Test func shutdownClosesOpenHandles() async throws {
        let loop = EventLoop()
        loop.start()
        let closed = Outcome<TransportError?>()
        let connected = Outcome<Bool>()
        loop.execute {
            do {
                let listener = try startEchoServer(on: loop)
                loop.scheduleTimer(after: .seconds(60)) {}
                loop.connect(host: "127.0.0.1", port: listener.port) { result in
                    guard case .success(let connection) = result else { return connected.fulfil(false) }
                    connection.onClose = { error in closed.fulfil(error) }
                    connected.fulfil(true)
                }
            } catch {
                connected.fulfil(false)
            }
        }
        #expect(await connected.wait() == true)
        #expect(try await loop.submit { loop.openResourceCount } >= 3)
        #expect(throws: Never.self) { try loop.shutdown() }
        let error = await closed.wait(timeout: .seconds(1))
        #expect(error == .some(.io(UVError(UV_ECANCELED.rawValue))))
        // After shutdown, submitted work is refused.
        await #expect(throws: UVError.self) { try await loop.submit { 1 } }
    }

    @Test func aLoopThatNeverRanCanBeShutDown() throws {
        let loop = EventLoop()
        #expect(throws: Never.self) { try loop.shutdown() }
    }
}
