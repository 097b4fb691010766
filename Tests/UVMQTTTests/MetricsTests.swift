import CoreMetrics
import Foundation
import MetricsTestKit
import MQTTProtocol
import MQTTTestSupport
import Testing
@testable import UVMQTT

/// `MQTTClientOptions.metrics` against a real mosquitto: the values after a known exchange, a
/// forced connection loss and a refused connect (swift-metrics' `TestMetrics`).
@Suite("Client metrics against mosquitto", .serialized)
struct MetricsTests {
    func options(_ id: String, _ metrics: TestMetrics?) -> MQTTClientOptions {
        var options = MQTTClientOptions(clientID: uniqueID(id), keepAlive: 10, connectTimeout: .seconds(3))
        options.reconnectBackoff = testBackoff
        options.metrics = metrics.map { MQTTMetrics(factory: $0, dimensions: [("service", "test")]) }
        return options
    }

    func dims(_ options: MQTTClientOptions, _ extra: [(String, String)] = []) -> [(String, String)] {
        [("client_id", options.clientID), ("service", "test")] + extra
    }

    /// Polls `condition` every 10 ms for at most `seconds`.
    func eventually(within seconds: Double = testTimeout, _ condition: () -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }

    @Test("counters, gauges and timers after publishes of each QoS, a forced loss and the reconnect")
    func knownExchange() async throws {
        let metrics = TestMetrics()
        try await withMosquitto { broker in
            let options = options("metrics", metrics)
            let client = MQTTClient(options: options)
            try await withDeadline(testTimeout) { _ = try await client.connect(to: broker.host, port: Int(broker.port), reconnect: true) }
            let stream = try client.messages(matching: "m/#")
            _ = try await withDeadline(testTimeout) { try await client.subscribe([TopicSubscription(filter: "m/#", qos: .exactlyOnce)]) }
            let payloads: [(QoS, Int)] = [(.atMostOnce, 10), (.atLeastOnce, 20), (.atLeastOnce, 30), (.exactlyOnce, 40)]
            for (qos, size) in payloads {
                try await withDeadline(testTimeout) {
                    try await client.publish("m/\(qos.rawValue)", payload: [UInt8](repeating: 7, count: size), qos: qos)
                }
            }
            _ = try await collect(stream, count: payloads.count)

            func wire(_ qos: QoS, _ size: Int) -> Int64 {
                Int64(MQTTEncoder.publishPacketSize(topicByteCount: 3, payloadCount: size, qos: qos))
            }
            for qos in QoS.allCases {
                let q = [("qos", "\(qos.rawValue)")]
                let mine = payloads.filter { $0.0 == qos }
                #expect(try metrics.expectCounter("mqtt_client_messages_sent_total", dims(options, q)).totalValue == Int64(mine.count))
                #expect(try metrics.expectCounter("mqtt_client_bytes_sent_total", dims(options, q)).totalValue
                    == mine.reduce(0) { $0 + wire(qos, $1.1) })
                // The subscription granted QoS 2, so each message comes back at the QoS it was sent with.
                #expect(try metrics.expectCounter("mqtt_client_messages_received_total", dims(options, q)).totalValue == Int64(mine.count))
                #expect(try metrics.expectCounter("mqtt_client_bytes_received_total", dims(options, q)).totalValue
                    == mine.reduce(0) { $0 + wire(qos, $1.1) })
            }
            #expect(try metrics.expectTimer("mqtt_client_publish_ack_duration_seconds", dims(options, [("qos", "1")])).values.count == 2)
            let qos2Latency = try metrics.expectTimer("mqtt_client_publish_ack_duration_seconds", dims(options, [("qos", "2")])).values
            #expect(qos2Latency.count == 1 && qos2Latency.allSatisfy { $0 > 0 && $0 < 20_000_000_000 })
            #expect(try metrics.expectTimer("mqtt_client_publish_ack_duration_seconds", dims(options, [("qos", "0")])).values.isEmpty)
            #expect(try metrics.expectCounter("mqtt_client_connects_total", dims(options)).totalValue == 1)
            #expect(try metrics.expectTimer("mqtt_client_connect_duration_seconds", dims(options)).values.count == 1)
            #expect(try metrics.expectGauge("mqtt_client_connected", dims(options)).lastValue == 1)
            // The gauges are recorded at the end of the event that completed the last publish,
            // which may come just after the completion resumed this task.
            let inflight = try metrics.expectGauge("mqtt_client_inflight_messages", dims(options))
            #expect(await eventually { inflight.lastValue == 0 })
            #expect(inflight.values.contains { $0 >= 1 })
            #expect(try metrics.expectGauge("mqtt_client_queued_messages", dims(options)).lastValue == 0)
            #expect(try metrics.expectCounter("mqtt_client_resends_total", dims(options)).totalValue == 0)
            #expect(try metrics.expectCounter("mqtt_client_dropped_messages_total", dims(options)).totalValue == 0)
            #expect(metrics.counters(label: "mqtt_client_connection_losses_total").isEmpty)

