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
        var rng = SplitMix(seed: 7)
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

    @Test func keepAliveZeroDisablesPings() throws {
        var h = Harness(keepAlive: 0)
        try h.establish()
        #expect(h.machine.deadline == nil)
        h.advance(by: .seconds(100_000))
        #expect(h.take() == [])
        #expect(h.machine.connectionState == .connected)
    }
}

/// A small deterministic generator for the tests' properties.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}
