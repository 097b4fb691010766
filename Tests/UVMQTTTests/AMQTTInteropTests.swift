import Foundation
import MQTTTestSupport
import Testing
import MQTTProtocol
@testable import UVMQTT
import UVReactor

/// The conformance subset of the mosquitto tests against amqtt (PyPI, a broker written in
/// Python): QoS 0/1/2, retained, will, sessions, wildcards. A second, independent broker.
@Suite("Client against amqtt", .serialized)
struct AMQTTInteropTests {
    func options(_ id: String, cleanSession: Bool = true) -> MQTTClientOptions {
        var options = MQTTClientOptions(clientID: String(uniqueID(id).prefix(23)), keepAlive: 10, cleanSession: cleanSession,
                                        connectTimeout: .seconds(3))
        options.reconnectBackoff = testBackoff
        return options
    }

    @Test("QoS 0, 1 and 2 round trips")
    func roundTrips() async throws {
        try await withAMQTT { broker in
            let client = MQTTClient(options: options("am-rt"))
            _ = try await withDeadline(testTimeout) { try await client.connect(to: broker.host, port: Int(broker.port)) }
            let stream = try client.messages(matching: "rt/#")
            let granted = try await withDeadline(testTimeout) {
                try await client.subscribe([TopicSubscription(filter: "rt/#", qos: .exactlyOnce)])
            }
            #expect(granted == [.granted(.exactlyOnce)])
            for qos in QoS.allCases {
                try await withDeadline(testTimeout) { try await client.publish("rt/\(qos.rawValue)", payload: [qos.rawValue, 0xFF, 0], qos: qos) }
            }
            let received = try await collect(stream, count: 3)
            #expect(received.map(\.topic).sorted() == ["rt/0", "rt/1", "rt/2"])
            for message in received {
                #expect(message.payload.dropFirst() == [0xFF, 0])
                // The delivery QoS must be min(published, granted) [MQTT-3.8.4-6]; amqtt 0.12.1
                // delivers every message with the granted QoS 2 (the client runs the QoS 2 flow
                // it is given, so the round trip itself works).
                #expect(message.qos.rawValue >= message.payload[0])
                if message.payload[0] < 2 {
                    withKnownIssue("amqtt 0.12.1 upgrades the delivery QoS to the granted one") {
                        #expect(message.qos.rawValue == message.payload[0])
                    }
                }
            }
            await client.disconnect()
        }
    }

    @Test("a retained message reaches a later subscriber with the retain flag")
    func retained() async throws {
        try await withAMQTT { broker in
            let publisher = MQTTClient(options: options("am-retp"))
            _ = try await withDeadline(testTimeout) { try await publisher.connect(to: broker.host, port: Int(broker.port)) }
            try await withDeadline(testTimeout) { try await publisher.publish("ret/a", string: "kept", qos: .atLeastOnce, retain: true) }
            await publisher.disconnect()
            let subscriber = MQTTClient(options: options("am-rets"))
            _ = try await withDeadline(testTimeout) { try await subscriber.connect(to: broker.host, port: Int(broker.port)) }
            let stream = subscriber.messages
            _ = try await withDeadline(testTimeout) { try await subscriber.subscribe("ret/#", qos: .atLeastOnce) }
            let received = try await collect(stream, count: 1)
            #expect(received.first?.topic == "ret/a" && received.first?.payloadString == "kept" && received.first?.retain == true)
            await subscriber.disconnect()
        }
    }

    @Test("the will is published after an abrupt loss")
    func will() async throws {
        try await withAMQTT { broker in
            let watcher = MQTTClient(options: options("am-willw"))
            _ = try await withDeadline(testTimeout) { try await watcher.connect(to: broker.host, port: Int(broker.port)) }
            let stream = try watcher.messages(matching: "will/#")
            _ = try await withDeadline(testTimeout) { try await watcher.subscribe("will/#", qos: .atLeastOnce) }
            let log = EventLog()
            let lost = NodeMCUClient(options: options("am-willl"))
            try lost.lwt("will/lost", "gone", qos: .atLeastOnce)
            lost.on(.offline) { _ in log.add("offline") }
            try lost.connect(broker.host, port: Int(broker.port), connected: { _ in log.add("connected") })
            #expect(await log.wait(for: "connected"))
            lost.engine.submit { $0.simulateConnectionLoss() }
            #expect(await log.wait(for: "offline"))
            let received = try await collect(stream, count: 1)
            #expect(received.first?.topic == "will/lost" && received.first?.payloadString == "gone")
            await watcher.disconnect()
        }
    }

