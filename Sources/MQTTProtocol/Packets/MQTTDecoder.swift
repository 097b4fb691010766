public import RingBuffers

/// Frames and decodes MQTT 3.1 / 3.1.1 packets in place in a ``ByteRing``.
///
/// ## Framing
/// ``next(in:)`` reads the fixed header and the remaining length at the ring's read position
/// (the header may straddle the ring's wrap point) and returns nil, consuming nothing, until the
/// whole packet has arrived. Then it decodes the body where it lies: a ``PublishView`` points its
/// topic and payload into the ring, with no copy and no allocation.
///
/// ## Frame lifetime
/// The bytes of a returned packet stay in the ring until the next call to ``next(in:)``, which
/// consumes them first, or to ``releaseLastFrame(in:)``, which frees them right away (a reader
/// calls it before it returns from its read callback, so the ring can be refilled). Views are
/// invalid after either call.
///
/// ## Packets that wrap around the end of the ring
/// When a packet's body straddles the ring's end, the decoder copies that body once into a
/// scratch buffer it owns and decodes from there. The scratch buffer grows to the largest wrapped
/// body seen (at most ``maximumPacketSize``) and is then reused, so steady state allocates
/// nothing. This was chosen over a mirrored (double-mapped) ring, which needs `memfd` and two
/// `mmap`s per growth and page-sized capacities, and over compacting the ring, which moves every
/// buffered byte: with the ring much larger than typical packets, only a small fraction of packets
/// wrap, and for those the copy costs one `memcpy` of the body (measured in `Benchmarks/`).
///
/// ## Sizes
/// A packet larger than the ring's capacity but within ``maximumPacketSize`` makes the ring grow
/// (``ByteRing/reserve(_:)``). A PUBLISH over ``maximumPacketSize`` is reported once as
/// ``InboundPacket/oversizePublish(_:)`` with the prefix that fits, and the rest is consumed as it
/// streams in without being buffered (``bytesToSkip``). Any other packet over the limit is
/// ``MQTTProtocolError/packetTooLarge(size:limit:)``.
///
/// ## Errors
/// Every violation of the spec is a typed ``MQTTProtocolError``; after an error the stream is not
/// in sync any more and the connection must be closed [MQTT-4.8.0-1].
///
/// Not thread-safe; a copy of the decoder shares the scratch buffer with the original.
public struct MQTTDecoder {
    /// Largest packet (fixed header included) decoded in full.
    public let maximumPacketSize: Int
    /// The connection's protocol level: decides CONNACK's byte 1 (reserved in 3.1).
    public var version: ProtocolVersion

    /// Bytes of the last returned frame, consumed at the start of the next call.
    @usableFromInline var pendingConsume: Int = 0
    /// Bytes of an oversize PUBLISH still to be discarded as they arrive.
    @usableFromInline var skipRemaining: Int = 0
    @usableFromInline let scratch: DecoderScratch
    /// How many packet bodies were copied to the scratch buffer because they wrapped.
    public private(set) var scratchCopies: Int = 0

    /// Creates a decoder.
    ///
    /// - Parameters:
    ///   - maximumPacketSize: Largest packet, header included, decoded in full; clamped to
    ///     `2...268_435_460`. The ring's maximum capacity should be at least this large.
    ///   - version: The protocol level of the connection.
    public init(maximumPacketSize: Int = 1 << 20, version: ProtocolVersion = .v3_1_1) {
        self.maximumPacketSize = min(max(2, maximumPacketSize), 1 + 4 + RemainingLength.maximum)
        self.version = version
        self.scratch = DecoderScratch()
    }

    /// Whether the decoder is discarding the rest of an oversize PUBLISH.
    @inlinable
    public var isSkipping: Bool { skipRemaining != 0 }

    /// Bytes of an oversize PUBLISH not yet received and discarded.
    @inlinable
    public var bytesToSkip: Int { skipRemaining }

    /// Frees the ring space of the last returned packet now, and discards any skippable bytes.
    ///
    /// Views returned by the last ``next(in:)`` are invalid afterwards.
    @inlinable
    public mutating func releaseLastFrame(in ring: ByteRing) {
        if pendingConsume != 0 {
            ring.consume(pendingConsume)
            pendingConsume = 0
        }
        if skipRemaining != 0 { _ = skip(in: ring) }
    }

