import MQTTProtocol
import RingBuffers
import Testing

/// Byte-exact vectors written from the MQTT 3.1.1 and 3.1 specifications, checked both ways:
/// the encoder produces exactly these bytes and the decoder reads them back to the same packet.
@Suite struct PacketVectorTests {
    struct Vector: Sendable, CustomStringConvertible {
        let name: String
        let version: ProtocolVersion
        let packet: Packet
        let bytes: [UInt8]
        var description: String { "\(name) (\(version))" }
    }

    static let vectors: [Vector] = [
        // 3.1.1 CONNECT: name "MQTT", level 4, clean session, keep-alive 60, client id "c1".
        Vector(name: "CONNECT minimal", version: .v3_1_1,
               packet: .connect(ConnectPacket(version: .v3_1_1, clientID: "c1", cleanSession: true, keepAlive: 60)),
               bytes: [0x10, 0x0E, 0x00, 0x04] + ascii("MQTT") + [0x04, 0x02, 0x00, 0x3C, 0x00, 0x02] + ascii("c1")),
        // 3.1 CONNECT: name "MQIsdp", level 3.
        Vector(name: "CONNECT 3.1", version: .v3_1,
               packet: .connect(ConnectPacket(version: .v3_1, clientID: "c1", cleanSession: true, keepAlive: 60)),
               bytes: [0x10, 0x10, 0x00, 0x06] + ascii("MQIsdp") + [0x03, 0x02, 0x00, 0x3C, 0x00, 0x02] + ascii("c1")),
        // Flags 0xEE: user name, password, will retain, will QoS 1, will, clean session.
        Vector(name: "CONNECT full", version: .v3_1_1,
               packet: .connect(ConnectPacket(
                   version: .v3_1_1, clientID: "id", cleanSession: true, keepAlive: 10,
                   will: Will(topic: "w", payload: [0x01], qos: .atLeastOnce, retain: true),
                   username: "u", password: [0x70])),
               bytes: [0x10, 0x1A, 0x00, 0x04] + ascii("MQTT") + [0x04, 0xEE, 0x00, 0x0A, 0x00, 0x02] + ascii("id")
                   + [0x00, 0x01] + ascii("w") + [0x00, 0x01, 0x01] + [0x00, 0x01] + ascii("u") + [0x00, 0x01, 0x70]),
        // 3.1.1 allows an empty client id with a clean session [MQTT-3.1.3-6].
        Vector(name: "CONNECT empty id", version: .v3_1_1,
               packet: .connect(ConnectPacket(version: .v3_1_1, clientID: "", cleanSession: true, keepAlive: 0)),
               bytes: [0x10, 0x0C, 0x00, 0x04] + ascii("MQTT") + [0x04, 0x02, 0x00, 0x00, 0x00, 0x00]),
        Vector(name: "CONNACK session present", version: .v3_1_1,
               packet: .connack(ConnAckPacket(sessionPresent: true, returnCode: .accepted)),
               bytes: [0x20, 0x02, 0x01, 0x00]),
        Vector(name: "CONNACK refused", version: .v3_1_1,
               packet: .connack(ConnAckPacket(sessionPresent: false, returnCode: .notAuthorized)),
               bytes: [0x20, 0x02, 0x00, 0x05]),
        Vector(name: "CONNACK 3.1", version: .v3_1,
               packet: .connack(ConnAckPacket(sessionPresent: false, returnCode: .identifierRejected)),
               bytes: [0x20, 0x02, 0x00, 0x02]),
        Vector(name: "PUBLISH QoS 0", version: .v3_1_1,
               packet: .publish(PublishPacket(topic: "a/b", payload: ascii("hi"))),
               bytes: [0x30, 0x07, 0x00, 0x03] + ascii("a/b") + ascii("hi")),
        // 0x3B: PUBLISH, DUP, QoS 1, RETAIN; packet id 10.
        Vector(name: "PUBLISH QoS 1 dup retain", version: .v3_1_1,
               packet: .publish(PublishPacket(topic: "a/b", payload: ascii("hi"), qos: .atLeastOnce, retain: true, dup: true, packetID: 10)),
               bytes: [0x3B, 0x09, 0x00, 0x03] + ascii("a/b") + [0x00, 0x0A] + ascii("hi")),
        Vector(name: "PUBLISH QoS 2 empty payload", version: .v3_1,
               packet: .publish(PublishPacket(topic: "t", payload: [], qos: .exactlyOnce, packetID: 0xFFFF)),
               bytes: [0x34, 0x05, 0x00, 0x01] + ascii("t") + [0xFF, 0xFF]),
        // Two-byte remaining length: 2 + 1 + 200 = 203 = 0xCB 0x01.
        Vector(name: "PUBLISH 200-byte payload", version: .v3_1_1,
               packet: .publish(PublishPacket(topic: "t", payload: [UInt8](repeating: 0xAB, count: 200))),
               bytes: [0x30, 0xCB, 0x01, 0x00, 0x01] + ascii("t") + [UInt8](repeating: 0xAB, count: 200)),
        Vector(name: "PUBACK", version: .v3_1_1, packet: .puback(packetID: 10), bytes: [0x40, 0x02, 0x00, 0x0A]),
        Vector(name: "PUBREC", version: .v3_1_1, packet: .pubrec(packetID: 0x1234), bytes: [0x50, 0x02, 0x12, 0x34]),
        // PUBREL's fixed flags are 0b0010 [MQTT-3.6.1-1].
        Vector(name: "PUBREL", version: .v3_1_1, packet: .pubrel(packetID: 1), bytes: [0x62, 0x02, 0x00, 0x01]),
        Vector(name: "PUBCOMP", version: .v3_1, packet: .pubcomp(packetID: 258), bytes: [0x70, 0x02, 0x01, 0x02]),
        Vector(name: "SUBSCRIBE", version: .v3_1_1,
               packet: .subscribe(SubscribePacket(packetID: 1, subscriptions: [
                   TopicSubscription(filter: "a/+", qos: .atLeastOnce), TopicSubscription(filter: "#", qos: .exactlyOnce),
               ])),
               bytes: [0x82, 0x0C, 0x00, 0x01, 0x00, 0x03] + ascii("a/+") + [0x01, 0x00, 0x01] + ascii("#") + [0x02]),
        Vector(name: "SUBACK", version: .v3_1_1,
               packet: .suback(SubAckPacket(packetID: 1, returnCodes: [.granted(.atLeastOnce), .failure, .granted(.atMostOnce)])),
               bytes: [0x90, 0x05, 0x00, 0x01, 0x01, 0x80, 0x00]),
        Vector(name: "SUBACK 3.1", version: .v3_1,
               packet: .suback(SubAckPacket(packetID: 7, returnCodes: [.granted(.exactlyOnce)])),
               bytes: [0x90, 0x03, 0x00, 0x07, 0x02]),
        Vector(name: "UNSUBSCRIBE", version: .v3_1_1,
               packet: .unsubscribe(UnsubscribePacket(packetID: 2, filters: ["a/b", "c/#"])),
               bytes: [0xA2, 0x0C, 0x00, 0x02, 0x00, 0x03] + ascii("a/b") + [0x00, 0x03] + ascii("c/#")),
        Vector(name: "UNSUBACK", version: .v3_1_1, packet: .unsuback(packetID: 2), bytes: [0xB0, 0x02, 0x00, 0x02]),
        Vector(name: "PINGREQ", version: .v3_1_1, packet: .pingreq, bytes: [0xC0, 0x00]),
        Vector(name: "PINGRESP", version: .v3_1, packet: .pingresp, bytes: [0xD0, 0x00]),
        Vector(name: "DISCONNECT", version: .v3_1_1, packet: .disconnect, bytes: [0xE0, 0x00]),
    ]