            // A forced loss: one loss (whatever the reason the transport reports), then the reconnect.
            client.engine.submit { $0.simulateConnectionLoss() }
            #expect(await eventually { metrics.counterTotal(label: "mqtt_client_connects_total") == 2 })
            let losses = metrics.counters(label: "mqtt_client_connection_losses_total")
            #expect(losses.count == 1 && losses.first?.totalValue == 1)
            #expect(losses.first?.dimensions.contains { $0.0 == "reason" } == true)
            #expect(try metrics.expectTimer("mqtt_client_connect_duration_seconds", dims(options)).values.count == 2)
            #expect(try metrics.expectGauge("mqtt_client_connected", dims(options)).lastValue == 1)

            // The application's own disconnect is no loss; the gauge goes to 0.
            await client.disconnect()
            #expect(await eventually { (try? metrics.expectGauge("mqtt_client_connected", dims(options)).lastValue) == 0 })
            #expect(metrics.counterTotal(label: "mqtt_client_connection_losses_total") == 1)
        }
    }

    @Test("a refused connect counts one failure with its reason, no connect")
    func refusedConnect() async throws {
        let metrics = TestMetrics()
        try await withMosquitto(MosquittoOptions(users: ["alice": "secret"])) { broker in
            var options = options("metrics-refused", metrics)
            options.username = "alice"
            options.password = Array("wrong".utf8)
            let client = MQTTClient(options: options)
            do {
                try await withDeadline(testTimeout) { _ = try await client.connect(to: broker.host, port: Int(broker.port)) }
                Issue.record("connect succeeded unexpectedly")
            } catch let failure as MQTTConnectionFailure {
                // mosquitto 2.0.11 answers a wrong password with 5 (not authorised).
                #expect(failure.reason == .refusedNotAuthorized)
            }
            let failures = try metrics.expectCounter("mqtt_client_connect_failures_total",
                                                     dims(options, [("reason", "refusedNotAuthorized")]))
            #expect(failures.totalValue == 1)
            #expect(metrics.counters(label: "mqtt_client_connect_failures_total").count == 1)
            #expect(try metrics.expectCounter("mqtt_client_connects_total", dims(options)).totalValue == 0)
            #expect(try metrics.expectGauge("mqtt_client_connected", dims(options)).lastValue == 0)
            #expect(try metrics.expectTimer("mqtt_client_connect_duration_seconds", dims(options)).values.isEmpty)
        }
    }

    @Test("off by default: no metrics object, nothing created in the global factory")
    func offByDefault() {
        let client = MQTTClient(options: MQTTClientOptions(clientID: uniqueID("metrics-off")))
        #expect(client.engine.metrics == nil)
        #expect(MQTTClientOptions(clientID: "x").metrics == nil)
    }
}
