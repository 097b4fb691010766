import MQTTProtocol
import Testing

/// A completion box, as an executor would put in a token's context.
final class CompletionBox: Sendable {
    let name: String
    init(_ name: String) { self.name = name }
}

/// Request tokens, size checks at the call, cancellation, flow control.
@Suite struct ClientRequestTests {
    static func harness(limit: Int = MQTTEncoder.maximumPacketSize, window: Int = 8, maxQueued: Int = 100,
                        maxQueuedBytes: Int = 1 << 20, reconnect: ReconnectBackoff? = nil) -> Harness {
        let connect = ConnectPacket(version: .v3_1_1, clientID: "c1", cleanSession: true, keepAlive: 60)
        return Harness(MQTTClientConfiguration(
            connect: connect, inflightWindow: window, maxQueuedMessages: maxQueued, maxQueuedBytes: maxQueuedBytes,
            maximumOutgoingPacketSize: limit, reconnect: reconnect, jitterSeed: 42))
    }

    // MARK: Tokens

    @Test func tokensCompareByRawValueAndCarryTheirContext() throws {
        let box = CompletionBox("first")
        let a = MQTTRequestToken(7, context: box)
        let b = MQTTRequestToken(7, context: CompletionBox("other"))
        #expect(a == b)
        #expect(a.hashValue == b.hashValue)
        #expect(a != MQTTRequestToken(8, context: box))
        #expect(Set([a, b, MQTTRequestToken(7)]).count == 1)

        var h = Harness()
        try h.establish()
        try h.machine.publish(PublishPacket(topic: "t", payload: [1], qos: .atLeastOnce), token: a, now: h.now, into: &h.actions)
        h.actions.removeAll()
        h.machine.receivedPubAck(packetID: 1, now: h.now, into: &h.actions)
        guard case .publishCompleted(let token?, packetID: 1, qos: .atLeastOnce)? = h.actions.first else {
            Issue.record("no completion: \(h.actions.map(Recorded.init))")
            return
        }
        #expect(token.context === box)
        #expect((token.context as? CompletionBox)?.name == "first")
    }

    // MARK: Outgoing size

    @Test func packetSizeHelpersMatchTheEncoder() throws {
        for qos in QoS.allCases {
            for (topic, payloadCount) in [("t", 0), ("a/b/c", 100), ("x", 200_000), (String(repeating: "é", count: 70), 16_380)] {
                let packet = PublishPacket(topic: topic, payload: [UInt8](repeating: 7, count: payloadCount), qos: qos,
                                           packetID: qos == .atMostOnce ? 0 : 9)
                let bytes = try encoded(.publish(packet))
                #expect(MQTTEncoder.publishPacketSize(topicByteCount: topic.utf8.count, payloadCount: payloadCount, qos: qos) == bytes.count)
            }
        }
        let subscriptions = [TopicSubscription(filter: "a/+", qos: .atLeastOnce), TopicSubscription(filter: "#", qos: .atMostOnce)]
        #expect(MQTTEncoder.subscribePacketSize(subscriptions) == (try encoded(.subscribe(SubscribePacket(packetID: 1, subscriptions: subscriptions)))).count)
        let filters = ["a/+", "b/#", String(repeating: "z", count: 300)]
        #expect(MQTTEncoder.unsubscribePacketSize(filters) == (try encoded(.unsubscribe(UnsubscribePacket(packetID: 1, filters: filters)))).count)
        // MQTT's own ceiling: a remaining length of 268,435,455 [MQTT-2.2.3] plus 5 header bytes.
        #expect(MQTTEncoder.maximumPacketSize == 268_435_460)
        let largest = RemainingLength.maximum - 2 - 1 - 2
        #expect(MQTTEncoder.publishPacketSize(topicByteCount: 1, payloadCount: largest, qos: .atLeastOnce) == MQTTEncoder.maximumPacketSize)
        #expect(MQTTEncoder.publishPacketSize(topicByteCount: 1, payloadCount: largest + 1, qos: .atLeastOnce) > MQTTEncoder.maximumPacketSize)
        // Limits above the ceiling are clamped.
        let config = MQTTClientConfiguration(connect: ConnectPacket(clientID: "c"), maximumOutgoingPacketSize: .max)
        #expect(config.maximumOutgoingPacketSize == MQTTEncoder.maximumPacketSize)
        #expect(MQTTClientStateMachine(configuration: config).maximumOutgoingPacketSize == MQTTEncoder.maximumPacketSize)
    }

