public import RingBuffers

/// Writes MQTT 3.1 / 3.1.1 control packets straight into an ``OutboundBuffer``.
///
/// Every function computes the remaining length first, validates the packet as the spec requires,
/// and only then appends: on a thrown error the buffer is unchanged. No intermediate arrays are
/// built; strings are copied from their UTF-8 storage into the buffer.
///
/// Two kinds of entry points:
/// - ``encode(_:version:into:)`` for any owned ``Packet`` (validates everything);
/// - allocation-free fast paths for the per-message traffic of a client:
///   ``encodePublish(topic:payload:qos:retain:dup:packetID:into:)``,
///   ``encodeAck(_:packetID:into:)``, ``encodePingReq(into:)`` and friends.
public enum MQTTEncoder {
    // MARK: Any packet

    /// Encodes an owned packet.
    ///
    /// CONNECT is written at the protocol level its own ``ConnectPacket/version`` names; for the
    /// other packets `version` decides the few differences between 3.1 and 3.1.1 (CONNACK's
    /// session-present flag does not exist in 3.1).
    ///
    /// - Parameters:
    ///   - packet: The packet.
    ///   - version: The connection's protocol level.
    ///   - buffer: Receives the bytes.
    /// - Throws: ``MQTTProtocolError`` naming the rule the packet breaks; nothing is written then.
    public static func encode(_ packet: Packet, version: ProtocolVersion, into buffer: OutboundBuffer) throws(MQTTProtocolError) {
        switch packet {
        case .connect(let connect): try encodeConnect(connect, into: buffer)
        case .connack(let connack): try encodeConnAck(connack, version: version, into: buffer)
        case .publish(let publish): try encodePublish(publish, into: buffer)
        case .puback(let id): try encodeAck(.puback, packetID: id, into: buffer)
        case .pubrec(let id): try encodeAck(.pubrec, packetID: id, into: buffer)
        case .pubrel(let id): try encodeAck(.pubrel, packetID: id, into: buffer)
        case .pubcomp(let id): try encodeAck(.pubcomp, packetID: id, into: buffer)
        case .subscribe(let subscribe): try encodeSubscribe(subscribe, into: buffer)
        case .suback(let suback): try encodeSubAck(suback, into: buffer)
        case .unsubscribe(let unsubscribe): try encodeUnsubscribe(unsubscribe, into: buffer)
        case .unsuback(let id): try encodeAck(.unsuback, packetID: id, into: buffer)
        case .pingreq: encodePingReq(into: buffer)
        case .pingresp: encodePingResp(into: buffer)
        case .disconnect: encodeDisconnect(into: buffer)
        }
    }

    // MARK: CONNECT / CONNACK

    /// Encodes CONNECT (section 3.1) at the level `connect.version` names.
    ///
    /// Checks: client id 1-23 bytes for MQTT 3.1, empty only with a clean session for 3.1.1
    /// [MQTT-3.1.3-7]; will topic a valid topic name [MQTT-3.1.3-10]; will payload, user name and
    /// password at most 65,535 bytes; a password only with a user name [MQTT-3.1.2-22] (applied to
    /// 3.1 too); strings without U+0000 [MQTT-1.5.3-2].
    ///
    /// - Throws: ``MQTTProtocolError``; nothing is written then.
    public static func encodeConnect(_ connect: ConnectPacket, into buffer: OutboundBuffer) throws(MQTTProtocolError) {
        let version = connect.version
        let remaining = try connectRemainingLength(connect)
        var flags: UInt8 = connect.cleanSession ? 0x02 : 0
        if let will = connect.will {
            flags |= 0x04 | (will.qos.rawValue << 3) | (will.retain ? 0x20 : 0)
        }
        if connect.username != nil { flags |= 0x80 }
        if connect.password != nil { flags |= 0x40 }
        buffer.reserveAppend(1 + RemainingLength.size(of: remaining) + remaining)
        buffer.writeByte(0x10)
        RemainingLength.write(remaining, into: buffer)
        writeString(version.protocolName, into: buffer)
        buffer.writeByte(version.rawValue)
        buffer.writeByte(flags)
        buffer.writeUInt16(connect.keepAlive)
        writeString(connect.clientID, into: buffer)
        if let will = connect.will {
            writeString(will.topic, into: buffer)
            writeBinary(will.payload, into: buffer)
        }
        if let username = connect.username { writeString(username, into: buffer) }
        if let password = connect.password { writeBinary(password, into: buffer) }
    }

