import CLibUV
import RingBuffers
import Testing
@testable import UVReactor

/// A toy transform that proves the connection drives any ``StreamTransform`` correctly: a
/// handshake (the client sends `HELO` and a key byte, the server answers `OLEH`), then every byte
/// XORed with the key, and `BYE.` (encrypted) as its close message. It holds decrypted bytes back
/// when the ring is full, like TLS does.
final class XORTransform: StreamTransform {
    let key: UInt8
    private var greeting: [UInt8] = []
    private(set) var handshakeDone = false
    private var held: [UInt8] = []
    private var heldStart = 0
    private(set) var pendingReported = 0

    init(key: UInt8) { self.key = key }

    func start(output: OutboundBuffer) throws(TransportError) {
        output.writeBytes(Array("HELO".utf8))
        output.writeByte(key)
    }

    func receive(_ bytes: UnsafeRawBufferPointer, plaintext: ByteRing,
                 output: OutboundBuffer) throws(TransportError) -> TransformProgress {
        var index = 0
        while !handshakeDone && index < bytes.count {
            greeting.append(bytes[index])
            index += 1
            if greeting.count == 4 {
                guard greeting == Array("OLEH".utf8) else { throw .tlsFailure("bad greeting") }
                handshakeDone = true
            }
        }
        if index < bytes.count {
            let start = held.count
            let count = bytes.count - index
            held.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[index...]))
            held.withUnsafeMutableBufferPointer { buffer in
                for position in start..<(start + count) { buffer[position] ^= key }
            }
        }
        if heldStart < held.count {
            heldStart += held[heldStart...].withUnsafeBytes { plaintext.append($0) }
            if heldStart == held.count {
                held.removeAll(keepingCapacity: true)
                heldStart = 0
            }
        }
        let pending = heldStart < held.count
        if pending { pendingReported += 1 }
        return TransformProgress(handshakeComplete: handshakeDone, plaintextPending: pending)
    }

    func send(_ bytes: UnsafeRawBufferPointer, output: OutboundBuffer) throws(TransportError) {
        output.withUnsafeAppend(count: bytes.count) { region in
            for index in 0..<bytes.count { region[index] = bytes[index] ^ key }
        }
    }

    func shutdown(output: OutboundBuffer) {
        output.writeBytes(Array("BYE.".utf8).map { $0 ^ key })
    }
}

/// The server side of the toy protocol on a plain reactor connection: answers the greeting
/// (after `replyDelay`, or with `reply`), then echoes the ciphertext and counts the plaintext.
final class XORServer {
    var key: UInt8 = 0
    var greeted = false
    var decoded = 0
    var tail: [UInt8] = []

    func attach(_ connection: TCPConnection, loop: EventLoop, reply: String = "OLEH",
                replyDelay: Duration? = .milliseconds(50), onClose: @escaping (XORServer, TransportError?) -> Void) {
        connection.onRead = { [self] connection in
            let ring = connection.inbound
            if !greeted {
                guard ring.readableBytes >= 5 else { return }
                key = ring.byte(at: 4)
                ring.consume(5)
                greeted = true
                if let replyDelay {
                    loop.scheduleTimer(after: replyDelay) {
                        connection.write(Array(reply.utf8))
                        if !ring.isEmpty { connection.onRead?(connection) }
                    }
                }
                return
            }
            let count = ring.readableBytes
            for offset in max(0, count - 4)..<count { tail.append(ring.byte(at: offset) ^ key) }
            if tail.count > 4 { tail.removeFirst(tail.count - 4) }
            decoded += count
            while !ring.isEmpty {
                let region = ring.firstReadableRegion
                connection.outbound.writeBytes(region)
                ring.consume(region.count)
            }
            connection.flush()
        }
        connection.onClose = { [self] error in onClose(self, error) }
    }
}

@Suite struct StreamTransformTests {
    /// 2 MiB through the transform into a 4 KiB plaintext ring (the 64 KiB ciphertext reads
    /// overflow it, so decrypted bytes are held back and pulled later), byte-exact; "connected"
    /// only after the handshake; `close()` sends the transform's close message last.
    @Test func transformCarriesDataAndHandshakeGatesConnect() async throws {
        let total = 2 * 1024 * 1024
        try await withLoop { loop in
            let connected = Outcome<Bool>()
            let clientDone = Outcome<(Int, Int?, Int)>()
            let serverDone = Outcome<(Int, [UInt8], TransportError?)>()
            loop.execute {
                let server = XORServer()
                guard let listener = try? loop.listen(onAccept: { connection in
                    server.attach(connection, loop: loop) { server, error in
                        serverDone.fulfil((server.decoded, server.tail, error))
                    }
                }) else { return connected.fulfil(false) }
                let transform = XORTransform(key: 0x5A)
                loop.connect(host: "127.0.0.1", port: listener.port, options: smallRingOptions(),
                             transform: transform) { result in
                    listener.close()
                    guard case .success(let client) = result else { return connected.fulfil(false) }
                    connected.fulfil(transform.handshakeDone)
                    let checker = StreamChecker(seed: 11, count: total)
                    client.onRead = { client in
                        checker.consume(client.inbound)
                        if checker.received >= total { client.close() }
                    }
                    client.onClose = { _ in
                        clientDone.fulfil((checker.received, checker.mismatchAt, transform.pendingReported))
                    }
                    client.write(checker.expected)
                }
            }
            #expect(await connected.wait() == true)
            let client = try #require(await clientDone.wait(timeout: .seconds(60)))
            #expect(client.0 == total)
            #expect(client.1 == nil)
            #expect(client.2 > 0, "the plaintext ring overflowed at least once")
            let server = try #require(await serverDone.wait())
            #expect(server.0 == total + 4)
            #expect(server.1 == Array("BYE.".utf8))
            #expect(server.2 == .closedByPeer)
        }
    }

    @Test func transformErrorFailsTheConnect() async throws {
        try await withLoop { loop in
            let outcome = Outcome<TransportError?>()
            loop.execute {
                guard let listener = try? loop.listen(onAccept: { connection in
                    XORServer().attach(connection, loop: loop, reply: "NOPE") { _, _ in }
                }) else { return outcome.fulfil(nil) }
                loop.connect(host: "127.0.0.1", port: listener.port, transform: XORTransform(key: 1)) { result in
                    listener.close()
                    if case .failure(let error) = result { outcome.fulfil(error) } else { outcome.fulfil(nil) }
                }
            }
            #expect(await outcome.wait() == .tlsFailure("bad greeting"))
        }
    }

    /// The connect timeout covers the handshake: a server that never answers the greeting.
    @Test func handshakeTimeout() async throws {
        try await withLoop { loop in
            let outcome = Outcome<TransportError?>()
            loop.execute {
                let server = LoopBound<TCPConnection?>(nil, loop: loop)
                guard let listener = try? loop.listen(onAccept: { connection in
                    server.value = connection
                    XORServer().attach(connection, loop: loop, replyDelay: nil) { _, _ in }
                }) else { return outcome.fulfil(nil) }
                loop.connect(host: "127.0.0.1", port: listener.port, timeout: .milliseconds(200),
                             transform: XORTransform(key: 1)) { result in
                    listener.close()
                    server.value?.abort()
                    if case .failure(let error) = result { outcome.fulfil(error) } else { outcome.fulfil(nil) }
                }
            }
            #expect(await outcome.wait() == .connectTimeout)
        }
    }
}
