import MQTTProtocol
import Testing

@Suite struct ClientQoSTests {
    @Test func qos0IsSentAtOnceAndCompletesWhenWritten() throws {
        var h = Harness()
        try h.establish()
        try h.publish("a/b", [9], qos: .atMostOnce, token: 5, retain: true)
        #expect(h.take() == [
            .send(.publish(PublishPacket(topic: "a/b", payload: [9], qos: .atMostOnce, retain: true))),
            .published(MQTTRequestToken(5), packetID: 0, qos: .atMostOnce),
        ])
        let direct = h.machine.beginDirectQoS0Publish(now: h.now)
        #expect(direct)
        h.close()
        let directWhenClosed = h.machine.beginDirectQoS0Publish(now: h.now)
        #expect(!directWhenClosed)
    }

    @Test func qos1PublishCompletesOnItsPubAck() throws {
        var h = Harness()
        try h.establish()
        try h.publish("t", qos: .atLeastOnce, token: 1)
        try h.publish("t", qos: .atLeastOnce, token: 2)
        let ids = h.sent.compactMap(\.publish?.packetID)
        #expect(ids == [1, 2])
        _ = h.take()
        h.puback(2)
        h.puback(1)
        #expect(h.take() == [
            .published(MQTTRequestToken(2), packetID: 2, qos: .atLeastOnce),
            .published(MQTTRequestToken(1), packetID: 1, qos: .atLeastOnce),
        ])
        #expect(h.machine.inflightCount == 0)
    }

    @Test func qos2HandshakeSendsPubRelAndCompletesOnPubComp() throws {
        var h = Harness()
        try h.establish()
        try h.publish("t", qos: .exactlyOnce, token: 7)
        let id = try #require(h.sent.first?.publish?.packetID)
        _ = h.take()
        h.pubrec(id)
        #expect(h.take() == [.send(.pubrel(packetID: id))])
        // A repeated PUBREC gets PUBREL again; a PUBACK for a QoS 2 id is unexpected.
        h.pubrec(id)
        h.puback(id)
        #expect(h.take() == [.send(.pubrel(packetID: id)), .unexpected(.puback, packetID: id)])
        h.pubcomp(id)
        #expect(h.take() == [.published(MQTTRequestToken(7), packetID: id, qos: .exactlyOnce)])
        #expect(h.machine.inflightCount == 0)
    }

    @Test func unexpectedAcksAreReportedNotFatal() throws {
        var h = Harness()
        try h.establish()
        try h.publish("t", qos: .atLeastOnce, token: 1)
        _ = h.take()
        h.puback(99)
        h.pubcomp(1)
        h.pubrec(1)
        h.pubcomp(77)
        h.suback(55, [.granted(.atMostOnce)])
        h.unsuback(56)
        h.pubrec(300)
        #expect(h.take() == [
            .unexpected(.puback, packetID: 99),
            .unexpected(.pubcomp, packetID: 1),
            .unexpected(.pubrec, packetID: 1),
            .unexpected(.pubcomp, packetID: 77),
            .unexpected(.suback, packetID: 55),
            .unexpected(.unsuback, packetID: 56),
            // An unknown PUBREC is still answered, so the broker can let go of it.
            .unexpected(.pubrec, packetID: 300), .send(.pubrel(packetID: 300)),
        ])
        #expect(h.machine.connectionState == .connected)
        h.puback(1)
        #expect(h.take() == [.published(MQTTRequestToken(1), packetID: 1, qos: .atLeastOnce)])
    }

    @Test func publishesBeyondTheWindowWaitAndGoOutAsAcksFreeIt() throws {
        var h = Harness(window: 2, maxQueued: 3)
        try h.establish()
        for token in 1...5 { try h.publish("t", qos: .atLeastOnce, token: UInt64(token)) }
        #expect(h.sent.compactMap(\.publish?.packetID) == [1, 2])
        #expect(h.machine.inflightCount == 2 && h.machine.queuedMessageCount == 3)
        #expect(throws: MQTTClientError.sendQueueFull(messages: 3, bytes: 12)) {
            try h.publish("t", qos: .atLeastOnce, token: 6)
        }
        // QoS 0 is not held behind the window.
        _ = h.take()
        try h.publish("z", qos: .atMostOnce)
        #expect(h.take().count == 2)
        h.puback(2)
        #expect(h.take() == [
            .published(MQTTRequestToken(2), packetID: 2, qos: .atLeastOnce),
            .send(.publish(PublishPacket(topic: "t", payload: [1, 2, 3], qos: .atLeastOnce, packetID: 3))),
        ])
        h.puback(1)
        h.puback(3)
        let ids = h.sent.compactMap(\.publish?.packetID)
        #expect(ids == [4, 5])
        #expect(h.machine.queuedMessageCount == 0)
    }

    @Test func subscribeAndUnsubscribeCompleteTheirOwnRequests() throws {
        var h = Harness()
        try h.establish()
        let a = try h.subscribe([TopicSubscription(filter: "a/#", qos: .atLeastOnce), TopicSubscription(filter: "b", qos: .exactlyOnce)], token: 10)
        let b = try h.subscribe([TopicSubscription(filter: "c", qos: .atMostOnce)], token: 11)
        let u = try h.unsubscribe(["a/#"], token: 12)
        #expect(Set([a, b, u]).count == 3)
        #expect(h.take() == [
            .send(.subscribe(SubscribePacket(packetID: a, subscriptions: [TopicSubscription(filter: "a/#", qos: .atLeastOnce), TopicSubscription(filter: "b", qos: .exactlyOnce)]))),
            .send(.subscribe(SubscribePacket(packetID: b, subscriptions: [TopicSubscription(filter: "c", qos: .atMostOnce)]))),
            .send(.unsubscribe(UnsubscribePacket(packetID: u, filters: ["a/#"]))),
        ])
        // Out of order answers, each to its own request.
        h.suback(b, [.failure])
        h.suback(a, [.granted(.atLeastOnce), .granted(.atLeastOnce)])
        #expect(h.machine.activeSubscriptions.map(\.filter) == ["a/#", "b"])
        h.unsuback(u)
        #expect(h.take() == [
            .subscribed(MQTTRequestToken(11), filters: [TopicSubscription(filter: "c", qos: .atMostOnce)], codes: [.failure]),
            .subscribed(MQTTRequestToken(10), filters: [TopicSubscription(filter: "a/#", qos: .atLeastOnce), TopicSubscription(filter: "b", qos: .exactlyOnce)], codes: [.granted(.atLeastOnce), .granted(.atLeastOnce)]),
            .unsubscribed(MQTTRequestToken(12), packetID: u),
        ])
        #expect(h.machine.activeSubscriptions == [TopicSubscription(filter: "b", qos: .exactlyOnce)])
        #expect(throws: MQTTClientError.noTopicFilters) { try h.subscribe([]) }
        #expect(throws: MQTTClientError.noTopicFilters) { try h.unsubscribe([]) }
    }

    @Test func incomingQoS0And1AreDeliveredAndQoS1Acknowledged() throws {
        var h = Harness()
        try h.establish()
        h.receive(topic: "x", payload: [1], qos: .atMostOnce)
        h.receive(topic: "y", payload: [2], qos: .atLeastOnce, packetID: 4)
        #expect(h.take() == [
            .deliver(topic: "x", payload: [1], qos: .atMostOnce, packetID: 0, dup: false),
            .deliver(topic: "y", payload: [2], qos: .atLeastOnce, packetID: 4, dup: false),
            .send(.puback(packetID: 4)),
        ])
    }

    @Test func incomingQoS2IsDeliveredExactlyOnce() throws {
        var h = Harness()
        try h.establish()
        h.receive(topic: "q", payload: [1], qos: .exactlyOnce, packetID: 7)
        h.receive(topic: "q", payload: [1], qos: .exactlyOnce, packetID: 7, dup: true)
        #expect(h.take() == [
            .deliver(topic: "q", payload: [1], qos: .exactlyOnce, packetID: 7, dup: false),
            .send(.pubrec(packetID: 7)),
            .send(.pubrec(packetID: 7)),
        ])
        #expect(h.machine.awaitingReleaseCount == 1)
        h.pubrel(7)
        h.pubrel(7)
        #expect(h.take() == [.send(.pubcomp(packetID: 7)), .send(.pubcomp(packetID: 7))])
        // After PUBREL the id names a new message.
        h.receive(topic: "q", payload: [2], qos: .exactlyOnce, packetID: 7)
        #expect(h.take() == [.deliver(topic: "q", payload: [2], qos: .exactlyOnce, packetID: 7, dup: false), .send(.pubrec(packetID: 7))])
    }

    @Test func oversizeMessagesAreAcknowledgedLikeOthers() throws {
        var h = Harness()
        try h.establish()
        h.oversize(qos: .atMostOnce, packetID: 0)
        h.oversize(qos: .atLeastOnce, packetID: 3)
        h.oversize(qos: .exactlyOnce, packetID: 4)
        h.oversize(qos: .exactlyOnce, packetID: 4)
        #expect(h.take() == [
            .deliverOversized(topic: "big", prefix: [1, 2], total: 1_000, qos: .atMostOnce, packetID: 0),
            .deliverOversized(topic: "big", prefix: [1, 2], total: 1_000, qos: .atLeastOnce, packetID: 3), .send(.puback(packetID: 3)),
            .deliverOversized(topic: "big", prefix: [1, 2], total: 1_000, qos: .exactlyOnce, packetID: 4), .send(.pubrec(packetID: 4)),
            .send(.pubrec(packetID: 4)),
        ])
        #expect(h.machine.connectionState == .connected)
    }

    /// Window 3 makes the id index (8 cells) collide and shift constantly; 17 spreads it.
    @Test(arguments: [3, 17])
    func packetIDsNeverRepeatInFlightAndWrapAround(window: Int) throws {
        // Random publishes (QoS 1 / 2), subscribes and out-of-order acks over more than one
        // full cycle of the id space. Invariants after every step: no id twice in flight, never
        // id 0, at most `window` messages in flight, every token completes exactly once.
        var rng = SplitMix64(seed: 2024 + UInt64(window))
        var h = Harness(window: window, maxQueued: 64)
        try h.establish()
        var inFlight: [UInt16: QoS] = [:]      // publishes awaiting their final ack
        var released: Set<UInt16> = []          // QoS 2 past PUBREC
        var controls: Set<UInt16> = []          // subscribes awaiting SUBACK
        var completed: Set<UInt64> = []
        var issued: UInt64 = 0
        var maxIDSeen: UInt16 = 0
        var wrapped = false
        var steps = 0
        while steps < 400_000 && !(wrapped && issued > 80_000) {
            steps += 1
            switch rng.below(10) {
            case 0...4:
                issued += 1
                do {
                    try h.publish("t", [], qos: rng.below(2) == 0 ? .atLeastOnce : .exactlyOnce, token: issued)
                } catch {
                    #expect(error == .sendQueueFull(messages: 64, bytes: 64))
                    completed.insert(issued)  // refused synchronously: its one outcome
                }
            case 5:
                if controls.count < 3 { controls.insert(try h.subscribe([TopicSubscription(filter: "f", qos: .atMostOnce)])) }
            default:
                if let id = controls.first, rng.below(8) == 0 {
                    controls.remove(id)
                    h.suback(id, [.granted(.atMostOnce)])
                } else if !inFlight.isEmpty {
                    let keys = Array(inFlight.keys)
                    let id = keys[rng.below(keys.count)]
                    switch inFlight[id] {
                    case .atLeastOnce: h.puback(id)
                    case .exactlyOnce: if released.contains(id) { h.pubcomp(id) } else { h.pubrec(id) }
                    default: break
                    }
                }
            }
            for record in h.take() {
                switch record {
                case .send(.publish(let p)):
                    #expect(p.packetID != 0)
                    #expect(inFlight[p.packetID] == nil && !controls.contains(p.packetID), "id \(p.packetID) reused in flight")
                    inFlight[p.packetID] = p.qos
                    if p.packetID < maxIDSeen { wrapped = true }
                    maxIDSeen = max(maxIDSeen, p.packetID)
                case .send(.subscribe(let s)):
                    #expect(inFlight[s.packetID] == nil, "subscribe reuses a publish id")
                    maxIDSeen = max(maxIDSeen, s.packetID)
                case .send(.pubrel(let id)):
                    released.insert(id)
                case .published(let token, let id, _):
                    inFlight[id] = nil
                    released.remove(id)
                    let t = try #require(token?.rawValue)
                    #expect(completed.insert(t).inserted, "token \(t) completed twice")
                case .unexpected(let type, let id):
                    Issue.record("unexpected \(type) \(id)")
                default:
                    break
                }
            }
            #expect(inFlight.count <= window)
            #expect(h.machine.inflightCount == inFlight.count)
        }
        #expect(wrapped)
        #expect(maxIDSeen == 65_535)
        // Drain: everything issued completes exactly once.
        var rounds = 0
        while (!inFlight.isEmpty || h.machine.queuedMessageCount > 0) && rounds < 10_000 {
            rounds += 1
            for (id, qos) in inFlight {
                if qos == .atLeastOnce { h.puback(id) } else if released.contains(id) { h.pubcomp(id) } else { h.pubrec(id) }
            }
            for record in h.take() {
                switch record {
                case .send(.publish(let p)): inFlight[p.packetID] = p.qos
                case .send(.pubrel(let id)): released.insert(id)
                case .published(let token, let id, _):
                    inFlight[id] = nil
                    released.remove(id)
                    #expect(completed.insert(token!.rawValue).inserted)
                default: break
                }
            }
        }
        #expect(completed.count == Int(issued))
    }
}
