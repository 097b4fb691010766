import MQTTProtocol
import Testing

/// Fail-fast first connect, CONNECT validation at `connect`, transport generations, the single
/// inbound entry point, writability and graceful disconnect.
@Suite struct ClientLifecycleTests {
    /// The ways a first attempt can fail, each driven from a fresh `connect`.
    static var firstAttemptFailures: [(String, MQTTConnectionFailure, (inout Harness) -> Void)] { [
        ("transport", .serverNotFound, { $0.transportFailed(.serverNotFound) }),
        ("transport timeout", .sendTimeout, { $0.advance(by: .seconds(10)) }),
        ("CONNACK timeout", .connAckTimeout, { $0.transportConnected(); $0.advance(by: .seconds(10)) }),
        ("refused, retryable", .refused(.serverUnavailable), { $0.transportConnected(); $0.connack(.serverUnavailable) }),
        ("first packet not CONNACK", .notConnAck(.pingresp), { $0.transportConnected(); $0.pingresp() }),
        ("lost before CONNACK", .closedByPeer, { $0.transportConnected(); $0.transportFailed(.closedByPeer) }),
    ] }

    // MARK: Fail fast

    @Test func failFastEndsAFailedFirstAttemptWhateverTheStage() throws {
        for (stage, failure, fail) in Self.firstAttemptFailures {
            var h = Harness(reconnect: ReconnectBackoff())
            try h.machine.connect(now: h.now, failFast: true, into: &h.actions)
            h.record()
            try h.publish("q", qos: .atLeastOnce, token: 1)
            _ = h.take()
            fail(&h)
            let log = h.take()
            #expect(log.contains(.connectFailed(failure, willRetry: false)), "\(stage): \(log)")
            #expect(log.last == .failed(MQTTRequestToken(1), .connectionLost(failure)), "\(stage)")
            #expect(h.machine.connectionState == .idle, "\(stage)")
            #expect(h.machine.deadline == nil, "\(stage)")
            #expect(h.machine.queuedMessageCount == 0)

            // Without fail-fast the same failure is retried.
            var r = Harness(reconnect: ReconnectBackoff())
            try r.connect()
            _ = r.take()
            fail(&r)
            #expect(r.take().contains(.connectFailed(failure, willRetry: true)), "\(stage)")
            #expect(r.machine.connectionState == .waitingToReconnect, "\(stage)")
        }
    }

    @Test func failFastStopsMatteringOnceAConnAckWasAccepted() throws {
        var h = Harness(reconnect: ReconnectBackoff())
        try h.machine.connect(now: h.now, failFast: true, into: &h.actions)
        h.record()
        h.transportConnected()
        h.connack()
        _ = h.take()
        h.transportFailed(.closedByPeer)
        #expect(h.take() == [.offline(.closedByPeer, willReconnect: true)])
        // The next attempts are retried too.
        h.advanceToNextAttempt()
        h.transportFailed(.serverNotFound)
        #expect(h.take() == [.openTransport, .connectFailed(.serverNotFound, willRetry: true)])
        // A close and a new connect without fail-fast: retried from the first failure.
        h.close()
        try h.connect()
        h.transportFailed(.serverNotFound)
        #expect(h.take().last == .connectFailed(.serverNotFound, willRetry: true))
        // And with fail-fast again: not retried.
        h.close()
        try h.machine.connect(now: h.now, failFast: true, into: &h.actions)
        h.record()
        h.transportFailed(.serverNotFound)
        #expect(h.take().last == .connectFailed(.serverNotFound, willRetry: false))
    }

