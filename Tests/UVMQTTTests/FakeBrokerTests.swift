import Foundation
import MQTTTestSupport
import Testing
import MQTTProtocol
@testable import UVMQTT
import UVReactor

/// A client and a scripted broker on one loop; both stopped (and the loop checked for leaked
/// handles) at the end.
func withFakeBroker(_ body: (FakeBroker, EventLoop) async throws -> Void) async throws {
    let loop = makeLoop()
    let broker = try await FakeBroker.start(on: loop)
    do {
        try await body(broker, loop)
    } catch {
        await broker.stop()
        try? loop.shutdown()
        throw error
    }
    await broker.stop()
    // Let the clients' last close callbacks run, then check nothing leaked.
    try await Task.sleep(for: .milliseconds(20))
    #expect(throws: Never.self) { try loop.shutdown() }
}

/// Connects a NodeMCU-style client to the fake broker and logs its events.
func connectedClient(
    _ broker: FakeBroker, _ loop: EventLoop, _ log: EventLog,
    autoreconnect: Bool = false, _ configure: (inout MQTTClientOptions) -> Void = { _ in }
) async throws -> NodeMCUClient {
    var options = MQTTClientOptions(clientID: "fake", keepAlive: 60, connectTimeout: .seconds(2))
    options.reconnectBackoff = testBackoff
    configure(&options)
    let client = NodeMCUClient(options: options, eventLoop: loop)
    client.on(.connect) { _ in log.add("connect") }
    client.on(.offline) { _ in log.add("offline") }
    client.on(.connfail) { _, failure in log.add("connfail \(failure.nodeMCUReasonCode)") }
    client.on(.message) { _, message in log.add("message \(message.topic) \(message.payloadString)") }
    client.on(.puback) { _ in log.add("puback") }
    try client.connect("127.0.0.1", port: broker.port, autoreconnect: autoreconnect, failed: { _, failure in
        log.add("failed \(failure)")
    })
    return client
}

/// Records the reason of the client's `offline` events, keeping the handler the test installed.
func offlineReason(_ client: NodeMCUClient) -> Locked<MQTTConnectionFailure?> {
    let failure = Locked<MQTTConnectionFailure?>(nil)
    let handlers = client.handlers
    client.engine.submit { _ in
        let previous = handlers.offline
        handlers.offline = { c, f in
            failure.withLock { $0 = f }
            previous?(c, f)
        }
    }
    return failure
}

@Suite("Client against a fake broker")
struct FakeBrokerTests {
    // MARK: CONNECT bytes

    static let connect311: [UInt8] = [0x10, 0x0F, 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3C, 0x00, 0x03, 0x61, 0x62, 0x63]
    static let connect31: [UInt8] = [0x10, 0x11, 0x00, 0x06, 0x4D, 0x51, 0x49, 0x73, 0x64, 0x70, 0x03, 0x02, 0x00, 0x3C, 0x00, 0x03, 0x61, 0x62, 0x63]

    @Test("CONNECT bytes for MQTT 3.1.1 and 3.1", arguments: [MQTTProtocol.ProtocolVersion.v3_1_1, .v3_1])
    func connectBytes(version: MQTTProtocol.ProtocolVersion) async throws {
        let expected = version == .v3_1_1 ? FakeBrokerTests.connect311 : FakeBrokerTests.connect31
        try await withFakeBroker { broker, loop in
            let log = EventLog()
            let client = try await connectedClient(broker, loop, log) { $0.clientID = "abc"; $0.protocolVersion = version }
            #expect(await log.wait(for: "connect"))
            #expect(broker.raw(0).starts(with: expected))
            client.close()
            #expect(await log.wait(for: "offline"))
        }
    }

    @Test("CONNECT bytes with will, retain, QoS 1, user name and password")
    func connectBytesWithWillAndCredentials() async throws {
        try await withFakeBroker { broker, loop in
            let log = EventLog()
            let client = try await connectedClient(broker, loop, log) {
                $0.clientID = "abc"; $0.keepAlive = 120
                $0.will = Will(topic: "w", payload: Array("x".utf8), qos: .atLeastOnce, retain: true)
                $0.username = "u"; $0.password = Array("p".utf8)
            }
            #expect(await log.wait(for: "connect"))
            let expected: [UInt8] = [0x10, 0x1B, 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04, 0xEE, 0x00, 0x78,
                                     0x00, 0x03, 0x61, 0x62, 0x63, 0x00, 0x01, 0x77, 0x00, 0x01, 0x78,
                                     0x00, 0x01, 0x75, 0x00, 0x01, 0x70]
            #expect(broker.raw(0).starts(with: expected))
            client.close()
            // close(): DISCONNECT (E0 00) is the last thing sent, then offline.
            #expect(await log.wait(for: "offline"))
            #expect(await broker.waitForPacket(on: 0) { $0.isDisconnect } != nil)
            #expect(broker.raw(0).suffix(2) == [0xE0, 0x00])
        }
    }