    /// Encodes CONNACK (section 3.2).
    ///
    /// - Throws: ``MQTTProtocolError/invalidConnAckFlags(_:)`` for session present with MQTT 3.1
    ///   (byte 1 is reserved there) or with a non-zero return code [MQTT-3.2.2-4].
    public static func encodeConnAck(_ connack: ConnAckPacket, version: ProtocolVersion, into buffer: OutboundBuffer) throws(MQTTProtocolError) {
        if connack.sessionPresent && (version == .v3_1 || connack.returnCode != .accepted) {
            throw .invalidConnAckFlags(1)
        }
        buffer.withUnsafeAppend(count: 4) { region in
            region[0] = 0x20
            region[1] = 2
            region[2] = connack.sessionPresent ? 1 : 0
            region[3] = connack.returnCode.rawValue
        }
    }

    // MARK: PUBLISH

    /// Encodes an owned PUBLISH (section 3.3), validating the topic name.
    ///
    /// - Throws: ``MQTTProtocolError`` for an invalid topic name [MQTT-3.3.2-2], DUP on QoS 0
    ///   [MQTT-3.3.1-2], packet id 0 with QoS > 0 [MQTT-2.3.1-1], or a packet too large.
    public static func encodePublish(_ publish: PublishPacket, into buffer: OutboundBuffer) throws(MQTTProtocolError) {
        try MQTTValidation.validateTopicName(publish.topic)
        var topic = publish.topic
        let result: Result<Void, MQTTProtocolError> = topic.withUTF8 { topicBytes in
            publish.payload.withUnsafeBytes { payload in
                Result { () throws(MQTTProtocolError) in
                    try encodePublish(
                        topic: UnsafeRawBufferPointer(topicBytes), payload: payload, qos: publish.qos,
                        retain: publish.retain, dup: publish.dup, packetID: publish.packetID, into: buffer)
                }
            }
        }
        try result.get()
    }

    /// Encodes a PUBLISH from raw topic and payload bytes: the client's per-message path.
    ///
    /// Allocation-free: one bounds check on the buffer, then the fixed header, topic, packet id
    /// and payload are stored in place.
    ///
    /// The topic is NOT validated here: the caller must have checked it once with
    /// ``MQTTValidation/validateTopicName(_:)-(UnsafeRawBufferPointer)`` (non-empty, valid UTF-8, no
    /// U+0000, no wildcards). Only its length is checked.
    ///
    /// - Parameters:
    ///   - topic: The validated topic name bytes.
    ///   - payload: The payload bytes.
    ///   - qos: Quality of service.
    ///   - retain: RETAIN flag.
    ///   - dup: DUP flag, must be false for QoS 0 [MQTT-3.3.1-2].
    ///   - packetID: Non-zero for QoS 1 and 2 [MQTT-2.3.1-1]; ignored for QoS 0.
    ///   - buffer: Receives the bytes.
    /// - Throws: ``MQTTProtocolError/dupOnQoS0``, ``MQTTProtocolError/zeroPacketID(_:)``,
    ///   ``MQTTProtocolError/fieldTooLong(field:length:)`` for a topic over 65,535 bytes,
    ///   ``MQTTProtocolError/packetTooLarge(size:limit:)`` for a remaining length over 268,435,455
    ///   (size and limit are remaining lengths then). Nothing is written on error.
    @inlinable
    public static func encodePublish(
        topic: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer, qos: QoS, retain: Bool,
        dup: Bool, packetID: UInt16, into buffer: OutboundBuffer
    ) throws(MQTTProtocolError) {
        let hasID = qos != .atMostOnce
        if hasID {
            if packetID == 0 { throw .zeroPacketID(.publish) }
        } else if dup {
            throw .dupOnQoS0
        }
        let topicCount = topic.count
        if topicCount > MQTTValidation.maximumFieldLength { throw .fieldTooLong(field: .topicName, length: topicCount) }
        let remaining = 2 &+ topicCount &+ (hasID ? 2 : 0) &+ payload.count
        if remaining > RemainingLength.maximum {
            throw .packetTooLarge(size: remaining, limit: RemainingLength.maximum)
        }
        let first: UInt8 = 0x30 | (qos.rawValue << 1) | (dup ? 0x08 : 0) | (retain ? 0x01 : 0)
        let total = 1 &+ RemainingLength.size(of: remaining) &+ remaining
        buffer.withUnsafeAppend(count: total) { region in
            let p = region.baseAddress.unsafelyUnwrapped
            p.storeBytes(of: first, as: UInt8.self)
            var i = 1 &+ RemainingLength.store(remaining, at: p + 1)
            p.storeBytes(of: UInt8(truncatingIfNeeded: topicCount >> 8), toByteOffset: i, as: UInt8.self)
            p.storeBytes(of: UInt8(truncatingIfNeeded: topicCount), toByteOffset: i &+ 1, as: UInt8.self)
            i &+= 2
            if topicCount > 0 { (p + i).copyMemory(from: topic.baseAddress.unsafelyUnwrapped, byteCount: topicCount) }
            i &+= topicCount
            if hasID {
                p.storeBytes(of: UInt8(truncatingIfNeeded: packetID >> 8), toByteOffset: i, as: UInt8.self)
                p.storeBytes(of: UInt8(truncatingIfNeeded: packetID), toByteOffset: i &+ 1, as: UInt8.self)
                i &+= 2
            }
            let payloadCount = payload.count
            if payloadCount > 0 { (p + i).copyMemory(from: payload.baseAddress.unsafelyUnwrapped, byteCount: payloadCount) }
        }
    }

