import RingBuffers
import Testing
@testable import UVReactor

/// The RFC 6455 §1.3 example key and its accept value.
private let rfcKey = "dGhlIHNhbXBsZSBub25jZQ=="
private let rfcAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// A 101 response with the given header lines (nil: the good default for each).
private func response(status: String = "HTTP/1.1 101 Switching Protocols",
                      upgrade: String? = "Upgrade: websocket", connection: String? = "Connection: Upgrade",
                      accept: String? = "Sec-WebSocket-Accept: \(rfcAccept)",
                      subprotocol: String? = "Sec-WebSocket-Protocol: mqtt", extra: [String] = []) -> [UInt8] {
    let lines = [status, upgrade, connection, accept, subprotocol].compactMap { $0 } + extra
    return bytes(lines.joined(separator: "\r\n") + "\r\n\r\n")
}

/// A server frame (unmasked unless `mask` is given).
private func frame(_ first: UInt8, _ payload: [UInt8], mask: [UInt8]? = nil) -> [UInt8] {
    var out = [first]
    let maskBit: UInt8 = mask == nil ? 0 : 0x80
    if payload.count < 126 {
        out.append(maskBit | UInt8(payload.count))
    } else if payload.count <= 0xFFFF {
        out += [maskBit | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
    } else {
        out.append(maskBit | 127)
        for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: payload.count >> shift)) }
    }
    if let mask {
        out += mask
        out += payload.enumerated().map { $0.element ^ mask[$0.offset & 3] }
    } else {
        out += payload
    }
    return out
}

/// Parses the client's masked frames (the fake server's view): opcode, payload.
private func clientFrames(_ data: [UInt8]) -> [(UInt8, [UInt8])]? {
    var frames: [(UInt8, [UInt8])] = []
    var index = 0
    while index < data.count {
        guard data.count - index >= 2, data[index + 1] & 0x80 != 0 else { return nil }
        let opcode = data[index] & 0x0F
        var length = Int(data[index + 1] & 0x7F)
        var header = 2
        if length == 126 {
            length = Int(data[index + 2]) << 8 | Int(data[index + 3])
            header = 4
        } else if length == 127 {
            length = 0
            for byte in 0..<8 { length = length << 8 | Int(data[index + 2 + byte]) }
            header = 10
        }
        guard data.count - index >= header + 4 + length else { return nil }
        let mask = Array(data[(index + header)..<(index + header + 4)])
        let start = index + header + 4
        frames.append((opcode, (0..<length).map { data[start + $0] ^ mask[$0 & 3] }))
        index = start + length
    }
    return frames
}

/// What happened on the client side of one exchange with the fake server.
private struct Exchange: Sendable {
    var connectError: TransportError?
    var closeError: TransportError?
    var received: [UInt8] = []
    /// The request the server got (up to the empty line).
    var request: String = ""
    /// What the server received after the request.
    var afterRequest: [UInt8] = []
}

/// Runs a client `WebSocketTransform` (fixed RFC key) against a byte-exact fake server on the
/// reactor's listener: the server reads the request, answers with `reply` in one write (the
/// handshake and any frames), then records what the client sends. The client writes `send` once
/// connected and closes after `closeAfter` received bytes.
private func exchange(reply: [UInt8], send: [UInt8]? = nil, closeAfter: Int? = nil,
                      configuration: WebSocketConfiguration = WebSocketConfiguration(path: "/mqtt"),
                      subprotocol: String = "mqtt", serverWaitsFor: Int = 0,
                      options: TCPOptions = TCPOptions()) async throws -> Exchange {
    var result = Exchange()
    try await withLoop { loop in
        let done = Outcome<Exchange>()
        let serverDone = Outcome<(String, [UInt8])>()
        loop.execute {
            let state = LoopBound<(request: [UInt8], after: [UInt8], replied: Bool)>(([], [], false), loop: loop)
            guard let listener = try? loop.listen(onAccept: { connection in
                connection.onRead = { connection in
                    let ring = connection.inbound
                    let chunk = ring.readBytes(count: ring.readableBytes)
                    ring.consume(chunk.count)
                    if !state.value.replied {
                        state.value.request += chunk
                        let r = state.value.request
                        if let end = (0..<max(0, r.count - 3)).first(where: { r[$0] == 13 && r[$0 + 1] == 10 && r[$0 + 2] == 13 && r[$0 + 3] == 10 }) {
                            state.value.after = Array(r[(end + 4)...])
                            state.value.request = Array(r[..<end])
                            state.value.replied = true
                            connection.write(reply)
                        }
                    } else {
                        state.value.after += chunk
                    }
                    if serverWaitsFor > 0 && state.value.after.count >= serverWaitsFor {
                        connection.close()
                    }
                }
                connection.onClose = { _ in
                    serverDone.fulfil((String(decoding: state.value.request, as: UTF8.self), state.value.after))
                }
            }) else { return done.fulfil(Exchange(connectError: .connectionRefused)) }
            let transform = WebSocketTransform(configuration: configuration, hostHeader: "127.0.0.1:\(listener.port)",
                                               key: rfcKey, subprotocol: subprotocol)
            loop.connect(host: "127.0.0.1", port: listener.port, options: options, transform: transform) { outcome in
                listener.close()
                switch outcome {
                case .failure(let error):
                    done.fulfil(Exchange(connectError: error))
                case .success(let client):
                    let received = LoopBound<[UInt8]>([], loop: loop)
                    client.onRead = { client in
                        let ring = client.inbound
                        received.value += ring.readBytes(count: ring.readableBytes)
                        ring.consume(ring.readableBytes)
                        if let closeAfter, received.value.count >= closeAfter { client.close() }
                    }
                    client.onClose = { error in
                        done.fulfil(Exchange(closeError: error, received: received.value))
                    }
                    if let send { client.write(send) }
                }
            }
        }
        result = try #require(await done.wait())
        if let server = await serverDone.wait(timeout: .seconds(10)) {
            result.request = server.0
            result.afterRequest = server.1
        }
    }
    return result
}

