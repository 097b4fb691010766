/// Why a WebSocket connection (RFC 6455) failed: a refused or malformed opening handshake, a
/// frame that breaks the protocol, or the server's close.
///
/// Reported as ``TransportError/webSocket(_:)``. Not frozen: later versions may add cases;
/// switch over it with a `default:` branch.
public enum WebSocketError: Error, Sendable, Hashable {
    /// The server answered the upgrade request with a status other than 101 (RFC 6455 §4.1:
    /// the client must fail the connection); carries the status code and the reason phrase.
    case handshakeStatus(Int, String)
    /// The response is not HTTP/1.1, a header line is malformed, or the headers exceed the limit.
    case malformedHandshake(String)
    /// The response lacks `Upgrade: websocket` or `Connection: Upgrade`.
    case missingUpgrade
    /// The response has no `Sec-WebSocket-Accept` header.
    case missingAccept
    /// `Sec-WebSocket-Accept` is not the base64 SHA-1 of the key sent and the RFC's GUID.
    case wrongAccept(expected: String, received: String)
    /// The server selected no subprotocol or another one than requested (`mqtt`, or
    /// `mqttv3.1` for MQTT 3.1) [MQTT-6.0.0-3].
    case wrongSubprotocol(expected: String, received: String?)
    /// The server selected an extension although the client offered none (RFC 6455 §4.1).
    case unexpectedExtension(String)
    /// A frame with RSV1, RSV2 or RSV3 set, while no extension was negotiated (§5.2).
    case reservedBits(UInt8)
    /// A frame with a reserved opcode (3-7, 0xB-0xF).
    case reservedOpcode(UInt8)
    /// A text frame: MQTT travels in binary frames only [MQTT-6.0.0-1].
    case textFrame
    /// A continuation frame with no fragmented message started, or a new data frame inside one.
    case unexpectedContinuation
    /// A control frame longer than 125 bytes or fragmented (§5.5).
    case oversizeControlFrame(UInt64)
    /// A fragmented control frame (FIN clear on ping, pong or close; §5.5).
    case fragmentedControlFrame
    /// A 64-bit payload length with the most significant bit set (§5.2).
    case invalidPayloadLength
    /// A masked frame from the server: a client must close the connection when it sees one (§5.1).
    case maskedFrame
    /// A close frame with a one-byte body, a code that may not be sent (§7.4.1: below 1000,
    /// 1004-1006, 1015, 1016-2999) or a reason that is not UTF-8.
    case invalidClose(UInt16?)
    /// The server closed the WebSocket with this code (not 1000) and reason.
    case closed(code: UInt16, reason: String)
}

extension WebSocketError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .handshakeStatus(let code, let reason): "upgrade refused: HTTP \(code) \(reason)"
        case .malformedHandshake(let detail): "malformed handshake response: \(detail)"
        case .missingUpgrade: "response without Upgrade: websocket / Connection: Upgrade"
        case .missingAccept: "response without Sec-WebSocket-Accept"
        case .wrongAccept(let expected, let received): "Sec-WebSocket-Accept \(received), expected \(expected)"
        case .wrongSubprotocol(let expected, let received):
            "subprotocol \(received.map { "'\($0)'" } ?? "none") selected, expected '\(expected)'"
        case .unexpectedExtension(let name): "extension '\(name)' not offered"
        case .reservedBits(let bits): "reserved bits 0x\(String(bits, radix: 16)) set"
        case .reservedOpcode(let opcode): "reserved opcode 0x\(String(opcode, radix: 16))"
        case .textFrame: "text frame (MQTT uses binary frames)"
        case .unexpectedContinuation: "continuation frame out of sequence"
        case .oversizeControlFrame(let length): "control frame of \(length) bytes (limit 125)"
        case .fragmentedControlFrame: "fragmented control frame"
        case .invalidPayloadLength: "invalid 64-bit payload length"
        case .maskedFrame: "masked frame from the server"
        case .invalidClose(let code): "invalid close frame\(code.map { " (code \($0))" } ?? "")"
        case .closed(let code, let reason): "closed by the server: \(code)\(reason.isEmpty ? "" : " \(reason)")"
        }
    }
}
