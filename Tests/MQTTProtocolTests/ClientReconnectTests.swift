import MQTTProtocol
import Testing

@Suite struct ClientReconnectTests {
    /// Loses the connection, waits out the back-off, and reconnects with the given CONNACK.
    /// Returns what happened from the loss on.
    static func bounce(_ h: inout Harness, sessionPresent: Bool, failure: MQTTConnectionFailure = .closedByPeer) throws -> [Recorded] {
        h.transportFailed(failure)
        #expect(h.machine.connectionState == .waitingToReconnect)
        let reconnectAt = try #require(h.machine.nextReconnectAt)
        h.advanceToNextAttempt()
        #expect(h.now == reconnectAt)
        #expect(h.machine.connectionState == .connectingTransport)
        h.transportConnected()
        h.connack(sessionPresent: sessionPresent)
        return h.take()
    }

    @Test func withASessionUnacknowledgedMessagesAreResentWithDupSameIDInOrder() throws {
        var h = Harness(cleanSession: false, window: 8, reconnect: ReconnectBackoff())
        try h.establish()
        try h.publish("a", [1], qos: .atLeastOnce, token: 1)   // id 1: no ack
        try h.publish("b", [2], qos: .exactlyOnce, token: 2)   // id 2: PUBREC → PUBREL sent
        try h.publish("c", [3], qos: .exactlyOnce, token: 3)   // id 3: no PUBREC
        try h.publish("d", [4], qos: .atLeastOnce, token: 4)   // id 4: acknowledged
        h.pubrec(2)
        h.puback(4)
        _ = h.take()
        let log = try Self.bounce(&h, sessionPresent: true)
        let connect = ConnectPacket(clientID: "c1", cleanSession: false, keepAlive: 60)
        #expect(log == [
            .offline(.closedByPeer, willReconnect: true),
            .openTransport,
            .send(.connect(connect)),
            .send(.publish(PublishPacket(topic: "a", payload: [1], qos: .atLeastOnce, dup: true, packetID: 1))),
            .send(.pubrel(packetID: 2)),
            .send(.publish(PublishPacket(topic: "c", payload: [3], qos: .exactlyOnce, dup: true, packetID: 3))),
            .connected(sessionPresent: true),
        ])
        // The handshakes finish on the new connection.
        h.puback(1)
        h.pubcomp(2)
        h.pubrec(3)
        h.pubcomp(3)
        #expect(h.take() == [
            .published(MQTTRequestToken(1), packetID: 1, qos: .atLeastOnce),
            .published(MQTTRequestToken(2), packetID: 2, qos: .exactlyOnce),
            .send(.pubrel(packetID: 3)),
            .published(MQTTRequestToken(3), packetID: 3, qos: .exactlyOnce),
        ])
    }

    @Test func pubrelIsResentAfterPubRecOnEveryReconnect() throws {
        var h = Harness(cleanSession: false, reconnect: ReconnectBackoff())
        try h.establish()
        try h.publish("x", qos: .exactlyOnce, token: 1)
        h.pubrec(1)
        _ = h.take()
        for _ in 0..<3 {
            let log = try Self.bounce(&h, sessionPresent: true)
            #expect(log.compactMap(\.sentPacket).dropFirst() == [.pubrel(packetID: 1)])
        }
        h.pubcomp(1)
        #expect(h.take() == [.published(MQTTRequestToken(1), packetID: 1, qos: .exactlyOnce)])
    }

    @Test func withoutASessionSubscriptionsAreMadeAgainAndMessagesRepublished() throws {
        var h = Harness(cleanSession: false, window: 8, reconnect: ReconnectBackoff())
        try h.establish()
        let sub = try h.subscribe([TopicSubscription(filter: "s/#", qos: .atLeastOnce), TopicSubscription(filter: "r", qos: .atMostOnce)], token: 10)
        h.suback(sub, [.granted(.atLeastOnce), .granted(.atMostOnce)])
        try h.publish("a", [1], qos: .atLeastOnce, token: 1)
        try h.publish("b", [2], qos: .exactlyOnce, token: 2)
        try h.publish("c", [3], qos: .exactlyOnce, token: 3)
        let idB = h.sent.compactMap(\.publish).first { $0.topic == "b" }!.packetID
        h.pubrec(idB)
        // A subscribe still waiting for its SUBACK when the link drops.
        let pending = try h.subscribe([TopicSubscription(filter: "p", qos: .exactlyOnce)], token: 11)
        h.receive(topic: "in", payload: [], qos: .exactlyOnce, packetID: 40)
        _ = h.take()

        let log = try Self.bounce(&h, sessionPresent: false)
        let sends = log.compactMap(\.sentPacket).dropFirst()  // after CONNECT
        let resubscribe = try #require(sends.first)
        guard case .subscribe(let packet) = resubscribe else {
            Issue.record("expected SUBSCRIBE first, got \(resubscribe)")
            return
        }
        #expect(packet.subscriptions == [TopicSubscription(filter: "s/#", qos: .atLeastOnce), TopicSubscription(filter: "r", qos: .atMostOnce)])
        #expect(Array(sends.dropFirst()).first == .subscribe(SubscribePacket(packetID: pending, subscriptions: [TopicSubscription(filter: "p", qos: .exactlyOnce)])))
        let republished = sends.compactMap(\.publish)
        // All three, "b" (past PUBREC) included: the new session knows none of them.
        #expect(republished.map(\.topic) == ["a", "b", "c"])
        #expect(republished.map(\.payload) == [[1], [2], [3]])
        #expect(republished.allSatisfy { !$0.dup && $0.packetID != 0 })
        #expect(Set(republished.map(\.packetID)).count == 3)
        #expect(!sends.contains(.pubrel(packetID: idB)))
        #expect(!log.contains { if case .published = $0 { true } else { false } })
        #expect(log.last == .connected(sessionPresent: false))
        // Received QoS 2 ids are forgotten with the session: id 40 is a new message now.
        #expect(h.machine.awaitingReleaseCount == 0)
        h.receive(topic: "in", payload: [], qos: .exactlyOnce, packetID: 40)
        #expect(h.take().first == .deliver(topic: "in", payload: [], qos: .exactlyOnce, packetID: 40, dup: false))

        // The machine's own re-subscription completes with no token; the user's with its own.
        h.suback(packet.packetID, [.granted(.atLeastOnce), .failure])
        h.suback(pending, [.granted(.exactlyOnce)])
        #expect(h.take() == [
            .subscribed(nil, filters: packet.subscriptions, codes: [.granted(.atLeastOnce), .failure]),
            .subscribed(MQTTRequestToken(11), filters: [TopicSubscription(filter: "p", qos: .exactlyOnce)], codes: [.granted(.exactlyOnce)]),
        ])
        #expect(h.machine.activeSubscriptions.map(\.filter) == ["s/#", "p"])
        // The republished messages complete with their original tokens.
        for p in republished {
            if p.qos == .atLeastOnce { h.puback(p.packetID) } else { h.pubrec(p.packetID); h.pubcomp(p.packetID) }
        }
        let completions = h.take().compactMap { record -> UInt64? in
            if case .published(let token, _, _) = record { return token?.rawValue }
            return nil
        }
        #expect(completions == [1, 2, 3])
    }

    @Test func aUserSubscribeWithoutTokenIsNotMistakenForAResubscription() throws {
        var h = Harness(reconnect: ReconnectBackoff())
        try h.establish()
        let active = try h.subscribe([TopicSubscription(filter: "a", qos: .atMostOnce)])
        h.suback(active, [.granted(.atMostOnce)])
        h.transportFailed(.closedByPeer)
        // Made while offline, nobody waits for its completion (nil token).
        let user = try h.subscribe([TopicSubscription(filter: "u", qos: .atLeastOnce)])
        _ = h.take()
        for _ in 0..<2 {
            h.advanceToNextAttempt()
            h.transportConnected()
            h.connack(sessionPresent: false)
            let subscribes = h.take().compactMap(\.sentPacket).compactMap { packet -> SubscribePacket? in
                if case .subscribe(let s) = packet { return s }
                return nil
            }
            #expect(subscribes.map { $0.subscriptions.map(\.filter) } == [["a"], ["u"]])
            #expect(subscribes.last?.packetID == user)
            h.transportFailed(.closedByPeer)
        }
    }

    @Test func receivedQoS2IdsSurviveAReconnectWithSession() throws {
        var h = Harness(cleanSession: false, reconnect: ReconnectBackoff())
        try h.establish()
        h.receive(topic: "q", payload: [5], qos: .exactlyOnce, packetID: 9)
        #expect(h.take().count == 2)
        _ = try Self.bounce(&h, sessionPresent: true)
        #expect(h.machine.awaitingReleaseCount == 1)
        // The broker resends it (no PUBREL came before the loss): acknowledged, not delivered.
        h.receive(topic: "q", payload: [5], qos: .exactlyOnce, packetID: 9, dup: true)
        #expect(h.take() == [.send(.pubrec(packetID: 9))])
        h.pubrel(9)
        #expect(h.take() == [.send(.pubcomp(packetID: 9))])
        #expect(h.machine.awaitingReleaseCount == 0)
    }

    @Test func offlinePublishesAreQueuedWithinBoundsAndSentOnReconnect() throws {
        var h = Harness(window: 2, maxQueued: 4, maxQueuedBytes: 10, reconnect: ReconnectBackoff())
        try h.establish()
        h.transportFailed(.connectionResetForTest)
        _ = h.take()
        try h.publish("a", [1], qos: .atLeastOnce, token: 1)  // 2 bytes
        try h.publish("b", [2], qos: .atMostOnce, token: 2)   // 2 bytes
        try h.publish("c", [3, 3], qos: .exactlyOnce, token: 3)  // 3 bytes
        #expect(h.machine.queuedMessageCount == 3 && h.machine.queuedByteCount == 7)
        // Past the byte bound.
        #expect(throws: MQTTClientError.offlineQueueFull(messages: 3, bytes: 7)) {
            try h.publish("dd", [4, 4], qos: .atLeastOnce, token: 4)
        }
        try h.publish("e", [5], qos: .atLeastOnce, token: 5)  // 2 bytes: 9 in all, 4 messages
        // Past the count bound.
        #expect(throws: MQTTClientError.offlineQueueFull(messages: 4, bytes: 9)) {
            try h.publish("f", [], qos: .atMostOnce, token: 6)
        }
        h.advanceToNextAttempt()
        h.transportConnected()
        h.connack()
        let sends = h.take().compactMap(\.sentPacket).compactMap(\.publish)
        // In order; the window (2) holds back "e" until an ack.
        #expect(sends.map(\.topic) == ["a", "b", "c"])
        #expect(h.machine.queuedMessageCount == 1)
        h.puback(sends[0].packetID)
        #expect(h.take().compactMap(\.sentPacket).compactMap(\.publish).map(\.topic) == ["e"])
        #expect(h.machine.queuedMessageCount == 0 && h.machine.queuedByteCount == 0)
    }

    @Test func deadBrokerWithReconnectOnGoesOfflineThenResends() throws {
        var h = Harness(keepAlive: 10, cleanSession: false, reconnect: ReconnectBackoff())
        try h.establish()
        try h.publish("a", [1], qos: .atLeastOnce, token: 1)
        _ = h.take()
        h.advance(by: .seconds(15))
        #expect(h.take() == [.send(.pingreq), .closeTransport, .offline(.keepAliveTimeout, willReconnect: true)])
        #expect(h.machine.inflightCount == 1)
        // Bytes of the dead connection arriving late are ignored.
        h.puback(1)
        h.receive(topic: "x", payload: [], qos: .atLeastOnce, packetID: 3)
        #expect(h.take() == [])
        h.advanceToNextAttempt()
        h.transportConnected()
        h.connack(sessionPresent: true)
        #expect(h.take().compactMap(\.sentPacket).dropFirst() == [
            .publish(PublishPacket(topic: "a", payload: [1], qos: .atLeastOnce, dup: true, packetID: 1)),
        ])
    }

    @Test func closeWhileWaitingToReconnectStopsAndFailsRequests() throws {
        var h = Harness(reconnect: ReconnectBackoff())
        try h.establish()
        h.transportFailed(.closedByPeer)
        try h.publish("a", qos: .atLeastOnce, token: 4)
        _ = h.take()
        h.close()
        // "offline" was reported at the loss; the close only fails what waits.
        #expect(h.take() == [.failed(MQTTRequestToken(4), .closed)])
        #expect(h.machine.connectionState == .idle)
        #expect(h.machine.deadline == nil)
        h.advance(by: .seconds(600))
        #expect(h.take() == [])
    }

    @Test func offlineWithReconnectOffIsAnError() throws {
        var h = Harness()
        #expect(throws: MQTTClientError.notConnected) { try h.publish("a", qos: .atLeastOnce) }
        try h.establish()
        h.transportFailed(.closedByPeer)
        #expect(throws: MQTTClientError.notConnected) { try h.publish("a", qos: .atMostOnce) }
    }

    @Test func unretryableFailuresStopReconnecting() throws {
        var h = Harness(reconnect: ReconnectBackoff())
        try h.establish()
        try h.publish("a", qos: .atLeastOnce, token: 1)
        h.transportFailed(.closedByPeer)
        h.advanceToNextAttempt()
        h.transportConnected()
        _ = h.take()
        h.connack(.notAuthorized)
        #expect(h.take() == [
            .closeTransport, .connectFailed(.refused(.notAuthorized), willRetry: false),
            .failed(MQTTRequestToken(1), .connectionLost(.refused(.notAuthorized))),
        ])
        #expect(h.machine.connectionState == .idle)
        #expect(h.machine.deadline == nil)
    }

    @Test func reconnectWaitsFollowTheBackoffAndResetAfterSuccess() throws {
        let policy = ReconnectBackoff(initialDelay: .seconds(1), maximumDelay: .seconds(20), multiplier: 2, jitter: 0.2)
        var h = Harness(reconnect: policy)
        try h.establish()
        h.transportFailed(.closedByPeer)
        var waits: [Duration] = []
        for _ in 0..<8 {
            let lostAt = h.now
            let at = try #require(h.machine.nextReconnectAt)
            waits.append(at - lostAt)
            #expect(h.advanceToNextAttempt() == at - lostAt)
            #expect(h.take().last == .openTransport)
            h.transportFailed(.serverNotFound)  // the attempt fails: next wait is longer
        }
        let bases: [Double] = [1, 2, 4, 8, 16, 20, 20, 20]
        for (wait, base) in zip(waits, bases) {
            #expect(wait >= .s(base * 0.8) && wait <= .s(base), "wait \(wait) for base \(base)")
        }
        #expect(h.machine.reconnectAttemptCount == 9)
        // A success resets the sequence.
        h.advanceToNextAttempt()
        h.transportConnected()
        h.connack()
        #expect(h.machine.reconnectAttemptCount == 0)
        h.transportFailed(.closedByPeer)
        let wait = try #require(h.machine.nextReconnectAt) - h.now
        #expect(wait >= .s(0.8) && wait <= .s(1))
    }

    @Test func connectFailureWithReconnectOnRetriesAndReportsEachAttempt() throws {
        var h = Harness(reconnect: ReconnectBackoff())
        try h.connect()
        h.transportFailed(.serverNotFound)
        #expect(h.take() == [.openTransport, .connectFailed(.serverNotFound, willRetry: true)])
        // Publishing meanwhile is queued, then sent once connected.
        try h.publish("a", qos: .atLeastOnce, token: 1)
        h.advanceToNextAttempt()
        h.transportConnected()
        h.connack()
        let log = h.take()
        #expect(log.compactMap(\.sentPacket).compactMap(\.publish).map(\.topic) == ["a"])
        #expect(log.last == .connected(sessionPresent: false))
    }

    @Test func pendingRequestsAreBoundedAndQueuedUntilConnected() throws {
        var h = Harness(MQTTClientConfiguration(
            connect: ConnectPacket(clientID: "c"), maxPendingRequests: 2, reconnect: ReconnectBackoff()
        ))
        try h.connect()
        let a = try h.subscribe([TopicSubscription(filter: "a", qos: .atMostOnce)], token: 1)
        let b = try h.unsubscribe(["b"], token: 2)
        #expect(throws: MQTTClientError.tooManyPendingRequests(limit: 2)) {
            try h.subscribe([TopicSubscription(filter: "c", qos: .atMostOnce)], token: 3)
        }
        #expect(h.take() == [.openTransport])
        h.transportConnected()
        h.connack()
        #expect(h.take().compactMap(\.sentPacket).dropFirst() == [
            .subscribe(SubscribePacket(packetID: a, subscriptions: [TopicSubscription(filter: "a", qos: .atMostOnce)])),
            .unsubscribe(UnsubscribePacket(packetID: b, filters: ["b"])),
        ])
    }
}

extension MQTTConnectionFailure {
    static let connectionResetForTest = MQTTConnectionFailure.transport("connection reset by peer")
}