    @Test(arguments: vectors)
    func encodesExactly(_ vector: Vector) throws {
        #expect(try encoded(vector.packet, vector.version) == vector.bytes)
    }

    @Test(arguments: vectors)
    func decodesBack(_ vector: Vector) throws {
        #expect(try decodeAll(vector.bytes, version: vector.version) == [vector.packet])
    }

    @Test func everyPacketTypeHasAVector() {
        let types = Set(Self.vectors.map(\.packet.type))
        #expect(types == Set(PacketType.allCases))
    }

    /// Table 2.4 of MQTT 3.1.1: the boundaries of the remaining length encoding.
    @Test(arguments: [
        (0, [0x00]), (127, [0x7F]), (128, [0x80, 0x01]), (16_383, [0xFF, 0x7F]),
        (16_384, [0x80, 0x80, 0x01]), (2_097_151, [0xFF, 0xFF, 0x7F]),
        (2_097_152, [0x80, 0x80, 0x80, 0x01]), (268_435_455, [0xFF, 0xFF, 0xFF, 0x7F]),
    ] as [(Int, [UInt8])])
    func remainingLengthEncoding(_ value: Int, _ bytes: [UInt8]) {
        let buffer = OutboundBuffer(initialCapacity: 64)
        RemainingLength.write(value, into: buffer)
        #expect(buffer.bytes() == bytes)
        #expect(RemainingLength.size(of: value) == bytes.count)
    }

