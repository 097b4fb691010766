public import MQTTProtocol
#if canImport(Glibc)
import Glibc
#endif

/// A received application message that owns its bytes.
///
/// The async API delivers these through ``MQTTClient/messages``; a callback that receives an
/// ``MQTTMessageView`` gets one with ``MQTTMessageView/makeOwned()``.
public struct MQTTMessage: Sendable, Hashable {
    /// The topic name the message was published to.
    public var topic: String
    /// The payload bytes (binary-safe).
    public var payload: [UInt8]
    /// The QoS the broker delivered it with (the lower of the publisher's and the subscription's).
    public var qos: QoS
    /// Whether it came from the broker's retained store (a new subscription's first message)
    /// [MQTT-3.3.1-9].
    public var retain: Bool
    /// Whether the broker marked it as a possible redelivery [MQTT-3.3.1-1].
    public var dup: Bool
    /// The payload length the message had on the wire: `payload.count`, except for a message
    /// over ``MQTTClientOptions/maximumIncomingPacketSize``, whose `payload` holds only the
    /// prefix that fit (see ``isTruncated``).
    public var totalPayloadLength: Int

    /// Whether `payload` is only a prefix: the message was larger than the incoming packet
    /// limit; the rest was skipped (and the message acknowledged per its QoS).
    public var isTruncated: Bool { totalPayloadLength > payload.count }

    /// Creates a message.
    ///
    /// - Parameters:
    ///   - topic: The topic name.
    ///   - payload: The payload bytes.
    ///   - qos: Delivery QoS.
    ///   - retain: Retained-message flag.
    ///   - dup: Redelivery flag.
    ///   - totalPayloadLength: The length on the wire, when `payload` is a prefix; nil for
    ///     `payload.count`.
    public init(topic: String, payload: [UInt8], qos: QoS = .atMostOnce, retain: Bool = false, dup: Bool = false,
                totalPayloadLength: Int? = nil) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.dup = dup
        self.totalPayloadLength = max(totalPayloadLength ?? payload.count, payload.count)
    }

    /// The payload decoded as UTF-8 (invalid sequences replaced).
    public var payloadString: String { String(decoding: payload, as: UTF8.self) }
}

/// A received message read in place from the client's receive buffer.
///
/// Handed to the NodeMCU-style `message` and `overflow` handlers on the event loop thread. Its
/// topic and payload point into the ring buffer the socket was read into (or, for a packet that
/// wrapped around the ring's end, the decoder's scratch buffer): nothing was copied to deliver
/// it. The view is valid only for the duration of the callback; keep ``makeOwned()`` to use the
/// message later or on another thread.
public struct MQTTMessageView {
    /// Topic name bytes (UTF-8, validated by the decoder).
    public let topicBytes: UnsafeRawBufferPointer
    /// Payload bytes. For an `overflow` event: the prefix that fit within the packet limit.
    public let payload: UnsafeRawBufferPointer
    /// Delivery QoS.
    public let qos: QoS
    /// Retained-message flag [MQTT-3.3.1-9].
    public let retain: Bool
    /// Redelivery flag [MQTT-3.3.1-1].
    public let dup: Bool
    /// The full payload length: equal to `payload.count`, except for an `overflow` event where
    /// `payload` holds only the prefix.
    public let totalPayloadLength: Int

    @usableFromInline
    init(topicBytes: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer, qos: QoS, retain: Bool, dup: Bool, totalPayloadLength: Int) {
        self.topicBytes = topicBytes
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.dup = dup
        self.totalPayloadLength = totalPayloadLength
    }

    @usableFromInline
    init(_ view: PublishView) {
        self.init(topicBytes: view.topic, payload: view.payload, qos: view.qos, retain: view.retain, dup: view.dup,
                  totalPayloadLength: view.payload.count)
    }

    /// The topic as a `String` (allocates).
    public var topic: String { String(decoding: topicBytes, as: UTF8.self) }

    /// The payload decoded as UTF-8 (allocates; invalid sequences replaced).
    public var payloadString: String { String(decoding: payload, as: UTF8.self) }

    /// Whether the topic equals `name`, compared byte by byte without building a `String`.
    public func topicEquals(_ name: String) -> Bool {
        var name = name
        return name.withUTF8 { utf8 in
            utf8.count == topicBytes.count && (utf8.isEmpty || memcmp(utf8.baseAddress!, topicBytes.baseAddress!, utf8.count) == 0)
        }
    }

    /// An owned copy (allocates the topic string and the payload array).
    public func makeOwned() -> MQTTMessage {
        MQTTMessage(topic: topic, payload: [UInt8](payload), qos: qos, retain: retain, dup: dup,
                    totalPayloadLength: totalPayloadLength)
    }
}
