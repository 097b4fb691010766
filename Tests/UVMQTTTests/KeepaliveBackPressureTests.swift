import Foundation
import MQTTTestSupport
import Testing
import MQTTProtocol
@testable import UVMQTT
import UVReactor

/// Read back-pressure against the keepalive: a stream consumer that falls behind stops the
/// client reading the socket, so the broker's PINGRESP waits unread. That must not pass for a
/// dead broker; a broker that really died meanwhile must still be noticed after the resume.
@Suite("Keepalive under read back-pressure")
struct KeepaliveBackPressureTests {
    /// An async client (keepalive 1 s, stream buffer 4) connected to the fake broker, with its
    /// `offline` reasons recorded.
    private static func connect(
        _ broker: FakeBroker, _ loop: EventLoop, reconnect: Bool
    ) async throws -> (MQTTClient, StreamReader, Locked<[MQTTConnectionFailure]>) {
        var options = MQTTClientOptions(clientID: uniqueID("slow"), keepAlive: 1, connectTimeout: .seconds(2))
        options.messageBufferSize = 4
        options.reconnectBackoff = testBackoff
        let client = MQTTClient(options: options, eventLoop: loop)
        let offline = Locked<[MQTTConnectionFailure]>([])
        let events = client.connectionEvents
        Task {
            for await event in events {
                if case .offline(let failure) = event { offline.withLock { $0.append(failure) } }
            }
        }
        let stream = StreamReader(client.messages)
        try await withDeadline(5, "connect") { try await client.connect(to: "127.0.0.1", port: broker.port, reconnect: reconnect) }
        return (client, stream, offline)
    }

    private static func publish(_ broker: FakeBroker, _ index: Int) {
        broker.send(.publish(PublishPacket(topic: "slow/\(index)", payload: [UInt8(index & 0xFF)],
                                           qos: .atLeastOnce, packetID: UInt16(index + 1))))
    }

    @Test("a consumer stalled for 3 × keepalive while messages keep coming: no offline, no reconnect, nothing dropped")
    func stalledConsumerKeepsTheConnection() async throws {
        try await withFakeBroker { broker, loop in
            let (client, stream, offline) = try await Self.connect(broker, loop, reconnect: true)
            let total = 60
            // The broker sends one QoS 1 message every 50 ms for 3 s, and answers PINGREQs.
            let producer = Task {
                for i in 0..<total {
                    Self.publish(broker, i)
                    try? await Task.sleep(for: .milliseconds(50))
                }
            }
            let first = try await stream.collect(count: 1)
            // The consumer stops for 3 s (3 × keepalive, twice the old dead-broker bound): the
            // buffer fills within 0.2 s and the client stops reading.
            let stalledAt = ContinuousClock.now
            try await Task.sleep(for: .seconds(3))
            let pingsWhileStalled = broker.packets(0).filter { $0.packet.isPingReq && $0.at > stalledAt + .milliseconds(300) }
            #expect(offline.withLock { $0 } == [], "declared the broker dead while it answered")
            #expect(broker.connectionCount == 1)
            #expect(!broker.isClosed(0))
            // Meanwhile the client kept pinging, so the broker sees it alive [MQTT-3.1.2-24].
            #expect(pingsWhileStalled.count >= 2, "PINGREQs while stalled: \(pingsWhileStalled.count)")
            // Now it consumes everything: all 60 in order, each acknowledged once.
            let rest = try await stream.collect(count: total - 1, within: 10)
            await producer.value
            let payloads = (first + rest).map { Int($0.payload[0]) }
            #expect(payloads == Array(0..<total))
            let acks = await broker.waitForPackets(on: 0, count: total) { $0.pubackID != nil }
            #expect(acks.compactMap { $0.packet.pubackID } == (1...total).map { UInt16($0) })
            // And the connection is still healthy one more keepalive and a half later.
            try await Task.sleep(for: .milliseconds(1_600))
            #expect(offline.withLock { $0 } == [])
            #expect(broker.connectionCount == 1)
            #expect(!broker.isClosed(0))
            await client.disconnect()
        }
    }

    @Test("a broker that falls silent while the consumer is stalled is declared dead within 1.5 × keepalive of the resume")
    func brokerDeadDuringStallIsNoticedAfterResume() async throws {
        try await withFakeBroker { broker, loop in
            let (client, stream, offline) = try await Self.connect(broker, loop, reconnect: false)
            // Eight messages: four fill the buffer, the rest wait in the socket. Then the broker
            // falls silent (answers no PINGREQ, sends nothing).
            broker.behaviour.withLock { $0.answerPing = false }
            for i in 0..<8 { Self.publish(broker, i) }
            let first = try await stream.collect(count: 1)
            try await Task.sleep(for: .seconds(3))
            #expect(offline.withLock { $0 } == [], "declared dead while reading was paused")
            #expect(!broker.isClosed(0))
            let resumedAt = ContinuousClock.now
            let rest = try await stream.collect(count: 7)
            #expect((first + rest).map { Int($0.payload[0]) } == Array(0..<8))
            // Dead broker: offline with -9 at the latest 1.5 s after the resume (plus slack for
            // a loaded machine), never before it.
            let deadline = ContinuousClock.now + .seconds(4)
            while offline.withLock({ $0.isEmpty }) && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            let after = ContinuousClock.now - resumedAt
            #expect(offline.withLock { $0 } == [.keepAliveTimeout])
            #expect(after <= .milliseconds(2_300), "noticed \(after) after the resume")
            #expect(await broker.waitForClose(0))
            #expect(broker.connectionCount == 1)
            await client.disconnect()
        }
    }
}
