import COpenSSL
public import RingBuffers

/// A WebSocket client (RFC 6455) as a ``StreamTransform``: the connection's bytes become the
/// payload of binary frames, so MQTT runs over `ws://` unchanged; under a ``TransformStack``
/// with TLS below it, over `wss://`.
///
/// Sequence: ``start(output:)`` sends the HTTP/1.1 upgrade request (a random
/// `Sec-WebSocket-Key`, the subprotocol, the configured path and extra headers); the handshake is
/// complete once the `101 Switching Protocols` response checked out (status, `Upgrade`,
/// `Connection`, `Sec-WebSocket-Accept` = base64(SHA-1(key + GUID)), the subprotocol, no
/// extension). Bytes after the response in the same read are already frames.
///
/// Receiving: the server's frames are unmasked and their payloads copied once, straight from
/// the connection's read buffer into the plaintext ring (``WebSocketFrameDecoder``); frame
/// boundaries mean nothing to MQTT, so packets may span frames and frames may hold several.
/// Pings are answered with a pong carrying the same payload; pongs are dropped; a close frame is
/// answered with a close (same code) and ends the connection: code 1000 or none as
/// ``TransportError/closedByPeer``, another as ``WebSocketError/closed(code:reason:)``. Bytes
/// that cannot be used yet (a partial header or control frame, or payload the full ring has no
/// room for) stay in a small buffer; for the latter ``TransformProgress/plaintextPending`` is
/// set, so the connection stops reading until the consumer made room.
///
/// Sending: each ``send(_:output:)`` is one binary frame (the connection coalesces everything
/// flushed in a loop iteration into one call), masked with a fresh key as §5.3 requires: the
/// header is written, then the payload is copied and masked into `output` in one pass.
///
/// Errors are final, thrown as ``TransportError/webSocket(_:)`` and again by later calls. Not
/// thread-safe: one connection on one loop thread owns it.
public final class WebSocketTransform: StreamTransform {
    private enum State {
        case idle
        case awaitingResponse
        case open
        case closed
        case failed(TransportError)
    }

    /// The configuration it was made with.
    public let configuration: WebSocketConfiguration
    /// The `Host` header sent.
    public let hostHeader: String
    /// The subprotocol requested (and required in the response).
    public var subprotocol: String { handshake.subprotocol }

    private let handshake: WebSocketHandshake
    private var state = State.idle
    private var response: [UInt8] = []
    private var decoder = WebSocketFrameDecoder()
    /// Received bytes not used yet (a partial header or control frame, payload without room).
    private let held = OutboundBuffer(initialCapacity: 256)
    private var masks = MaskSource()

    /// Creates a client for one connection.
    ///
    /// - Parameters:
    ///   - configuration: Path, subprotocol, extra headers.
    ///   - host: The host the connection is opened to (for the `Host` header).
    ///   - port: The port (added to the `Host` header unless it is 80, or 443 when `secure`).
    ///   - secure: Whether TLS runs underneath (`wss://`: the default port is 443).
    ///   - defaultSubprotocol: The subprotocol when the configuration names none.
    public init(configuration: WebSocketConfiguration, host: String, port: Int, secure: Bool = false,
                defaultSubprotocol: String = WebSocketConfiguration.mqttSubprotocol) {
        self.configuration = configuration
        let bracketed = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        let isDefaultPort = port == (secure ? 443 : 80)
        self.hostHeader = configuration.hostHeader ?? (isDefaultPort ? bracketed : "\(bracketed):\(port)")
        self.handshake = WebSocketHandshake(subprotocol: configuration.subprotocol ?? defaultSubprotocol)
    }

    /// Creates a client with a fixed handshake key (byte-exact tests).
    init(configuration: WebSocketConfiguration, hostHeader: String, key: String, subprotocol: String) {
        self.configuration = configuration
        self.hostHeader = hostHeader
        self.handshake = WebSocketHandshake(key: key, subprotocol: subprotocol)
    }

    /// Whether the handshake completed (and no failure or close happened since).
    public var isOpen: Bool {
        if case .open = state { return true }
        return false
    }

    // MARK: StreamTransform

    /// Appends the upgrade request to `output`.
    ///
    /// - Throws: ``TransportError/webSocket(_:)`` (`malformedHandshake`) when called twice.
    public func start(output: OutboundBuffer) throws(TransportError) {
        guard case .idle = state else { throw .webSocket(.malformedHandshake("start called twice")) }
        state = .awaitingResponse
        var request = handshake.request(configuration: configuration, host: hostHeader)
        request.withUTF8 { output.writeBytes(UnsafeRawBufferPointer($0)) }
    }