    /// Decodes the next packet in `ring`.
    ///
    /// First releases the previously returned frame. Returns nil, consuming nothing of the next
    /// packet, when it has not fully arrived (the ring may have been grown to make room for it).
    ///
    /// - Parameter ring: The receive ring; the same ring on every call.
    /// - Returns: The packet, or nil when more bytes are needed.
    /// - Throws: ``MQTTProtocolError`` for anything the spec forbids; close the connection then.
    @inlinable
    public mutating func next(in ring: ByteRing) throws(MQTTProtocolError) -> InboundPacket? {
        if pendingConsume != 0 {
            ring.consume(pendingConsume)
            pendingConsume = 0
        }
        if skipRemaining != 0 && !skip(in: ring) { return nil }
        // Fast path: the whole packet lies contiguously before the ring's end.
        let region = ring.firstReadableRegion
        let available = region.count
        if available >= 2 {
            let p = region.baseAddress.unsafelyUnwrapped
            let first = p.load(as: UInt8.self)
            var remaining = 0
            var shift = 0
            var i = 1
            while i < available && i <= 4 {
                let b = p.load(fromByteOffset: i, as: UInt8.self)
                remaining |= Int(b & 0x7F) << shift
                i &+= 1
                if b & 0x80 == 0 {
                    let total = i &+ remaining
                    if total <= available && total <= maximumPacketSize {
                        let packet = try Self.decodeFrame(
                            first, body: UnsafeRawBufferPointer(start: p + i, count: remaining), version: version)
                        pendingConsume = total
                        return packet
                    }
                    break
                }
                shift &+= 7
            }
        }
        return try nextSlow(in: ring)
    }

    /// Discards skippable bytes; true when the oversize packet is fully skipped.
    @inlinable
    mutating func skip(in ring: ByteRing) -> Bool {
        let n = min(skipRemaining, ring.readableBytes)
        ring.consume(n)
        skipRemaining &-= n
        return skipRemaining == 0
    }

    /// Framing across the wrap point, incomplete packets, growth, oversize packets.
    @usableFromInline
    mutating func nextSlow(in ring: ByteRing) throws(MQTTProtocolError) -> InboundPacket? {
        let readable = ring.readableBytes
        if readable < 1 { return nil }
        let first = ring.byte(at: 0)
        // Reject a bad type or flags as soon as the first byte is there.
        try Self.checkFixedHeader(first)
        var remaining = 0
        var i = 1
        while true {
            // A fourth byte with the continuation bit is already malformed [MQTT-2.2.3].
            if i > 4 { throw .malformedRemainingLength }
            if i >= readable { return nil }
            let b = ring.byte(at: i)
            remaining |= Int(b & 0x7F) << (7 &* (i &- 1))
            i &+= 1
            if b & 0x80 == 0 { break }
        }
        let headerLength = i
        let total = headerLength + remaining
        // A ring configured smaller than maximumPacketSize lowers the limit.
        let limit = min(maximumPacketSize, ring.maximumCapacity)
        if total > limit {
            guard first >> 4 == PacketType.publish.rawValue else {
                throw .packetTooLarge(size: total, limit: limit)
            }
            return try oversizePublish(first: first, headerLength: headerLength, total: total, limit: limit, in: ring)
        }
        if total > ring.capacity { ring.reserve(total) }
        if readable < total { return nil }
        let body = bodyRegion(in: ring, offset: headerLength, count: remaining)
        let packet = try Self.decodeFrame(first, body: body, version: version)
        pendingConsume = total
        return packet
    }

    /// The body in place, or copied to the scratch buffer when it straddles the ring's end.
    mutating func bodyRegion(in ring: ByteRing, offset: Int, count: Int) -> UnsafeRawBufferPointer {
        if let region = ring.contiguousRegion(offset: offset, count: count) { return region }
        scratchCopies &+= 1
        return scratch.copy(from: ring, offset: offset, count: count)
    }