    // MARK: Acknowledgements and empty packets

    /// Encodes PUBACK, PUBREC, PUBREL, PUBCOMP or UNSUBACK: the fixed header and a packet id.
    ///
    /// PUBREL carries the fixed flags 0b0010 [MQTT-3.6.1-1]; the others 0 [MQTT-2.2.2-1].
    ///
    /// - Throws: ``MQTTProtocolError/zeroPacketID(_:)`` [MQTT-2.3.1-1];
    ///   ``MQTTProtocolError/unexpectedPacket(_:)`` for a `type` that is not one of the five.
    @inlinable
    public static func encodeAck(_ type: PacketType, packetID: UInt16, into buffer: OutboundBuffer) throws(MQTTProtocolError) {
        let first: UInt8
        switch type {
        case .puback: first = 0x40
        case .pubrec: first = 0x50
        case .pubrel: first = 0x62
        case .pubcomp: first = 0x70
        case .unsuback: first = 0xB0
        default: throw .unexpectedPacket(type)
        }
        if packetID == 0 { throw .zeroPacketID(type) }
        buffer.withUnsafeAppend(count: 4) { region in
            let p = region.baseAddress.unsafelyUnwrapped
            p.storeBytes(of: first, as: UInt8.self)
            p.storeBytes(of: 2, toByteOffset: 1, as: UInt8.self)
            p.storeBytes(of: UInt8(truncatingIfNeeded: packetID >> 8), toByteOffset: 2, as: UInt8.self)
            p.storeBytes(of: UInt8(truncatingIfNeeded: packetID), toByteOffset: 3, as: UInt8.self)
        }
    }

    /// Encodes PINGREQ (`C0 00`).
    @inlinable
    public static func encodePingReq(into buffer: OutboundBuffer) {
        buffer.writeUInt16(0xC000)
    }

    /// Encodes PINGRESP (`D0 00`).
    @inlinable
    public static func encodePingResp(into buffer: OutboundBuffer) {
        buffer.writeUInt16(0xD000)
    }

    /// Encodes DISCONNECT (`E0 00`).
    @inlinable
    public static func encodeDisconnect(into buffer: OutboundBuffer) {
        buffer.writeUInt16(0xE000)
    }

    // MARK: SUBSCRIBE / SUBACK / UNSUBSCRIBE

    /// Encodes SUBSCRIBE (section 3.8) with the fixed flags 0b0010 [MQTT-3.8.1-1].
    ///
    /// - Throws: ``MQTTProtocolError`` for packet id 0, no filters [MQTT-3.8.3-3], or an invalid
    ///   filter [MQTT-4.7.1-2], [MQTT-4.7.1-3].
    public static func encodeSubscribe(_ subscribe: SubscribePacket, into buffer: OutboundBuffer) throws(MQTTProtocolError) {
        if subscribe.packetID == 0 { throw .zeroPacketID(.subscribe) }
        if subscribe.subscriptions.isEmpty { throw .noTopicFilters(.subscribe) }
        var remaining = 2
        for subscription in subscribe.subscriptions {
            try MQTTValidation.validateTopicFilter(subscription.filter)
            remaining += 2 + subscription.filter.utf8.count + 1
        }
        try checkRemainingLength(remaining)
        buffer.reserveAppend(1 + RemainingLength.size(of: remaining) + remaining)
        buffer.writeByte(0x82)
        RemainingLength.write(remaining, into: buffer)
        buffer.writeUInt16(subscribe.packetID)
        for subscription in subscribe.subscriptions {
            writeString(subscription.filter, into: buffer)
            buffer.writeByte(subscription.qos.rawValue)
        }
    }