    /// Feeds received bytes: the handshake response first, then frames, whose payload goes into
    /// `plaintext`; pongs and the close reply go into `output`.
    ///
    /// - Throws: ``TransportError/webSocket(_:)`` for a bad handshake or frame, or the server's
    ///   close with a code other than 1000; ``TransportError/closedByPeer`` for its normal close.
    public func receive(_ bytes: UnsafeRawBufferPointer, plaintext: ByteRing,
                        output: OutboundBuffer) throws(TransportError) -> TransformProgress {
        switch state {
        case .failed(let error):
            throw error
        case .idle:
            throw .webSocket(.malformedHandshake("receive called before start"))
        case .closed:
            return TransformProgress(handshakeComplete: true, plaintextPending: false)
        case .awaitingResponse:
            guard let end = try readResponse(bytes) else {
                return TransformProgress(handshakeComplete: false, plaintextPending: false)
            }
            state = .open
            let rest = UnsafeRawBufferPointer(rebasing: bytes[end...])
            do {
                return try process(rest, plaintext: plaintext, output: output)
            } catch {
                // The WebSocket is established; a frame that came with the response fails the
                // open connection, not the connect: report the handshake done with bytes
                // pending, so the connection delivers the payload before the bad frame and
                // then calls again, which throws the recorded failure.
                return TransformProgress(handshakeComplete: true, plaintextPending: true)
            }
        case .open:
            return try process(bytes, plaintext: plaintext, output: output)
        }
    }

    /// Sends `bytes` as one masked binary frame.
    ///
    /// - Throws: The earlier failure; ``TransportError/webSocket(_:)`` before the handshake
    ///   completed or after a close.
    public func send(_ bytes: UnsafeRawBufferPointer, output: OutboundBuffer) throws(TransportError) {
        switch state {
        case .open: break
        case .failed(let error): throw error
        case .idle, .awaitingResponse: throw .webSocket(.malformedHandshake("send called before the handshake completed"))
        case .closed: throw .closedByPeer
        }
        writeFrame(opcode: .binary, payload: bytes, output: output)
    }

    /// Appends a close frame (1000, normal closure) when open; afterwards `send` fails and
    /// `receive` drops what arrives. Safe to call more than once.
    public func shutdown(output: OutboundBuffer) {
        if case .open = state {
            let body: [UInt8] = [0x03, 0xE8]
            body.withUnsafeBytes { writeFrame(opcode: .close, payload: $0, output: output) }
        }
        if case .failed = state { return }
        state = .closed
    }

    // MARK: Handshake

    /// Collects the response headers; returns the offset in `bytes` just after the empty line
    /// once they are complete and valid, nil while incomplete.
    private func readResponse(_ bytes: UnsafeRawBufferPointer) throws(TransportError) -> Int? {
        // Byte by byte (a few hundred bytes, once): nothing after the empty line is copied.
        var index = 0
        var found: Int?
        while index < bytes.count {
            response.append(bytes[index])
            index += 1
            let n = response.count
            if n >= 4 && response[n - 4] == 13 && response[n - 3] == 10 && response[n - 2] == 13 && response[n - 1] == 10 {
                found = index
                break
            }
            if n >= configuration.maximumHandshakeSize {
                throw fail(.webSocket(.malformedHandshake("response headers exceed \(configuration.maximumHandshakeSize) bytes")))
            }
        }
        guard let found else { return nil }
        response.removeLast(4)
        do {
            try handshake.validate(response: response)
        } catch {
            throw fail(.webSocket(error))
        }
        response = []
        return found
    }

    // MARK: Frames

