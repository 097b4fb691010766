import Foundation
import MQTTTestSupport
import Testing
import RingBuffers
import MQTTProtocol
@testable import UVMQTT
import UVReactor

/// Encodes a PUBLISH the way a broker would send it.
func publishBytes(_ topic: String, _ payload: [UInt8], qos: QoS = .atMostOnce, id: UInt16 = 0, dup: Bool = false, retain: Bool = false) -> [UInt8] {
    let buffer = OutboundBuffer()
    try? MQTTEncoder.encode(.publish(PublishPacket(topic: topic, payload: payload, qos: qos, retain: retain, dup: dup, packetID: id)),
                            version: .v3_1_1, into: buffer)
    return buffer.bytes()
}

@Suite("Client behaviour (fake broker)")
struct ClientBehaviourTests {
    @Test("messages arrive as views with topic, payload, QoS, retain and DUP; a QoS 2 resend before PUBREL is not delivered again")
    func messageViewsAndQoS2Duplicates() async throws {
        try await withFakeBroker { broker, loop in
            let log = EventLog()
            let client = try await connectedClient(broker, loop, log)
            let seen = Locked<[MQTTMessage]>([])
            client.on(.message) { _, view in seen.withLock { $0.append(view.makeOwned()) } }
            #expect(await log.wait(for: "connect"))
            broker.send(publishBytes("a/b", [1, 2, 3], qos: .atLeastOnce, id: 3, retain: true))
            broker.send(publishBytes("q/2", [9], qos: .exactlyOnce, id: 7))
            broker.send(publishBytes("q/2", [9], qos: .exactlyOnce, id: 7, dup: true))
            let recs = await broker.waitForPackets(on: 0, count: 2) { if case .pubrec(7) = $0 { true } else { false } }
            #expect(recs.count == 2)
            #expect(await broker.waitForPacket(on: 0) { $0.pubackID == 3 } != nil)
            #expect(seen.withLock { $0 } == [
                MQTTMessage(topic: "a/b", payload: [1, 2, 3], qos: .atLeastOnce, retain: true, dup: false),
                MQTTMessage(topic: "q/2", payload: [9], qos: .exactlyOnce, retain: false, dup: false),
            ])
            // After PUBREL (and PUBCOMP) the id is free again: a new PUBLISH with it is new.
            broker.send(.pubrel(packetID: 7))
            #expect(await broker.waitForPacket(on: 0) { if case .pubcomp(7) = $0 { true } else { false } } != nil)
            client.close()
        }
    }

    @Test("an oversize message fires overflow with the prefix, is acknowledged, and the connection stays up")
    func overflow() async throws {
        try await withFakeBroker { broker, loop in
            let log = EventLog()
            let client = try await connectedClient(broker, loop, log) { $0.maximumIncomingPacketSize = 64 }
            let overflow = Locked<(topic: String, prefix: Int, total: Int)?>(nil)
            client.on(.overflow) { _, view in overflow.withLock { $0 = (view.topic, view.payload.count, view.totalPayloadLength) } }
            #expect(await log.wait(for: "connect"))
            broker.send(publishBytes("big", [UInt8](repeating: 0x41, count: 300), qos: .atLeastOnce, id: 11))
            broker.send(publishBytes("small", Array("ok".utf8)))
            #expect(await log.wait(for: "message small ok"))
            let o = overflow.withLock { $0 }
            #expect(o?.topic == "big")
            #expect(o?.total == 300)
            #expect((o?.prefix ?? 0) > 0 && (o?.prefix ?? 0) < 64)
            #expect(await broker.waitForPacket(on: 0) { $0.pubackID == 11 } != nil)
            #expect(log.count("offline") == 0)
            client.close()
        }
    }

    @Test("calls from inside callbacks run on the loop without deadlock, in order")
    func reentrantCalls() async throws {
        try await withFakeBroker { broker, loop in
            let log = EventLog()
            let client = try await connectedClient(broker, loop, log)
            client.on(.message) { client, view in
                // Publish a reply, subscribe and unsubscribe, all from the message callback.
                try? client.publish("reply/\(view.topic)", Array(view.payload), qos: .atLeastOnce) { _, r in
                    if case .success = r { log.add("replied") }
                }
                try? client.subscribe("more/#", qos: .atMostOnce) { _, r in if case .success = r { log.add("subscribed") } }
                try? client.unsubscribe("more/#") { _, r in if case .success = r { log.add("unsubscribed") } }
            }
            #expect(await log.wait(for: "connect"))
            broker.send(publishBytes("ping", Array("x".utf8)))
            #expect(await log.wait { $0.contains("replied") && $0.contains("subscribed") && $0.contains("unsubscribed") })
            let reply = await broker.waitForPacket(on: 0) { $0.publish?.topic == "reply/ping" }
            #expect(reply?.packet.publish?.payload == Array("x".utf8))
            // close() from the offline handler's side: connect again from inside a callback.
            client.on(.offline) { client in
                log.add("offline")
                if log.count("offline") == 1 { try? client.connect("127.0.0.1", port: broker.port) }
            }
            client.close()
            #expect(await log.wait(for: "connect", count: 2))
            #expect(await broker.waitForConnections(2))
            client.close()
        }
    }

    @Test("close() then connect again works; connecting twice is an error")
    func closeAndReconnect() async throws {
        try await withFakeBroker { broker, loop in
            let log = EventLog()
            let client = try await connectedClient(broker, loop, log)
            #expect(await log.wait(for: "connect"))
            #expect(throws: MQTTClientError.alreadyConnected) { try client.connect("127.0.0.1", port: broker.port) }
            client.close()
            #expect(await log.wait(for: "offline"))
            #expect(await broker.waitForClose(0))
            try client.connect("127.0.0.1", port: broker.port)
            #expect(await log.wait(for: "connect", count: 2))
            #expect(await broker.waitForPacket(on: 1) { $0.isConnect } != nil)
            client.close()
        }
    }

    @Test("offline without reconnect: publish fails once with notConnected; with reconnect: queued (bounded) and sent after")
    func offlinePublish() async throws {
        try await withFakeBroker { broker, loop in
            let log = EventLog()
            let idle = NodeMCUClient(options: MQTTClientOptions(clientID: "idle"), eventLoop: loop)
            let failures = Locked<[MQTTClientError]>([])
            try idle.publish("t", "x", qos: .atLeastOnce) { _, r in
                if case .failure(let e) = r { failures.withLock { $0.append(e) } }
            }
            #expect(await EventLog().wait { _ in failures.withLock { $0.count } == 1 })
            #expect(failures.withLock { $0 } == [.notConnected])

            let client = try await connectedClient(broker, loop, log, autoreconnect: true) { $0.maxQueuedMessages = 2 }
            #expect(await log.wait(for: "connect"))
            broker.behaviour.withLock { $0.connack = nil }  // the reconnect will wait for a CONNACK
            broker.cut(0)
            #expect(await log.wait(for: "offline"))
            let results = Locked<[String]>([])
            for i in 0..<3 {
                try client.publish("q/\(i)", "m\(i)", qos: .atLeastOnce) { _, r in
                    results.withLock { $0.append("\(i) " + ((try? r.get()) != nil ? "ok" : "\(r)")) }
                }
            }
            #expect(await EventLog().wait { _ in results.withLock { $0.count } == 1 })
            #expect(results.withLock { $0 } == ["2 failure(MQTTProtocol.MQTTClientError.offlineQueueFull(messages: 2, bytes: 10))"])
            #expect(await broker.waitForConnections(2))
            broker.send([0x20, 0x02, 0x00, 0x00], on: 1)
            let sent = await broker.waitForPackets(on: 1, count: 2) { $0.publish != nil }
            #expect(sent.compactMap(\.packet.publish?.topic) == ["q/0", "q/1"])
            #expect(await EventLog().wait { _ in results.withLock { $0.count } == 3 })
            client.close()
        }
    }

    @Test("subscribe and unsubscribe in one packet each; granted QoS (and failure) per topic")
    func subscribeTable() async throws {
        try await withFakeBroker { broker, loop in
            let log = EventLog()
            let client = try await connectedClient(broker, loop, log)
            client.on(.suback) { _ in log.add("suback") }
            client.on(.unsuback) { _ in log.add("unsuback") }
            #expect(await log.wait(for: "connect"))
            let granted = Locked<[String: SubAckReturnCode]?>(nil)
            broker.behaviour.withLock { $0.ackSubscribe = false }
            try client.subscribe(["a/b": .atMostOnce, "c/#": .exactlyOnce]) { _, r in granted.withLock { $0 = try? r.get() } }
            guard let sub = await broker.waitForPacket(on: 0, where: { if case .subscribe = $0 { true } else { false } }),
                  case .subscribe(let packet) = sub.packet else {
                Issue.record("no SUBSCRIBE")
                return
            }
            #expect(packet.subscriptions.map(\.filter) == ["a/b", "c/#"])
            broker.send(.suback(SubAckPacket(packetID: packet.packetID, returnCodes: [.granted(.atMostOnce), .failure])))
            #expect(await EventLog().wait { _ in granted.withLock { $0 } != nil })
            #expect(granted.withLock { $0 } == ["a/b": .granted(.atMostOnce), "c/#": .failure])

            let unsubscribed = Locked(false)
            try client.unsubscribe(["a/b", "c/#"]) { _, r in if case .success = r { unsubscribed.withLock { $0 = true } } }
            guard let unsub = await broker.waitForPacket(on: 0, where: { if case .unsubscribe = $0 { true } else { false } }),
                  case .unsubscribe(let u) = unsub.packet else {
                Issue.record("no UNSUBSCRIBE")
                return
            }
            #expect(u.filters == ["a/b", "c/#"])
            broker.send(.unsuback(packetID: u.packetID))
            #expect(await EventLog().wait { _ in unsubscribed.withLock { $0 } })
            #expect(await log.wait(for: "unsuback"))
            #expect(log.count("suback") == 1 && log.count("unsuback") == 1)
            client.close()
        }
    }

    @Test("async stream back-pressure: a slow consumer stops the reading, nothing is dropped")
    func backPressure() async throws {
        try await withFakeBroker { broker, loop in
            var options = MQTTClientOptions(clientID: "slow", connectTimeout: .seconds(2))
            options.messageBufferSize = 4
            let client = MQTTClient(options: options, eventLoop: loop)
            // Iterated from the start: only an iterated stream holds the client back.
            let reader = StreamReader(client.messages)
            try await withDeadline(testTimeout) { try await client.connect(to: "127.0.0.1", port: broker.port) }
            var burst = [UInt8]()
            for i in 0..<40 { burst += publishBytes("n", [UInt8(i)], qos: .atLeastOnce, id: UInt16(i + 1)) }
            broker.send(burst)
            // Four messages fill the buffer; no more are decoded (or acknowledged) meanwhile.
            // First wait (generously) for those four, then give the client 300 ms in which a
            // fifth would show if reading had not stopped.
            _ = await broker.waitForPackets(on: 0, count: 4, within: 20) { $0.pubackID != nil }
            _ = await broker.waitForPackets(on: 0, count: 5, within: 0.3) { $0.pubackID != nil }
            #expect(broker.packets(0).filter { $0.packet.pubackID != nil }.count == 4)
            let received = try await reader.collect(count: 40, within: 30)
            #expect(received.map { $0.payload[0] } == (0..<40).map { UInt8($0) })
            let acks = await broker.waitForPackets(on: 0, count: 40, within: 20) { $0.pubackID != nil }
            #expect(acks.count == 40)
            await client.disconnect()
        }
    }
}