    /// Encodes SUBACK (section 3.9).
    ///
    /// The failure code 0x80 is written for both levels: MQTT 3.1 defines no failure code, but
    /// brokers send it to 3.1 clients too, and the decoder accepts it at both levels.
    ///
    /// - Throws: ``MQTTProtocolError`` for packet id 0 or no return codes.
    public static func encodeSubAck(_ suback: SubAckPacket, into buffer: OutboundBuffer) throws(MQTTProtocolError) {
        if suback.packetID == 0 { throw .zeroPacketID(.suback) }
        if suback.returnCodes.isEmpty { throw .noTopicFilters(.suback) }
        let remaining = 2 + suback.returnCodes.count
        try checkRemainingLength(remaining)
        buffer.reserveAppend(1 + RemainingLength.size(of: remaining) + remaining)
        buffer.writeByte(0x90)
        RemainingLength.write(remaining, into: buffer)
        buffer.writeUInt16(suback.packetID)
        for code in suback.returnCodes { buffer.writeByte(code.rawValue) }
    }

    /// Encodes UNSUBSCRIBE (section 3.10) with the fixed flags 0b0010 [MQTT-3.10.1-1].
    ///
    /// - Throws: ``MQTTProtocolError`` for packet id 0, no filters [MQTT-3.10.3-2], or an invalid
    ///   filter.
    public static func encodeUnsubscribe(_ unsubscribe: UnsubscribePacket, into buffer: OutboundBuffer) throws(MQTTProtocolError) {
        if unsubscribe.packetID == 0 { throw .zeroPacketID(.unsubscribe) }
        if unsubscribe.filters.isEmpty { throw .noTopicFilters(.unsubscribe) }
        var remaining = 2
        for filter in unsubscribe.filters {
            try MQTTValidation.validateTopicFilter(filter)
            remaining += 2 + filter.utf8.count
        }
        try checkRemainingLength(remaining)
        buffer.reserveAppend(1 + RemainingLength.size(of: remaining) + remaining)
        buffer.writeByte(0xA2)
        RemainingLength.write(remaining, into: buffer)
        buffer.writeUInt16(unsubscribe.packetID)
        for filter in unsubscribe.filters { writeString(filter, into: buffer) }
    }

    // MARK: Sizes

    /// The largest packet MQTT 3.1 / 3.1.1 can frame: the largest remaining length
    /// (268,435,455, [MQTT-2.2.3]) plus 1 byte of packet type and 4 of remaining length.
    public static let maximumPacketSize = RemainingLength.maximum + 5

    /// The whole size of a PUBLISH (fixed header, remaining-length bytes, topic length and
    /// bytes, packet id when QoS > 0, payload), as it would be encoded.
    ///
    /// Usable before any packet is built, so that a caller can reject a message on its own
    /// thread. A result above ``maximumPacketSize`` means the remaining length would exceed
    /// 268,435,455 and the packet cannot be framed at all. No allocation.
    ///
    /// - Parameters:
    ///   - topicByteCount: The topic name's UTF-8 byte count.
    ///   - payloadCount: The payload's byte count.
    ///   - qos: The message's QoS (QoS 1 / 2 add the 2-byte packet id).
    /// - Returns: The packet's size in bytes.
    @inlinable
    public static func publishPacketSize(topicByteCount: Int, payloadCount: Int, qos: QoS) -> Int {
        let remaining = 2 &+ topicByteCount &+ (qos == .atMostOnce ? 0 : 2) &+ payloadCount
        return 1 &+ RemainingLength.size(of: remaining) &+ remaining
    }

    /// The whole size of a SUBSCRIBE with these filters (fixed header, packet id, each filter
    /// with its length and requested QoS byte).
    ///
    /// - Parameter subscriptions: The filters.
    /// - Returns: The packet's size in bytes.
    public static func subscribePacketSize(_ subscriptions: [TopicSubscription]) -> Int {
        var remaining = 2
        for subscription in subscriptions { remaining += 2 + subscription.filter.utf8.count + 1 }
        return 1 + RemainingLength.size(of: remaining) + remaining
    }