    // MARK: Keepalive

    @Test("PINGREQ goes out one keepalive after the last packet sent")
    func pingTiming() async throws {
        try await withFakeBroker { broker, loop in
            let log = EventLog()
            let client = try await connectedClient(broker, loop, log) { $0.keepAlive = 1 }
            #expect(await log.wait(for: "connect"))
            guard let connect = await broker.waitForPacket(on: 0, where: { $0.isConnect }),
                  let ping = await broker.waitForPacket(on: 0, within: 3, where: { $0.isPingReq }) else {
                Issue.record("no PINGREQ within 3 s")
                return
            }
            // Not before one keepalive [MQTT-3.1.2-23: within the keepalive, the client sends
            // a packet]; and early enough that a broker never cuts the connection, which it may
            // do at 1.5 × keepalive [MQTT-3.1.2-24]. The broker timestamps the PINGREQ when its
            // loop reads it, so the upper bound has 500 ms of scheduling slack for a loaded
            // 2-core machine; a late timer can only make the delay longer, never shorter.
            let delay = ping.at - connect.at
            #expect(delay >= .milliseconds(950) && delay <= .milliseconds(1500 + 500), "PINGREQ after \(delay)")
            // Answered: the connection stays up through a second ping. At least two: how many
            // pings a slow test thread sees by the time it looks depends on scheduling.
            let pings = await broker.waitForPackets(on: 0, count: 2, within: 10) { $0.isPingReq }
            #expect(pings.count >= 2)
            #expect(log.count("offline") == 0)
            client.close()
        }
    }

    @Test("a broker that stops answering is noticed within 1.5 × keepalive")
    func deadBroker() async throws {
        try await withFakeBroker { broker, loop in
            broker.behaviour.withLock { $0.answerPing = false }
            let log = EventLog()
            let client = try await connectedClient(broker, loop, log) { $0.keepAlive = 1 }
            let failure = offlineReason(client)
            #expect(await log.wait(for: "connect"))
            let connected = log.time(of: "connect")!
            #expect(await log.wait(for: "offline", within: 10))
            let elapsed = try #require(log.time(of: "offline")) - connected
            // The spec's bound: a peer that did not hear from the other side for 1.5 × keepalive
            // treats the connection as broken [MQTT-3.1.2-24]. The client pings at 1 s and gives
            // up 0.5 s later (1.5 s after its last packet); timers only fire late, so the lower
            // bound is exact and the upper one adds 750 ms of scheduling slack (a loaded 2-core
            // machine, events logged through the callback face).
            #expect(elapsed >= .milliseconds(1400) && elapsed <= .milliseconds(1500 + 750), "offline after \(elapsed)")
            #expect(failure.withLock { $0 } == .keepAliveTimeout)
            #expect(await broker.waitForClose(0))
            client.close()
        }
    }

    // MARK: Resend after a cut

    @Test("cut after PUBLISH: resent with DUP, the same ids, in order; completions fire once")
    func dupResend() async throws {
        try await withFakeBroker { broker, loop in
            broker.behaviour.withLock { $0.ackPublish = false }
            let log = EventLog()
            let client = try await connectedClient(broker, loop, log, autoreconnect: true) { $0.cleanSession = false }
            #expect(await log.wait(for: "connect"))
            let completions = Locked<[String]>([])
            for i in 0..<3 {
                try client.publish("t/\(i)", "m\(i)", qos: .atLeastOnce) { _, result in
                    completions.withLock { $0.append("\(i) \((try? result.get()) != nil ? "ok" : "failed")") }
                }
            }
            let first = await broker.waitForPackets(on: 0, count: 3) { $0.publish != nil }.compactMap(\.packet.publish)
            #expect(first.map(\.topic) == ["t/0", "t/1", "t/2"])
            #expect(first.allSatisfy { !$0.dup })
            broker.behaviour.withLock { $0.ackPublish = true; $0.connack = [0x20, 0x02, 0x01, 0x00] }
            broker.cut(0)
            #expect(await log.wait(for: "offline"))
            #expect(await broker.waitForConnections(2))
            let again = await broker.waitForPackets(on: 1, count: 3) { $0.publish != nil }.compactMap(\.packet.publish)
            #expect(again.map(\.topic) == ["t/0", "t/1", "t/2"])
            #expect(again.map(\.packetID) == first.map(\.packetID))
            #expect(again.allSatisfy { $0.dup })
            #expect(await EventLog().wait { _ in completions.withLock { $0.count } == 3 })
            #expect(completions.withLock { $0 }.sorted() == ["0 ok", "1 ok", "2 ok"])
            try await Task.sleep(for: .milliseconds(50))
            #expect(completions.withLock { $0.count } == 3)
            // The "puback" event fired for every acknowledgement too.
            #expect(log.count("puback") == 3)
            client.close()
        }
    }