    @Test func fastPathsMatchTheGeneralEncoder() throws {
        let buffer = OutboundBuffer(initialCapacity: 64)
        let topic = ascii("sensors/1")
        let payload: [UInt8] = [1, 2, 3]
        try topic.withUnsafeBytes { t in
            try payload.withUnsafeBytes { p in
                try MQTTEncoder.encodePublish(topic: t, payload: p, qos: .exactlyOnce, retain: false, dup: true, packetID: 99, into: buffer)
            }
        }
        #expect(buffer.bytes() == (try encoded(.publish(PublishPacket(
            topic: "sensors/1", payload: payload, qos: .exactlyOnce, dup: true, packetID: 99)))))
        buffer.removeAll()
        for (type, packet) in [(PacketType.puback, Packet.puback(packetID: 5)), (.pubrec, .pubrec(packetID: 5)),
                               (.pubrel, .pubrel(packetID: 5)), (.pubcomp, .pubcomp(packetID: 5)), (.unsuback, .unsuback(packetID: 5))] {
            try MQTTEncoder.encodeAck(type, packetID: 5, into: buffer)
            #expect(buffer.bytes() == (try encoded(packet)))
            buffer.removeAll()
        }
        MQTTEncoder.encodePingReq(into: buffer)
        MQTTEncoder.encodePingResp(into: buffer)
        MQTTEncoder.encodeDisconnect(into: buffer)
        #expect(buffer.bytes() == [0xC0, 0x00, 0xD0, 0x00, 0xE0, 0x00])
        let error = thrownError { () throws(MQTTProtocolError) in try MQTTEncoder.encodeAck(.publish, packetID: 5, into: buffer) }
        #expect(error == .unexpectedPacket(.publish))
    }

    @Test func publishViewPointsIntoTheRing() throws {
        let ring = ByteRing(initialCapacity: 256, maximumCapacity: 256)
        ring.append([0x30, 0x07, 0x00, 0x03] + ascii("a/b") + ascii("hi"))
        var decoder = MQTTDecoder()
        guard case .publish(let view) = try decoder.next(in: ring) else {
            Issue.record("expected a PUBLISH")
            return
        }
        let ringStart = ring.firstReadableRegion.baseAddress!
        #expect(view.topic.baseAddress == ringStart + 4)
        #expect(view.payload.baseAddress == ringStart + 7)
        #expect(view.topicString == "a/b")
        #expect([UInt8](view.payload) == ascii("hi"))
        #expect(decoder.scratchCopies == 0)
    }
}
