import Foundation
import MQTTTestSupport
import Testing
import MQTTProtocol
@testable import UVMQTT
import UVReactor

/// MQTT over WebSocket against mosquitto's `protocol websockets` listener (ws and wss).
@Suite("WebSocket against mosquitto", .serialized)
struct WebSocketMosquittoTests {
    func options(_ id: String, _ configure: (inout MQTTClientOptions) -> Void = { _ in }) -> MQTTClientOptions {
        var options = MQTTClientOptions(clientID: String(uniqueID(id).prefix(23)), keepAlive: 10, connectTimeout: .seconds(3))
        options.reconnectBackoff = testBackoff
        configure(&options)
        return options
    }

    @Test("QoS 0, 1 and 2 round trips over ws://, with a payload that spans frames",
          arguments: [MQTTProtocol.ProtocolVersion.v3_1_1, .v3_1])
    func roundTrips(version: MQTTProtocol.ProtocolVersion) async throws {
        try await withMosquitto(MosquittoOptions(webSockets: true)) { broker in
            let client = MQTTClient(options: options("ws") { $0.protocolVersion = version })
            let present = try await withDeadline(testTimeout, "connect") {
                try await client.connect(to: "ws://127.0.0.1:\(broker.webSocketPort!)/mqtt")
            }
            #expect(present == false)
            let stream = try client.messages(matching: "ws/#")
            let granted = try await withDeadline(testTimeout) {
                try await client.subscribe([TopicSubscription(filter: "ws/#", qos: .exactlyOnce)])
            }
            #expect(granted == [.granted(.exactlyOnce)])
            // mosquitto 2.0.11 sends large messages over WebSocket slowly (about 40 KB/s here: 300 KB
            // took 7 s from broker to client, the same client reads 70 KB frames from a fake server
            // at once), so the payload that spans frames stays small.
            let big = (0..<24_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            for qos in QoS.allCases {
                try await withDeadline(testTimeout, "publish QoS \(qos.rawValue)") {
                    try await client.publish("ws/\(qos.rawValue)", payload: [qos.rawValue, 0xFF, 0x00], qos: qos)
                }
            }
            try await withDeadline(testTimeout) { try await client.publish("ws/big", payload: big, qos: .atLeastOnce) }
            let received = try await collect(stream, count: 4)
            #expect(received.map(\.topic).sorted() == ["ws/0", "ws/1", "ws/2", "ws/big"])
            for message in received where message.topic != "ws/big" {
                let qos = QoS(rawValue: message.payload[0])!
                #expect(message.qos == qos)
                #expect(message.payload == [qos.rawValue, 0xFF, 0x00])
            }
            #expect(received.first { $0.topic == "ws/big" }?.payload == big)
            await client.disconnect()
            let level = version == .v3_1 ? "p1" : "p2"
            #expect(broker.log().contains("(\(level), c1, k10"))
        }
    }

    @Test("the NodeMCU face connects with a ws:// URI")
    func nodeMCUFace() async throws {
        try await withMosquitto(MosquittoOptions(webSockets: true)) { broker in
            let log = EventLog()
            let client = NodeMCUClient(options: options("wsn"))
            client.on(.message) { _, message in log.add("message \(message.topic) \(String(decoding: message.payload, as: UTF8.self))") }
            try client.connect("ws://127.0.0.1:\(broker.webSocketPort!)", connected: { client in
                try? client.subscribe("wsn/t", qos: .atLeastOnce) { client, _ in
                    try? client.publish("wsn/t", "hello", qos: .atLeastOnce, retain: false)
                }
            })
            #expect(await log.wait(for: "message wsn/t hello"))
            client.close()
        }
    }

    @Test("wss://: WebSocket over TLS with the generated CA")
    func secureWebSocket() async throws {
        let certs = try TLSFixtures.shared()
        try await withMosquitto(MosquittoOptions(tls: certs, webSockets: true)) { broker in
            let client = MQTTClient(options: options("wss"))
            try await withDeadline(testTimeout) {
                try await client.connect(to: "wss://localhost:\(broker.webSocketPort!)/mqtt",
                                         security: .tls(TLSConfiguration(trust: .pemFile(certs.caFile))))
            }
            let stream = client.messages
            _ = try await withDeadline(testTimeout) { try await client.subscribe("wss/t", qos: .exactlyOnce) }
            let payload = (0..<20_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            try await withDeadline(testTimeout) { try await client.publish("wss/t", payload: payload, qos: .exactlyOnce) }
            #expect(try await collect(stream, count: 1).first?.payload == payload)
            await client.disconnect()
        }
    }

    @Test("a WebSocket client on a plain MQTT listener fails the connect")
    func wsClientOnPlainListener() async throws {
        try await withMosquitto { broker in
            let client = MQTTClient(options: options("wsplain"))
            do {
                _ = try await withDeadline(testTimeout) { try await client.connect(to: "ws://127.0.0.1:\(broker.port)") }
                Issue.record("connected over ws to a plain MQTT listener")
            } catch let failure as MQTTConnectionFailure {
                // mosquitto reads the HTTP request as a bad MQTT packet and closes.
                #expect(failure.nodeMCUReasonCode != 0)
            }
            await client.disconnect()
        }
    }
}
