import MQTTProtocol
import RingBuffers
import Testing

/// One failing case per validation rule, on the decode side and on the encode side: each asserts
/// the error case and the normative statement it names.
@Suite struct DecodeValidationTests {
    @Test func reservedPacketTypes() {
        expectDecodeError([0x00, 0x00], .reservedPacketType(0), rule: "MQTT-2.2.1")
        expectDecodeError([0xF0, 0x00], .reservedPacketType(15), rule: "MQTT-2.2.1")
    }

    @Test func fixedFlags() {
        expectDecodeError([0x41, 0x02, 0x00, 0x01], .invalidFlags(.puback, flags: 1), rule: "MQTT-2.2.2-2")
        expectDecodeError([0x60, 0x02, 0x00, 0x01], .invalidFlags(.pubrel, flags: 0), rule: "MQTT-2.2.2-2")
        expectDecodeError([0x80, 0x06, 0x00, 0x01, 0x00, 0x01] + ascii("a") + [0x00], .invalidFlags(.subscribe, flags: 0), rule: "MQTT-2.2.2-2")
        expectDecodeError([0xA3, 0x05, 0x00, 0x01, 0x00, 0x01] + ascii("a"), .invalidFlags(.unsubscribe, flags: 3), rule: "MQTT-2.2.2-2")
        expectDecodeError([0x28, 0x02, 0x00, 0x00], .invalidFlags(.connack, flags: 8), rule: "MQTT-2.2.2-2")
        expectDecodeError([0xC1, 0x00], .invalidFlags(.pingreq, flags: 1), rule: "MQTT-2.2.2-2")
        expectDecodeError([0xE4, 0x00], .invalidFlags(.disconnect, flags: 4), rule: "MQTT-2.2.2-2")
    }

    @Test func publishFlags() {
        expectDecodeError([0x36, 0x05, 0x00, 0x01] + ascii("t") + [0x00, 0x01], .invalidQoS(field: .fixedHeader, value: 3), rule: "MQTT-3.3.1-4")
        expectDecodeError([0x38, 0x03, 0x00, 0x01] + ascii("t"), .dupOnQoS0, rule: "MQTT-3.3.1-2")
        // Also when the packet has not fully arrived (slow path, first byte only).
        expectDecodeError([0x38], .dupOnQoS0, rule: "MQTT-3.3.1-2")
    }

    @Test func remainingLengthOfFiveBytes() {
        expectDecodeError([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], .malformedRemainingLength, rule: "MQTT-2.2.3")
        // Detected as soon as the fourth byte carries a continuation bit.
        expectDecodeError([0x30, 0x80, 0x80, 0x80, 0x80], .malformedRemainingLength, rule: "MQTT-2.2.3")
    }

    @Test func zeroPacketIdentifiers() {
        expectDecodeError([0x40, 0x02, 0x00, 0x00], .zeroPacketID(.puback), rule: "MQTT-2.3.1-1")
        expectDecodeError([0x62, 0x02, 0x00, 0x00], .zeroPacketID(.pubrel), rule: "MQTT-2.3.1-1")
        expectDecodeError([0x32, 0x05, 0x00, 0x01] + ascii("t") + [0x00, 0x00], .zeroPacketID(.publish), rule: "MQTT-2.3.1-1")
        expectDecodeError([0x90, 0x03, 0x00, 0x00, 0x00], .zeroPacketID(.suback), rule: "MQTT-2.3.1-1")
        expectDecodeError([0x82, 0x06, 0x00, 0x00, 0x00, 0x01] + ascii("a") + [0x00], .zeroPacketID(.subscribe), rule: "MQTT-2.3.1-1")
    }

    @Test func topicNamesInPublish() {
        expectDecodeError([0x30, 0x04, 0x00, 0x02, 0xC3, 0x28], .invalidUTF8(field: .topicName), rule: "MQTT-1.5.3-1")
        // U+D800 encoded as ED A0 80: a surrogate.
        expectDecodeError([0x30, 0x05, 0x00, 0x03, 0xED, 0xA0, 0x80], .invalidUTF8(field: .topicName), rule: "MQTT-1.5.3-1")
        expectDecodeError([0x30, 0x04, 0x00, 0x02, 0x61, 0x00], .nullCharacter(field: .topicName), rule: "MQTT-1.5.3-2")
        expectDecodeError([0x30, 0x05, 0x00, 0x03] + ascii("a/+"), .wildcardInTopicName, rule: "MQTT-3.3.2-2")
        expectDecodeError([0x30, 0x02, 0x00, 0x00], .emptyTopic(field: .topicName), rule: "MQTT-4.7.3-1")
        // A wildcard past the first eight bytes (word-at-a-time check).
        let long = ascii("sensors/room/#")
        expectDecodeError([0x30, UInt8(2 + long.count), 0x00, UInt8(long.count)] + long, .wildcardInTopicName, rule: "MQTT-3.3.2-2")
        let nul = ascii("sensors/room") + [0x00]
        expectDecodeError([0x30, UInt8(2 + nul.count), 0x00, UInt8(nul.count)] + nul, .nullCharacter(field: .topicName), rule: "MQTT-1.5.3-2")
    }