@Suite("Server addresses")
struct ServerAddressTests {
    @Test("host, URI, port and security")
    func parsing() throws {
        #expect(try MQTTServer(parsing: "broker.local") == MQTTServer(host: "broker.local", port: 1883))
        #expect(try MQTTServer(parsing: "10.0.0.1", port: 1999) == MQTTServer(host: "10.0.0.1", port: 1999))
        #expect(try MQTTServer(parsing: "mqtt://h:1884") == MQTTServer(host: "h", port: 1884))
        #expect(try MQTTServer(parsing: "mqtts://h") == MQTTServer(host: "h", port: 8883, security: .on))
        #expect(try MQTTServer(parsing: "mqtts://[::1]:9000/ignored") == MQTTServer(host: "::1", port: 9000, security: .on))
        #expect(try MQTTServer(parsing: "::1") == MQTTServer(host: "::1", port: 1883))
        #expect(try MQTTServer(parsing: "mqtt://user@h:1") == MQTTServer(host: "h", port: 1))
        #expect(try MQTTServer(parsing: "mqtt://h:1884", port: 2000) == MQTTServer(host: "h", port: 2000))
        #expect(throws: MQTTServerAddressError.unsupportedScheme("http")) { try MQTTServer(parsing: "http://h") }
        #expect(throws: MQTTServerAddressError.invalidPort("x")) { try MQTTServer(parsing: "mqtt://h:x") }
        #expect(throws: MQTTServerAddressError.invalidPort("70000")) { try MQTTServer(parsing: "h", port: 70000) }
        #expect(throws: MQTTServerAddressError.invalidHost("mqtt://")) { try MQTTServer(parsing: "mqtt://") }
    }

    @Test("invalid topics fail the call, not the connection")
    func invalidTopics() {
        let client = NodeMCUClient(clientID: "v", eventLoop: nil)
        #expect(throws: MQTTProtocolError.wildcardInTopicName) { try client.publish("a/+", "x") }
        #expect(throws: MQTTProtocolError.emptyTopic(field: .topicName)) { try client.publish("", "x") }
        #expect(throws: MQTTProtocolError.misplacedMultiLevelWildcard("a/#/b")) { try client.subscribe("a/#/b") }
        let noTopics: [String: QoS] = [:]
        #expect(throws: MQTTProtocolError.noTopicFilters(.subscribe)) { try client.subscribe(noTopics) }
    }
}
