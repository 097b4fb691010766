import MQTTProtocol
import Testing

@Suite struct ClientKeepaliveTests {
    @Test func pingreqGoesOutAfterKeepAliveOfSilence() throws {
        var h = Harness(keepAlive: 10)
        try h.establish()
        let start = h.now
        h.advance(by: .seconds(10) - .nanoseconds(1))
        #expect(h.take() == [])
        h.advance(by: .nanoseconds(1))
        #expect(h.take() == [.send(.pingreq)])
        #expect(h.now == start + .seconds(10))
        // The answer comes; the next PINGREQ is due one keepalive after this one.
        h.advance(by: .seconds(2))
        h.pingresp()
        h.advance(by: .seconds(8) - .nanoseconds(1))
        #expect(h.take() == [])
        h.advance(by: .nanoseconds(1))
        #expect(h.take() == [.send(.pingreq)])
        #expect(h.machine.connectionState == .connected)
    }

    @Test func trafficBothWaysPostponesThePing() throws {
        var h = Harness(keepAlive: 10)
        try h.establish()
        // Every 4 s the client publishes QoS 1 and the broker acknowledges: no PINGREQ ever.
        for i in 1...50 {
            h.advance(by: .seconds(4))
            try h.publish("t", qos: .atLeastOnce)
            h.puback(UInt16(i))
        }
        #expect(!h.take().contains(.send(.pingreq)))
        #expect(h.machine.connectionState == .connected)
        // The timer was not re-armed per message: it fired about once per keepalive at most.
        #expect(h.fires < 50)
    }

    @Test func sendingAloneDoesNotHideASilentBroker() throws {
        // The client publishes QoS 0 every second; the broker never answers anything. The ping
        // still goes out one keepalive after the last packet received.
        var h = Harness(keepAlive: 10)
        try h.establish()
        let lastReceived = h.now
        var pingAt: MQTTInstant?
        var deadAt: MQTTInstant?
        for _ in 0..<30 where deadAt == nil {
            h.advance(by: .seconds(1))
            if h.machine.connectionState == .connected { try h.publish("t", qos: .atMostOnce) }
            for record in h.take() {
                if record == .send(.pingreq) { pingAt = pingAt ?? h.now }
                if case .offline(.keepAliveTimeout, _) = record { deadAt = h.now }
            }
        }
        #expect(pingAt == lastReceived + .seconds(10))
        #expect(deadAt == lastReceived + .seconds(15))
    }

    @Test func aSilentBrokerIsDeclaredDeadWithinOneAndAHalfKeepAlive() throws {
        // Property over traffic patterns: the broker answers normally, then at a random moment
        // falls silent. The connection must end no later than lastReceived + 1.5 K, and never
        // while the broker still answers.
        var rng = SplitMix64(seed: 7)
        let keepAlive: UInt16 = 20
        let k = Duration.seconds(Int(keepAlive))
        for _ in 0..<200 {
            var h = Harness(keepAlive: keepAlive)
            try h.establish()
            var lastReceived = h.now
            let silentAfter = h.now + .milliseconds(Int64(rng.next() % 120_000))
            let sendEvery = Duration.milliseconds(Int64(500 + rng.next() % 30_000))
            let answerDelay = Duration.milliseconds(Int64(rng.next() % 9_000))  // < K/2
            var pendingPingAnswer: MQTTInstant?
            var nextSend = h.now + sendEvery
            var deadAt: MQTTInstant?
            var steps = 0
            while deadAt == nil && steps < 10_000 {
                steps += 1
                // Next event: a send by the client, a ping answer, or the timer.
                var next = nextSend
                if let answer = pendingPingAnswer, answer < next { next = answer }
                if let timer = h.machine.deadline, timer.at < next { next = timer.at }
                h.advance(by: next - h.now)
                if let answer = pendingPingAnswer, answer == h.now {
                    pendingPingAnswer = nil
                    if h.now < silentAfter {
                        h.pingresp()
                        lastReceived = h.now
                    }
                }
                if h.now == nextSend, h.machine.connectionState == .connected {
                    try h.publish("t", qos: .atMostOnce)
                    nextSend = h.now + sendEvery
                }
                for record in h.take() {
                    if record == .send(.pingreq) { pendingPingAnswer = h.now + answerDelay }
                    if case .offline(let reason, _) = record {
                        #expect(reason == .keepAliveTimeout)
                        deadAt = h.now
                    }
                }
            }
            let dead = try #require(deadAt)
            #expect(dead <= lastReceived + k + k / 2, "declared dead too late")
            #expect(dead >= silentAfter, "declared dead while the broker answered")
            #expect(dead >= lastReceived + k / 2)
        }
    }

