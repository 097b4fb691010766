import MQTTProtocol
import Testing

@Suite struct ClientConnectTests {
    @Test func connectSendsTheConfiguredConnectAndReportsConnected() throws {
        let will = Will(topic: "/lwt", payload: Array("gone".utf8), qos: .atLeastOnce, retain: true)
        for version in ProtocolVersion.allCases {
            let connect = ConnectPacket(
                version: version, clientID: "dev-1", cleanSession: false, keepAlive: 120,
                will: will, username: "user", password: Array("pw".utf8)
            )
            var h = Harness(MQTTClientConfiguration(connect: connect))
            #expect(h.machine.connectionState == .idle)
            try h.connect()
            #expect(h.take() == [.openTransport])
            #expect(h.machine.connectionState == .connectingTransport)
            h.transportConnected()
            #expect(h.take() == [.send(.connect(connect))])
            #expect(h.machine.connectionState == .awaitingConnAck)
            #expect(h.machine.deadline?.at == h.now + .seconds(10))
            h.connack(sessionPresent: false)
            // MQTT 3.1's CONNACK cannot report a session: without clean session it is assumed kept.
            #expect(h.take() == [.connected(sessionPresent: version == .v3_1)])
            #expect(h.machine.connectionState == .connected)
        }
    }

    @Test func cleanSessionNeverReportsAKeptSession() throws {
        var h = Harness(cleanSession: true)
        try h.connect()
        h.transportConnected()
        _ = h.take()
        h.connack(sessionPresent: true)
        #expect(h.take() == [.connected(sessionPresent: false)])
    }

    @Test(arguments: [ConnectReturnCode.unacceptableProtocolVersion, .identifierRejected, .serverUnavailable, .badUsernameOrPassword, .notAuthorized])
    func refusedConnAckFailsWithItsCode(code: ConnectReturnCode) throws {
        var h = Harness()
        try h.connect()
        h.transportConnected()
        _ = h.take()
        h.connack(code)
        #expect(h.take() == [.closeTransport, .connectFailed(.refused(code), willRetry: false)])
        #expect(h.machine.connectionState == .idle)
        #expect(MQTTConnectionFailure.refused(code).nodeMCUReasonCode == Int(code.rawValue))
        #expect(h.machine.deadline == nil)

        // With reconnect on, only "server unavailable" is worth another attempt.
        var r = Harness(reconnect: ReconnectBackoff())
        try r.connect()
        r.transportConnected()
        _ = r.take()
        r.connack(code)
        let retry = code == .serverUnavailable
        #expect(r.take() == [.closeTransport, .connectFailed(.refused(code), willRetry: retry)])
        #expect(r.machine.connectionState == (retry ? .waitingToReconnect : .idle))
    }

    @Test func firstPacketNotConnAckFailsWithReasonMinus4() throws {
        let intruders: [(inout Harness) -> Void] = [
            { $0.puback(1) },
            { $0.receive(topic: "a", payload: [1], qos: .atMostOnce) },
            { $0.suback(1, [.granted(.atMostOnce)]) },
            { $0.pingresp() },
            { $0.pubrel(3) },
        ]
        let expected: [PacketType] = [.puback, .publish, .suback, .pingresp, .pubrel]
        for (intrude, type) in zip(intruders, expected) {
            var h = Harness()
            try h.connect()
            h.transportConnected()
            _ = h.take()
            intrude(&h)
            #expect(h.take() == [.closeTransport, .connectFailed(.notConnAck(type), willRetry: false)])
            #expect(MQTTConnectionFailure.notConnAck(type).nodeMCUReasonCode == -4)
            #expect(h.machine.connectionState == .idle)
        }
    }

    @Test func connAckTimeoutFailsWithReasonMinus2AtTheDeadline() throws {
        var h = Harness(connectTimeout: .seconds(5))
        try h.connect()
        h.advance(by: .seconds(1))
        h.transportConnected()
        _ = h.take()
        h.advance(by: .seconds(5) - .nanoseconds(1))
        #expect(h.take() == [])
        #expect(h.machine.connectionState == .awaitingConnAck)
        h.advance(by: .nanoseconds(1))
        #expect(h.take() == [.closeTransport, .connectFailed(.connAckTimeout, willRetry: false)])
        #expect(MQTTConnectionFailure.connAckTimeout.nodeMCUReasonCode == -2)
        // A late CONNACK after the timeout is a leftover and changes nothing.
        h.connack()
        #expect(h.take() == [])
        #expect(h.machine.connectionState == .idle)
    }