    @Test func aTransportThatCannotEvenBeCreatedFailsTheAttempt() throws {
        // The executor fails right after `openTransport` (it could not create the TLS engine).
        let failure = MQTTConnectionFailure.tlsHandshakeFailed("configuration: no engine")
        for (reconnect, failFast, retry) in [(false, false, false), (true, false, true), (true, true, false)] {
            var h = Harness(reconnect: reconnect ? ReconnectBackoff() : nil)
            try h.machine.connect(now: h.now, failFast: failFast, into: &h.actions)
            h.record()
            #expect(h.take() == [.openTransport])
            h.transportFailed(failure)
            #expect(h.take() == [.connectFailed(failure, willRetry: retry)])
            #expect(h.machine.connectionState == (retry ? .waitingToReconnect : .idle))
        }
    }

    // MARK: CONNECT validation

    @Test func anInvalidConnectFailsTheAttemptInsteadOfThrowing() throws {
        let will = Will(topic: "lwt/+", payload: [1], qos: .atMostOnce, retain: false)
        let cases: [(ConnectPacket, MQTTProtocolError)] = [
            (ConnectPacket(version: .v3_1, clientID: String(repeating: "x", count: 24)),
             .invalidClientID("MQTT 3.1 needs 1 to 23 bytes, got 24")),
            (ConnectPacket(version: .v3_1, clientID: ""), .invalidClientID("MQTT 3.1 needs 1 to 23 bytes, got 0")),
            (ConnectPacket(clientID: "", cleanSession: false),
             .invalidClientID("an empty client identifier needs a clean session [MQTT-3.1.3-7]")),
            (ConnectPacket(clientID: "c", will: will), .wildcardInTopicName),
            (ConnectPacket(clientID: "c", password: [1]), .passwordWithoutUsername),
            (ConnectPacket(clientID: "a\u{0}b"), .nullCharacter(field: .clientID)),
        ]
        for (packet, error) in cases {
            #expect(throws: error) { try MQTTClientStateMachine.validate(packet) }
            var h = Harness(MQTTClientConfiguration(connect: packet, reconnect: ReconnectBackoff()))
            try h.connect()
            #expect(h.take() == [.connectFailed(.protocolError(error), willRetry: false)])
            #expect(h.machine.connectionState == .idle)
            #expect(h.machine.deadline == nil)
            #expect(throws: MQTTClientError.notConnected) { try h.publish("t", qos: .atMostOnce) }
            // Fixed, it connects.
            h.machine.connectPacket = ConnectPacket(clientID: "fixed")
            try h.connect()
            #expect(h.take() == [.openTransport])
            // Misuse still throws.
            #expect(throws: MQTTClientError.alreadyConnecting) { try h.connect() }
            h.transportConnected()
            h.connack()
            #expect(throws: MQTTClientError.alreadyConnected) { try h.connect() }
        }
        #expect(throws: Never.self) { try MQTTClientStateMachine.validate(ConnectPacket(clientID: "", cleanSession: true)) }
    }

    @Test func aConnectAboveTheOutgoingLimitFailsTheAttempt() throws {
        // CONNECT 3.1.1 with a 20-byte id: remaining 10 + 2 + 20 = 32, whole packet 34.
        let connect = ConnectPacket(clientID: String(repeating: "i", count: 20))
        var h = Harness(MQTTClientConfiguration(connect: connect, maximumOutgoingPacketSize: 33))
        try h.connect()
        #expect(h.take() == [.connectFailed(.protocolError(.packetTooLarge(size: 34, limit: 33)), willRetry: false)])
        #expect(try MQTTEncoder.validateConnect(connect) == (try encoded(.connect(connect))).count)
    }

