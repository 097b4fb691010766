/// The protocol level a client speaks.
///
/// MQTT 3.1.1 (OASIS standard) uses protocol name `MQTT` and level 4; IBM's MQTT 3.1 uses
/// protocol name `MQIsdp` and level 3.
public enum ProtocolVersion: UInt8, Sendable, Hashable, CaseIterable {
    /// IBM MQTT 3.1: protocol name `MQIsdp`, level 3.
    case v3_1 = 3
    /// OASIS MQTT 3.1.1: protocol name `MQTT`, level 4.
    case v3_1_1 = 4

    /// The protocol name written in CONNECT.
    public var protocolName: String {
        switch self {
        case .v3_1: "MQIsdp"
        case .v3_1_1: "MQTT"
        }
    }
}

/// Quality of service of a message.
public enum QoS: UInt8, Sendable, Hashable, Comparable, CaseIterable {
    /// At most once: fire and forget.
    case atMostOnce = 0
    /// At least once: PUBLISH / PUBACK.
    case atLeastOnce = 1
    /// Exactly once: PUBLISH / PUBREC / PUBREL / PUBCOMP.
    case exactlyOnce = 2

    /// Orders by level: at most once < at least once < exactly once.
    public static func < (lhs: QoS, rhs: QoS) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// The control packet types (MQTT 3.1.1 section 2.2.1). 0 and 15 are reserved [MQTT-2.2.1].
public enum PacketType: UInt8, Sendable, Hashable, CaseIterable {
    /// CONNECT: client asks to connect (3.1).
    case connect = 1
    /// CONNACK: the broker's answer to CONNECT (3.2).
    case connack = 2
    /// PUBLISH: an application message, either direction (3.3).
    case publish = 3
    /// PUBACK: QoS 1 acknowledgement (3.4).
    case puback = 4
    /// PUBREC: QoS 2, part 1 (3.5).
    case pubrec = 5
    /// PUBREL: QoS 2, part 2 (3.6).
    case pubrel = 6
    /// PUBCOMP: QoS 2, part 3 (3.7).
    case pubcomp = 7
    /// SUBSCRIBE: client subscribes (3.8).
    case subscribe = 8
    /// SUBACK: the broker's answer to SUBSCRIBE (3.9).
    case suback = 9
    /// UNSUBSCRIBE: client unsubscribes (3.10).
    case unsubscribe = 10
    /// UNSUBACK: the broker's answer to UNSUBSCRIBE (3.11).
    case unsuback = 11
    /// PINGREQ: client keepalive probe (3.12).
    case pingreq = 12
    /// PINGRESP: the broker's answer to PINGREQ (3.13).
    case pingresp = 13
    /// DISCONNECT: clean close by the client (3.14).
    case disconnect = 14
}

/// A will message, published by the broker when the client is lost without DISCONNECT.
public struct Will: Sendable, Hashable {
    /// Topic name (no wildcards).
    public var topic: String
    /// Binary-safe payload.
    public var payload: [UInt8]
    /// QoS the broker publishes it with.
    public var qos: QoS
    /// Whether the broker retains it.
    public var retain: Bool

    /// Creates a will.
    ///
    /// - Parameters:
    ///   - topic: Topic name (no wildcards).
    ///   - payload: Payload bytes.
    ///   - qos: QoS the broker publishes it with.
    ///   - retain: Whether the broker retains it.
    public init(topic: String, payload: [UInt8], qos: QoS = .atMostOnce, retain: Bool = false) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
    }
}

/// CONNECT (client to server), MQTT 3.1.1 section 3.1.
public struct ConnectPacket: Sendable, Hashable {
    /// Protocol name and level written into the variable header.
    public var version: ProtocolVersion
    /// Client identifier. MQTT 3.1 requires 1-23 characters; 3.1.1 allows an empty one with a
    /// clean session [MQTT-3.1.3-7].
    public var clientID: String
    /// Clean session flag [MQTT-3.1.2-6].
    public var cleanSession: Bool
    /// Keep-alive interval in seconds; 0 disables the keep-alive mechanism.
    public var keepAlive: UInt16
    /// Last will, or nil [MQTT-3.1.2-8].
    public var will: Will?
    /// User name, or nil.
    public var username: String?
    /// Password bytes (binary data in 3.1.1).
    public var password: [UInt8]?