    @Test("cut after PUBREC: PUBREL resent (not PUBLISH), then PUBCOMP completes")
    func pubrelResend() async throws {
        try await withFakeBroker { broker, loop in
            broker.behaviour.withLock { $0.ackPublish = false }
            let log = EventLog()
            let client = try await connectedClient(broker, loop, log, autoreconnect: true) { $0.cleanSession = false }
            #expect(await log.wait(for: "connect"))
            let done = Locked(0)
            try client.publish("q2", "once", qos: .exactlyOnce) { _, result in
                if case .success = result { done.withLock { $0 += 1 } }
            }
            guard let publish = await broker.waitForPacket(on: 0, where: { $0.publish != nil })?.packet.publish else {
                Issue.record("no PUBLISH")
                return
            }
            broker.send(.pubrec(packetID: publish.packetID), on: 0)
            #expect(await broker.waitForPacket(on: 0) { $0.pubrelID == publish.packetID } != nil)
            broker.behaviour.withLock { $0.ackPublish = true; $0.connack = [0x20, 0x02, 0x01, 0x00] }
            broker.cut(0)
            #expect(await broker.waitForConnections(2))
            #expect(await broker.waitForPacket(on: 1) { $0.pubrelID == publish.packetID } != nil)
            #expect(await EventLog().wait { _ in done.withLock { $0 } == 1 })
            #expect(broker.packets(1).allSatisfy { $0.packet.publish == nil })
            client.close()
        }
    }

    @Test("reconnect without a kept session: subscriptions made again, unacknowledged messages published again")
    func noSessionResubscribes() async throws {
        try await withFakeBroker { broker, loop in
            let log = EventLog()
            let client = try await connectedClient(broker, loop, log, autoreconnect: true)
            #expect(await log.wait(for: "connect"))
            let subscribed = Locked(false)
            try client.subscribe("s/#", qos: .atLeastOnce) { _, r in if case .success = r { subscribed.withLock { $0 = true } } }
            #expect(await EventLog().wait { _ in subscribed.withLock { $0 } })
            broker.behaviour.withLock { $0.ackPublish = false }
            let done = Locked(0)
            try client.publish("p/1", "kept", qos: .atLeastOnce) { _, r in if case .success = r { done.withLock { $0 += 1 } } }
            #expect(await broker.waitForPacket(on: 0) { $0.publish?.topic == "p/1" } != nil)
            broker.behaviour.withLock { $0.ackPublish = true }  // CONNACK stays "no session"
            broker.cut(0)
            #expect(await broker.waitForConnections(2))
            let resubscribe = await broker.waitForPacket(on: 1) { if case .subscribe = $0 { true } else { false } }
            guard case .subscribe(let s)? = resubscribe?.packet else {
                Issue.record("no SUBSCRIBE after the reconnect")
                return
            }
            #expect(s.subscriptions == [TopicSubscription(filter: "s/#", qos: .atLeastOnce)])
            let again = await broker.waitForPacket(on: 1) { $0.publish?.topic == "p/1" }
            #expect(again?.packet.publish?.payload == Array("kept".utf8))
            #expect(await EventLog().wait { _ in done.withLock { $0 } == 1 })
            client.close()
        }
    }

    @Test("unexpected acknowledgements are tolerated: the connection stays up")
    func unexpectedAcks() async throws {
        try await withFakeBroker { broker, loop in
            let log = EventLog()
            let client = try await connectedClient(broker, loop, log)
            #expect(await log.wait(for: "connect"))
            broker.send(.puback(packetID: 999))
            broker.send(.pubcomp(packetID: 77))
            broker.send(.unsuback(packetID: 5))
            broker.send(.suback(SubAckPacket(packetID: 55, returnCodes: [.granted(.atMostOnce)])))
            let done = Locked(false)
            try client.publish("still/up", "yes", qos: .atLeastOnce) { _, result in
                if case .success = result { done.withLock { $0 = true } }
            }
            #expect(await EventLog().wait { _ in done.withLock { $0 } })
            #expect(log.count("offline") == 0)
            client.close()
        }
    }

    // MARK: Failure reasons

    @Test("reason -5: nothing listening")
    func refusedPort() async throws {
        let loop = makeLoop()
        defer { try? loop.shutdown() }
        // Reserved, not just free a moment ago: under load another server took such a port.
        let refusing = try RefusingPort()
        #expect(await failureCode(host: "127.0.0.1", port: Int(refusing.port), loop: loop) == -5)
        withExtendedLifetime(refusing) {}
    }