    @Test func validMultiByteTopicIsAccepted() throws {
        let topic = "données/日本/€"
        let bytes = try encoded(.publish(PublishPacket(topic: topic, payload: [1])))
        #expect(try decodeAll(bytes) == [.publish(PublishPacket(topic: topic, payload: [1]))])
    }

    @Test func truncatedAndTrailingBytes() {
        expectDecodeError([0x30, 0x03, 0x00, 0x05] + ascii("a"), .truncated(.publish, field: .topicName), rule: "MQTT-2.2.3")
        expectDecodeError([0x30, 0x01, 0x00], .truncated(.publish, field: .topicName), rule: "MQTT-2.2.3")
        expectDecodeError([0x32, 0x04, 0x00, 0x01] + ascii("t") + [0x01], .truncated(.publish, field: .packetID), rule: "MQTT-2.2.3")
        expectDecodeError([0x40, 0x01, 0x00], .truncated(.puback, field: .packetID), rule: "MQTT-2.2.3")
        expectDecodeError([0x20, 0x01, 0x00], .truncated(.connack, field: .returnCode), rule: "MQTT-2.2.3")
        expectDecodeError([0x82, 0x05, 0x00, 0x01, 0x00, 0x01] + ascii("a"), .truncated(.subscribe, field: .requestedQoS), rule: "MQTT-2.2.3")
        expectDecodeError([0xA2, 0x05, 0x00, 0x01, 0x00, 0x02] + ascii("a"), .truncated(.unsubscribe, field: .topicFilter), rule: "MQTT-2.2.3")
        expectDecodeError([0x40, 0x03, 0x00, 0x01, 0x00], .trailingBytes(.puback, count: 1), rule: "MQTT-2.2.3")
        expectDecodeError([0xD0, 0x01, 0x00], .trailingBytes(.pingresp, count: 1), rule: "MQTT-2.2.3")
        expectDecodeError([0x20, 0x04, 0x00, 0x00, 0x00, 0x00], .trailingBytes(.connack, count: 2), rule: "MQTT-2.2.3")
    }

    @Test func connack() throws {
        expectDecodeError([0x20, 0x02, 0x02, 0x00], .invalidConnAckFlags(2), rule: "MQTT-3.2.2-1")
        expectDecodeError([0x20, 0x02, 0x01, 0x05], .invalidConnAckFlags(1), rule: "MQTT-3.2.2-1")
        expectDecodeError([0x20, 0x02, 0x00, 0x06], .invalidConnectReturnCode(6), rule: "MQTT-3.2.2-6")
        expectDecodeError([0x20, 0x02, 0x00, 0x06], .invalidConnectReturnCode(6), rule: "MQTT-3.2.2-6", version: .v3_1)
        // MQTT 3.1: byte 1 is reserved and not used; no session-present flag exists.
        #expect(try decodeAll([0x20, 0x02, 0x01, 0x00], version: .v3_1) == [.connack(ConnAckPacket(sessionPresent: false, returnCode: .accepted))])
    }

    @Test func suback() throws {
        expectDecodeError([0x90, 0x03, 0x00, 0x01, 0x03], .invalidSubAckReturnCode(3), rule: "MQTT-3.9.3-2")
        expectDecodeError([0x90, 0x03, 0x00, 0x01, 0x81], .invalidSubAckReturnCode(0x81), rule: "MQTT-3.9.3-2")
        expectDecodeError([0x90, 0x02, 0x00, 0x01], .noTopicFilters(.suback), rule: "MQTT-3.9.3-1")
        // 0x80 is accepted from a 3.1 broker too (documented choice).
        #expect(try decodeAll([0x90, 0x03, 0x00, 0x01, 0x80], version: .v3_1) == [.suback(SubAckPacket(packetID: 1, returnCodes: [.failure]))])
    }