    @Test func anyPacketAnswersThePing() throws {
        var h = Harness(keepAlive: 10)
        try h.establish()
        h.advance(by: .seconds(10))
        #expect(h.take() == [.send(.pingreq)])
        h.advance(by: .seconds(4))
        h.receive(topic: "x", payload: [], qos: .atMostOnce)
        h.advance(by: .seconds(2))
        #expect(h.machine.connectionState == .connected)
        _ = h.take()
        // Next ping: one keepalive after the last PINGREQ sent (nothing sent since).
        h.advance(by: .seconds(4))
        #expect(h.take() == [.send(.pingreq)])
    }

    // MARK: Reading paused by the client (read back-pressure)

    @Test func aPausedReaderNeverDeclaresTheBrokerDeadAndKeepsPinging() throws {
        var h = Harness(keepAlive: 10)
        try h.establish()
        let start = h.now
        h.advance(by: .seconds(10))
        #expect(h.take() == [.send(.pingreq)])
        // The PINGRESP is in the socket, but our consumer is behind: reading stops.
        h.advance(by: .seconds(1))
        h.machine.readingPaused(now: h.now)
        #expect(h.machine.isReadingPaused)
        // Far beyond 1.5 K: no verdict, and a PINGREQ every K of client silence so the broker
        // does not drop us [MQTT-3.1.2-24].
        h.advance(by: .seconds(100))
        #expect(h.machine.connectionState == .connected)
        let paused = h.take()
        #expect(paused == Array(repeating: .send(.pingreq), count: 10))
        #expect(h.fires < 30)
        // Resume at start + 111 (last PINGREQ at start + 110): the buffered PINGRESP is read.
        h.machine.readingResumed(now: h.now, into: &h.actions)
        h.record()
        #expect(!h.machine.isReadingPaused)
        #expect(h.take() == [])
        h.advance(by: .seconds(1))
        h.pingresp()
        // From here on the ordinary rule: PINGREQ one K after the last one, answered 1 s later.
        var pingTimes: [MQTTInstant] = []
        for _ in 0..<5 {
            var records: [Recorded] = []
            for _ in 0..<30 where records.isEmpty {
                h.advance(by: .milliseconds(500))
                records = h.take()
            }
            #expect(records == [.send(.pingreq)])
            pingTimes.append(h.now)
            h.advance(by: .seconds(1))
            h.pingresp()
        }
        #expect(h.machine.connectionState == .connected)
        #expect(pingTimes == [120, 130, 140, 150, 160].map { start + .seconds($0) })
    }

    @Test func aBrokerThatDiedWhileReadingWasPausedIsNoticedWithinOneAndAHalfKeepAliveOfTheResume() throws {
        var h = Harness(keepAlive: 10)
        try h.establish()
        let start = h.now
        h.advance(by: .seconds(3))
        h.machine.readingPaused(now: h.now)
        h.advance(by: .seconds(108))  // pings at start + 10, 20, ..., 110
        #expect(h.take().filter { $0 == .send(.pingreq) }.count == 11)
        let resumedAt = h.now  // start + 111
        h.machine.readingResumed(now: h.now, into: &h.actions)
        h.record()
        // Nothing arrives after the resume: PINGREQ one K after the last one sent, verdict K/2
        // later, so within 1.5 K of the resume (and not before the resume).
        var deadAt: MQTTInstant?
        for _ in 0..<40 where deadAt == nil {
            h.advance(by: .milliseconds(500))
            for record in h.take() {
                if case .offline(let reason, _) = record {
                    #expect(reason == .keepAliveTimeout)
                    deadAt = h.now
                }
            }
        }
        let dead = try #require(deadAt)
        #expect(dead == start + .seconds(125))
        #expect(dead <= resumedAt + .seconds(15))
        #expect(dead > resumedAt)
    }

    @Test func pausingIsIdempotentResumingUnpausedDoesNothingAndANewTransportClearsIt() throws {
        var h = Harness(keepAlive: 10, reconnect: ReconnectBackoff(initialDelay: .seconds(1), maximumDelay: .seconds(1), multiplier: 1, jitter: 0))
        try h.establish()
        h.advance(by: .seconds(10))
        #expect(h.take() == [.send(.pingreq)])
        // A resume that follows no pause is no evidence: the outstanding ping still times out.
        h.advance(by: .seconds(2))
        h.machine.readingResumed(now: h.now, into: &h.actions)
        h.record()
        h.advance(by: .seconds(3))
        #expect(h.take().contains(.offline(.keepAliveTimeout, willReconnect: true)))
        // Paused while waiting to reconnect (twice): the next transport is read from the start,
        // so the pause is cleared and the ordinary rule applies to it.
        h.machine.readingPaused(now: h.now)
        h.machine.readingPaused(now: h.now)
        #expect(h.machine.isReadingPaused)
        h.advanceToNextAttempt()
        h.transportConnected()
        #expect(!h.machine.isReadingPaused)
        h.connack()
        _ = h.take()
        h.advance(by: .seconds(15))
        #expect(h.take() == [.send(.pingreq), .closeTransport, .offline(.keepAliveTimeout, willReconnect: true)])
    }

