import Foundation
import MQTTTestSupport
import Testing
import MQTTProtocol
@testable import UVMQTT
import UVReactor

/// The client against a real mosquitto (started per test on a free loopback port, own config,
/// always stopped).
@Suite("Client against mosquitto", .serialized)
struct MosquittoClientTests {
    func options(_ id: String, _ configure: (inout MQTTClientOptions) -> Void = { _ in }) -> MQTTClientOptions {
        var options = MQTTClientOptions(clientID: uniqueID(id), keepAlive: 10, connectTimeout: .seconds(3))
        options.reconnectBackoff = testBackoff
        configure(&options)
        return options
    }

    @Test("QoS 0, 1 and 2 round trips through the broker", arguments: [MQTTProtocol.ProtocolVersion.v3_1_1, .v3_1])
    func roundTrips(version: MQTTProtocol.ProtocolVersion) async throws {
        try await withMosquitto { broker in
            let client = MQTTClient(options: options("rt") { $0.protocolVersion = version; $0.clientID = String($0.clientID.prefix(23)) })
            let present = try await withDeadline(testTimeout, "connect") { try await client.connect(to: broker.host, port: Int(broker.port)) }
            #expect(present == false)
            let stream = try client.messages(matching: "rt/#")
            let granted = try await withDeadline(testTimeout) { try await client.subscribe([TopicSubscription(filter: "rt/#", qos: .exactlyOnce)]) }
            #expect(granted == [.granted(.exactlyOnce)])
            for qos in QoS.allCases {
                try await withDeadline(testTimeout, "publish QoS \(qos.rawValue)") {
                    try await client.publish("rt/\(qos.rawValue)", payload: [qos.rawValue, 0xFF, 0x00], qos: qos)
                }
            }
            let received = try await collect(stream, count: 3)
            #expect(received.map(\.topic).sorted() == ["rt/0", "rt/1", "rt/2"])
            for message in received {
                let qos = QoS(rawValue: message.payload[0])!
                #expect(message.qos == qos)
                #expect(message.payload == [qos.rawValue, 0xFF, 0x00])
                #expect(!message.retain)
            }
            await client.disconnect()
            // The broker saw the protocol level asked for.
            let level = version == .v3_1 ? "p1" : "p2"  // mosquitto logs 3.1 as p1, 3.1.1 as p2
            #expect(broker.log().contains("(\(level), c1, k10"))
        }
    }

    @Test("a retained message reaches a later subscriber with the retain flag")
    func retained() async throws {
        try await withMosquitto { broker in
            let publisher = MQTTClient(options: options("ret-pub"))
            try await withDeadline(testTimeout) { try await publisher.connect(to: broker.host, port: Int(broker.port)) }
            try await withDeadline(testTimeout) { try await publisher.publish("ret/a", string: "kept", qos: .atLeastOnce, retain: true) }
            await publisher.disconnect()

            let subscriber = MQTTClient(options: options("ret-sub"))
            try await withDeadline(testTimeout) { try await subscriber.connect(to: broker.host, port: Int(broker.port)) }
            let stream = subscriber.messages
            _ = try await withDeadline(testTimeout) { try await subscriber.subscribe("ret/#", qos: .atLeastOnce) }
            let received = try await collect(stream, count: 1)
            #expect(received.first?.topic == "ret/a")
            #expect(received.first?.payloadString == "kept")
            #expect(received.first?.retain == true)
            await subscriber.disconnect()
        }
    }

