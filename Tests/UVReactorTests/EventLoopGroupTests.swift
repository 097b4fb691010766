import Foundation
import Testing
@testable import UVReactor
#if canImport(Glibc)
import Glibc
#endif

/// The kernel id of the calling thread (`gettid()` does not import: /proc/thread-self links to
/// /proc/<pid>/task/<tid>).
private func currentThreadID() -> pid_t {
    let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self")) ?? ""
    return pid_t(target.split(separator: "/").last ?? "") ?? -1
}

@Suite struct EventLoopGroupTests {
    @Test func defaultSizeIsTheCoreCount() async {
        #expect(System.coreCount == Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        let group = EventLoopGroup()
        #expect(group.loops.count == System.coreCount)
        await group.shutdownGracefully()
    }

    @Test func nextIsRoundRobin() throws {
        let group = EventLoopGroup(threads: 3)
        let handedOut = (0..<7).map { _ in group.next() }
        let expected = [0, 1, 2, 0, 1, 2, 0].map { group.loops[$0] }
        #expect(zip(handedOut, expected).allSatisfy { $0 === $1 })
        try group.shutdown()
    }

    /// Concurrent callers share one counter: every loop is handed out exactly as often.
    @Test func nextIsBalancedUnderConcurrentCallers() async throws {
        let group = EventLoopGroup(threads: 3)
        let counts = await withTaskGroup(of: [Int].self) { tasks in
            for _ in 0..<4 {
                tasks.addTask {
                    var counts = [0, 0, 0]
                    for _ in 0..<300 {
                        let loop = group.next()
                        counts[group.loops.firstIndex { $0 === loop }!] += 1
                    }
                    return counts
                }
            }
            var total = [0, 0, 0]
            for await part in tasks { for index in 0..<3 { total[index] += part[index] } }
            return total
        }
        #expect(counts == [400, 400, 400])
        await group.shutdownGracefully()
    }

    /// Each loop runs its work on a thread of its own: not the caller's, not another loop's.
    @Test func everyLoopRunsWorkOnItsOwnThread() async throws {
        let group = EventLoopGroup(threads: 4)
        let callerThread = currentThreadID()
        var threads: Set<pid_t> = []
        for loop in group.loops {
            let (onLoop, thread) = try await loop.submit { (loop.inEventLoop, currentThreadID()) }
            #expect(onLoop)
            #expect(thread != callerThread)
            threads.insert(thread)
            #expect(!group.inEventLoop)
            #expect(try await loop.submit { group.inEventLoop })
        }
        #expect(threads.count == 4)
        try group.shutdown()
    }

    @Test func shutdownLeavesNoThread() async throws {
        let group = EventLoopGroup(threads: 4)
        let threads = try await loopThreads(of: group)
        #expect(threads.allSatisfy(threadExists))
        #expect(throws: Never.self) { try group.shutdown() }
        #expect(await allEnded(threads), "a loop thread is still alive after shutdown()")
        for loop in group.loops {
            await #expect(throws: UVError.self) { try await loop.submit { 1 } }
        }
    }

    @Test func shutdownGracefullyLeavesNoThread() async throws {
        let group = EventLoopGroup(threads: 4)
        let threads = try await loopThreads(of: group)
        // Something open on each loop: shutdown closes it.
        for loop in group.loops { loop.execute { loop.scheduleTimer(after: .seconds(60)) {} } }
        await group.shutdownGracefully()
        #expect(await allEnded(threads), "a loop thread is still alive after shutdownGracefully()")
    }

    @Test func droppingTheGroupEndsItsThreads() async throws {
        var group: EventLoopGroup? = EventLoopGroup(threads: 2)
        let threads = try await loopThreads(of: group!)
        group = nil
        #expect(await allEnded(threads), "a dropped group's loop thread is still alive")
    }

    /// `shutdown()` on one of the group's own loops would wait for itself: it traps with a message
    /// instead of hanging (an exit test: runs in a child process).
    @Test func shutdownFromOneOfItsLoopsTraps() async {
        await #expect(processExitsWith: .failure) {
            let group = EventLoopGroup(threads: 1)
            _ = try? await group.loops[0].submit { try? group.shutdown() }
        }
    }

    // MARK: Helpers


    /// The kernel thread id of each loop's thread.
    private func loopThreads(of group: EventLoopGroup) async throws -> [pid_t] {
        var threads: [pid_t] = []
        for loop in group.loops { threads.append(try await loop.submit { currentThreadID() }) }
        return threads
    }

    private func threadExists(_ thread: pid_t) -> Bool {
        FileManager.default.fileExists(atPath: "/proc/self/task/\(thread)")
    }

    /// Whether every thread has gone from /proc/self/task within 5 s (a joined thread's task may
    /// linger for a moment after pthread_join returned: the kernel wakes the joiner before it
    /// releases the task).
    private func allEnded(_ threads: [pid_t]) async -> Bool {
        for _ in 0..<1_000 {
            if !threads.contains(where: threadExists) { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return !threads.contains(where: threadExists)
    }
}