    @Test func subscribeAndUnsubscribe() {
        expectDecodeError([0x82, 0x06, 0x00, 0x01, 0x00, 0x01] + ascii("a") + [0x03], .invalidQoS(field: .requestedQoS, value: 3), rule: "MQTT-3.8.3-4")
        expectDecodeError([0x82, 0x06, 0x00, 0x01, 0x00, 0x01] + ascii("a") + [0x04], .invalidQoS(field: .requestedQoS, value: 4), rule: "MQTT-3.8.3-4")
        expectDecodeError([0x82, 0x02, 0x00, 0x01], .noTopicFilters(.subscribe), rule: "MQTT-3.8.3-3")
        expectDecodeError([0xA2, 0x02, 0x00, 0x01], .noTopicFilters(.unsubscribe), rule: "MQTT-3.10.3-2")
        expectDecodeError([0x82, 0x0A, 0x00, 0x01, 0x00, 0x05] + ascii("a/#/b") + [0x00], .misplacedMultiLevelWildcard("a/#/b"), rule: "MQTT-4.7.1-2")
        expectDecodeError([0xA2, 0x06, 0x00, 0x01, 0x00, 0x02] + ascii("a+"), .misplacedSingleLevelWildcard("a+"), rule: "MQTT-4.7.1-3")
        expectDecodeError([0xA2, 0x04, 0x00, 0x01, 0x00, 0x00], .emptyTopic(field: .topicFilter), rule: "MQTT-4.7.3-1")
    }

    /// CONNECT with `flags` and the given payload after the keep-alive.
    static func connect(name: String = "MQTT", level: UInt8 = 4, flags: UInt8, payload: [UInt8]) -> [UInt8] {
        let body = [0x00, UInt8(name.utf8.count)] + ascii(name) + [level, flags, 0x00, 0x3C] + payload
        return [0x10, UInt8(body.count)] + body
    }

    @Test func connect() {
        let id = [0x00, 0x01] + ascii("c")
        expectDecodeError(Self.connect(name: "MQTX", flags: 0x02, payload: id), .invalidProtocolName("MQTX"), rule: "MQTT-3.1.2-1")
        expectDecodeError(Self.connect(level: 5, flags: 0x02, payload: id), .unsupportedProtocolLevel(5), rule: "MQTT-3.1.2-2")
        expectDecodeError(Self.connect(name: "MQIsdp", level: 4, flags: 0x02, payload: id), .unsupportedProtocolLevel(4), rule: "MQTT-3.1.2-2")
        expectDecodeError(Self.connect(flags: 0x03, payload: id), .reservedConnectFlagSet, rule: "MQTT-3.1.2-3")
        expectDecodeError(Self.connect(flags: 0x0A, payload: id), .invalidWillFlags, rule: "MQTT-3.1.2-11")
        expectDecodeError(Self.connect(flags: 0x22, payload: id), .invalidWillFlags, rule: "MQTT-3.1.2-11")
        expectDecodeError(Self.connect(flags: 0x1E, payload: id), .invalidWillFlags, rule: "MQTT-3.1.2-11")
        expectDecodeError(Self.connect(flags: 0x42, payload: id + [0x00, 0x01, 0x70]), .passwordWithoutUsername, rule: "MQTT-3.1.2-22")
        expectDecodeError(Self.connect(flags: 0x00, payload: [0x00, 0x00]),
                          .invalidClientID("an empty client identifier needs a clean session [MQTT-3.1.3-7]"), rule: "MQTT-3.1.3-8")
        let long = [UInt8](repeating: 0x61, count: 24)
        expectDecodeError(Self.connect(name: "MQIsdp", level: 3, flags: 0x02, payload: [0x00, 24] + long),
                          .invalidClientID("MQTT 3.1 needs 1 to 23 bytes, got 24"), rule: "MQTT-3.1.3-8")
        expectDecodeError(Self.connect(flags: 0x02, payload: [0x00, 0x02, 0x61, 0x00]), .nullCharacter(field: .clientID), rule: "MQTT-1.5.3-2")
        expectDecodeError(Self.connect(flags: 0x06, payload: id + [0x00, 0x01] + ascii("#") + [0x00, 0x00]), .wildcardInTopicName, rule: "MQTT-3.3.2-2")
        expectDecodeError(Self.connect(flags: 0x82, payload: id), .truncated(.connect, field: .username), rule: "MQTT-2.2.3")
        expectDecodeError(Self.connect(flags: 0x02, payload: id + [0x00]), .trailingBytes(.connect, count: 1), rule: "MQTT-2.2.3")
    }