@Suite("WebSocket client transform (RFC 6455)")
struct WebSocketTests {
    // MARK: Pure pieces

    @Test func acceptValueAndBase64() {
        #expect(WebSocketHandshake.expectedAccept(for: rfcKey) == rfcAccept)
        #expect(Base64.encode(bytes("")) == "")
        #expect(Base64.encode(bytes("f")) == "Zg==")
        #expect(Base64.encode(bytes("fo")) == "Zm8=")
        #expect(Base64.encode(bytes("foo")) == "Zm9v")
        #expect(Base64.encode(bytes("foobar")) == "Zm9vYmFy")
        #expect(Base64.encode(bytes("the sample nonce")) == rfcKey)
        // A fresh key is 16 random bytes: 24 base64 characters, different each time.
        let a = WebSocketHandshake(subprotocol: "mqtt").key
        let b = WebSocketHandshake(subprotocol: "mqtt").key
        #expect(a.count == 24 && a.hasSuffix("==") && a != b)
    }

    @Test func maskingMatchesTheBytewiseDefinition() {
        let key: UInt32 = 0xA1B2_C3D4
        let keyBytes = withUnsafeBytes(of: key) { Array($0) }
        for count in [0, 1, 3, 7, 8, 9, 31, 1000] {
            let source = Pattern.bytes(seed: UInt32(count + 1), count: count)
            var destination = [UInt8](repeating: 0, count: count)
            source.withUnsafeBytes { s in
                destination.withUnsafeMutableBytes { WebSocketTransform.mask(s, key: key, into: $0) }
            }
            #expect(destination == source.enumerated().map { $0.element ^ keyBytes[$0.offset & 3] })
        }
    }

