/// A packet as the decoder hands it out.
///
/// PUBLISH arrives as a ``PublishView`` whose topic and payload point into the receive ring (or
/// into the decoder's scratch buffer for a packet that wrapped around the ring's end): valid only
/// until the next call to ``MQTTDecoder/next(in:)`` or ``MQTTDecoder/releaseLastFrame(in:)``.
/// The other packets are small and owned.
///
/// The decoder decodes packets of both directions; the server-bound ones (`connect`, `subscribe`,
/// `unsubscribe`, `pingreq`) serve the fake brokers of the tests. A client treats them as
/// ``MQTTProtocolError/unexpectedPacket(_:)``.
public enum InboundPacket {
    /// PUBLISH read in place (topic and payload point into the ring or the scratch buffer).
    case publish(PublishView)
    /// A PUBLISH larger than the decoder's maximum packet size: reported once with the prefix
    /// that fits; the rest of it is skipped as it arrives.
    case oversizePublish(OversizePublishView)
    /// CONNACK (3.1: session present always false).
    case connack(ConnAckPacket)
    /// PUBACK with its non-zero packet identifier.
    case puback(UInt16)
    /// PUBREC with its non-zero packet identifier.
    case pubrec(UInt16)
    /// PUBREL with its non-zero packet identifier.
    case pubrel(UInt16)
    /// PUBCOMP with its non-zero packet identifier.
    case pubcomp(UInt16)
    /// SUBACK with one return code per filter of the SUBSCRIBE.
    case suback(SubAckPacket)
    /// UNSUBACK with its non-zero packet identifier.
    case unsuback(UInt16)
    /// PINGREQ (server-bound).
    case pingreq
    /// PINGRESP.
    case pingresp
    /// DISCONNECT (server-bound).
    case disconnect
    /// CONNECT (server-bound; owned, allocates).
    case connect(ConnectPacket)
    /// SUBSCRIBE (server-bound; owned, allocates).
    case subscribe(SubscribePacket)
    /// UNSUBSCRIBE (server-bound; owned, allocates).
    case unsubscribe(UnsubscribePacket)

    /// The packet's type.
    @inlinable
    public var type: PacketType {
        switch self {
        case .publish, .oversizePublish: .publish
        case .connack: .connack
        case .puback: .puback
        case .pubrec: .pubrec
        case .pubrel: .pubrel
        case .pubcomp: .pubcomp
        case .suback: .suback
        case .unsuback: .unsuback
        case .pingreq: .pingreq
        case .pingresp: .pingresp
        case .disconnect: .disconnect
        case .connect: .connect
        case .subscribe: .subscribe
        case .unsubscribe: .unsubscribe
        }
    }

    /// An owned copy as a ``Packet`` (allocates; tests and slow paths). An oversize PUBLISH
    /// becomes a PUBLISH carrying only the payload prefix.
    public func makeOwned() -> Packet {
        switch self {
        case .publish(let view): .publish(view.makeOwned())
        case .oversizePublish(let view):
            .publish(PublishPacket(
                topic: view.topicString, payload: [UInt8](view.payloadPrefix), qos: view.qos,
                retain: view.retain, dup: view.dup, packetID: view.packetID))
        case .connack(let p): .connack(p)
        case .puback(let id): .puback(packetID: id)
        case .pubrec(let id): .pubrec(packetID: id)
        case .pubrel(let id): .pubrel(packetID: id)
        case .pubcomp(let id): .pubcomp(packetID: id)
        case .suback(let p): .suback(p)
        case .unsuback(let id): .unsuback(packetID: id)
        case .pingreq: .pingreq
        case .pingresp: .pingresp
        case .disconnect: .disconnect
        case .connect(let p): .connect(p)
        case .subscribe(let p): .subscribe(p)
        case .unsubscribe(let p): .unsubscribe(p)
        }
    }
}

/// The head of a PUBLISH larger than the decoder's maximum packet size.
///
/// This is what NodeMCU's "overflow" event carries: the topic and the first bytes of the payload
/// (so that the whole packet up to that point fits within the maximum packet size), and the full
/// payload length. The remainder is skipped by the decoder without buffering it. Topic and prefix
/// point into the receive ring or the decoder's scratch buffer, with the lifetime of a
/// ``PublishView``. A QoS 1 or 2 oversize PUBLISH must still be acknowledged with ``packetID``.
public struct OversizePublishView {
    /// Topic name bytes (UTF-8, validated).
    public let topic: UnsafeRawBufferPointer
    /// The first bytes of the payload.
    public let payloadPrefix: UnsafeRawBufferPointer
    /// The payload's full length in bytes.
    public let totalPayloadLength: Int
    /// Quality of service (QoS 1 / 2 still need their acknowledgement).
    public let qos: QoS
    /// Retain flag.
    public let retain: Bool
    /// DUP flag.
    public let dup: Bool
    /// 0 for QoS 0.
    public let packetID: UInt16

    /// Creates a view over bytes the caller keeps alive (the decoder, or a test).
    ///
    /// - Parameters:
    ///   - topic: Topic name bytes.
    ///   - payloadPrefix: The payload bytes that fit.
    ///   - totalPayloadLength: The payload's full length.
    ///   - qos: Quality of service.
    ///   - retain: Retain flag.
    ///   - dup: DUP flag.
    ///   - packetID: Packet identifier (0 for QoS 0).
    public init(
        topic: UnsafeRawBufferPointer, payloadPrefix: UnsafeRawBufferPointer, totalPayloadLength: Int,
        qos: QoS, retain: Bool, dup: Bool, packetID: UInt16
    ) {
        self.topic = topic
        self.payloadPrefix = payloadPrefix
        self.totalPayloadLength = totalPayloadLength
        self.qos = qos
        self.retain = retain
        self.dup = dup
        self.packetID = packetID
    }

    /// The topic as a `String` (allocates).
    public var topicString: String { String(decoding: topic, as: UTF8.self) }
}