    @Test func packetsOverTheLimit() {
        // A SUBACK of 24 bytes against a 16-byte limit: an error, not an overflow report.
        let suback = [0x90, 0x16, 0x00, 0x01] + [UInt8](repeating: 0x00, count: 20)
        let error = thrownError { () throws(MQTTProtocolError) in _ = try decodeAll(suback, maximumPacketSize: 16) }
        #expect(error == .packetTooLarge(size: 24, limit: 16))
        #expect(error?.rule == "MQTT-2.2.3")
        // Reported as soon as the header is there.
        let early = thrownError { () throws(MQTTProtocolError) in _ = try decodeAll(Array(suback.prefix(2)), maximumPacketSize: 16) }
        #expect(early == .packetTooLarge(size: 24, limit: 16))
        // A ring whose maximum is below the decoder's limit lowers the limit.
        let ring = ByteRing(initialCapacity: 64, maximumCapacity: 128)
        ring.append([0x90, 0xC6, 0x01, 0x00, 0x01])
        var decoder = MQTTDecoder()
        let small = thrownError { () throws(MQTTProtocolError) in _ = try decoder.next(in: ring) }
        #expect(small == .packetTooLarge(size: 201, limit: 128))
    }
}

@Suite struct EncodeValidationTests {
    @Test func connectClientID() {
        expectEncodeError(.connect(ConnectPacket(version: .v3_1, clientID: String(repeating: "x", count: 24))),
                          .invalidClientID("MQTT 3.1 needs 1 to 23 bytes, got 24"), rule: "MQTT-3.1.3-8")
        expectEncodeError(.connect(ConnectPacket(version: .v3_1, clientID: "")),
                          .invalidClientID("MQTT 3.1 needs 1 to 23 bytes, got 0"), rule: "MQTT-3.1.3-8")
        expectEncodeError(.connect(ConnectPacket(version: .v3_1_1, clientID: "", cleanSession: false)),
                          .invalidClientID("an empty client identifier needs a clean session [MQTT-3.1.3-7]"), rule: "MQTT-3.1.3-8")
        expectEncodeError(.connect(ConnectPacket(clientID: "a\u{0}b")), .nullCharacter(field: .clientID), rule: "MQTT-1.5.3-2")
        // 23 bytes are fine for 3.1, and 3.1.1 accepts longer ids.
        #expect(thrownError { () throws(MQTTProtocolError) in _ = try encoded(.connect(ConnectPacket(version: .v3_1, clientID: String(repeating: "x", count: 23)))) } == nil)
        #expect(thrownError { () throws(MQTTProtocolError) in _ = try encoded(.connect(ConnectPacket(clientID: String(repeating: "x", count: 100)))) } == nil)
    }

    @Test func connectWillUserPassword() {
        expectEncodeError(.connect(ConnectPacket(clientID: "c", will: Will(topic: "a/#", payload: []))), .wildcardInTopicName, rule: "MQTT-3.3.2-2")
        expectEncodeError(.connect(ConnectPacket(clientID: "c", will: Will(topic: "", payload: []))), .emptyTopic(field: .topicName), rule: "MQTT-4.7.3-1")
        expectEncodeError(.connect(ConnectPacket(clientID: "c", will: Will(topic: "w", payload: [UInt8](repeating: 0, count: 65_536)))),
                          .fieldTooLong(field: .willPayload, length: 65_536), rule: "MQTT-1.5.3")
        expectEncodeError(.connect(ConnectPacket(clientID: "c", password: [1])), .passwordWithoutUsername, rule: "MQTT-3.1.2-22")
        expectEncodeError(.connect(ConnectPacket(clientID: "c", username: String(repeating: "u", count: 65_536))),
                          .fieldTooLong(field: .username, length: 65_536), rule: "MQTT-1.5.3")
        expectEncodeError(.connect(ConnectPacket(clientID: "c", username: "u", password: [UInt8](repeating: 0, count: 65_536))),
                          .fieldTooLong(field: .password, length: 65_536), rule: "MQTT-1.5.3")
    }

    @Test func connack() {
        expectEncodeError(.connack(ConnAckPacket(sessionPresent: true)), .invalidConnAckFlags(1), rule: "MQTT-3.2.2-1", version: .v3_1)
        expectEncodeError(.connack(ConnAckPacket(sessionPresent: true, returnCode: .serverUnavailable)), .invalidConnAckFlags(1), rule: "MQTT-3.2.2-1")
    }

