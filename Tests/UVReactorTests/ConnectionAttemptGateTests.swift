import Testing
@testable import UVReactor

@Suite struct ConnectionAttemptGateTests {
    @Test func defaultLimitIs64() {
        #expect(ConnectionAttemptGate().maximumConcurrentAttempts == 64)
    }

    @Test func admitsUpToTheLimitAndQueuesTheRestInOrder() {
        let gate = ConnectionAttemptGate(maximumConcurrentAttempts: 3)
        var started: [Int] = []
        for index in 0..<7 { gate.acquire { started.append(index) } }
        #expect(started == [0, 1, 2])
        #expect(gate.attemptsInFlight == 3)
        #expect(gate.waitingCount == 4)
        gate.release()
        #expect(started == [0, 1, 2, 3])
        gate.release()
        gate.release()
        #expect(started == [0, 1, 2, 3, 4, 5])
        #expect(gate.attemptsInFlight == 3)
        for _ in 0..<3 { gate.release() }
        #expect(started == Array(0..<7))
        #expect(gate.attemptsInFlight == 1)
        #expect(gate.waitingCount == 0)
        gate.release()
        #expect(gate.attemptsInFlight == 0)
        // Under the limit again: runs at once.
        gate.acquire { started.append(7) }
        #expect(started.last == 7)
    }

    /// Attempts that fail at once release from inside their start: the gate admits the next in a
    /// loop, not by recursion (100,000 of them would overflow the stack otherwise), in order.
    @Test func reentrantReleaseAdmitsEveryoneInOrder() {
        let gate = ConnectionAttemptGate(maximumConcurrentAttempts: 2)
        var started: [Int] = []
        var holding = 0
        // Two long attempts hold the gate, the rest queue.
        for _ in 0..<2 { gate.acquire { holding += 1 } }
        let count = 100_000
        for index in 0..<count {
            gate.acquire {
                started.append(index)
                gate.release()
            }
        }
        #expect(started.isEmpty)
        #expect(gate.waitingCount == count)
        gate.release()
        #expect(started == Array(0..<count))
        #expect(gate.attemptsInFlight == 1)
        #expect(holding == 2)
    }

    /// A start that acquires again (a retry queued from inside an attempt) goes to the back.
    @Test func acquireFromInsideAStartQueuesBehind() {
        let gate = ConnectionAttemptGate(maximumConcurrentAttempts: 1)
        var order: [String] = []
        gate.acquire {
            order.append("a")
            gate.acquire { order.append("a-retry") }
        }
        gate.acquire { order.append("b") }
        #expect(order == ["a"])
        gate.release()
        #expect(order == ["a", "a-retry"])
        gate.release()
        #expect(order == ["a", "a-retry", "b"])
    }

    @Test func releaseWithoutAnAttemptTraps() async {
        await #expect(processExitsWith: .failure) {
            ConnectionAttemptGate().release()
        }
    }

    /// Each loop has one gate, reachable on its thread; attempts still waiting when the loop
    /// shuts down are started then, so none waits forever.
    @Test func loopGateStartsWaitingAttemptsAtShutdown() async throws {
        let loop = EventLoop()
        loop.start()
        let started = Outcome<Int>()
        let startedCount = LoopBound(0, loop: loop)
        let (limit, sameGate, waiting) = try await loop.submit { () -> (Int, Bool, Int) in
            let gate = loop.connectGate
            let limit = gate.maximumConcurrentAttempts
            for _ in 0..<(limit + 5) {
                gate.acquire {
                    startedCount.value += 1
                    if startedCount.value == limit + 5 { started.fulfil(startedCount.value) }
                }
            }
            return (limit, gate === loop.connectGate, gate.waitingCount)
        }
        #expect(sameGate)
        #expect(waiting == 5)
        #expect(!started.isFulfilled)
        loop.stop()
        #expect(await started.wait() == limit + 5)
        await loop.shutdownGracefully()
    }

    @Test func loopGateOffTheLoopThreadTraps() async {
        await #expect(processExitsWith: .failure) {
            _ = EventLoop().connectGate
        }
    }
}