    @Test("reason -3: the host name does not resolve")
    func dnsFailure() async throws {
        let loop = makeLoop()
        defer { try? loop.shutdown() }
        #expect(await failureCode(host: "no-such-broker.invalid", port: 1883, loop: loop) == -3)
    }

    @Test("reason -4: the first packet is not a CONNACK")
    func notConnAck() async throws {
        try await withFakeBroker { broker, loop in
            broker.behaviour.withLock { $0.connack = [0x90, 0x03, 0x00, 0x01, 0x00] }  // a SUBACK
            #expect(await failureCode(host: "127.0.0.1", port: broker.port, loop: loop) == -4)
            #expect(await broker.waitForClose(0))
        }
    }

    @Test("reason -2: no CONNACK in time")
    func silentBroker() async throws {
        try await withFakeBroker { broker, loop in
            broker.behaviour.withLock { $0.connack = nil }
            let started = ContinuousClock.now
            #expect(await failureCode(host: "127.0.0.1", port: broker.port, loop: loop, timeout: .milliseconds(300)) == -2)
            // The 300 ms timeout, not the helper's 20 s wait, ended it (slack for a loaded machine).
            #expect(ContinuousClock.now - started < .seconds(5))
        }
    }

    @Test("reasons 1...5: CONNACK refusal codes", arguments: 1...5)
    func refusal(code: Int) async throws {
        try await withFakeBroker { broker, loop in
            broker.behaviour.withLock { $0.connack = [0x20, 0x02, 0x00, UInt8(code)] }
            #expect(await failureCode(host: "127.0.0.1", port: broker.port, loop: loop) == code)
        }
    }

    @Test("reason -1: the transport (here a TLS handshake nobody answers) is not up in time")
    func sendTimeout() async throws {
        try await withFakeBroker { broker, loop in
            broker.behaviour.withLock { $0.connack = nil; $0.discardInput = true }
            let result = Locked<Int?>(nil)
            let client = NodeMCUClient(options: MQTTClientOptions(clientID: "slow-tls", connectTimeout: .milliseconds(300)), eventLoop: loop)
            try client.connect("127.0.0.1", port: broker.port, secure: .on, failed: { _, f in result.withLock { $0 = f.nodeMCUReasonCode } })
            _ = await EventLog().wait(within: 20) { _ in result.withLock { $0 } != nil }
            #expect(result.withLock { $0 } == -1)
            client.close()
        }
    }

    func failureCode(host: String, port: Int, loop: EventLoop, timeout: Duration = .seconds(3)) async -> Int? {
        let result = Locked<Int?>(nil)
        let client = NodeMCUClient(options: MQTTClientOptions(clientID: "reason", connectTimeout: timeout), eventLoop: loop)
        do {
            try client.connect(host, port: port, connected: { _ in result.withLock { $0 = 0 } },
                               failed: { _, failure in result.withLock { $0 = failure.nodeMCUReasonCode } })
        } catch {
            Issue.record("connect threw \(error)")
            return nil
        }
        _ = await EventLog().wait(within: 20) { _ in result.withLock { $0 } != nil }
        client.close()
        return result.withLock { $0 }
    }

    // MARK: Malformed input

    static let malformedInputs: [String: [UInt8]] = [
        "garbage": [0xFF, 0xFF, 0xFF],
        "5-byte remaining length": [0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
        "truncated packet": [0x30, 0x03, 0x00, 0x05, 0x61],
        "invalid UTF-8 topic": [0x30, 0x05, 0x00, 0x03, 0x61, 0xFF, 0x62],
    ]

    @Test("malformed input: typed error, connection closed, offline fired, no crash",
          arguments: ["garbage", "5-byte remaining length", "truncated packet", "invalid UTF-8 topic"])
    func malformed(name: String) async throws {
        let bytes = FakeBrokerTests.malformedInputs[name]!
        try await withFakeBroker { broker, loop in
            let log = EventLog()
            let client = try await connectedClient(broker, loop, log)
            let failure = offlineReason(client)
            #expect(await log.wait(for: "connect"))
            broker.send(bytes)
            #expect(await log.wait(for: "offline"), "\(name)")
            #expect(await broker.waitForClose(0), "\(name)")
            let f = failure.withLock { $0 }
            guard case .protocolError(let error)? = f else {
                Issue.record("\(name): expected a protocol error, got \(String(describing: f))")
                return
            }
            switch name {
            case "garbage": #expect(error == .reservedPacketType(15))
            case "5-byte remaining length": #expect(error == .malformedRemainingLength)
            case "truncated packet": #expect(error == .truncated(.publish, field: .topicName))
            default: #expect(error == .invalidUTF8(field: .topicName))
            }
            #expect(f?.nodeMCUReasonCode == -8)
            client.close()
        }
    }
}
