/// A field of a control packet, named in errors.
public enum PacketField: String, Sendable, Hashable {
    /// The first byte: packet type and flags.
    case fixedHeader
    /// The variable-length size after the first byte.
    case remainingLength
    /// CONNECT: `MQTT` (3.1.1) or `MQIsdp` (3.1).
    case protocolName
    /// CONNECT: 4 (3.1.1) or 3 (3.1).
    case protocolLevel
    /// CONNECT: the flags byte (clean session, will, credentials).
    case connectFlags
    /// CONNECT: the keepalive in seconds.
    case keepAlive
    /// CONNECT: the client identifier.
    case clientID
    /// CONNECT: the will topic.
    case willTopic
    /// CONNECT: the will message.
    case willPayload
    /// CONNECT: the user name.
    case username
    /// CONNECT: the password.
    case password
    /// CONNACK: the acknowledge flags (session present).
    case connackFlags
    /// CONNACK / SUBACK: a return code.
    case returnCode
    /// PUBLISH: the topic name.
    case topicName
    /// SUBSCRIBE / UNSUBSCRIBE: a topic filter.
    case topicFilter
    /// SUBSCRIBE: the QoS requested for a filter.
    case requestedQoS
    /// A packet identifier.
    case packetID
    /// The payload.
    case payload
}

/// Input that breaks the MQTT 3.1 / 3.1.1 rules, with the offending field and the normative
/// statement it breaks.
///
/// Decoding network input never traps: every violation surfaces as one of these cases. Encoding
/// validates too, so the client never sends what a broker would have to reject.
///
/// Not frozen: later versions may add cases (a new failure reason, a new request error). Switch
/// over it with a `default:` (or `@unknown default:`) branch.
public enum MQTTProtocolError: Error, Sendable, Hashable {
    /// Packet type 0 or 15 [MQTT-2.2.1].
    case reservedPacketType(UInt8)
    /// Fixed-header flags that the spec fixes have other values [MQTT-2.2.2-1], [MQTT-2.2.2-2].
    case invalidFlags(PacketType, flags: UInt8)
    /// The remaining length uses more than 4 bytes [MQTT-2.2.3].
    case malformedRemainingLength
    /// A packet is larger than the receiver's (or the protocol's, 268,435,455 bytes) limit.
    ///
    /// From the decoder, `size` is the whole packet (fixed header included) and `limit` the
    /// decoder's maximum packet size; from the encoder, both are remaining lengths; from the
    /// client state machine's CONNECT check (a `connectFailed(.protocolError(...))`), `size` is
    /// the whole CONNECT and `limit` its ``MQTTClientConfiguration/maximumOutgoingPacketSize``.
    case packetTooLarge(size: Int, limit: Int)
    /// The packet ends inside a field.
    case truncated(PacketType, field: PacketField)
    /// The remaining length holds bytes after the last field.
    case trailingBytes(PacketType, count: Int)
    /// QoS 3 [MQTT-3.3.1-4], or a requested QoS above 2 in SUBSCRIBE [MQTT-3.8.3-4].
    case invalidQoS(field: PacketField, value: UInt8)
    /// DUP set on a QoS 0 PUBLISH [MQTT-3.3.1-2].
    case dupOnQoS0
    /// A packet identifier of 0 where one is required [MQTT-2.3.1-1].
    case zeroPacketID(PacketType)
    /// Ill-formed UTF-8, including surrogates U+D800..U+DFFF [MQTT-1.5.3-1].
    case invalidUTF8(field: PacketField)
    /// U+0000 inside a string [MQTT-1.5.3-2].
    case nullCharacter(field: PacketField)
    /// A string or binary field longer than 65,535 bytes [MQTT-1.5.3].
    case fieldTooLong(field: PacketField, length: Int)
    /// An empty topic name or filter [MQTT-4.7.3-1].
    case emptyTopic(field: PacketField)
    /// `+` or `#` in a topic name [MQTT-3.3.2-2], [MQTT-4.7.1-1].
    case wildcardInTopicName
    /// `#` not alone in the last level of a topic filter [MQTT-4.7.1-2].
    case misplacedMultiLevelWildcard(String)
    /// `+` not alone in its level of a topic filter [MQTT-4.7.1-3].
    case misplacedSingleLevelWildcard(String)
    /// A `$share/{group}/{filter}` filter with an empty group, a wildcard in the group, or no
    /// filter after it (the rule of MQTT 5.0 §4.8.2, which brokers apply to 3.1.1 clients too).
    case invalidSharedSubscription(String)
    /// Protocol name other than `MQTT` (level 4) / `MQIsdp` (level 3) [MQTT-3.1.2-1].
    case invalidProtocolName(String)
    /// Protocol level other than 3 or 4 [MQTT-3.1.2-2].
    case unsupportedProtocolLevel(UInt8)
    /// The reserved bit of the CONNECT flags is set [MQTT-3.1.2-3].
    case reservedConnectFlagSet
    /// Will QoS / retain set without the will flag, or will QoS 3
    /// [MQTT-3.1.2-11], [MQTT-3.1.2-13], [MQTT-3.1.2-14], [MQTT-3.1.2-15].
    case invalidWillFlags
    /// Password flag without the user name flag [MQTT-3.1.2-22].
    case passwordWithoutUsername
    /// Client identifier not allowed: empty without clean session [MQTT-3.1.3-7], [MQTT-3.1.3-8],
    /// or outside 1-23 characters for MQTT 3.1.
    case invalidClientID(String)
    /// CONNACK acknowledge flags with reserved bits set [MQTT-3.2.2-1], or session present with
    /// a non-zero return code [MQTT-3.2.2-4].
    case invalidConnAckFlags(UInt8)
    /// CONNACK return code above 5 [MQTT-3.2.2-6].
    case invalidConnectReturnCode(UInt8)
    /// SUBACK return code other than 0, 1, 2, 0x80 [MQTT-3.9.3-2].
    case invalidSubAckReturnCode(UInt8)
    /// SUBSCRIBE with no topic filter [MQTT-3.8.3-3], UNSUBSCRIBE with none [MQTT-3.10.3-2], or
    /// SUBACK with no return code (one per filter of the SUBSCRIBE [MQTT-3.9.3-1]).
    case noTopicFilters(PacketType)
    /// A client-side decoder received a packet only a client sends (or the reverse).
    case unexpectedPacket(PacketType)