    @Test("a kept session: QoS 1 messages published while away arrive at the reconnect")
    func sessions() async throws {
        try await withAMQTT { broker in
            let sessionOptions = options("am-sess", cleanSession: false)
            let first = MQTTClient(options: sessionOptions)
            _ = try await withDeadline(testTimeout) { try await first.connect(to: broker.host, port: Int(broker.port)) }
            _ = try await withDeadline(testTimeout) { try await first.subscribe("sess/#", qos: .atLeastOnce) }
            await first.disconnect()

            let publisher = MQTTClient(options: options("am-sessp"))
            _ = try await withDeadline(testTimeout) { try await publisher.connect(to: broker.host, port: Int(broker.port)) }
            for i in 0..<5 {
                try await withDeadline(testTimeout) { try await publisher.publish("sess/x", string: "m\(i)", qos: .atLeastOnce) }
            }
            await publisher.disconnect()

            let again = MQTTClient(options: sessionOptions)
            let stream = again.messages
            let reader = StreamReader(stream)
            let present = try await withDeadline(testTimeout) { try await again.connect(to: broker.host, port: Int(broker.port)) }
            #expect(present)
            // Measured: amqtt 0.12.1 answers with session present but does not deliver what was
            // published while the client was away (no PUBLISH follows the CONNACK).
            await withKnownIssue("amqtt 0.12.1 keeps the subscription, not the messages queued while away") {
                let queued = try await reader.collect(count: 5, within: 2)
                #expect(queued.map(\.payloadString) == (0..<5).map { "m\($0)" })
            }
            // The session kept the subscription: a message published now arrives without a
            // new SUBSCRIBE.
            _ = try await withDeadline(testTimeout) { try await publisher.connect(to: broker.host, port: Int(broker.port)) }
            try await withDeadline(testTimeout) { try await publisher.publish("sess/x", string: "now", qos: .atLeastOnce) }
            let now = try await reader.collect(count: 1)
            #expect(now.last?.payloadString == "now")
            await publisher.disconnect()
            await again.disconnect()
        }
    }

    @Test("wildcards + and # route as the spec says")
    func wildcards() async throws {
        try await withAMQTT { broker in
            let client = MQTTClient(options: options("am-wild"))
            _ = try await withDeadline(testTimeout) { try await client.connect(to: broker.host, port: Int(broker.port)) }
            let plus = try client.messages(matching: "w/+/t")
            let hash = try client.messages(matching: "w/#")
            _ = try await withDeadline(testTimeout) {
                try await client.subscribe([TopicSubscription(filter: "w/+/t", qos: .atLeastOnce),
                                            TopicSubscription(filter: "w/#", qos: .atLeastOnce)])
            }
            for topic in ["w/a/t", "w/b/c", "w", "w/a/t/x"] {
                try await withDeadline(testTimeout) { try await client.publish(topic, string: topic, qos: .atLeastOnce) }
            }
            // Overlapping subscriptions may deliver a message once per match (amqtt does: 3.1.1
            // allows it), so the "#" stream may see "w/a/t" twice: read until all four arrived.
            let hashReader = StreamReader(hash)
            var topics = Set<String>()
            let deadline = ContinuousClock.now + .seconds(testTimeout)
            while topics.count < 4 && ContinuousClock.now < deadline {
                topics.formUnion(try await hashReader.collect(count: 1).map(\.topic))
            }
            #expect(topics == ["w/a/t", "w/b/c", "w", "w/a/t/x"])
            let fromPlus = try await collect(plus, count: 1)
            #expect(fromPlus.map(\.topic) == ["w/a/t"])
            await client.disconnect()
        }
    }
}