    @Test func transportTimeoutFailsWithReasonMinus1() throws {
        var h = Harness(connectTimeout: .seconds(3))
        try h.connect()
        _ = h.take()
        h.advance(by: .seconds(3))
        #expect(h.take() == [.closeTransport, .connectFailed(.sendTimeout, willRetry: false)])
        #expect(MQTTConnectionFailure.sendTimeout.nodeMCUReasonCode == -1)
        // The transport reporting success afterwards is ignored.
        h.transportConnected()
        #expect(h.take() == [])
    }

    @Test func transportFailuresKeepTheirReasonCodes() throws {
        let cases: [(MQTTConnectionFailure, Int)] = [
            (.serverNotFound, -5), (.dnsFailure(host: "nowhere.invalid"), -3),
            (.tlsHandshakeFailed("alert 40"), -10), (.tlsCertificateUntrusted("self-signed"), -11),
            (.tlsHostnameMismatch("localhost"), -12), (.tlsClientCertificateRejected("required"), -13),
        ]
        for (failure, code) in cases {
            var h = Harness()
            try h.connect()
            _ = h.take()
            h.transportFailed(failure)
            #expect(h.take() == [.connectFailed(failure, willRetry: false)])
            #expect(failure.nodeMCUReasonCode == code)
        }
        #expect(Set(cases.map(\.1)).count == cases.count)
    }

    @Test func connectingTwiceIsAnErrorNotACrash() throws {
        var h = Harness()
        try h.connect()
        #expect(throws: MQTTClientError.alreadyConnecting) { try h.connect() }
        h.transportConnected()
        #expect(throws: MQTTClientError.alreadyConnecting) { try h.connect() }
        h.connack()
        #expect(throws: MQTTClientError.alreadyConnected) { try h.connect() }
    }