    /// The normative statement (or section) the input breaks, e.g. `MQTT-3.3.2-2`.
    public var rule: String {
        switch self {
        case .reservedPacketType: "MQTT-2.2.1"
        case .invalidFlags(let type, _): type == .publish ? "MQTT-3.3.1-4" : "MQTT-2.2.2-2"
        case .malformedRemainingLength: "MQTT-2.2.3"
        case .packetTooLarge: "MQTT-2.2.3"
        case .truncated: "MQTT-2.2.3"
        case .trailingBytes: "MQTT-2.2.3"
        case .invalidQoS(let field, _): field == .requestedQoS ? "MQTT-3.8.3-4" : "MQTT-3.3.1-4"
        case .dupOnQoS0: "MQTT-3.3.1-2"
        case .zeroPacketID: "MQTT-2.3.1-1"
        case .invalidUTF8: "MQTT-1.5.3-1"
        case .nullCharacter: "MQTT-1.5.3-2"
        case .fieldTooLong: "MQTT-1.5.3"
        case .emptyTopic: "MQTT-4.7.3-1"
        case .wildcardInTopicName: "MQTT-3.3.2-2"
        case .misplacedMultiLevelWildcard: "MQTT-4.7.1-2"
        case .misplacedSingleLevelWildcard: "MQTT-4.7.1-3"
        case .invalidSharedSubscription: "MQTT-5.0-4.8.2"
        case .invalidProtocolName: "MQTT-3.1.2-1"
        case .unsupportedProtocolLevel: "MQTT-3.1.2-2"
        case .reservedConnectFlagSet: "MQTT-3.1.2-3"
        case .invalidWillFlags: "MQTT-3.1.2-11"
        case .passwordWithoutUsername: "MQTT-3.1.2-22"
        case .invalidClientID: "MQTT-3.1.3-8"
        case .invalidConnAckFlags: "MQTT-3.2.2-1"
        case .invalidConnectReturnCode: "MQTT-3.2.2-6"
        case .invalidSubAckReturnCode: "MQTT-3.9.3-2"
        case .noTopicFilters(let type):
            switch type {
            case .unsubscribe: "MQTT-3.10.3-2"
            case .suback: "MQTT-3.9.3-1"
            default: "MQTT-3.8.3-3"
            }
        case .unexpectedPacket: "MQTT-4.8.0-1"
        }
    }
}

extension MQTTProtocolError: CustomStringConvertible {
    public var description: String {
        let what: String
        switch self {
        case .reservedPacketType(let t): what = "reserved packet type \(t)"
        case .invalidFlags(let type, let flags): what = "invalid fixed-header flags 0x\(String(flags, radix: 16)) for \(type)"
        case .malformedRemainingLength: what = "remaining length longer than 4 bytes"
        case .packetTooLarge(let size, let limit): what = "packet of \(size) bytes exceeds the limit of \(limit)"
        case .truncated(let type, let field): what = "\(type) ends inside \(field.rawValue)"
        case .trailingBytes(let type, let count): what = "\(count) unexpected bytes after the last field of \(type)"
        case .invalidQoS(let field, let value): what = "invalid QoS \(value) in \(field.rawValue)"
        case .dupOnQoS0: what = "DUP flag set on a QoS 0 PUBLISH"
        case .zeroPacketID(let type): what = "packet identifier 0 in \(type)"
        case .invalidUTF8(let field): what = "ill-formed UTF-8 in \(field.rawValue)"
        case .nullCharacter(let field): what = "U+0000 in \(field.rawValue)"
        case .fieldTooLong(let field, let length): what = "\(field.rawValue) of \(length) bytes exceeds 65535"
        case .emptyTopic(let field): what = "empty \(field.rawValue)"
        case .wildcardInTopicName: what = "wildcard in a topic name"
        case .misplacedMultiLevelWildcard(let f): what = "'#' must be alone in the last level: '\(f)'"
        case .misplacedSingleLevelWildcard(let f): what = "'+' must fill a whole level: '\(f)'"
        case .invalidSharedSubscription(let f): what = "shared subscription needs $share/{group}/{filter}, a group without wildcards: '\(f)'"
        case .invalidProtocolName(let n): what = "unknown protocol name '\(n)'"
        case .unsupportedProtocolLevel(let l): what = "unsupported protocol level \(l)"
        case .reservedConnectFlagSet: what = "reserved CONNECT flag set"
        case .invalidWillFlags: what = "will QoS/retain inconsistent with the will flag"
        case .passwordWithoutUsername: what = "password without user name"
        case .invalidClientID(let why): what = "client identifier not allowed: \(why)"
        case .invalidConnAckFlags(let f): what = "invalid CONNACK flags 0x\(String(f, radix: 16))"
        case .invalidConnectReturnCode(let c): what = "invalid CONNACK return code \(c)"
        case .invalidSubAckReturnCode(let c): what = "invalid SUBACK return code 0x\(String(c, radix: 16))"
        case .noTopicFilters(let type): what = "\(type) without topic filters"
        case .unexpectedPacket(let type): what = "unexpected \(type) packet"
        }
        return "\(what) [\(rule)]"
    }
}