    @Test("the will is published after an abrupt loss, not after close()")
    func will() async throws {
        try await withMosquitto { broker in
            let watcher = MQTTClient(options: options("will-watch"))
            try await withDeadline(testTimeout) { try await watcher.connect(to: broker.host, port: Int(broker.port)) }
            let stream = try watcher.messages(matching: "will/#")
            _ = try await withDeadline(testTimeout) { try await watcher.subscribe("will/#", qos: .atLeastOnce) }

            // Closed cleanly: DISCONNECT first, so no will.
            let polite = NodeMCUClient(options: options("will-polite"))
            try polite.lwt("will/polite", "gone", qos: .atLeastOnce)
            let log = EventLog()
            polite.on(.offline) { _ in log.add("offline") }
            try polite.connect(broker.host, port: Int(broker.port), connected: { _ in log.add("connected") })
            #expect(await log.wait(for: "connected"))
            polite.close()
            #expect(await log.wait(for: "offline"))

            // Lost abruptly: the socket is cut without DISCONNECT.
            let lost = NodeMCUClient(options: options("will-lost"))
            try lost.lwt("will/lost", "gone", qos: .atLeastOnce)
            lost.on(.offline) { _ in log.add("lost-offline") }
            try lost.connect(broker.host, port: Int(broker.port), connected: { _ in log.add("lost-connected") })
            #expect(await log.wait(for: "lost-connected"))
            lost.engine.submit { $0.simulateConnectionLoss() }
            #expect(await log.wait(for: "lost-offline"))

            let received = try await collect(stream, count: 1)
            #expect(received.map(\.topic) == ["will/lost"])
            #expect(received.first?.payloadString == "gone")
            // Nothing else arrives (the polite client's will was discarded): bounded wait.
            let more = try? await collect(stream, count: 1, within: 0.5)
            #expect(more == nil)
            await watcher.disconnect()
        }
    }

    @Test("a kept session survives a reconnect: subscription and queued QoS 1 messages")
    func persistentSession() async throws {
        try await withMosquitto { broker in
            let id = uniqueID("persist")
            let first = MQTTClient(options: options("x") { $0.clientID = id; $0.cleanSession = false })
            try await withDeadline(testTimeout) { try await first.connect(to: broker.host, port: Int(broker.port)) }
            _ = try await withDeadline(testTimeout) { try await first.subscribe("persist/#", qos: .atLeastOnce) }
            await first.disconnect()

            let publisher = MQTTClient(options: options("persist-pub"))
            try await withDeadline(testTimeout) { try await publisher.connect(to: broker.host, port: Int(broker.port)) }
            for i in 0..<3 {
                try await withDeadline(testTimeout) { try await publisher.publish("persist/\(i)", string: "m\(i)", qos: .atLeastOnce) }
            }
            await publisher.disconnect()

            let second = MQTTClient(options: options("x") { $0.clientID = id; $0.cleanSession = false })
            let stream = second.messages
            let present = try await withDeadline(testTimeout) { try await second.connect(to: broker.host, port: Int(broker.port)) }
            #expect(present == true)
            let received = try await collect(stream, count: 3)
            #expect(received.map(\.payloadString) == ["m0", "m1", "m2"])
            await second.disconnect()
        }
    }

    @Test("password file: right credentials connect; a wrong or missing password is refused (reason 5)")
    func passwordFile() async throws {
        try await withMosquitto(MosquittoOptions(users: ["alice": "secret"])) { broker in
            let good = MQTTClient(options: options("pw") { $0.username = "alice"; $0.password = Array("secret".utf8) })
            try await withDeadline(testTimeout) { try await good.connect(to: broker.host, port: Int(broker.port)) }
            await good.disconnect()

            let wrong = MQTTClient(options: options("pw") { $0.username = "alice"; $0.password = Array("nope".utf8) })
            let wrongFailure = await connectFailure(wrong, broker)
            let wrong31 = MQTTClient(options: options("pw") {
                $0.protocolVersion = .v3_1; $0.clientID = String($0.clientID.prefix(23))
                $0.username = "alice"; $0.password = Array("nope".utf8)
            })
            let wrong31Failure = await connectFailure(wrong31, broker)
            // mosquitto 2.0.11 answers a wrong password with code 5 (not authorised) on both
            // levels, never 4; the fake broker tests cover reason 4.
            #expect(wrongFailure == .refused(.notAuthorized))
            #expect(wrong31Failure == .refused(.notAuthorized))
            #expect(wrongFailure?.nodeMCUReasonCode == 5)

            let anonymous = MQTTClient(options: options("pw"))
            let anonymousFailure = await connectFailure(anonymous, broker)
            #expect(anonymousFailure == .refused(.notAuthorized))
            #expect(anonymousFailure?.nodeMCUReasonCode == 5)
        }
    }