    @Test func publishAboveTheLimitIsRefusedAtTheCallAndHoldsNothing() throws {
        // "t" (1 byte) with QoS 1: remaining = 2 + 1 + 2 + payload; 1 header byte + 1 length byte.
        var h = Self.harness(limit: 100)
        try h.establish()
        #expect(throws: MQTTClientError.packetTooLarge(size: 101, limit: 100)) {
            try h.publish("t", [UInt8](repeating: 0, count: 94), qos: .atLeastOnce, token: 1)
        }
        #expect(throws: MQTTClientError.packetTooLarge(size: 99, limit: 98)) {
            var small = Self.harness(limit: 98)
            try small.establish()
            try small.publish("t", [UInt8](repeating: 0, count: 94), qos: .atMostOnce, token: 1)
        }
        #expect(h.take() == [])
        #expect(h.machine.inflightCount == 0 && h.machine.queuedMessageCount == 0 && h.machine.queuedByteCount == 0)
        // Exactly at the limit: sent, and with packet id 1 (the refused one took none).
        try h.publish("t", [UInt8](repeating: 0, count: 93), qos: .atLeastOnce, token: 2)
        #expect(h.sent.compactMap(\.publish?.packetID) == [1])

        // Offline (waiting to reconnect): refused the same way, nothing queued.
        var r = Self.harness(limit: 100, reconnect: ReconnectBackoff())
        try r.establish()
        r.transportFailed(.closedByPeer)
        _ = r.take()
        #expect(throws: MQTTClientError.packetTooLarge(size: 101, limit: 100)) {
            try r.publish("t", [UInt8](repeating: 0, count: 94), qos: .exactlyOnce, token: 1)
        }
        #expect(r.take() == [])
        #expect(r.machine.queuedMessageCount == 0 && r.machine.queuedByteCount == 0)
    }

    @Test func subscribeAndUnsubscribeAboveTheLimitAreRefused() throws {
        var h = Self.harness(limit: 20)
        try h.establish()
        // SUBSCRIBE: 1 + 1 + 2 + (2 + 14 + 1) = 21.
        let filter = String(repeating: "f", count: 14)
        #expect(throws: MQTTClientError.packetTooLarge(size: 21, limit: 20)) {
            try h.subscribe([TopicSubscription(filter: filter, qos: .atMostOnce)], token: 1)
        }
        // UNSUBSCRIBE: 1 + 1 + 2 + (2 + 15) = 21.
        #expect(throws: MQTTClientError.packetTooLarge(size: 21, limit: 20)) {
            try h.unsubscribe([filter + "f"], token: 2)
        }
        #expect(h.take() == [])
        #expect(h.machine.pendingRequestCount == 0)
        let id = try h.subscribe([TopicSubscription(filter: String(filter.dropLast()), qos: .atMostOnce)], token: 3)
        #expect(id == 1)
        try h.unsubscribe([filter], token: 4)
        #expect(h.machine.pendingRequestCount == 2)
    }

    @Test func theResubscriptionAfterALostSessionKeepsWithinTheLimit() throws {
        // A SUBSCRIBE of one 11-byte filter is 1 + 1 + 2 + (2 + 11 + 1) = 18 bytes, of two 32,
        // of three 46: with a limit of 40 the re-subscription carries two filters per packet.
        var h = Self.harness(limit: 40, reconnect: ReconnectBackoff())
        try h.establish()
        for i in 0..<5 {
            let id = try h.subscribe([TopicSubscription(filter: "filter/\(i)abc", qos: .atMostOnce)])
            h.suback(id, [.granted(.atMostOnce)])
        }
        #expect(h.machine.activeSubscriptions.count == 5)
        h.transportFailed(.closedByPeer)
        _ = h.take()
        h.advanceToNextAttempt()
        h.transportConnected()
        h.connack(sessionPresent: false)
        let packets = h.sent.compactMap { packet -> SubscribePacket? in
            if case .subscribe(let p) = packet { return p }
            return nil
        }
        #expect(packets.map(\.subscriptions.count) == [2, 2, 1])
        #expect(packets.allSatisfy { MQTTEncoder.subscribePacketSize($0.subscriptions) <= 40 })
    }

    // MARK: Cancellation

    /// The topics of the PUBLISH packets sent since the last `take()`.
    static func topics(_ h: Harness) -> [String] { h.sent.compactMap(\.publish?.topic) }

    @Test func cancellingAQueuedPublishWithdrawsItForGood() throws {
        var h = Harness(reconnect: ReconnectBackoff())
        try h.connect()
        try h.publish("a", [1], qos: .atLeastOnce, token: 1)
        try h.publish("b", [1, 2], qos: .atMostOnce, token: 2)
        try h.publish("c", [1, 2, 3], qos: .exactlyOnce, token: 3)
        #expect(h.machine.queuedMessageCount == 3 && h.machine.queuedByteCount == 2 + 3 + 4)
        _ = h.take()
        h.cancel(2)
        #expect(h.take() == [.failed(MQTTRequestToken(2), .cancelled)])
        #expect(h.machine.queuedMessageCount == 2 && h.machine.queuedByteCount == 2 + 4)
        // Twice, or an unknown token: nothing.
        h.cancel(2)
        h.cancel(99)
        #expect(h.take() == [])
        h.transportConnected()
        h.connack()
        #expect(Self.topics(h) == ["a", "c"])

        // Queued behind a full window: withdrawn, the next one takes the freed slot.
        var w = Harness(window: 1)
        try w.establish()
        for token in 1...3 { try w.publish("t\(token)", qos: .atLeastOnce, token: UInt64(token)) }
        w.cancel(2)
        w.puback(1)
        #expect(Self.topics(w) == ["t1", "t3"])
        #expect(w.take().contains(.failed(MQTTRequestToken(2), .cancelled)))
        #expect(w.machine.queuedMessageCount == 0)
    }

    @Test func cancellingAWrittenPublishDetachesItsTokenButKeepsItInTheSession() throws {
        var h = Harness(cleanSession: false, reconnect: ReconnectBackoff())
        try h.establish()
        try h.publish("one", qos: .atLeastOnce, token: 1)
        try h.publish("two", qos: .exactlyOnce, token: 2)
        _ = h.take()
        h.cancel(1)
        h.cancel(2)
        #expect(h.take() == [.failed(MQTTRequestToken(1), .cancelled), .failed(MQTTRequestToken(2), .cancelled)])
        #expect(h.machine.inflightCount == 2)
        // Resent after a loss with the session kept, completed with no token.
        h.transportFailed(.closedByPeer)
        h.advanceToNextAttempt()
        h.transportConnected()
        h.connack(sessionPresent: true)
        #expect(h.sent.compactMap(\.publish).map(\.dup) == [true, true])
        _ = h.take()
        h.puback(1)
        h.pubrec(2)
        h.pubcomp(2)
        #expect(h.take() == [
            .published(nil, packetID: 1, qos: .atLeastOnce), .send(.pubrel(packetID: 2)), .published(nil, packetID: 2, qos: .exactlyOnce),
        ])
        h.cancel(1)
        #expect(h.take() == [])

        // Put back in the queue after the session was lost: written once, so detached, not withdrawn.
        var l = Harness(cleanSession: false, reconnect: ReconnectBackoff())
        try l.establish()
        try l.publish("kept", qos: .atLeastOnce, token: 5)
        l.machine.connectPacket.cleanSession = true
        l.transportFailed(.closedByPeer)
        l.advanceToNextAttempt()
        l.transportConnected()
        l.writable(false)  // holds the republished message in the queue
        l.connack()
        #expect(l.machine.queuedMessageCount == 1)
        _ = l.take()
        l.cancel(5)
        #expect(l.take() == [.failed(MQTTRequestToken(5), .cancelled)])
        #expect(l.machine.queuedMessageCount == 1)
        l.writable(true)
        #expect(Self.topics(l) == ["kept"])
        let id = try #require(l.sent.first?.publish?.packetID)
        _ = l.take()
        l.puback(id)
        #expect(l.take() == [.published(nil, packetID: id, qos: .atLeastOnce)])
    }

    @Test func cancellingASubscribeWithdrawsItUntilSentThenOnlyDetachesIt() throws {
        var h = Harness(reconnect: ReconnectBackoff())
        try h.connect()
        try h.subscribe([TopicSubscription(filter: "never", qos: .atMostOnce)], token: 1)
        try h.unsubscribe(["gone"], token: 2)
        #expect(h.machine.pendingRequestCount == 2)
        h.cancel(1)
        h.cancel(2)
        #expect(h.take() == [.openTransport, .failed(MQTTRequestToken(1), .cancelled), .failed(MQTTRequestToken(2), .cancelled)])
        #expect(h.machine.pendingRequestCount == 0)
        h.transportConnected()
        h.connack()
        #expect(!h.sent.contains { if case .subscribe = $0 { true } else if case .unsubscribe = $0 { true } else { false } })

        // Sent: the packet id stays held until the SUBACK, which still updates the subscriptions.
        _ = h.take()
        let id = try h.subscribe([TopicSubscription(filter: "s/#", qos: .atLeastOnce)], token: 3)
        let uid = try h.unsubscribe(["u"], token: 4)
        h.cancel(3)
        h.cancel(4)
        _ = h.take()
        #expect(h.machine.pendingRequestCount == 2)
        try h.publish("p", qos: .atLeastOnce)
        #expect(h.sent.compactMap(\.publish?.packetID) == [uid + 1])
        h.suback(id, [.granted(.atLeastOnce)])
        h.unsuback(uid)
        #expect(h.take().filter { if case .send = $0 { false } else { true } } == [
            .subscribed(nil, filters: [TopicSubscription(filter: "s/#", qos: .atLeastOnce)], codes: [.granted(.atLeastOnce)]),
            .unsubscribed(nil, packetID: uid),
        ])
        #expect(h.machine.activeSubscriptions == [TopicSubscription(filter: "s/#", qos: .atLeastOnce)])
        #expect(h.machine.pendingRequestCount == 0)
    }

    // MARK: Flow control

    @Test func waitingPublishersEnterTheQueueInOrderAsRoomAppears() throws {
        var h = Harness(window: 1, maxQueued: 1)
        try h.establish()
        try h.publish("w1", qos: .atLeastOnce, token: 1)  // in flight
        try h.publish("q2", qos: .atLeastOnce, token: 2)  // queued
        #expect(throws: MQTTClientError.sendQueueFull(messages: 1, bytes: 5)) {
            try h.publish("x", qos: .atLeastOnce, token: 9)
        }
        try h.publish("p3", qos: .atLeastOnce, token: 3, whenFull: .wait)
        try h.publish("p4", qos: .atMostOnce, token: 4, whenFull: .wait)  // QoS 0 is sent at once
        try h.publish("p5", qos: .exactlyOnce, token: 5, whenFull: .wait)
        #expect(h.machine.waitingPublishCount == 2)
        #expect(h.machine.queuedMessageCount == 1 && h.machine.queuedByteCount == 5)
        #expect(Self.topics(h) == ["w1", "p4"])
        _ = h.take()
        h.puback(1)  // q2 goes out, p3 enters the queue
        #expect(Self.topics(h) == ["q2"])
        #expect(h.machine.waitingPublishCount == 1 && h.machine.queuedMessageCount == 1)
        h.puback(2)
        h.puback(3)
        #expect(Self.topics(h) == ["q2", "p3", "p5"])
        #expect(h.machine.waitingPublishCount == 0 && h.machine.queuedMessageCount == 0)
        // A later `.wait` publish with room is not held.
        _ = h.take()
        try h.publish("p6", qos: .atLeastOnce, token: 6, whenFull: .wait)
        #expect(h.machine.waitingPublishCount == 0 && h.machine.queuedMessageCount == 1)
    }

    @Test func waitingPublishersAreSentDirectlyWithNoQueueAndWaitOfflineToo() throws {
        // A queue of 0: waiting publishers go straight into the window as it frees.
        var h = Harness(window: 1, maxQueued: 0)
        try h.establish()
        try h.publish("a", qos: .atLeastOnce, token: 1)
        try h.publish("b", qos: .atLeastOnce, token: 2, whenFull: .wait)
        try h.publish("c", qos: .atLeastOnce, token: 3, whenFull: .wait)
        h.puback(1)
        #expect(Self.topics(h) == ["a", "b"])
        h.puback(2)
        #expect(Self.topics(h) == ["a", "b", "c"])

        // Offline with a byte bound: `.wait` instead of `offlineQueueFull`; all go out in order.
        var o = Harness(maxQueued: 10, maxQueuedBytes: 8, reconnect: ReconnectBackoff())
        try o.connect()
        try o.publish("t1", [1, 2], qos: .atLeastOnce, token: 1)
        try o.publish("t2", [1, 2], qos: .atLeastOnce, token: 2)
        #expect(throws: MQTTClientError.offlineQueueFull(messages: 2, bytes: 8)) {
            try o.publish("t3", [1, 2], qos: .atLeastOnce, token: 3)
        }
        try o.publish("t4", [1, 2], qos: .atLeastOnce, token: 4, whenFull: .wait)
        try o.publish("t5", [], qos: .atMostOnce, token: 5, whenFull: .wait)
        #expect(o.machine.waitingPublishCount == 2 && o.machine.queuedByteCount == 8)
        // Cancelling a waiting publisher removes it.
        o.cancel(5)
        #expect(o.take().last == .failed(MQTTRequestToken(5), .cancelled))
        #expect(o.machine.waitingPublishCount == 1)
        o.transportConnected()
        o.connack()
        #expect(Self.topics(o) == ["t1", "t2", "t4"])
        #expect(o.machine.waitingPublishCount == 0)
    }

    @Test func waitingPublishersFailWithTheOtherRequests() throws {
        var h = Harness(window: 1, maxQueued: 1)
        try h.establish()
        try h.publish("a", qos: .atLeastOnce, token: 1)
        try h.publish("b", qos: .atLeastOnce, token: 2)
        try h.publish("c", qos: .atLeastOnce, token: 3, whenFull: .wait)
        _ = h.take()
        h.close()
        #expect(h.take() == [
            .send(.disconnect), .closeTransport, .offline(.closedByUser, willReconnect: false),
            .failed(MQTTRequestToken(1), .closed), .failed(MQTTRequestToken(2), .closed), .failed(MQTTRequestToken(3), .closed),
        ])
        #expect(h.machine.waitingPublishCount == 0)
        #expect(throws: MQTTClientError.notConnected) { try h.publish("d", qos: .atLeastOnce, whenFull: .wait) }

        var l = Harness(window: 1, maxQueued: 0)
        try l.establish()
        try l.publish("a", qos: .atLeastOnce, token: 1)
        try l.publish("c", qos: .atLeastOnce, token: 3, whenFull: .wait)
        _ = l.take()
        l.transportFailed(.closedByPeer)
        #expect(l.take().last == .failed(MQTTRequestToken(3), .connectionLost(.closedByPeer)))
    }
}
