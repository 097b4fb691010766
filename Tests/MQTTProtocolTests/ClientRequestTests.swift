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
}