    /// The whole size of an UNSUBSCRIBE with these filters (fixed header, packet id, each
    /// filter with its length).
    ///
    /// - Parameter filters: The filters.
    /// - Returns: The packet's size in bytes.
    public static func unsubscribePacketSize(_ filters: [String]) -> Int {
        var remaining = 2
        for filter in filters { remaining += 2 + filter.utf8.count }
        return 1 + RemainingLength.size(of: remaining) + remaining
    }

    /// Checks a CONNECT against the rules ``encodeConnect(_:into:)`` applies, without writing
    /// anything, and returns its whole size in bytes.
    ///
    /// Checks: client id 1-23 bytes for MQTT 3.1, empty only with a clean session for 3.1.1
    /// [MQTT-3.1.3-7]; will topic a valid topic name, no wildcard [MQTT-3.1.3-10],
    /// [MQTT-3.3.2-2]; will payload, user name and password at most 65,535 bytes; a password
    /// only with a user name [MQTT-3.1.2-22]; strings without U+0000 [MQTT-1.5.3-2].
    ///
    /// - Parameter connect: The packet.
    /// - Returns: The packet's size in bytes.
    /// - Throws: ``MQTTProtocolError`` naming the rule the packet breaks.
    @discardableResult
    public static func validateConnect(_ connect: ConnectPacket) throws(MQTTProtocolError) -> Int {
        let remaining = try connectRemainingLength(connect)
        return 1 + RemainingLength.size(of: remaining) + remaining
    }

    /// Validates CONNECT and returns its remaining length (see ``validateConnect(_:)``).
    static func connectRemainingLength(_ connect: ConnectPacket) throws(MQTTProtocolError) -> Int {
        let version = connect.version
        try MQTTValidation.validateString(connect.clientID, field: .clientID)
        let idLength = connect.clientID.utf8.count
        switch version {
        case .v3_1:
            // MQTT 3.1: "between 1 and 23 characters"; counted in bytes, as brokers do.
            if idLength < 1 || idLength > 23 {
                throw .invalidClientID("MQTT 3.1 needs 1 to 23 bytes, got \(idLength)")
            }
        case .v3_1_1:
            if idLength == 0 && !connect.cleanSession {
                throw .invalidClientID("an empty client identifier needs a clean session [MQTT-3.1.3-7]")
            }
        }
        var remaining = 2 + version.protocolName.utf8.count + 1 + 1 + 2 + 2 + idLength
        if let will = connect.will {
            try MQTTValidation.validateTopicName(will.topic)
            if will.payload.count > MQTTValidation.maximumFieldLength {
                throw .fieldTooLong(field: .willPayload, length: will.payload.count)
            }
            remaining += 2 + will.topic.utf8.count + 2 + will.payload.count
        }
        if let username = connect.username {
            try MQTTValidation.validateString(username, field: .username)
            remaining += 2 + username.utf8.count
        }
        if let password = connect.password {
            // [MQTT-3.1.2-22]: if the user name flag is 0, the password flag must be 0.
            if connect.username == nil { throw .passwordWithoutUsername }
            if password.count > MQTTValidation.maximumFieldLength {
                throw .fieldTooLong(field: .password, length: password.count)
            }
            remaining += 2 + password.count
        }
        return remaining
    }

    // MARK: Helpers

    static func checkRemainingLength(_ remaining: Int) throws(MQTTProtocolError) {
        if remaining > RemainingLength.maximum {
            throw .packetTooLarge(size: remaining, limit: RemainingLength.maximum)
        }
    }

    /// Writes a length-prefixed string (validated by the caller).
    static func writeString(_ string: String, into buffer: OutboundBuffer) {
        var string = string
        string.withUTF8 { bytes in
            buffer.writeUInt16(UInt16(truncatingIfNeeded: bytes.count))
            buffer.writeBytes(UnsafeRawBufferPointer(bytes))
        }
    }

    /// Writes length-prefixed binary data (length checked by the caller).
    static func writeBinary(_ bytes: [UInt8], into buffer: OutboundBuffer) {
        buffer.writeUInt16(UInt16(truncatingIfNeeded: bytes.count))
        buffer.writeBytes(bytes)
    }
}
