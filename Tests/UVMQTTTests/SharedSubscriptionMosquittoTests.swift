import Foundation
import MQTTTestSupport
import Testing
import MQTTProtocol
@testable import UVMQTT
import UVReactor

/// Shared subscriptions (`$share/{group}/{filter}`) against mosquitto 2.0, both faces.
@Suite("Shared subscriptions against mosquitto", .serialized)
struct SharedSubscriptionMosquittoTests {
    func options(_ id: String) -> MQTTClientOptions {
        var options = MQTTClientOptions(clientID: String(uniqueID(id).prefix(23)), keepAlive: 10, connectTimeout: .seconds(3))
        options.reconnectBackoff = testBackoff
        return options
    }

    /// Two consumers in group `g` (one per face) share 200 QoS 1 messages: each message reaches
    /// exactly one of them and none is lost; a plain subscriber on the same filter sees all.
    @Test func twoConsumersShareAStream() async throws {
        let total = 200
        try await withMosquitto { broker in
            // Consumer A: the async face, a stream on the shared filter.
            let a = MQTTClient(options: options("share-a"))
            try await withDeadline(testTimeout) { try await a.connect(to: broker.host, port: Int(broker.port)) }
            let streamA = try a.messages(matching: "$share/g/sensors/#")
            let receivedA = Locked<[Int]>([])
            let readerA = Task {
                for await message in streamA { receivedA.withLock { $0.append(Int(message.payloadString) ?? -1) } }
            }
            #expect(try await withDeadline(testTimeout) { try await a.subscribe("$share/g/sensors/#", qos: .atLeastOnce) }
                    == .granted(.atLeastOnce))

            // Consumer B: the NodeMCU face.
            let log = EventLog()
            let receivedB = Locked<[Int]>([])
            let b = NodeMCUClient(options: options("share-b"))
            b.on(.message) { _, message in
                if message.topic.hasPrefix("sensors/") {
                    receivedB.withLock { $0.append(Int(String(decoding: message.payload, as: UTF8.self)) ?? -1) }
                }
            }
            try b.connect(broker.host, port: Int(broker.port), connected: { client in
                try? client.subscribe("$share/g/sensors/#", qos: .atLeastOnce) { _, result in
                    if case .success(.granted) = result { log.add("b subscribed") }
                }
            })
            #expect(await log.wait(for: "b subscribed"))

            // A plain subscriber on the same filter.
            let all = MQTTClient(options: options("share-all"))
            try await withDeadline(testTimeout) { try await all.connect(to: broker.host, port: Int(broker.port)) }
            let streamAll = try all.messages(matching: "sensors/#")
            let allReader = StreamReader(streamAll)
            _ = try await withDeadline(testTimeout) { try await all.subscribe("sensors/#", qos: .atLeastOnce) }

            let publisher = MQTTClient(options: options("share-pub"))
            try await withDeadline(testTimeout) { try await publisher.connect(to: broker.host, port: Int(broker.port)) }
            for i in 0..<total {
                try await withDeadline(testTimeout) {
                    try await publisher.publish("sensors/t\(i % 3)", string: "\(i)", qos: .atLeastOnce)
                }
            }
            let everything = try await allReader.collect(count: total)
            #expect(Set(everything.compactMap { Int($0.payloadString) }) == Set(0..<total))

            // Split between A and B: bounded wait until both together hold all.
            let deadline = ContinuousClock.now + .seconds(testTimeout)
            while receivedA.withLock({ $0.count }) + receivedB.withLock({ $0.count }) < total && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            // A short grace period: nothing more may come (each message once).
            try await Task.sleep(for: .milliseconds(200))
            let fromA = receivedA.withLock { $0 }
            let fromB = receivedB.withLock { $0 }
            #expect(fromA.count + fromB.count == total, "A \(fromA.count) + B \(fromB.count)")
            #expect(Set(fromA).isDisjoint(with: Set(fromB)))
            #expect(Set(fromA).union(fromB) == Set(0..<total))
            #expect(!fromA.isEmpty && !fromB.isEmpty, "the broker spread the group: A \(fromA.count), B \(fromB.count)")

            await publisher.disconnect()
            await all.disconnect()
            await a.disconnect()
            readerA.cancel()
            b.close()
        }
    }
}