    @Test func closeSendsDisconnectAtOnceThenOfflineAndCanConnectAgain() throws {
        var h = Harness(window: 4)
        try h.establish()
        try h.publish("t", qos: .atLeastOnce, token: 1)
        try h.publish("t", qos: .exactlyOnce, token: 2)
        try h.subscribe([TopicSubscription(filter: "s/#", qos: .atLeastOnce)], token: 3)
        _ = h.take()
        h.close()
        #expect(h.take() == [
            .send(.disconnect), .closeTransport, .offline(.closedByUser, willReconnect: false),
            .failed(MQTTRequestToken(1), .closed), .failed(MQTTRequestToken(2), .closed), .failed(MQTTRequestToken(3), .closed),
        ])
        #expect(h.machine.connectionState == .idle)
        #expect(h.machine.inflightCount == 0 && h.machine.pendingRequestCount == 0)
        #expect(h.machine.deadline == nil)
        // Closing again does nothing; a transport report afterwards is ignored.
        h.close()
        h.transportFailed(.closedByPeer)
        #expect(h.take() == [])
        #expect(throws: MQTTClientError.notConnected) { try h.publish("t", qos: .atMostOnce) }
        try h.establish()
        #expect(h.machine.connectionState == .connected)
    }

    @Test func closeDuringAnAttemptFailsTheAttempt() throws {
        var h = Harness(reconnect: ReconnectBackoff())
        try h.connect()
        h.transportConnected()
        try h.publish("q", qos: .atLeastOnce, token: 9)
        _ = h.take()
        h.close()
        #expect(h.take() == [.closeTransport, .connectFailed(.closedByUser, willRetry: false), .failed(MQTTRequestToken(9), .closed)])
        #expect(h.machine.connectionState == .idle)
    }

    @Test func protocolErrorClosesAndGoesOffline() throws {
        var h = Harness()
        try h.establish()
        h.machine.receivedInvalidData(.malformedRemainingLength, now: h.now, into: &h.actions)
        h.record()
        #expect(h.take() == [.closeTransport, .offline(.protocolError(.malformedRemainingLength), willReconnect: false)])
        // A second CONNACK on a live connection is a protocol error too.
        try h.establish()
        h.connack()
        #expect(h.take() == [.closeTransport, .offline(.protocolError(.unexpectedPacket(.connack)), willReconnect: false)])
    }

    @Test func clientOnlyPacketsFromTheBrokerEndTheConnection() throws {
        for type in [PacketType.connect, .subscribe, .unsubscribe, .pingreq, .disconnect] {
            var h = Harness()
            try h.connect()
            h.transportConnected()
            _ = h.take()
            h.machine.receivedUnexpectedPacket(type, now: h.now, into: &h.actions)
            h.record()
            #expect(h.take() == [.closeTransport, .connectFailed(.notConnAck(type), willRetry: false)])
            try h.establish()
            h.machine.receivedUnexpectedPacket(type, now: h.now, into: &h.actions)
            h.record()
            #expect(h.take() == [.closeTransport, .offline(.protocolError(.unexpectedPacket(type)), willReconnect: false)])
        }
    }

    @Test func aZeroPacketIDIsAProtocolErrorNeverAcknowledged() throws {
        var h = Harness()
        try h.establish()
        h.receive(topic: "t", payload: [], qos: .atLeastOnce, packetID: 0)
        #expect(h.take() == [.closeTransport, .offline(.protocolError(.zeroPacketID(.publish)), willReconnect: false)])
    }

    @Test func changingTheConnectPacketAffectsOnlyTheNextConnection() throws {
        var h = Harness(keepAlive: 10, cleanSession: false)
        try h.establish()
        h.machine.connectPacket.keepAlive = 0
        h.machine.connectPacket.cleanSession = true
        h.advance(by: .seconds(10))
        #expect(h.take() == [.send(.pingreq)])
        h.close()
        try h.connect()
        h.transportConnected()
        h.connack(sessionPresent: true)
        let log = h.take()
        #expect(log.contains(.send(.connect(ConnectPacket(clientID: "c1", cleanSession: true, keepAlive: 0)))))
        #expect(log.last == .connected(sessionPresent: false))
        #expect(h.machine.deadline == nil)
    }

    @Test func lossWithReconnectOffFailsOutstandingRequests() throws {
        var h = Harness()
        try h.establish()
        try h.publish("t", qos: .atLeastOnce, token: 1)
        _ = h.take()
        h.transportFailed(.closedByPeer)
        #expect(h.take() == [.offline(.closedByPeer, willReconnect: false), .failed(MQTTRequestToken(1), .connectionLost(.closedByPeer))])
        #expect(throws: MQTTClientError.notConnected) { try h.publish("t", qos: .atLeastOnce) }
        #expect(throws: MQTTClientError.notConnected) { try h.subscribe([TopicSubscription(filter: "a", qos: .atMostOnce)]) }
    }

    @Test func staleTimerFiresAreIgnored() throws {
        var h = Harness(keepAlive: 1, connectTimeout: .seconds(5))
        try h.connect()
        let connectSentAt = h.now
        h.transportConnected()
        let connackDeadline = try #require(h.machine.deadline)
        #expect(connackDeadline.at == h.now + .seconds(5))
        h.advance(by: .seconds(2))
        h.connack()
        // The next ping (one keepalive after CONNECT was sent) is earlier than the CONNACK
        // timeout: re-armed.
        let pingDeadline = try #require(h.machine.deadline)
        #expect(pingDeadline.generation != connackDeadline.generation)
        #expect(pingDeadline.at == connectSentAt + .seconds(1))
        _ = h.take()
        // The cancelled CONNACK timer fires anyway, after the ping is due: ignored.
        h.machine.timerFired(generation: connackDeadline.generation, now: h.now + .milliseconds(1500), into: &h.actions)
        h.record()
        #expect(h.take() == [])
        #expect(h.machine.deadline == pingDeadline)
        // The current one does its job.
        h.machine.timerFired(generation: pingDeadline.generation, now: h.now + .milliseconds(1500), into: &h.actions)
        h.record()
        #expect(h.take() == [.send(.pingreq)])
        // After a close, nothing is armed and an old generation is ignored.
        let beforeClose = try #require(h.machine.deadline)
        h.close()
        _ = h.take()
        #expect(h.machine.deadline == nil)
        h.machine.timerFired(generation: beforeClose.generation, now: h.now + .seconds(100), into: &h.actions)
        h.record()
        #expect(h.take() == [])
        // An early fire of the current generation (timer slack) does nothing and re-arms.
        try h.connect()
        let current = try #require(h.machine.deadline)
        h.machine.timerFired(generation: current.generation, now: h.now, into: &h.actions)
        h.record()
        #expect(h.take() == [.openTransport])
        #expect(h.machine.deadline?.at == current.at)
        #expect(h.machine.deadline?.generation != current.generation)
        #expect(h.machine.connectionState == .connectingTransport)
    }
}