    @Test func publish() {
        expectEncodeError(.publish(PublishPacket(topic: "a/+/c", payload: [])), .wildcardInTopicName, rule: "MQTT-3.3.2-2")
        expectEncodeError(.publish(PublishPacket(topic: "", payload: [])), .emptyTopic(field: .topicName), rule: "MQTT-4.7.3-1")
        expectEncodeError(.publish(PublishPacket(topic: "a\u{0}", payload: [])), .nullCharacter(field: .topicName), rule: "MQTT-1.5.3-2")
        expectEncodeError(.publish(PublishPacket(topic: String(repeating: "t", count: 65_536), payload: [])),
                          .fieldTooLong(field: .topicName, length: 65_536), rule: "MQTT-1.5.3")
        expectEncodeError(.publish(PublishPacket(topic: "t", payload: [], dup: true)), .dupOnQoS0, rule: "MQTT-3.3.1-2")
        expectEncodeError(.publish(PublishPacket(topic: "t", payload: [], qos: .atLeastOnce, packetID: 0)), .zeroPacketID(.publish), rule: "MQTT-2.3.1-1")
    }

    @Test func publishOverTheProtocolLimit() {
        // The fast path checks the size before touching the payload, so a fake length is safe.
        let buffer = OutboundBuffer(initialCapacity: 64)
        let storage = UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 1)
        defer { storage.deallocate() }
        let payload = UnsafeRawBufferPointer(start: storage, count: RemainingLength.maximum - 2)
        let topic = UnsafeRawBufferPointer(start: storage, count: 1)
        let error = thrownError { () throws(MQTTProtocolError) in
            try MQTTEncoder.encodePublish(topic: topic, payload: payload, qos: .atMostOnce, retain: false, dup: false, packetID: 0, into: buffer)
        }
        #expect(error == .packetTooLarge(size: RemainingLength.maximum + 1, limit: RemainingLength.maximum))
        #expect(error?.rule == "MQTT-2.2.3")
        #expect(buffer.isEmpty)
    }

    @Test func subscriptions() {
        expectEncodeError(.subscribe(SubscribePacket(packetID: 0, subscriptions: [TopicSubscription(filter: "a", qos: .atMostOnce)])),
                          .zeroPacketID(.subscribe), rule: "MQTT-2.3.1-1")
        expectEncodeError(.subscribe(SubscribePacket(packetID: 1, subscriptions: [])), .noTopicFilters(.subscribe), rule: "MQTT-3.8.3-3")
        expectEncodeError(.subscribe(SubscribePacket(packetID: 1, subscriptions: [TopicSubscription(filter: "a/#/b", qos: .atMostOnce)])),
                          .misplacedMultiLevelWildcard("a/#/b"), rule: "MQTT-4.7.1-2")
        expectEncodeError(.subscribe(SubscribePacket(packetID: 1, subscriptions: [TopicSubscription(filter: "a/b+", qos: .atMostOnce)])),
                          .misplacedSingleLevelWildcard("a/b+"), rule: "MQTT-4.7.1-3")
        expectEncodeError(.unsubscribe(UnsubscribePacket(packetID: 1, filters: [])), .noTopicFilters(.unsubscribe), rule: "MQTT-3.10.3-2")
        expectEncodeError(.unsubscribe(UnsubscribePacket(packetID: 0, filters: ["a"])), .zeroPacketID(.unsubscribe), rule: "MQTT-2.3.1-1")
        expectEncodeError(.unsubscribe(UnsubscribePacket(packetID: 1, filters: ["#/a"])), .misplacedMultiLevelWildcard("#/a"), rule: "MQTT-4.7.1-2")
        expectEncodeError(.suback(SubAckPacket(packetID: 1, returnCodes: [])), .noTopicFilters(.suback), rule: "MQTT-3.9.3-1")
        expectEncodeError(.suback(SubAckPacket(packetID: 0, returnCodes: [.failure])), .zeroPacketID(.suback), rule: "MQTT-2.3.1-1")
    }

    @Test func acknowledgements() {
        expectEncodeError(.puback(packetID: 0), .zeroPacketID(.puback), rule: "MQTT-2.3.1-1")
        expectEncodeError(.pubrec(packetID: 0), .zeroPacketID(.pubrec), rule: "MQTT-2.3.1-1")
        expectEncodeError(.pubrel(packetID: 0), .zeroPacketID(.pubrel), rule: "MQTT-2.3.1-1")
        expectEncodeError(.pubcomp(packetID: 0), .zeroPacketID(.pubcomp), rule: "MQTT-2.3.1-1")
        expectEncodeError(.unsuback(packetID: 0), .zeroPacketID(.unsuback), rule: "MQTT-2.3.1-1")
    }
}