    @Test("TLS listener with generated certificates: trusted CA works, another CA is refused")
    func tlsListener() async throws {
        let certs = try TLSFixtures.shared()
        try await withMosquitto(MosquittoOptions(tls: certs)) { broker in
            let tls = TLSConfiguration(trust: .pemFile(certs.caFile))
            let client = MQTTClient(options: options("tls"))
            try await withDeadline(testTimeout) {
                try await client.connect(to: "mqtts://localhost:\(broker.port)", security: .tls(tls))
            }
            let stream = client.messages
            _ = try await withDeadline(testTimeout) { try await client.subscribe("tls/t", qos: .atLeastOnce) }
            try await withDeadline(testTimeout) { try await client.publish("tls/t", string: "secret", qos: .atLeastOnce) }
            #expect(try await collect(stream, count: 1).first?.payloadString == "secret")
            await client.disconnect()

            let untrusting = MQTTClient(options: options("tls-bad"))
            let failure = await connectFailure(untrusting, broker, security: .tls(TLSConfiguration(trust: .pemFile(certs.wrongCAFile))), host: "localhost")
            guard case .tlsCertificateUntrusted? = failure else {
                Issue.record("expected an untrusted certificate, got \(String(describing: failure))")
                return
            }
            #expect(failure?.nodeMCUReasonCode == -11)
        }
    }

    @Test("TLS: a wrong host name is reason -12; mutual TLS works with a client certificate and is -13 without")
    func tlsReasons() async throws {
        let certs = try TLSFixtures.shared()
        try await withMosquitto(MosquittoOptions(tls: certs, requireClientCertificate: true)) { broker in
            let trust = TLSConfiguration.Trust.pemFile(certs.caFile)
            let mismatch = await connectFailure(MQTTClient(options: options("tls-name")), broker,
                                                security: .tls(TLSConfiguration(trust: trust, serverName: "wrong.example")),
                                                host: "localhost")
            guard case .tlsHostnameMismatch? = mismatch else {
                Issue.record("expected a host name mismatch, got \(String(describing: mismatch))")
                return
            }
            #expect(mismatch?.nodeMCUReasonCode == -12)

            let identity = TLSConfiguration.ClientCertificate.pemFiles(certificate: certs.clientCertificate,
                                                                       privateKey: certs.clientKey)
            let mutual = MQTTClient(options: options("tls-mutual"))
            try await withDeadline(testTimeout) {
                try await mutual.connect(to: "localhost", port: Int(broker.port),
                                         security: .tls(TLSConfiguration(trust: trust, clientCertificate: identity)))
            }
            try await withDeadline(testTimeout) { try await mutual.publish("m/t", string: "x", qos: .atLeastOnce) }
            await mutual.disconnect()

            // TLS 1.3: the missing certificate is reported only after the handshake, at the first
            // read, which here is the wait for the CONNACK.
            let anonymous = await connectFailure(MQTTClient(options: options("tls-nocert")), broker,
                                                 security: .tls(TLSConfiguration(trust: trust)), host: "localhost")
            guard case .tlsClientCertificateRejected? = anonymous else {
                Issue.record("expected a rejected client certificate, got \(String(describing: anonymous))")
                return
            }
            #expect(anonymous?.nodeMCUReasonCode == -13)
        }
    }

