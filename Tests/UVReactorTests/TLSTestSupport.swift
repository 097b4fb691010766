// Test helpers for the TLS suites: a blocking loopback client that pumps bytes between a peer
// and a `TLSEngine` (the reactor's TCP is not used here), and a hand-written CONNECT.
// Certificates, child processes (openssl s_server, mosquitto) and loopback sockets come from
// the shared `MQTTTestSupport` module.
import Foundation
import MQTTTestSupport
import RingBuffers
import UVReactor

// MARK: Driving the engine

/// A TLS client made of a ``TLSEngine`` and a blocking loopback socket: the test's stand-in for
/// the reactor's connection, pumping bytes both ways with every wait bounded.
final class TLSTestClient {
    let socket: LoopbackSocket
    let engine: TLSEngine
    let plaintext: ByteRing
    let output = OutboundBuffer(initialCapacity: 4096)
    private var scratch = [UInt8](repeating: 0, count: 16 * 1024)
    /// Decrypted bytes are waiting inside the engine (the ring was full).
    private var enginePending = false
    /// Whether the engine ever reported back-pressure.
    private(set) var sawPlaintextPending = false

    init(port: UInt16, context: TLSContext, host: String, plaintext: ByteRing = ByteRing(initialCapacity: 4096)) throws {
        self.socket = try LoopbackSocket(port: port)
        self.engine = try TLSEngine(context: context, host: host)
        self.plaintext = plaintext
    }

    /// Runs the handshake to completion (or the engine's error).
    func handshake(timeout: Duration = .seconds(10)) throws {
        let deadline = ContinuousClock.now + timeout
        try engine.start(output: output)
        try flush(deadline: deadline)
        while true {
            if try pumpOnce(deadline: deadline)?.handshakeComplete == true { return }
        }
    }

    /// Encrypts and sends `bytes`.
    ///
    /// When the peer already reset the connection the send error is kept, not thrown, like a
    /// connection that still reads what arrived before the reset: a TLS peer that refuses the
    /// session sends its alert and closes, and the alert (read next) says why.
    func write(_ bytes: [UInt8], timeout: Duration = .seconds(10)) throws {
        try bytes.withUnsafeBytes { try engine.send($0, output: output) }
        do {
            try flush(deadline: ContinuousClock.now + timeout)
        } catch SocketError.peerGone(let code) {
            sendFailure = code
            output.removeAll()
        }
    }

    /// errno of a send that found the peer gone (the next reads still run).
    private(set) var sendFailure: Int32?

    /// Receives until `count` decrypted bytes arrived and returns them, draining the plaintext
    /// ring as it fills (so a ring smaller than `count` exercises back-pressure).
    func read(count: Int, timeout: Duration = .seconds(10)) throws -> [UInt8] {
        let deadline = ContinuousClock.now + timeout
        var result: [UInt8] = []
        result.reserveCapacity(count)
        while true {
            let take = min(plaintext.readableBytes, count - result.count)
            if take > 0 {
                result += plaintext.readBytes(count: take)
                plaintext.consume(take)
            }
            if result.count == count { return result }
            _ = try pumpOnce(deadline: deadline)
        }
    }

    /// Sends close_notify.
    func close() throws {
        engine.shutdown(output: output)
        try flush(deadline: ContinuousClock.now + .seconds(5))
    }

    /// One step: retries the engine when it holds plaintext, otherwise one socket receive.
    /// Returns nil when nothing arrived within the socket's timeout.
    private func pumpOnce(deadline: ContinuousClock.Instant) throws -> TransformProgress? {
        guard ContinuousClock.now < deadline else { throw HarnessError("timed out waiting for the peer") }
        if enginePending && plaintext.freeBytes > 0 {
            let progress = try engine.receive(UnsafeRawBufferPointer(start: nil, count: 0), plaintext: plaintext, output: output)
            return try after(progress, deadline: deadline)
        }
        let received = try scratch.withUnsafeMutableBytes { try socket.receive(into: $0) }
        guard let received else { return nil }
        guard received > 0 else { throw HarnessError("peer closed the connection") }
        let progress: TransformProgress
        do {
            progress = try scratch.withUnsafeBytes {
                try engine.receive(UnsafeRawBufferPointer(rebasing: $0[0..<received]), plaintext: plaintext, output: output)
            }
        } catch {
            // Like a connection: the alert the engine queued still goes out.
            try? flush(deadline: deadline)
            throw error
        }
        return try after(progress, deadline: deadline)
    }

    private func after(_ progress: TransformProgress, deadline: ContinuousClock.Instant) throws -> TransformProgress {
        enginePending = progress.plaintextPending
        sawPlaintextPending = sawPlaintextPending || progress.plaintextPending
        try flush(deadline: deadline)
        return progress
    }

    private func flush(deadline: ContinuousClock.Instant) throws {
        guard !output.isEmpty else { return }
        try socket.sendAll(output.readableRegion, deadline: deadline)
        output.consume(output.readableBytes)
    }
}


/// An MQTT 3.1.1 CONNECT with clean session, keep alive 60 s and the given client id, written
/// out by hand (the encoder is not this suite's subject).
func connectPacket(clientID: String) -> [UInt8] {
    let id = Array(clientID.utf8)
    // Protocol name "MQTT", level 4, flags: clean session [MQTT-3.1.2-4], keep alive 60.
    let variableHeader: [UInt8] = [0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3C]
    let payload: [UInt8] = [UInt8(id.count >> 8), UInt8(id.count & 0xFF)] + id
    let remainingLength = variableHeader.count + payload.count
    precondition(remainingLength < 128, "one-byte remaining length only")
    return [0x10, UInt8(remainingLength)] + variableHeader + payload
}

/// CONNACK, session not present, connection accepted [MQTT-3.2.2-1].
let connackAccepted: [UInt8] = [0x20, 0x02, 0x00, 0x00]