    /// Creates a CONNECT; ``MQTTEncoder`` validates it when encoding.
    ///
    /// - Parameters:
    ///   - version: Protocol level.
    ///   - clientID: Client identifier.
    ///   - cleanSession: Clean session flag.
    ///   - keepAlive: Keepalive in seconds (0 = off).
    ///   - will: Last will.
    ///   - username: User name.
    ///   - password: Password bytes (needs a user name [MQTT-3.1.2-22]).
    public init(
        version: ProtocolVersion = .v3_1_1,
        clientID: String,
        cleanSession: Bool = true,
        keepAlive: UInt16 = 60,
        will: Will? = nil,
        username: String? = nil,
        password: [UInt8]? = nil
    ) {
        self.version = version
        self.clientID = clientID
        self.cleanSession = cleanSession
        self.keepAlive = keepAlive
        self.will = will
        self.username = username
        self.password = password
    }
}

/// The CONNACK return code (MQTT 3.1.1 table 3.1).
public enum ConnectReturnCode: UInt8, Sendable, Hashable, CaseIterable {
    /// 0: connection accepted.
    case accepted = 0
    /// 1: the broker does not support the protocol level.
    case unacceptableProtocolVersion = 1
    /// 2: the client identifier is not allowed.
    case identifierRejected = 2
    /// 3: the MQTT service is unavailable.
    case serverUnavailable = 3
    /// 4: malformed user name or password.
    case badUsernameOrPassword = 4
    /// 5: the client is not authorised to connect.
    case notAuthorized = 5
}

/// CONNACK (server to client), MQTT 3.1.1 section 3.2.
public struct ConnAckPacket: Sendable, Hashable {
    /// Session present flag (3.1.1 only; always false for 3.1, whose byte 1 is reserved).
    public var sessionPresent: Bool
    /// The broker's verdict.
    public var returnCode: ConnectReturnCode

    /// Creates a CONNACK.
    ///
    /// - Parameters:
    ///   - sessionPresent: Session present flag.
    ///   - returnCode: Return code.
    public init(sessionPresent: Bool = false, returnCode: ConnectReturnCode = .accepted) {
        self.sessionPresent = sessionPresent
        self.returnCode = returnCode
    }
}

/// PUBLISH with owned topic and payload (either direction), MQTT 3.1.1 section 3.3.
///
/// The receive path uses ``PublishView`` instead, which reads topic and payload in place.
public struct PublishPacket: Sendable, Hashable {
    /// Topic name (no wildcards [MQTT-3.3.2-2]).
    public var topic: String
    /// Payload bytes (binary-safe).
    public var payload: [UInt8]
    /// Quality of service.
    public var qos: QoS
    /// Retain flag [MQTT-3.3.1-5].
    public var retain: Bool
    /// DUP flag: set on a redelivery; must be 0 for QoS 0 [MQTT-3.3.1-2].
    public var dup: Bool
    /// Packet identifier: 0 for QoS 0 (not encoded), non-zero otherwise [MQTT-2.3.1-1].
    public var packetID: UInt16

    /// Creates a PUBLISH; ``MQTTEncoder`` validates it when encoding.
    ///
    /// - Parameters:
    ///   - topic: Topic name.
    ///   - payload: Payload bytes.
    ///   - qos: Quality of service.
    ///   - retain: Retain flag.
    ///   - dup: DUP flag.
    ///   - packetID: Packet identifier (0 for QoS 0).
    public init(topic: String, payload: [UInt8], qos: QoS = .atMostOnce, retain: Bool = false, dup: Bool = false, packetID: UInt16 = 0) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.dup = dup
        self.packetID = packetID
    }
}

/// A PUBLISH read in place: topic and payload point into the receive buffer.
///
/// Valid only until the decoder or the buffer is next used (for the duration of a callback).
/// ``makeOwned()`` copies it.
public struct PublishView {
    /// Topic name bytes (UTF-8, validated by the decoder).
    public let topic: UnsafeRawBufferPointer
    /// Payload bytes.
    public let payload: UnsafeRawBufferPointer
    /// Quality of service.
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
    ///   - payload: Payload bytes.
    ///   - qos: Quality of service.
    ///   - retain: Retain flag.
    ///   - dup: DUP flag.
    ///   - packetID: Packet identifier (0 for QoS 0).
    public init(topic: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer, qos: QoS, retain: Bool, dup: Bool, packetID: UInt16) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.dup = dup
        self.packetID = packetID
    }

    /// The topic as a `String` (allocates).
    public var topicString: String { String(decoding: topic, as: UTF8.self) }

    /// An owned copy.
    public func makeOwned() -> PublishPacket {
        PublishPacket(topic: topicString, payload: [UInt8](payload), qos: qos, retain: retain, dup: dup, packetID: packetID)
    }
}

/// One topic filter of a SUBSCRIBE with its requested QoS.
public struct TopicSubscription: Sendable, Hashable {
    /// Topic filter (`+` and `#` wildcards allowed).
    public var filter: String
    /// Requested QoS (the most the broker sends with for this filter).
    public var qos: QoS

