import Foundation
import RingBuffers
import Testing
import UVReactor

#if canImport(Glibc)
import Glibc
#endif

/// A mosquitto broker with one TLS listener on a free loopback port and its own temporary config.
private final class TLSBroker {
    let process: ChildProcess
    let port: UInt16

    init(_ fixtures: TLSFixtures, requireCertificate: Bool) throws {
        let mosquitto = try executablePath("mosquitto")
        var lastError: (any Error)?
        for attempt in 0..<3 {
            let port = try freeLoopbackPort()
            let base = fixtures.directory + "/mosquitto-\(port)-\(attempt)"
            var config = """
                listener \(port) 127.0.0.1
                cafile \(fixtures.caFile)
                certfile \(fixtures.serverCertificate)
                keyfile \(fixtures.serverKey)
                require_certificate \(requireCertificate)
                allow_anonymous true
                persistence false
                log_dest stderr
                log_type all

                """
            // As root, mosquitto otherwise switches to the `mosquitto` user.
            if getuid() == 0 { config += "user root\n" }
            try config.write(toFile: base + ".conf", atomically: true, encoding: .utf8)
            let process = try ChildProcess(mosquitto, ["-c", base + ".conf"], logPath: base + ".log")
            do {
                try waitUntilListening(port: port, process: process)
                self.process = process
                self.port = port
                return
            } catch {
                process.stop()
                lastError = error
            }
        }
        throw lastError ?? HarnessError("mosquitto did not start")
    }

    func stop() { process.stop() }
}

/// An MQTT 3.1.1 CONNECT with clean session, keep alive 60 s and the given client id, written
/// out by hand (the encoder is not this suite's subject).
private func connectPacket(clientID: String) -> [UInt8] {
    let id = Array(clientID.utf8)
    // Protocol name "MQTT", level 4, flags: clean session [MQTT-3.1.2-4], keep alive 60.
    let variableHeader: [UInt8] = [0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3C]
    let payload: [UInt8] = [UInt8(id.count >> 8), UInt8(id.count & 0xFF)] + id
    let remainingLength = variableHeader.count + payload.count
    precondition(remainingLength < 128, "one-byte remaining length only")
    return [0x10, UInt8(remainingLength)] + variableHeader + payload
}

/// CONNACK, session not present, connection accepted [MQTT-3.2.2-1].
private let connackAccepted: [UInt8] = [0x20, 0x02, 0x00, 0x00]

@Suite("TLS engine against a mosquitto TLS listener", .serialized)
struct TLSMosquittoTests {
    let fixtures: TLSFixtures

    init() throws {
        fixtures = try TLSFixtures.shared()
    }

    @Test func connectOverVerifiedTLSGetsConnack() throws {
        let broker = try TLSBroker(fixtures, requireCertificate: false)
        defer { broker.stop() }
        let context = try TLSContext(configuration: .trusting(caFile: fixtures.caFile))
        let client = try TLSTestClient(port: broker.port, context: context, host: "localhost")
        try client.handshake()
        let connect = connectPacket(clientID: "tls-engine-test")
        #expect(connect.count == 2 + 10 + 2 + 15)
        try client.write(connect)
        #expect(try client.read(count: 4) == connackAccepted)
        try client.close()
        // The broker saw the CONNECT from this client id.
        let deadline = ContinuousClock.now + .seconds(5)
        while !broker.process.log.contains("New client connected") && ContinuousClock.now < deadline {
            usleep(10_000)
        }
        #expect(broker.process.log.contains("tls-engine-test"))
    }

    @Test func wrongCAFailsAgainstBroker() throws {
        let broker = try TLSBroker(fixtures, requireCertificate: false)
        defer { broker.stop() }
        let context = try TLSContext(configuration: .trusting(caFile: fixtures.wrongCAFile))
        let client = try TLSTestClient(port: broker.port, context: context, host: "localhost")
        // mosquitto sends its CA along with the leaf (s_server does not), so OpenSSL's verdict is
        // about an untrusted self-signed root rather than a missing issuer.
        #expect(throws: TransportError.tlsCertificateUntrusted("self-signed certificate in certificate chain")) {
            try client.handshake()
        }
    }

    @Test func mutualTLSWithClientCertificateGetsConnack() throws {
        let broker = try TLSBroker(fixtures, requireCertificate: true)
        defer { broker.stop() }
        var configuration = TLSConfiguration.trusting(caFile: fixtures.caFile)
        configuration.clientCertificate = .pemFiles(certificate: fixtures.clientCertificate, privateKey: fixtures.clientKey)
        let context = try TLSContext(configuration: configuration)
        let client = try TLSTestClient(port: broker.port, context: context, host: "127.0.0.1")
        try client.handshake()
        try client.write(connectPacket(clientID: "tls-mutual"))
        #expect(try client.read(count: 4) == connackAccepted)
        try client.close()
    }

    @Test func mutualTLSWithoutClientCertificateIsRefused() throws {
        let broker = try TLSBroker(fixtures, requireCertificate: true)
        defer { broker.stop() }
        let context = try TLSContext(configuration: .trusting(caFile: fixtures.caFile))
        let client = try TLSTestClient(port: broker.port, context: context, host: "localhost")
        // TLS 1.3: the client's handshake completes; the refusal arrives with the first read,
        // here (like a real client) after CONNECT was already sent. The broker may have closed
        // by then, so that send can fail with ECONNRESET (about half the runs); the alert is
        // still readable after the reset (Linux keeps queued data) and says why.
        try client.handshake()
        try client.write(connectPacket(clientID: "tls-no-certificate"))
        #expect(throws: TransportError.tlsPeerRequiredCertificate) {
            _ = try client.read(count: 4)
        }
    }
}