    /// Reports the first `maximumPacketSize` bytes of an oversize PUBLISH and arranges to skip the
    /// rest.
    mutating func oversizePublish(
        first: UInt8, headerLength: Int, total: Int, limit: Int, in ring: ByteRing
    ) throws(MQTTProtocolError) -> InboundPacket? {
        // Not even the topic length fits: nothing useful to report.
        if limit < headerLength &+ 2 { throw .packetTooLarge(size: total, limit: limit) }
        if limit > ring.capacity { ring.reserve(limit) }
        if ring.readableBytes < limit { return nil }
        let body = bodyRegion(in: ring, offset: headerLength, count: limit - headerLength)
        let flags = first & 0x0F
        let qos = QoS(rawValue: (flags >> 1) & 3) ?? .atMostOnce  // checked by checkFixedHeader
        let topicAndID = try Self.publishHead(body: body, qos: qos, truncatedError: .packetTooLarge(size: total, limit: limit))
        let prefix = UnsafeRawBufferPointer(rebasing: body[topicAndID.payloadOffset...])
        let view = OversizePublishView(
            topic: topicAndID.topic, payloadPrefix: prefix,
            totalPayloadLength: total - headerLength - topicAndID.payloadOffset,
            qos: qos, retain: flags & 1 != 0, dup: flags & 8 != 0, packetID: topicAndID.packetID)
        pendingConsume = limit
        skipRemaining = total - limit
        return .oversizePublish(view)
    }

    // MARK: Decoding a framed body

    /// Decodes one packet whose body is contiguous.
    @inlinable @inline(__always)
    static func decodeFrame(_ first: UInt8, body: UnsafeRawBufferPointer, version: ProtocolVersion) throws(MQTTProtocolError) -> InboundPacket {
        if first >> 4 == PacketType.publish.rawValue {
            return .publish(try decodePublish(first, body: body))
        }
        return try decodeOther(first, body: body, version: version)
    }

    /// PUBLISH (section 3.3): the per-message path, inlined into the caller.
    @inlinable @inline(__always)
    static func decodePublish(_ first: UInt8, body: UnsafeRawBufferPointer) throws(MQTTProtocolError) -> PublishView {
        let qos: QoS
        switch (first >> 1) & 3 {
        case 0:
            // [MQTT-3.3.1-2]: DUP must be 0 for QoS 0.
            if first & 0x08 != 0 { throw .dupOnQoS0 }
            qos = .atMostOnce
        case 1: qos = .atLeastOnce
        case 2: qos = .exactlyOnce
        default: throw .invalidQoS(field: .fixedHeader, value: 3)  // [MQTT-3.3.1-4]
        }
        let head = try publishHead(body: body, qos: qos, truncatedError: nil)
        let payload = UnsafeRawBufferPointer(
            start: body.baseAddress.unsafelyUnwrapped + head.payloadOffset, count: body.count &- head.payloadOffset)
        return PublishView(
            topic: head.topic, payload: payload, qos: qos, retain: first & 0x01 != 0,
            dup: first & 0x08 != 0, packetID: head.packetID)
    }

    /// Topic name and packet id of a PUBLISH body.
    ///
    /// - Parameter truncatedError: Thrown instead of ``MQTTProtocolError/truncated(_:field:)``
    ///   when the head does not fit (the oversize path passes `packetTooLarge`).
    @inlinable @inline(__always)
    static func publishHead(
        body: UnsafeRawBufferPointer, qos: QoS, truncatedError: MQTTProtocolError?
    ) throws(MQTTProtocolError) -> (topic: UnsafeRawBufferPointer, packetID: UInt16, payloadOffset: Int) {
        let count = body.count
        guard count >= 2 else { throw truncatedError ?? .truncated(.publish, field: .topicName) }
        let base = body.baseAddress.unsafelyUnwrapped
        let topicLength = Int(base.load(as: UInt8.self)) << 8 | Int(base.load(fromByteOffset: 1, as: UInt8.self))
        var offset = 2 &+ topicLength
        guard offset <= count else { throw truncatedError ?? .truncated(.publish, field: .topicName) }
        let topic = UnsafeRawBufferPointer(start: base + 2, count: topicLength)
        try validateIncomingTopicName(topic)
        var packetID: UInt16 = 0
        if qos != .atMostOnce {
            guard offset &+ 2 <= count else { throw truncatedError ?? .truncated(.publish, field: .packetID) }
            packetID = UInt16(base.load(fromByteOffset: offset, as: UInt8.self)) << 8
                | UInt16(base.load(fromByteOffset: offset &+ 1, as: UInt8.self))
            // [MQTT-2.3.1-1]: QoS 1 and 2 PUBLISH carry a non-zero packet identifier.
            if packetID == 0 { throw .zeroPacketID(.publish) }
            offset &+= 2
        }
        return (topic, packetID, offset)
    }