    private func process(_ bytes: UnsafeRawBufferPointer, plaintext: ByteRing,
                         output: OutboundBuffer) throws(TransportError) -> TransformProgress {
        var pending = false
        if held.isEmpty {
            let used = try run(bytes, plaintext: plaintext, output: output, pending: &pending)
            if used < bytes.count {
                held.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[used...]))
            }
        } else {
            if !bytes.isEmpty { held.writeBytes(bytes) }
            let used = try run(held.readableRegion, plaintext: plaintext, output: output, pending: &pending)
            held.consume(used)
        }
        return TransformProgress(handshakeComplete: true, plaintextPending: pending)
    }

    /// Decodes from `input` as far as it goes; returns the bytes used.
    private func run(_ input: UnsafeRawBufferPointer, plaintext: ByteRing, output: OutboundBuffer,
                     pending: inout Bool) throws(TransportError) -> Int {
        var offset = 0
        // Bounded: each control step consumes at least its 2-byte header.
        while true {
            let step: WebSocketFrameDecoder.Step
            do {
                step = try decoder.decode(UnsafeRawBufferPointer(rebasing: input[offset...])) { payload in
                    WebSocketTransform.copy(payload, into: plaintext)
                }
            } catch {
                throw fail(.webSocket(error))
            }
            switch step {
            case .needMore(let consumed):
                return offset + consumed
            case .sinkFull(let consumed):
                pending = true
                return offset + consumed
            case .control(let consumed, let opcode, let payload):
                offset += consumed
                switch opcode {
                case .ping:
                    writeFrame(opcode: .pong, payload: payload, output: output)
                case .close:
                    try closeReceived(payload, output: output)
                    return offset
                default:
                    break // pong (unsolicited or not): nothing to do
                }
            }
        }
    }

    /// The server's close: answer it (§5.5.1) and end.
    private func closeReceived(_ payload: UnsafeRawBufferPointer, output: OutboundBuffer) throws(TransportError) {
        let close: (code: UInt16?, reason: String)
        do {
            close = try WebSocketFrameDecoder.parseClose(payload)
        } catch {
            // 1002: protocol error.
            let body: [UInt8] = [0x03, 0xEA]
            body.withUnsafeBytes { writeFrame(opcode: .close, payload: $0, output: output) }
            throw fail(.webSocket(error))
        }
        // Echo the code (§5.5.1); an empty close is answered with an empty one.
        writeFrame(opcode: .close, payload: UnsafeRawBufferPointer(rebasing: payload[0..<min(2, payload.count)]),
                   output: output)
        if let code = close.code, code != 1000 {
            throw fail(.webSocket(.closed(code: code, reason: close.reason)))
        }
        throw fail(.closedByPeer)
    }

    /// Copies payload into the ring's free space (at most two regions when it wraps).
    private static func copy(_ payload: UnsafeRawBufferPointer, into ring: ByteRing) -> Int {
        var copied = 0
        while copied < payload.count {
            let region = ring.writableRegion(preferred: payload.count - copied)
            if region.count == 0 { break }
            let count = min(region.count, payload.count - copied)
            region.baseAddress!.copyMemory(from: payload.baseAddress! + copied, byteCount: count)
            ring.commitWrite(count)
            copied += count
        }
        return copied
    }

    /// Appends a masked frame (FIN set) with `payload`.
    private func writeFrame(opcode: WebSocketFrameDecoder.Opcode, payload: UnsafeRawBufferPointer, output: OutboundBuffer) {
        let count = payload.count
        let headerCount = count < 126 ? 6 : (count <= 0xFFFF ? 8 : 14)
        let mask = masks.next()
        output.withUnsafeAppend(count: headerCount + count) { region in
            region[0] = 0x80 | opcode.rawValue
            var index = 2
            if count < 126 {
                region[1] = 0x80 | UInt8(count)
            } else if count <= 0xFFFF {
                region[1] = 0x80 | 126
                region[2] = UInt8(count >> 8)
                region[3] = UInt8(count & 0xFF)
                index = 4
            } else {
                region[1] = 0x80 | 127
                for byte in 0..<8 { region[2 + byte] = UInt8(truncatingIfNeeded: UInt64(count) >> (56 - 8 * UInt64(byte))) }
                index = 10
            }
            withUnsafeBytes(of: mask) { key in
                for byte in 0..<4 { region[index + byte] = key[byte] }
            }
            index += 4
            WebSocketTransform.mask(payload, key: mask, into: UnsafeMutableRawBufferPointer(rebasing: region[index...]))
        }
    }

    /// Copies `source` into `destination` XORed with the 4-byte key (in memory order), eight
    /// bytes at a time.
    static func mask(_ source: UnsafeRawBufferPointer, key: UInt32, into destination: UnsafeMutableRawBufferPointer) {
        let count = source.count
        guard count > 0, let from = source.baseAddress, let to = destination.baseAddress else { return }
        let wide = UInt64(key) | UInt64(key) << 32
        var index = 0
        while index + 8 <= count {
            let word = from.loadUnaligned(fromByteOffset: index, as: UInt64.self) ^ wide
            to.storeBytes(of: word, toByteOffset: index, as: UInt64.self)
            index += 8
        }
        withUnsafeBytes(of: key) { keyBytes in
            while index < count {
                to.storeBytes(of: from.load(fromByteOffset: index, as: UInt8.self) ^ keyBytes[index & 3],
                              toByteOffset: index, as: UInt8.self)
                index += 1
            }
        }
    }

    private func fail(_ error: TransportError) -> TransportError {
        state = .failed(error)
        return error
    }
}

/// Masking keys (§5.3: unpredictable, fresh per frame) from OpenSSL's generator, 64 at a time.
private struct MaskSource {
    private var pool = [UInt32](repeating: 0, count: 64)
    private var next_ = 64

    mutating func next() -> UInt32 {
        if next_ == pool.count {
            let filled = pool.withUnsafeMutableBytes { RAND_bytes($0.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32($0.count)) }
            if filled != 1 {
                var generator = SystemRandomNumberGenerator()
                for index in pool.indices { pool[index] = generator.next() }
            }
            next_ = 0
        }
        defer { next_ += 1 }
        return pool[next_]
    }
}