    /// Creates a subscription.
    ///
    /// - Parameters:
    ///   - filter: Topic filter.
    ///   - qos: Requested QoS.
    public init(filter: String, qos: QoS) {
        self.filter = filter
        self.qos = qos
    }
}

/// SUBSCRIBE (client to server), MQTT 3.1.1 section 3.8.
public struct SubscribePacket: Sendable, Hashable {
    /// Non-zero [MQTT-2.3.1-1].
    public var packetID: UInt16
    /// At least one [MQTT-3.8.3-3].
    public var subscriptions: [TopicSubscription]

    /// Creates a SUBSCRIBE.
    ///
    /// - Parameters:
    ///   - packetID: Packet identifier.
    ///   - subscriptions: Filters with their requested QoS.
    public init(packetID: UInt16, subscriptions: [TopicSubscription]) {
        self.packetID = packetID
        self.subscriptions = subscriptions
    }
}

/// One SUBACK return code (MQTT 3.1.1 section 3.9.3): a granted QoS or failure (0x80).
public enum SubAckReturnCode: Sendable, Hashable {
    /// The subscription was accepted with this maximum QoS (may be lower than requested).
    case granted(QoS)
    /// 0x80. MQTT 3.1 has no failure code; a 3.1 broker never sends it.
    case failure

    /// The wire value.
    public var rawValue: UInt8 {
        switch self {
        case .granted(let qos): qos.rawValue
        case .failure: 0x80
        }
    }

    /// Decodes a wire value; nil for values the spec does not allow [MQTT-3.9.3-2].
    public init?(rawValue: UInt8) {
        switch rawValue {
        case 0, 1, 2: self = .granted(QoS(rawValue: rawValue)!)
        case 0x80: self = .failure
        default: return nil
        }
    }
}

/// SUBACK (server to client), MQTT 3.1.1 section 3.9.
public struct SubAckPacket: Sendable, Hashable {
    /// The SUBSCRIBE's packet identifier.
    public var packetID: UInt16
    /// One per topic filter of the SUBSCRIBE, in order [MQTT-3.8.4-5].
    public var returnCodes: [SubAckReturnCode]

    /// Creates a SUBACK.
    ///
    /// - Parameters:
    ///   - packetID: The SUBSCRIBE's packet identifier.
    ///   - returnCodes: One per filter.
    public init(packetID: UInt16, returnCodes: [SubAckReturnCode]) {
        self.packetID = packetID
        self.returnCodes = returnCodes
    }
}

/// UNSUBSCRIBE (client to server), MQTT 3.1.1 section 3.10.
public struct UnsubscribePacket: Sendable, Hashable {
    /// Non-zero [MQTT-2.3.1-1].
    public var packetID: UInt16
    /// At least one [MQTT-3.10.3-2].
    public var filters: [String]

    /// Creates an UNSUBSCRIBE.
    ///
    /// - Parameters:
    ///   - packetID: Packet identifier.
    ///   - filters: The filters to remove.
    public init(packetID: UInt16, filters: [String]) {
        self.packetID = packetID
        self.filters = filters
    }
}

/// Any control packet, owned.
public enum Packet: Sendable, Hashable {
    /// CONNECT.
    case connect(ConnectPacket)
    /// CONNACK.
    case connack(ConnAckPacket)
    /// PUBLISH with owned topic and payload.
    case publish(PublishPacket)
    /// PUBACK.
    case puback(packetID: UInt16)
    /// PUBREC.
    case pubrec(packetID: UInt16)
    /// PUBREL.
    case pubrel(packetID: UInt16)
    /// PUBCOMP.
    case pubcomp(packetID: UInt16)
    /// SUBSCRIBE.
    case subscribe(SubscribePacket)
    /// SUBACK.
    case suback(SubAckPacket)
    /// UNSUBSCRIBE.
    case unsubscribe(UnsubscribePacket)
    /// UNSUBACK.
    case unsuback(packetID: UInt16)
    /// PINGREQ.
    case pingreq
    /// PINGRESP.
    case pingresp
    /// DISCONNECT.
    case disconnect

    /// The packet's type.
    public var type: PacketType {
        switch self {
        case .connect: .connect
        case .connack: .connack
        case .publish: .publish
        case .puback: .puback
        case .pubrec: .pubrec
        case .pubrel: .pubrel
        case .pubcomp: .pubcomp
        case .subscribe: .subscribe
        case .suback: .suback
        case .unsubscribe: .unsubscribe
        case .unsuback: .unsuback
        case .pingreq: .pingreq
        case .pingresp: .pingresp
        case .disconnect: .disconnect
        }
    }
}