    /// Topic name check with an eight-bytes-at-a-time fast path for plain ASCII names.
    ///
    /// A word passes when no byte has the high bit set, is zero, `+` (0x2B) or `#` (0x23); any
    /// other word sends the whole name to ``MQTTValidation/validateTopicName(_:)-(UnsafeRawBufferPointer)``,
    /// which finds the precise error or accepts multi-byte UTF-8.
    @inlinable
    static func validateIncomingTopicName(_ topic: UnsafeRawBufferPointer) throws(MQTTProtocolError) {
        let count = topic.count
        if count == 0 { throw .emptyTopic(field: .topicName) }  // [MQTT-4.7.3-1]
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        var i = 0
        if count >= 8 {
            // Whole words, then one last word that overlaps the previous one: no byte loop.
            while true {
                let w = topic.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                let plus = w ^ (ones &* 0x2B)
                let hash = w ^ (ones &* 0x23)
                let suspicious = (w | ((w &- ones) & ~w) | ((plus &- ones) & ~plus) | ((hash &- ones) & ~hash)) & highs
                if suspicious != 0 { return try MQTTValidation.validateTopicName(topic) }
                if i &+ 8 == count { return }
                i = min(i &+ 8, count &- 8)
            }
        }
        while i < count {
            let b = topic.load(fromByteOffset: i, as: UInt8.self)
            if b == 0 || b >= 0x80 || b == 0x2B || b == 0x23 { return try MQTTValidation.validateTopicName(topic) }
            i &+= 1
        }
    }

    /// Checks the packet type and the fixed-header flags of the first byte.
    ///
    /// Reserved types 0 and 15 [MQTT-2.2.1]; PUBREL, SUBSCRIBE and UNSUBSCRIBE carry 0b0010
    /// [MQTT-3.6.1-1], [MQTT-3.8.1-1], [MQTT-3.10.1-1]; the others 0 [MQTT-2.2.2-2]; PUBLISH QoS
    /// 3 [MQTT-3.3.1-4] and DUP on QoS 0 [MQTT-3.3.1-2].
    @usableFromInline
    static func checkFixedHeader(_ first: UInt8) throws(MQTTProtocolError) {
        let flags = first & 0x0F
        guard let type = PacketType(rawValue: first >> 4) else { throw .reservedPacketType(first >> 4) }
        switch type {
        case .publish:
            if (flags >> 1) & 3 == 3 { throw .invalidQoS(field: .fixedHeader, value: 3) }
            if flags & 0x08 != 0 && (flags >> 1) & 3 == 0 { throw .dupOnQoS0 }
        case .pubrel, .subscribe, .unsubscribe:
            if flags != 0x02 { throw .invalidFlags(type, flags: flags) }
        default:
            if flags != 0 { throw .invalidFlags(type, flags: flags) }
        }
    }

