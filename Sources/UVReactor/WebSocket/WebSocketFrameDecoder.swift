/// Reads the frames a WebSocket server sends (RFC 6455 §5) from a byte stream: data payloads
/// go to a sink as they arrive, control frames are returned whole. Pure: no I/O, no allocation.
///
/// Data frames are streamed: the sink sees payload bytes as soon as they are in the input,
/// whatever the frame's length, so an MQTT packet may span frames and a frame may hold several
/// packets (the MQTT decoder sees one byte stream). Fragmented messages (a binary frame with
/// FIN clear, then continuation frames) are one stream too; control frames may come between the
/// fragments (§5.4). A control frame (at most 125 bytes) is returned only once it is whole in the
/// input; until then the decoder stops before its header and the caller keeps the bytes.
///
/// Checks (each a ``WebSocketError``): reserved bits (no extension is negotiated), reserved
/// opcodes, text frames [MQTT-6.0.0-1], continuation out of sequence, control frames that are
/// fragmented or longer than 125 bytes, a 64-bit length with its top bit set, masked frames (a
/// server must not mask, §5.1).
public struct WebSocketFrameDecoder: Sendable {
    /// Opcodes (§5.2).
    public enum Opcode: UInt8, Sendable {
        /// A later fragment of a fragmented message.
        case continuation = 0x0
        /// A text frame (refused for MQTT [MQTT-6.0.0-1]).
        case text = 0x1
        /// A binary frame: MQTT bytes.
        case binary = 0x2
        /// A close frame.
        case close = 0x8
        /// A ping; answered with a pong.
        case ping = 0x9
        /// A pong.
        case pong = 0xA
    }

    /// What one call of ``decode(_:sink:)`` ended with.
    public enum Step {
        /// The input is used up, or holds only the start of a header or control frame: `consumed`
        /// bytes were used; keep the rest and call again with more.
        case needMore(consumed: Int)
        /// The sink took less than it was offered (no room): `consumed` bytes were used; call
        /// again once there is room.
        case sinkFull(consumed: Int)
        /// A whole control frame (ping, pong or close): `consumed` bytes were used, up to and
        /// including it; `payload` points into the input.
        case control(consumed: Int, opcode: Opcode, payload: UnsafeRawBufferPointer)
    }

    /// Payload bytes of the current data frame not yet given to the sink.
    public private(set) var dataRemaining: UInt64 = 0
    /// A fragmented data message is in progress (its first frame had FIN clear).
    public private(set) var inFragmentedMessage = false

    /// Creates a decoder at a frame boundary.
    public init() {}

    /// Decodes from `input` until it is used up, the sink is full, or a control frame is whole.
    ///
    /// - Parameters:
    ///   - input: Bytes from the server, starting where the previous call's `consumed` ended.
    ///   - sink: Takes data payload bytes; returns how many it took (fewer means it is full).
    /// - Returns: How far it got.
    /// - Throws: ``WebSocketError`` for a frame that breaks the protocol; the decoder must not be
    ///   used afterwards.
    public mutating func decode(_ input: UnsafeRawBufferPointer,
                                sink: (UnsafeRawBufferPointer) -> Int) throws(WebSocketError) -> Step {
        var offset = 0
        let count = input.count
        while true {
            if dataRemaining > 0 {
                let available = count &- offset
                if available == 0 { return .needMore(consumed: offset) }
                let chunk = Int(min(UInt64(available), dataRemaining))
                let taken = sink(UnsafeRawBufferPointer(rebasing: input[offset..<(offset &+ chunk)]))
                offset &+= taken
                dataRemaining &-= UInt64(taken)
                if taken < chunk { return .sinkFull(consumed: offset) }
                continue
            }
            // A frame header: 2 bytes, then 2 or 8 bytes of extended length, then (if masked) 4.
            guard count &- offset >= 2 else { return .needMore(consumed: offset) }
            let first = input[offset]
            let second = input[offset &+ 1]
            let reserved = first & 0x70
            if reserved != 0 { throw .reservedBits(reserved) }
            if second & 0x80 != 0 { throw .maskedFrame }
            let fin = first & 0x80 != 0
            guard let opcode = Opcode(rawValue: first & 0x0F) else { throw .reservedOpcode(first & 0x0F) }
            var headerLength = 2
            var length = UInt64(second & 0x7F)
            if length == 126 {
                headerLength = 4
                guard count &- offset >= headerLength else { return .needMore(consumed: offset) }
                length = UInt64(input[offset &+ 2]) << 8 | UInt64(input[offset &+ 3])
            } else if length == 127 {
                headerLength = 10
                guard count &- offset >= headerLength else { return .needMore(consumed: offset) }
                length = 0
                for index in 2..<10 { length = length << 8 | UInt64(input[offset &+ index]) }
                if length & (1 << 63) != 0 { throw .invalidPayloadLength }
            }
            switch opcode {
            case .binary, .continuation:
                if opcode == .binary && inFragmentedMessage { throw .unexpectedContinuation }
                if opcode == .continuation && !inFragmentedMessage { throw .unexpectedContinuation }
                inFragmentedMessage = !fin
                offset &+= headerLength
                dataRemaining = length
            case .text:
                throw .textFrame
            case .close, .ping, .pong:
                if length > 125 { throw .oversizeControlFrame(length) }
                if !fin { throw .fragmentedControlFrame }
                let total = headerLength &+ Int(length)
                guard count &- offset >= total else { return .needMore(consumed: offset) }
                let payload = UnsafeRawBufferPointer(rebasing: input[(offset &+ headerLength)..<(offset &+ total)])
                return .control(consumed: offset &+ total, opcode: opcode, payload: payload)
            }
        }
    }

    /// Checks a close frame's body (§5.5.1, §7.4): empty, or a code that may be sent followed by
    /// a UTF-8 reason.
    ///
    /// - Returns: The code (nil for an empty body) and the reason.
    /// - Throws: ``WebSocketError/invalidClose(_:)``.
    public static func parseClose(_ payload: UnsafeRawBufferPointer) throws(WebSocketError) -> (code: UInt16?, reason: String) {
        if payload.isEmpty { return (nil, "") }
        guard payload.count >= 2 else { throw .invalidClose(nil) }
        let code = UInt16(payload[0]) << 8 | UInt16(payload[1])
        guard isValidCloseCode(code) else { throw .invalidClose(code) }
        guard let reason = String(validating: UnsafeRawBufferPointer(rebasing: payload[2...]), as: UTF8.self) else {
            throw .invalidClose(code)
        }
        return (code, reason)
    }

    /// Whether an endpoint may send `code` in a close frame (RFC 6455 §7.4.1 and the IANA
    /// registry: 1000-1003, 1007-1014; 3000-4999 for libraries and applications).
    public static func isValidCloseCode(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1014, 3000...4999: true
        default: false
        }
    }
}