    @Test func aConnectBrokenBeforeAReconnectFailsThatAttemptForGood() throws {
        var h = Harness(reconnect: ReconnectBackoff())
        try h.establish()
        try h.publish("t", qos: .atLeastOnce, token: 4)
        h.transportFailed(.closedByPeer)
        h.machine.connectPacket = ConnectPacket(clientID: "c1", password: [1])
        _ = h.take()
        h.advanceToNextAttempt()
        #expect(h.take() == [
            .connectFailed(.protocolError(.passwordWithoutUsername), willRetry: false),
            .failed(MQTTRequestToken(4), .connectionLost(.protocolError(.passwordWithoutUsername))),
        ])
        #expect(h.machine.connectionState == .idle)
        #expect(h.machine.deadline == nil)
    }

    // MARK: Transport generations

    @Test func eachAttemptGetsANewTransportAndClosesTheOneItNames() throws {
        var h = Harness(reconnect: ReconnectBackoff(), connectTimeout: .seconds(2))
        try h.connect()
        let first = h.transport
        h.advance(by: .seconds(2))  // transport timeout: that transport is closed
        #expect(h.take() == [.openTransport, .closeTransport, .connectFailed(.sendTimeout, willRetry: true)])
        #expect(h.closed == [first])
        h.advanceToNextAttempt()
        let second = h.transport
        #expect(second.rawValue > first.rawValue)
        #expect(h.opened == [first, second])

        // The first transport's late completion and failure are ignored.
        h.machine.transportConnected(first, now: h.now, into: &h.actions)
        h.machine.transportFailed(first, .closedByPeer, now: h.now, into: &h.actions)
        h.machine.transportFailed(MQTTTransportID(rawValue: 99), .closedByPeer, now: h.now, into: &h.actions)
        h.record()
        #expect(h.take() == [.openTransport])
        #expect(h.machine.connectionState == .connectingTransport)
        h.transportConnected()
        #expect(h.take() == [.send(.connect(h.machine.connectPacket))])
        h.connack()
        _ = h.take()
        // The first transport's close reported now, after the second is up: ignored.
        h.machine.transportFailed(first, .closedByPeer, now: h.now, into: &h.actions)
        h.record()
        #expect(h.take() == [])
        #expect(h.machine.connectionState == .connected)
        // The current one's loss counts; a second report of it (its close callback) does not.
        h.transportFailed(.closedByPeer)
        h.transportFailed(.transport("reset"))
        #expect(h.take() == [.offline(.closedByPeer, willReconnect: true)])
        // A transport that failed by itself is not asked to close.
        #expect(h.closed == [first])
    }

    @Test func closeNamesTheCurrentTransportAndIgnoresItsLaterClose() throws {
        var h = Harness()
        try h.establish()
        let id = h.transport
        h.close()
        #expect(h.closed == [id])
        h.machine.transportFailed(id, .closedByPeer, now: h.now, into: &h.actions)
        h.record()
        #expect(h.take() == [.send(.disconnect), .closeTransport, .offline(.closedByUser, willReconnect: false)])
        // A connect after the close opens a new transport; the old one's reports stay ignored.
        try h.connect()
        #expect(h.transport != id)
        h.machine.transportConnected(id, now: h.now, into: &h.actions)
        h.record()
        #expect(h.take() == [.openTransport])
        #expect(h.machine.connectionState == .connectingTransport)
    }

    // MARK: One inbound entry point

    @Test func receivedPacketHandlesEveryBrokerPacket() throws {
        var h = Harness()
        try h.connect()
        h.transportConnected()
        _ = h.take()
        h.received(.connack(ConnAckPacket()))
        #expect(h.take() == [.connected(sessionPresent: false)])
        try h.publish("a", qos: .atLeastOnce, token: 1)
        try h.publish("b", qos: .exactlyOnce, token: 2)
        try h.subscribe([TopicSubscription(filter: "s", qos: .atLeastOnce)], token: 3)
        try h.unsubscribe(["s"], token: 4)
        _ = h.take()
        h.received(.puback(1))
        h.received(.pubrec(2))
        h.received(.pubcomp(2))
        h.received(.suback(SubAckPacket(packetID: 3, returnCodes: [.granted(.atLeastOnce)])))
        h.received(.unsuback(4))
        h.received(.pingresp)
        h.received(.pubrel(9))
        #expect(h.take() == [
            .published(MQTTRequestToken(1), packetID: 1, qos: .atLeastOnce),
            .send(.pubrel(packetID: 2)),
            .published(MQTTRequestToken(2), packetID: 2, qos: .exactlyOnce),
            .subscribed(MQTTRequestToken(3), filters: [TopicSubscription(filter: "s", qos: .atLeastOnce)], codes: [.granted(.atLeastOnce)]),
            .unsubscribed(MQTTRequestToken(4), packetID: 4),
            .send(.pubcomp(packetID: 9)),
        ])
        let topic: [UInt8] = Array("m".utf8)
        let payload: [UInt8] = [5]
        topic.withUnsafeBytes { t in
            payload.withUnsafeBytes { p in
                h.received(.publish(PublishView(topic: t, payload: p, qos: .atLeastOnce, retain: false, dup: false, packetID: 7)))
            }
        }
        #expect(h.take() == [.deliver(topic: "m", payload: [5], qos: .atLeastOnce, packetID: 7, dup: false), .send(.puback(packetID: 7))])
        h.oversize(qos: .exactlyOnce, packetID: 8)
        h.oversize(qos: .exactlyOnce, packetID: 8)
        #expect(h.take() == [
            .deliverOversized(topic: "big", prefix: [1, 2], total: 1_000, qos: .exactlyOnce, packetID: 8), .send(.pubrec(packetID: 8)),
            .send(.pubrec(packetID: 8)),
        ])
    }

    static var clientOnlyPackets: [InboundPacket] {
        [
            .pingreq, .disconnect, .connect(ConnectPacket(clientID: "x")),
            .subscribe(SubscribePacket(packetID: 1, subscriptions: [TopicSubscription(filter: "a", qos: .atMostOnce)])),
            .unsubscribe(UnsubscribePacket(packetID: 1, filters: ["a"])),
        ]
    }

    @Test func clientOnlyPacketsThroughTheEntryPointFailOrEndTheConnection() throws {
        for packet in Self.clientOnlyPackets {
            let type = packet.type
            var h = Harness(reconnect: ReconnectBackoff())
            try h.connect()
            h.transportConnected()
            _ = h.take()
            let attempt = h.transport
            h.received(packet)
            #expect(h.take() == [.closeTransport, .connectFailed(.notConnAck(type), willRetry: true)])
            #expect(h.closed == [attempt])

            var c = Harness()
            try c.establish()
            c.received(packet)
            #expect(c.take() == [.closeTransport, .offline(.protocolError(.unexpectedPacket(type)), willReconnect: false)])
            #expect(c.closed == [c.transport])
        }
    }

    @Test func connAckWhileConnectedAndPublishBeforeConnAckAreProtocolErrors() throws {
        var h = Harness()
        try h.establish()
        h.received(.connack(ConnAckPacket()))
        #expect(h.take() == [.closeTransport, .offline(.protocolError(.unexpectedPacket(.connack)), willReconnect: false)])

        var p = Harness()
        try p.connect()
        p.transportConnected()
        _ = p.take()
        let topic: [UInt8] = [0x74]
        topic.withUnsafeBytes { t in
            p.received(.publish(PublishView(topic: t, payload: t, qos: .atMostOnce, retain: false, dup: false, packetID: 0)))
        }
        #expect(p.take() == [.closeTransport, .connectFailed(.notConnAck(.publish), willRetry: false)])
        // Leftovers after the attempt ended are ignored.
        p.received(.puback(1))
        p.received(.pingreq)
        #expect(p.take() == [])
    }

    // MARK: Writability

    @Test func anUnwritableTransportHoldsNewPublishesAndTheWindowUntilItDrains() throws {
        var h = Harness(window: 2, maxQueued: 4)
        try h.establish()
        #expect(h.machine.isTransportWritable)
        try h.publish("w1", qos: .atLeastOnce, token: 1)
        h.writable(false)
        #expect(!h.machine.isTransportWritable)
        try h.publish("z1", qos: .atMostOnce, token: 2)
        try h.publish("w2", qos: .atLeastOnce, token: 3)
        try h.publish("z2", qos: .atMostOnce, token: 4)
        let direct = h.machine.beginDirectQoS0Publish(now: h.now)
        #expect(!direct)
        #expect(h.machine.queuedMessageCount == 3)
        // Acknowledgements still flow; a freed slot is not refilled while unwritable.
        h.receive(topic: "in", payload: [1], qos: .atLeastOnce, packetID: 5)
        h.puback(1)
        #expect(h.take() == [
            .send(.publish(PublishPacket(topic: "w1", payload: [1, 2, 3], qos: .atLeastOnce, packetID: 1))),
            .deliver(topic: "in", payload: [1], qos: .atLeastOnce, packetID: 5, dup: false), .send(.puback(packetID: 5)),
            .published(MQTTRequestToken(1), packetID: 1, qos: .atLeastOnce),
        ])
        // Same bounds and flow-control rule while held.
        try h.publish("w3", qos: .atLeastOnce, token: 6)
        #expect(throws: MQTTClientError.sendQueueFull(messages: 4, bytes: 4 * 5)) { try h.publish("w4", qos: .atLeastOnce, token: 7) }
        try h.publish("w5", qos: .atLeastOnce, token: 8, whenFull: .wait)
        #expect(h.machine.waitingPublishCount == 1)
        // Writable again: drained in order, QoS 0 completing right after its send; the window
        // (2) holds w2 and w3, w5 moves into the queue.
        h.writable(true)
        #expect(h.take() == [
            .send(.publish(PublishPacket(topic: "z1", payload: [1, 2, 3], qos: .atMostOnce))),
            .published(MQTTRequestToken(2), packetID: 0, qos: .atMostOnce),
            .send(.publish(PublishPacket(topic: "w2", payload: [1, 2, 3], qos: .atLeastOnce, packetID: 2))),
            .send(.publish(PublishPacket(topic: "z2", payload: [1, 2, 3], qos: .atMostOnce))),
            .published(MQTTRequestToken(4), packetID: 0, qos: .atMostOnce),
            .send(.publish(PublishPacket(topic: "w3", payload: [1, 2, 3], qos: .atLeastOnce, packetID: 3))),
        ])
        #expect(h.machine.queuedMessageCount == 1 && h.machine.waitingPublishCount == 0)
        let directAgain = h.machine.beginDirectQoS0Publish(now: h.now)
        #expect(directAgain)
        // Reported twice: nothing more.
        h.writable(true)
        #expect(h.take() == [])
    }

    @Test func aNewTransportStartsWritable() throws {
        var h = Harness(reconnect: ReconnectBackoff())
        try h.establish()
        h.writable(false)
        try h.publish("held", qos: .atMostOnce, token: 1)
        h.transportFailed(.closedByPeer)
        // While no transport is up, reports are ignored.
        h.writable(false)
        h.advanceToNextAttempt()
        #expect(h.machine.isTransportWritable)
        h.transportConnected()
        h.connack()
        // The QoS 0 queued while unwritable survives the loss and goes out on the new transport.
        #expect(h.take().contains(.published(MQTTRequestToken(1), packetID: 0, qos: .atMostOnce)))
        try h.publish("now", qos: .atLeastOnce)
        #expect(h.sent.compactMap(\.publish?.topic) == ["now"])
    }

    // MARK: Graceful disconnect

    /// Connected, with two received QoS 2 messages awaiting PUBREL and a QoS 1 publish in flight.
    static func withPendingReleases(reconnect: ReconnectBackoff? = nil) throws -> Harness {
        var h = Harness(keepAlive: 60, reconnect: reconnect)
        try h.establish()
        h.receive(topic: "q2", payload: [1], qos: .exactlyOnce, packetID: 10)
        h.receive(topic: "q2", payload: [2], qos: .exactlyOnce, packetID: 11)
        try h.publish("out", qos: .atLeastOnce, token: 1)
        _ = h.take()
        #expect(h.machine.awaitingReleaseCount == 2)
        return h
    }

    @Test func disconnectWaitsForThePendingPubRelsThenClosesLikeClose() throws {
        var h = try Self.withPendingReleases(reconnect: ReconnectBackoff())
        h.disconnect(drainTimeout: .seconds(5))
        #expect(h.take() == [])
        #expect(h.machine.connectionState == .disconnecting)
        // No new requests; connect is a misuse.
        #expect(throws: MQTTClientError.closed) { try h.publish("x", qos: .atMostOnce) }
        #expect(throws: MQTTClientError.closed) { try h.publish("x", qos: .atLeastOnce, whenFull: .wait) }
        #expect(throws: MQTTClientError.closed) { try h.subscribe([TopicSubscription(filter: "a", qos: .atMostOnce)]) }
        #expect(throws: MQTTClientError.closed) { try h.unsubscribe(["a"]) }
        #expect(throws: MQTTClientError.alreadyConnected) { try h.connect() }
        let direct = h.machine.beginDirectQoS0Publish(now: h.now)
        #expect(!direct)
        // The protocol still runs: a PUBACK completes, a PUBREL is answered.
        h.puback(1)
        h.pubrel(10)
        #expect(h.take() == [.published(MQTTRequestToken(1), packetID: 1, qos: .atLeastOnce), .send(.pubcomp(packetID: 10))])
        #expect(h.machine.connectionState == .disconnecting)
        // The last PUBREL: PUBCOMP, then DISCONNECT and the close, as `close` does.
        h.pubrel(11)
        #expect(h.take() == [
            .send(.pubcomp(packetID: 11)), .send(.disconnect), .closeTransport, .offline(.closedByUser, willReconnect: false),
            .disconnected,
        ])
        #expect(h.machine.connectionState == .idle)
        #expect(h.machine.deadline == nil)
        #expect(h.closed == [h.transport])
        // No reconnect, and the machine connects again afterwards.
        h.advance(by: .seconds(60))
        #expect(h.take() == [])
        try h.establish()
        #expect(h.machine.connectionState == .connected)
    }

    @Test func disconnectFailsOutstandingRequestsLikeClose() throws {
        var h = Harness(window: 1, maxQueued: 1, reconnect: ReconnectBackoff())
        try h.establish()
        h.receive(topic: "q2", payload: [1], qos: .exactlyOnce, packetID: 10)
        try h.publish("a", qos: .atLeastOnce, token: 1)
        try h.publish("b", qos: .atLeastOnce, token: 2)
        try h.publish("c", qos: .atLeastOnce, token: 3, whenFull: .wait)
        try h.subscribe([TopicSubscription(filter: "s", qos: .atMostOnce)], token: 4)
        _ = h.take()
        h.disconnect(drainTimeout: .seconds(5))
        // A PUBACK frees the window, but the queue is not drained while disconnecting.
        h.puback(1)
        #expect(h.take() == [.published(MQTTRequestToken(1), packetID: 1, qos: .atLeastOnce)])
        h.pubrel(10)
        #expect(h.take() == [
            .send(.pubcomp(packetID: 10)), .send(.disconnect), .closeTransport, .offline(.closedByUser, willReconnect: false),
            .failed(MQTTRequestToken(4), .closed), .failed(MQTTRequestToken(2), .closed), .failed(MQTTRequestToken(3), .closed),
            .disconnected,
        ])
    }

    @Test func disconnectGivesUpWaitingAtTheDeadline() throws {
        var h = try Self.withPendingReleases()
        h.disconnect(drainTimeout: .seconds(5))
        #expect(h.machine.deadline?.at == h.now + .seconds(5))
        h.pubrel(10)
        _ = h.take()
        h.advance(by: .seconds(5) - .nanoseconds(1))
        #expect(h.take() == [])
        #expect(h.machine.connectionState == .disconnecting)
        h.advance(by: .nanoseconds(1))
        #expect(h.take() == [
            .send(.disconnect), .closeTransport, .offline(.closedByUser, willReconnect: false),
            .failed(MQTTRequestToken(1), .closed), .disconnected,
        ])
        #expect(h.machine.connectionState == .idle)
        // The unreleased id is kept: the next CONNACK decides, as after a close.
        #expect(h.machine.awaitingReleaseCount == 1)

        // A second call can only bring the deadline closer; a zero timeout ends it now.
        var s = try Self.withPendingReleases()
        s.disconnect(drainTimeout: .seconds(5))
        s.disconnect(drainTimeout: .seconds(50))
        #expect(s.machine.deadline?.at == s.now + .seconds(5))
        s.disconnect(drainTimeout: .seconds(2))
        #expect(s.machine.deadline?.at == s.now + .seconds(2))
        s.disconnect(drainTimeout: .zero)
        #expect(s.take().suffix(2) == [.failed(MQTTRequestToken(1), .closed), .disconnected])
        #expect(s.machine.connectionState == .idle)

        // The keepalive still runs while waiting.
        var k = Harness(keepAlive: 10)
        try k.establish()
        k.receive(topic: "q2", payload: [1], qos: .exactlyOnce, packetID: 10)
        _ = k.take()
        k.disconnect(drainTimeout: .seconds(30))
        k.advance(by: .seconds(10))
        #expect(k.take() == [.send(.pingreq)])
    }

    @Test func disconnectWithNothingAwaitingIsCloseThenDisconnected() throws {
        var h = Harness()
        try h.establish()
        try h.publish("out", qos: .atLeastOnce, token: 1)
        _ = h.take()
        h.disconnect(drainTimeout: .seconds(5))
        #expect(h.take() == [
            .send(.disconnect), .closeTransport, .offline(.closedByUser, willReconnect: false),
            .failed(MQTTRequestToken(1), .closed), .disconnected,
        ])
        // Not connected at all: at once.
        h.disconnect(drainTimeout: .seconds(5))
        #expect(h.take() == [.disconnected])
        var c = Harness(reconnect: ReconnectBackoff())
        try c.connect()
        c.transportConnected()
        _ = c.take()
        c.disconnect(drainTimeout: .seconds(5))
        #expect(c.take() == [.closeTransport, .connectFailed(.closedByUser, willRetry: false), .disconnected])
        // Awaiting PUBREL but a zero timeout: at once too.
        var z = try Self.withPendingReleases()
        z.disconnect(drainTimeout: .zero)
        #expect(z.take().last == .disconnected)
        #expect(z.machine.connectionState == .idle)
    }

    @Test func aLossOrACloseWhileDisconnectingEndsIt() throws {
        var h = try Self.withPendingReleases(reconnect: ReconnectBackoff())
        h.disconnect(drainTimeout: .seconds(5))
        h.transportFailed(.closedByPeer)
        #expect(h.take() == [.offline(.closedByPeer, willReconnect: false), .failed(MQTTRequestToken(1), .closed), .disconnected])
        #expect(h.machine.connectionState == .idle)
        #expect(h.machine.deadline == nil)

        var p = try Self.withPendingReleases(reconnect: ReconnectBackoff())
        p.disconnect(drainTimeout: .seconds(5))
        p.received(.connack(ConnAckPacket()))
        #expect(p.take() == [
            .closeTransport, .offline(.protocolError(.unexpectedPacket(.connack)), willReconnect: false),
            .failed(MQTTRequestToken(1), .closed), .disconnected,
        ])

        var c = try Self.withPendingReleases()
        c.disconnect(drainTimeout: .seconds(5))
        c.close()
        #expect(c.take() == [
            .send(.disconnect), .closeTransport, .offline(.closedByUser, willReconnect: false),
            .failed(MQTTRequestToken(1), .closed), .disconnected,
        ])
        c.close()
        #expect(c.take() == [])
    }
}