    /// Every packet but PUBLISH.
    @usableFromInline
    static func decodeOther(_ first: UInt8, body: UnsafeRawBufferPointer, version: ProtocolVersion) throws(MQTTProtocolError) -> InboundPacket {
        try checkFixedHeader(first)
        // checkFixedHeader rejected the reserved types.
        let type = PacketType(rawValue: first >> 4) ?? .disconnect
        var reader = BodyReader(body, type: type)
        switch type {
        case .publish:
            return .publish(try decodePublish(first, body: body))
        case .connect:
            return .connect(try decodeConnect(&reader))
        case .connack:
            let flags = try reader.readByte(.connackFlags)
            let code = try reader.readByte(.returnCode)
            try reader.finish()
            var sessionPresent = false
            if version == .v3_1_1 {
                // [MQTT-3.2.2-1]: bits 7-1 are reserved and 0; [MQTT-3.2.2-4]: session present 0
                // with a non-zero return code. In 3.1 this byte is reserved and not used: ignored.
                if flags & 0xFE != 0 || (flags & 1 != 0 && code != 0) { throw .invalidConnAckFlags(flags) }
                sessionPresent = flags & 1 != 0
            }
            guard let returnCode = ConnectReturnCode(rawValue: code) else { throw .invalidConnectReturnCode(code) }
            return .connack(ConnAckPacket(sessionPresent: sessionPresent, returnCode: returnCode))
        case .puback, .pubrec, .pubrel, .pubcomp, .unsuback:
            let id = try reader.readPacketID()
            try reader.finish()
            switch type {
            case .puback: return .puback(id)
            case .pubrec: return .pubrec(id)
            case .pubrel: return .pubrel(id)
            case .pubcomp: return .pubcomp(id)
            default: return .unsuback(id)
            }
        case .subscribe:
            let id = try reader.readPacketID()
            var subscriptions: [TopicSubscription] = []
            while reader.remaining > 0 {
                let filter = try reader.readLengthPrefixed(.topicFilter)
                try MQTTValidation.validateTopicFilter(filter)
                let qos = try reader.readByte(.requestedQoS)
                // [MQTT-3.8.3-4]: the upper six bits are reserved and 0; QoS 3 is malformed.
                guard let requested = QoS(rawValue: qos) else { throw .invalidQoS(field: .requestedQoS, value: qos) }
                subscriptions.append(TopicSubscription(filter: String(decoding: filter, as: UTF8.self), qos: requested))
            }
            if subscriptions.isEmpty { throw .noTopicFilters(.subscribe) }  // [MQTT-3.8.3-3]
            return .subscribe(SubscribePacket(packetID: id, subscriptions: subscriptions))
        case .suback:
            let id = try reader.readPacketID()
            var codes: [SubAckReturnCode] = []
            codes.reserveCapacity(reader.remaining)
            while reader.remaining > 0 {
                let raw = try reader.readByte(.returnCode)
                // 0x80 is accepted for 3.1 too: 3.1 defines no failure code, but brokers send it.
                guard let code = SubAckReturnCode(rawValue: raw) else { throw .invalidSubAckReturnCode(raw) }
                codes.append(code)
            }
            // One code per filter of the SUBSCRIBE, which has at least one [MQTT-3.9.3-1].
            if codes.isEmpty { throw .noTopicFilters(.suback) }
            return .suback(SubAckPacket(packetID: id, returnCodes: codes))
        case .unsubscribe:
            let id = try reader.readPacketID()
            var filters: [String] = []
            while reader.remaining > 0 {
                let filter = try reader.readLengthPrefixed(.topicFilter)
                try MQTTValidation.validateTopicFilter(filter)
                filters.append(String(decoding: filter, as: UTF8.self))
            }
            if filters.isEmpty { throw .noTopicFilters(.unsubscribe) }  // [MQTT-3.10.3-2]
            return .unsubscribe(UnsubscribePacket(packetID: id, filters: filters))
        case .pingreq, .pingresp, .disconnect:
            try reader.finish()
            switch type {
            case .pingreq: return .pingreq
            case .pingresp: return .pingresp
            default: return .disconnect
            }
        }
    }

