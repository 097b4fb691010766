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
}