    @Test func closeCodes() {
        for valid: UInt16 in [1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999] {
            #expect(WebSocketFrameDecoder.isValidCloseCode(valid))
        }
        for invalid: UInt16 in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
            #expect(!WebSocketFrameDecoder.isValidCloseCode(invalid))
        }
    }

    /// The decoder streams payload byte by byte just as from whole frames.
    @Test func decoderIsIndependentOfSplitPoints() throws {
        let payloadA = Pattern.bytes(seed: 3, count: 300)
        let payloadB = Pattern.bytes(seed: 4, count: 70_000)
        let stream = frame(0x02, Array(payloadA[0..<100])) + frame(0x89, bytes("hi"))
            + frame(0x00, Array(payloadA[100...])) + frame(0x80, []) + frame(0x82, payloadB)
        for split in [1, 2, 3, 7, 200, stream.count] {
            var decoder = WebSocketFrameDecoder()
            var out: [UInt8] = []
            var pings: [[UInt8]] = []
            var held: [UInt8] = []
            var index = 0
            while index < stream.count || !held.isEmpty {
                let end = min(stream.count, index + split)
                held += stream[index..<end]
                index = end
                var used = 0
                loop: while true {
                    let step = try held.withUnsafeBytes { all in
                        try decoder.decode(UnsafeRawBufferPointer(rebasing: all[used...])) { payload in
                            out += payload
                            return payload.count
                        }
                    }
                    switch step {
                    case .needMore(let consumed):
                        used += consumed
                        break loop
                    case .sinkFull: Issue.record("sink never full here"); return
                    case .control(let consumed, let opcode, let payload):
                        #expect(opcode == .ping)
                        pings.append(Array(payload))
                        used += consumed
                    }
                }
                held.removeFirst(used)
                if index == stream.count && !held.isEmpty { Issue.record("bytes left over"); break }
            }
            #expect(out == payloadA + payloadB, "split \(split)")
            #expect(pings == [bytes("hi")])
        }
    }

    // MARK: Against a fake server

    @Test func requestIsByteExact() async throws {
        let configuration = WebSocketConfiguration(path: "/ws/mqtt?x=1", extraHeaders: [HTTPHeader("Authorization", "Bearer t")])
        let result = try await exchange(reply: response() + frame(0x82, [1]), closeAfter: 1,
                                        configuration: configuration, serverWaitsFor: 8)
        let lines = result.request.split(separator: "\r\n", omittingEmptySubsequences: false)
        #expect(lines.count == 8)
        #expect(lines.first == "GET /ws/mqtt?x=1 HTTP/1.1")
        #expect(lines[1].hasPrefix("Host: 127.0.0.1:"))
        #expect(Array(lines[2...]) == ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: \(rfcKey)",
                                       "Sec-WebSocket-Version: 13", "Sec-WebSocket-Protocol: mqtt",
                                       "Authorization: Bearer t"])
    }

    @Test("bad handshakes are typed errors", arguments: [
        (response(status: "HTTP/1.1 400 Bad Request"), WebSocketError.handshakeStatus(400, "Bad Request")),
        (response(status: "HTTP/1.1 200 OK", accept: nil), .handshakeStatus(200, "OK")),
        (response(status: "HTTP/1.0 101 Switching Protocols"), .malformedHandshake("status line 'HTTP/1.0 101 Switching Protocols'")),
        (response(status: "SSH-2.0-OpenSSH"), .malformedHandshake("status line 'SSH-2.0-OpenSSH'")),
        (response(accept: nil), .missingAccept),
        (response(accept: "Sec-WebSocket-Accept: dGhlIHNhbXBsZSBub25jZQ=="),
         .wrongAccept(expected: rfcAccept, received: "dGhlIHNhbXBsZSBub25jZQ==")),
        (response(subprotocol: nil), .wrongSubprotocol(expected: "mqtt", received: nil)),
        (response(subprotocol: "Sec-WebSocket-Protocol: mqttv3.1"), .wrongSubprotocol(expected: "mqtt", received: "mqttv3.1")),
        (response(upgrade: nil), .missingUpgrade),
        (response(connection: "Connection: keep-alive"), .missingUpgrade),
        (response(extra: ["Sec-WebSocket-Extensions: permessage-deflate"]), .unexpectedExtension("permessage-deflate")),
        (response(extra: ["no colon here"]), .malformedHandshake("header line 'no colon here'")),
        (response(extra: [String(repeating: "X-Pad: 0123456789abcdef\r\n", count: 800) + "X-End: 1"]),
         .malformedHandshake("response headers exceed 16384 bytes")),
    ])
    func badHandshake(reply: [UInt8], expected: WebSocketError) async throws {
        let result = try await exchange(reply: reply)
        #expect(result.connectError == .webSocket(expected))
    }

    @Test func handshakeHeadersAreCaseInsensitiveAndTokenLists() async throws {
        let reply = response(upgrade: "upgrade: WebSocket", connection: "connection: keep-alive, upgrade",
                             accept: "sec-websocket-accept:   \(rfcAccept)  ", subprotocol: "sec-websocket-protocol: mqtt")
        let result = try await exchange(reply: reply + frame(0x82, [1, 2, 3]), closeAfter: 3)
        #expect(result.connectError == nil)
        #expect(result.received == [1, 2, 3])
    }

    @Test("bad frames are typed errors", arguments: [
        (frame(0xC2, [1]), TransportError.webSocket(.reservedBits(0x40))),
        (frame(0xA2, [1]), .webSocket(.reservedBits(0x20))),
        (frame(0x83, [1]), .webSocket(.reservedOpcode(3))),
        (frame(0x8B, []), .webSocket(.reservedOpcode(0xB))),
        (frame(0x81, bytes("text")), .webSocket(.textFrame)),
        (frame(0x80, [1]), .webSocket(.unexpectedContinuation)),
        (frame(0x02, [1]) + frame(0x82, [2]), .webSocket(.unexpectedContinuation)),
        (frame(0x89, [UInt8](repeating: 7, count: 126)), .webSocket(.oversizeControlFrame(126))),
        (frame(0x09, [1]), .webSocket(.fragmentedControlFrame)),
        (frame(0x82, [1, 2], mask: [9, 8, 7, 6]), .webSocket(.maskedFrame)),
        ([0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1], .webSocket(.invalidPayloadLength)),
        (frame(0x88, [0x03]), .webSocket(.invalidClose(nil))),
        (frame(0x88, [0x03, 0xED]), .webSocket(.invalidClose(1005))),
        (frame(0x88, [0x03, 0xE7]), .webSocket(.invalidClose(999))),
        (frame(0x88, [0x03, 0xE8, 0xFF, 0xFE]), .webSocket(.invalidClose(1000))),
        (frame(0x88, [0x0F, 0xA0] + bytes("bye")), .webSocket(.closed(code: 4000, reason: "bye"))),
        (frame(0x88, [0x03, 0xE8]), .closedByPeer),
        (frame(0x88, []), .closedByPeer),
    ])
    func badFrame(frames: [UInt8], expected: TransportError) async throws {
        // Data before the bad frame is delivered first.
        let result = try await exchange(reply: response() + frame(0x82, [42]) + frames)
        #expect(result.connectError == nil)
        #expect(result.closeError == expected)
        #expect(result.received.starts(with: [42]))
    }

    /// The server's close is answered with a close carrying its code.
    @Test func closeIsEchoed() async throws {
        let result = try await exchange(reply: response() + frame(0x88, [0x0F, 0xA0] + bytes("bye")), serverWaitsFor: 8)
        #expect(result.closeError == .webSocket(.closed(code: 4000, reason: "bye")))
        let frames = try #require(clientFrames(result.afterRequest))
        #expect(frames.count == 1)
        #expect(frames.first?.0 == 0x8 && frames.first?.1 == [0x0F, 0xA0])
    }

    /// A fragmented message with a ping between the fragments, two "packets" in one frame and one
    /// spanning frames; the ping is answered with a masked pong carrying its payload; what the
    /// client sends arrives as one masked binary frame; `close()` sends close 1000.
    @Test func framesFragmentsPingAndClientFrames() async throws {
        let payload = Pattern.bytes(seed: 9, count: 70_000)
        let frames = frame(0x02, Array(payload[0..<10])) + frame(0x89, bytes("ping!"))
            + frame(0x00, Array(payload[10..<200])) + frame(0x80, Array(payload[200..<300]))
            + frame(0x8A, bytes("unsolicited pong")) + frame(0x82, Array(payload[300...]))
        let sent = Pattern.bytes(seed: 10, count: 1000)
        // Server waits for: pong (2 + 4 + 5), the data frame (4 + 4 + 1000), the close (2 + 4 + 2).
        let result = try await exchange(reply: response() + frames, send: sent, closeAfter: payload.count,
                                        serverWaitsFor: 11 + 1008 + 8)
        #expect(result.closeError == nil)
        #expect(result.received == payload)
        let client = try #require(clientFrames(result.afterRequest))
        let pong = client.first { $0.0 == 0xA }
        #expect(pong?.1 == bytes("ping!"))
        #expect(client.filter { $0.0 == 0x2 }.flatMap(\.1) == sent)
        #expect(client.last?.0 == 0x8 && client.last?.1 == [0x03, 0xE8])
    }

    /// A plaintext ring of 4 KiB under 256 KiB of frames: payload is held back and pulled later.
    @Test func backPressureWithASmallRing() async throws {
        let payload = Pattern.bytes(seed: 12, count: 256 * 1024)
        var frames: [UInt8] = []
        var offset = 0
        while offset < payload.count {
            let count = min(payload.count - offset, 3000)
            frames += frame(0x82, Array(payload[offset..<(offset + count)]))
            offset += count
        }
        var options = TCPOptions()
        options.receiveBufferInitialCapacity = 4096
        options.receiveBufferMaximumCapacity = 4096
        let result = try await exchange(reply: response() + frames, closeAfter: payload.count, options: options)
        #expect(result.closeError == nil)
        #expect(result.received == payload)
    }

    @Test func subprotocolForMQTT31() async throws {
        let result = try await exchange(reply: response(subprotocol: "Sec-WebSocket-Protocol: mqttv3.1") + frame(0x82, [5]),
                                        closeAfter: 1, subprotocol: "mqttv3.1")
        #expect(result.connectError == nil)
        #expect(result.received == [5])
        #expect(result.request.contains("\r\nSec-WebSocket-Protocol: mqttv3.1"))
    }
}