    @Test("throughput through the broker: 20,000 messages at QoS 0 and at QoS 1, all received", arguments: [MQTTProtocol.QoS.atMostOnce, .atLeastOnce])
    func throughput(qos: MQTTProtocol.QoS) async throws {
        try await withMosquitto { broker in
            let total = 20_000
            let counter = DeliveryCounter(total: total)
            let log = EventLog()
            let subscriber = NodeMCUClient(options: options("thr-sub"))
            subscriber.on(.message) { _, message in counter.record(message.payload) }
            try subscriber.connect(broker.host, port: Int(broker.port), connected: { client in
                try? client.subscribe("thr/#", qos: qos) { _, _ in log.add("subscribed") }
            })
            #expect(await log.wait(for: "subscribed"))
            let publisher = NodeMCUClient(options: options("thr-pub") { $0.maxQueuedMessages = total; $0.inflightWindow = 256 })
            try publisher.connect(broker.host, port: Int(broker.port), connected: { _ in log.add("pub") })
            #expect(await log.wait(for: "pub"))
            let started = ContinuousClock.now
            // One hop to the loop for the whole batch: the publishes run back to back there.
            publisher.engine.submit { engine in
                for i in 0..<total {
                    let payload = withUnsafeBytes(of: UInt32(i).bigEndian) { Array($0) }
                    engine.publish(PublishPacket(topic: "thr/x", payload: payload, qos: qos), whenFull: .fail, completion: nil)
                }
            }
            let done = await EventLog().wait(within: 60) { _ in counter.distinct == total }
            let elapsed = ContinuousClock.now - started
            #expect(done, "received \(counter.distinct) of \(total)")
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            print("throughput QoS \(qos.rawValue): \(total) messages publisher → mosquitto → subscriber in \(elapsed) (\(Int(Double(total) / seconds)) msg/s)")
            publisher.close()
            subscriber.close()
        }
    }

    @Test("many tasks share one async client: every publish completes, every message arrives once")
    func concurrentTasks() async throws {
        try await withMosquitto { broker in
            let client = MQTTClient(options: options("conc") { $0.messageBufferSize = 64 })
            try await withDeadline(testTimeout) { try await client.connect(to: broker.host, port: Int(broker.port)) }
            let stream = try client.messages(matching: "conc/#")
            _ = try await withDeadline(testTimeout) { try await client.subscribe("conc/#", qos: .exactlyOnce) }
            let tasks = 8, perTask = 250
            // Consume while publishing: a stream nobody reads stops the client reading the socket
            // once its buffer is full (acknowledgements included), by design.
            let consumer = Task { try await collect(stream, count: tasks * perTask, within: 60) }
            try await withDeadline(60, "concurrent publishes") {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for t in 0..<tasks {
                        group.addTask {
                            for i in 0..<perTask {
                                try await client.publish("conc/\(t)", payload: [UInt8(t), UInt8(i >> 8), UInt8(i & 0xFF)],
                                                         qos: QoS(rawValue: UInt8(i % 3))!)
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            }
            let received = try await consumer.value
            #expect(Set(received.map(\.payload)).count == tasks * perTask)
            // Per publishing task (one topic), messages keep their order.
            for t in 0..<tasks {
                let sequence = received.filter { $0.payload[0] == UInt8(t) }.map { Int($0.payload[1]) << 8 | Int($0.payload[2]) }
                #expect(sequence == Array(0..<perTask))
            }
            await client.disconnect()
        }
    }

    func connectFailure(_ client: MQTTClient, _ broker: MosquittoBroker, security: MQTTSecurity = .off, host: String? = nil) async -> MQTTConnectionFailure? {
        do {
            try await withDeadline(testTimeout) { try await client.connect(to: host ?? broker.host, port: Int(broker.port), security: security) }
            Issue.record("connect succeeded unexpectedly")
            return nil
        } catch let failure as MQTTConnectionFailure {
            return failure
        } catch {
            Issue.record("unexpected error \(error)")
            return nil
        }
    }
}