    /// CONNECT (section 3.1), for fake brokers in tests.
    static func decodeConnect(_ reader: inout BodyReader) throws(MQTTProtocolError) -> ConnectPacket {
        let name = try reader.readLengthPrefixed(.protocolName)
        let level = try reader.readByte(.protocolLevel)
        let version: ProtocolVersion
        if name.elementsEqual("MQTT".utf8) {
            version = .v3_1_1
        } else if name.elementsEqual("MQIsdp".utf8) {
            version = .v3_1
        } else {
            throw .invalidProtocolName(String(decoding: name, as: UTF8.self))  // [MQTT-3.1.2-1]
        }
        if level != version.rawValue { throw .unsupportedProtocolLevel(level) }  // [MQTT-3.1.2-2]
        let flags = try reader.readByte(.connectFlags)
        if flags & 0x01 != 0 { throw .reservedConnectFlagSet }  // [MQTT-3.1.2-3]
        let willFlag = flags & 0x04 != 0
        let willQoSRaw = (flags >> 3) & 3
        let willRetain = flags & 0x20 != 0
        // [MQTT-3.1.2-11], [MQTT-3.1.2-13], [MQTT-3.1.2-15]: no will, no will QoS or retain;
        // [MQTT-3.1.2-14]: will QoS 3 is invalid.
        if (!willFlag && (willQoSRaw != 0 || willRetain)) || willQoSRaw == 3 { throw .invalidWillFlags }
        let hasUsername = flags & 0x80 != 0
        let hasPassword = flags & 0x40 != 0
        if hasPassword && !hasUsername { throw .passwordWithoutUsername }  // [MQTT-3.1.2-22]
        let keepAlive = try reader.readUInt16(.keepAlive)
        let idBytes = try reader.readLengthPrefixed(.clientID)
        try MQTTValidation.validateUTF8(idBytes, field: .clientID)
        let cleanSession = flags & 0x02 != 0
        switch version {
        case .v3_1:
            if idBytes.count < 1 || idBytes.count > 23 {
                throw .invalidClientID("MQTT 3.1 needs 1 to 23 bytes, got \(idBytes.count)")
            }
        case .v3_1_1:
            if idBytes.isEmpty && !cleanSession {
                throw .invalidClientID("an empty client identifier needs a clean session [MQTT-3.1.3-7]")
            }
        }
        var will: Will?
        if willFlag {
            let topic = try reader.readLengthPrefixed(.willTopic)
            try MQTTValidation.validateTopicName(topic)
            let payload = try reader.readLengthPrefixed(.willPayload)
            will = Will(
                topic: String(decoding: topic, as: UTF8.self), payload: [UInt8](payload),
                qos: QoS(rawValue: willQoSRaw) ?? .atMostOnce, retain: willRetain)
        }
        var username: String?
        if hasUsername {
            let bytes = try reader.readLengthPrefixed(.username)
            try MQTTValidation.validateUTF8(bytes, field: .username)
            username = String(decoding: bytes, as: UTF8.self)
        }
        var password: [UInt8]?
        if hasPassword { password = [UInt8](try reader.readLengthPrefixed(.password)) }
        try reader.finish()
        return ConnectPacket(
            version: version, clientID: String(decoding: idBytes, as: UTF8.self), cleanSession: cleanSession,
            keepAlive: keepAlive, will: will, username: username, password: password)
    }
}

/// Sequential reads over a contiguous packet body, with typed truncation errors.
@usableFromInline
struct BodyReader {
    let body: UnsafeRawBufferPointer
    let type: PacketType
    var offset = 0

    init(_ body: UnsafeRawBufferPointer, type: PacketType) {
        self.body = body
        self.type = type
    }

    @usableFromInline var remaining: Int { body.count &- offset }

    mutating func readByte(_ field: PacketField) throws(MQTTProtocolError) -> UInt8 {
        guard remaining >= 1 else { throw .truncated(type, field: field) }
        defer { offset &+= 1 }
        return body[offset]
    }

    mutating func readUInt16(_ field: PacketField) throws(MQTTProtocolError) -> UInt16 {
        guard remaining >= 2 else { throw .truncated(type, field: field) }
        defer { offset &+= 2 }
        return UInt16(body[offset]) << 8 | UInt16(body[offset &+ 1])
    }

    /// A non-zero packet identifier [MQTT-2.3.1-1].
    mutating func readPacketID() throws(MQTTProtocolError) -> UInt16 {
        let id = try readUInt16(.packetID)
        if id == 0 { throw .zeroPacketID(type) }
        return id
    }

    /// A two-byte length and that many bytes (string or binary data).
    mutating func readLengthPrefixed(_ field: PacketField) throws(MQTTProtocolError) -> UnsafeRawBufferPointer {
        let length = Int(try readUInt16(field))
        guard remaining >= length else { throw .truncated(type, field: field) }
        defer { offset &+= length }
        return UnsafeRawBufferPointer(rebasing: body[offset..<(offset &+ length)])
    }

    /// The remaining length must end exactly after the last field.
    func finish() throws(MQTTProtocolError) {
        if remaining != 0 { throw .trailingBytes(type, count: remaining) }
    }
}

/// The reusable copy target for packet bodies that straddle the ring's end.
@usableFromInline
final class DecoderScratch {
    var storage: UnsafeMutableRawPointer?
    var capacity = 0

    init() {}

    deinit { storage?.deallocate() }

    func copy(from ring: ByteRing, offset: Int, count: Int) -> UnsafeRawBufferPointer {
        if count > capacity {
            storage?.deallocate()
            capacity = ByteRing.roundUpToPowerOfTwo(max(256, count))
            storage = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        }
        let destination = storage.unsafelyUnwrapped
        ring.copyBytes(offset: offset, count: count, into: destination)
        return UnsafeRawBufferPointer(start: destination, count: count)
    }
}