    @Test func pausingAndResumingDoNotRearmTheTimerForNothing() throws {
        var h = Harness(keepAlive: 10)
        try h.establish()
        let armed = try #require(h.machine.deadline)
        // Pausing only moves the verdict later: the armed timer stays (it fires and re-arms).
        h.advance(by: .seconds(1))
        h.machine.readingPaused(now: h.now)
        #expect(h.machine.deadline == armed)
        h.advance(by: .seconds(1))
        h.machine.readingResumed(now: h.now, into: &h.actions)
        h.record()
        #expect(h.machine.deadline == armed)
        #expect(h.take() == [])
        // A resume after a late timer (PINGREQ overdue) sends it at once.
        h.machine.readingPaused(now: h.now)
        h.at(h.now + .seconds(25))  // the timer did not run meanwhile
        h.machine.readingResumed(now: h.now, into: &h.actions)
        h.record()
        #expect(h.take() == [.send(.pingreq)])
        // The stale earlier deadline fires, finds nothing due, and re-arms for the verdict.
        h.advance(by: .zero)
        #expect(h.take() == [])
        #expect(h.machine.deadline.map(\.at) == h.now + .seconds(5))
    }

    @Test func aBrokerAliveBehindRandomPausesIsNeverDeclaredDeadAndADeadOneIsNoticedInTime() throws {
        // Property: the broker answers every PINGREQ within K/2, but while reading is paused its
        // answers wait unread and are read right after the resume. Pauses come and go at random,
        // some far longer than 1.5 K. Then the broker falls silent: it must be declared dead
        // within 1.5 K of the later of its last packet read and the last resume, and never
        // before it fell silent.
        var rng = SplitMix64(seed: 11)
        let keepAlive: UInt16 = 10
        let k = Duration.seconds(Int(keepAlive))
        for _ in 0..<100 {
            var h = Harness(keepAlive: keepAlive)
            try h.establish()
            var evidence = h.now  // the later of the last packet read and the last resume
            let silentAfter = h.now + .milliseconds(Int64(100_000 + rng.next() % 200_000))
            var paused = false
            var nextToggle = h.now + .milliseconds(Int64(rng.next() % 40_000))
            var pendingAnswer: MQTTInstant?
            var unreadAnswer = false
            var deadAt: MQTTInstant?
            var steps = 0
            while deadAt == nil && steps < 10_000 {
                steps += 1
                var next = nextToggle
                if let answer = pendingAnswer, answer < next { next = answer }
                if let timer = h.machine.deadline, timer.at < next { next = timer.at }
                h.advance(by: next - h.now)
                if let answer = pendingAnswer, answer == h.now {
                    pendingAnswer = nil
                    if h.now < silentAfter {
                        if paused {
                            unreadAnswer = true
                        } else {
                            h.pingresp()
                            evidence = h.now
                        }
                    }
                }
                if h.now == nextToggle {
                    if paused {
                        paused = false
                        h.machine.readingResumed(now: h.now, into: &h.actions)
                        h.record()
                        evidence = h.now
                        if unreadAnswer {
                            unreadAnswer = false
                            h.pingresp()
                        }
                        nextToggle = h.now + .milliseconds(Int64(rng.next() % 30_000))
                    } else {
                        paused = true
                        h.machine.readingPaused(now: h.now)
                        nextToggle = h.now + .milliseconds(Int64(rng.next() % 60_000))
                    }
                }
                for record in h.take() {
                    if record == .send(.pingreq), pendingAnswer == nil {
                        pendingAnswer = h.now + .milliseconds(Int64(rng.next() % 4_900))
                    }
                    if case .offline(let reason, _) = record {
                        #expect(reason == .keepAliveTimeout)
                        deadAt = h.now
                    }
                }
            }
            let dead = try #require(deadAt)
            #expect(!paused, "declared dead while reading was paused")
            #expect(dead >= silentAfter, "declared dead while the broker answered")
            #expect(dead <= evidence + k + k / 2, "declared dead too late")
        }
    }

    @Test func keepAliveZeroDisablesPings() throws {
        var h = Harness(keepAlive: 0)
        try h.establish()
        #expect(h.machine.deadline == nil)
        h.advance(by: .seconds(100_000))
        #expect(h.take() == [])
        #expect(h.machine.connectionState == .connected)
    }
}


