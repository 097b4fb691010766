import Foundation
import MQTTTestSupport
import RingBuffers
import Testing
@testable import UVReactor

/// Sends `line` plus a newline and expects it back reversed.
private func expectReversedEcho(_ client: TLSTestClient, _ line: String) throws {
    try client.write(Array((line + "\n").utf8))
    let reply = try client.read(count: line.utf8.count + 1)
    #expect(reply == Array(line.utf8.reversed()) + [UInt8(ascii: "\n")])
}

extension BlockingTLSSuites {
    @Suite("TLS engine against openssl s_server", .serialized)
    struct TLSEngineServerTests {
        let fixtures: TLSFixtures

        init() throws {
            fixtures = try TLSFixtures.shared()
        }

        @Test func rightCAHandshakesAndRoundTripsData() throws {
            let server = try ReversingServer(fixtures)
            defer { server.stop() }
            let context = try TLSContext(configuration: .trusting(caFile: fixtures.caFile))
            let client = try TLSTestClient(port: server.port, context: context, host: "localhost")
            try client.handshake()
            #expect(client.engine.isEstablished)
            #expect(client.engine.protocolVersion == "TLSv1.3")
            #expect(client.engine.cipherSuite != nil)
            try expectReversedEcho(client, "hello over TLS")
            // Several records each way (the line is longer than one 16 KiB record is not needed:
            // s_server reads lines of up to its buffer size; 12 000 bytes is under it).
            let long = String((0..<12_000).map { Character(UnicodeScalar(UInt8(97 + $0 % 26))) })
            try expectReversedEcho(client, long)
            try client.close()
            #expect(!client.engine.isEstablished)
            // After our close_notify, arriving bytes are dropped and sending is refused.
            let progress = try client.engine.receive(
                UnsafeRawBufferPointer(start: nil, count: 0), plaintext: client.plaintext, output: client.output)
            #expect(!progress.plaintextPending)
            #expect(throws: TransportError.tlsFailure("send called after shutdown")) {
                try client.write(Array("late".utf8))
            }
        }

        @Test func caGivenAsPEMDataWorks() throws {
            let server = try ReversingServer(fixtures)
            defer { server.stop() }
            let context = try TLSContext(configuration: TLSConfiguration(trust: .pem(try fixtures.contents(fixtures.caFile))))
            let client = try TLSTestClient(port: server.port, context: context, host: "localhost")
            try client.handshake()
            try expectReversedEcho(client, "PEM data trust")
        }

        @Test func wrongCAFailsAsUntrusted() throws {
            let server = try ReversingServer(fixtures)
            defer { server.stop() }
            let context = try TLSContext(configuration: .trusting(caFile: fixtures.wrongCAFile))
            let client = try TLSTestClient(port: server.port, context: context, host: "localhost")
            #expect(throws: TransportError.tlsCertificateUntrusted("unable to get local issuer certificate")) {
                try client.handshake()
            }
            // The failure is final: the engine keeps reporting it.
            #expect(throws: TransportError.tlsCertificateUntrusted("unable to get local issuer certificate")) {
                try client.write(Array("x".utf8))
            }
        }

        @Test func systemTrustStoreDoesNotTrustTheTestCA() throws {
            let server = try ReversingServer(fixtures)
            defer { server.stop() }
            let context = try TLSContext()
            let client = try TLSTestClient(port: server.port, context: context, host: "localhost")
            #expect(throws: TransportError.tlsCertificateUntrusted("unable to get local issuer certificate")) {
                try client.handshake()
            }
        }

        @Test func wrongHostNameFails() throws {
            let server = try ReversingServer(fixtures)
            defer { server.stop() }
            let context = try TLSContext(configuration: .trusting(caFile: fixtures.caFile))
            let client = try TLSTestClient(port: server.port, context: context, host: "broker.example.com")
            #expect(throws: TransportError.tlsHostnameMismatch("broker.example.com")) {
                try client.handshake()
            }
        }

        @Test func serverNameOverrideIsWhatGetsVerified() throws {
            let server = try ReversingServer(fixtures)
            defer { server.stop() }
            var configuration = TLSConfiguration.trusting(caFile: fixtures.caFile)
            configuration.serverName = "localhost"
            let context = try TLSContext(configuration: configuration)
            let client = try TLSTestClient(port: server.port, context: context, host: "broker.example.com")
            try client.handshake()
            #expect(client.engine.expectedName == "localhost")
            try expectReversedEcho(client, "override")
        }

        @Test func ipLiteralIsVerifiedAgainstIPAddressEntries() throws {
            let server = try ReversingServer(fixtures)
            defer { server.stop() }
            let context = try TLSContext(configuration: .trusting(caFile: fixtures.caFile))
            let good = try TLSTestClient(port: server.port, context: context, host: "127.0.0.1")
            try good.handshake()
            try expectReversedEcho(good, "by IP address")
            try good.close()

            // Same server, an address the certificate does not list.
            let bad = try TLSTestClient(port: server.port, context: context, host: "127.0.0.2")
            #expect(throws: TransportError.tlsHostnameMismatch("127.0.0.2")) {
                try bad.handshake()
            }
        }

        @Test func insecureConnectsDespiteWrongCAAndWrongHost() throws {
            let server = try ReversingServer(fixtures)
            defer { server.stop() }
            var configuration = TLSConfiguration.trusting(caFile: fixtures.wrongCAFile)
            configuration.insecure = true
            let context = try TLSContext(configuration: configuration)
            let client = try TLSTestClient(port: server.port, context: context, host: "broker.example.com")
            try client.handshake()
            try expectReversedEcho(client, "no verification")
        }

        @Test func mutualTLS13WorksWithClientCertificate() throws {
            let server = try ReversingServer(fixtures, ["-Verify", "1", "-CAfile", fixtures.caFile])
            defer { server.stop() }
            var configuration = TLSConfiguration.trusting(caFile: fixtures.caFile)
            configuration.clientCertificate = .pemFiles(certificate: fixtures.clientCertificate, privateKey: fixtures.clientKey)
            let context = try TLSContext(configuration: configuration)
            let client = try TLSTestClient(port: server.port, context: context, host: "localhost")
            try client.handshake()
            try expectReversedEcho(client, "mutual TLS 1.3")
        }

        @Test func mutualTLS13WithoutCertificateFailsAtFirstRead() throws {
            let server = try ReversingServer(fixtures, ["-Verify", "1", "-CAfile", fixtures.caFile])
            defer { server.stop() }
            let context = try TLSContext(configuration: .trusting(caFile: fixtures.caFile))
            let client = try TLSTestClient(port: server.port, context: context, host: "localhost")
            // The TLS 1.3 trap: the client's side of the handshake completes...
            try client.handshake()
            #expect(client.engine.protocolVersion == "TLSv1.3")
            // ...and the server's "certificate required" alert comes with the first read.
            #expect(throws: TransportError.tlsPeerRequiredCertificate) {
                _ = try client.read(count: 1)
            }
        }

        @Test func mutualTLSRejectsCertificateFromAnotherCA() throws {
            // s_server's verify callback accepts bad certificates unless told to return the error.
            let server = try ReversingServer(fixtures, ["-Verify", "1", "-verify_return_error", "-CAfile", fixtures.caFile])
            defer { server.stop() }
            var configuration = TLSConfiguration.trusting(caFile: fixtures.caFile)
            configuration.clientCertificate = .pemFiles(certificate: fixtures.wrongClientCertificate, privateKey: fixtures.wrongClientKey)
            let context = try TLSContext(configuration: configuration)
            let client = try TLSTestClient(port: server.port, context: context, host: "localhost")
            try client.handshake()
            #expect(throws: TransportError.tlsPeerRequiredCertificate) {
                _ = try client.read(count: 1)
            }
        }

        @Test func mutualTLS12WithoutCertificateFailsInHandshake() throws {
            let server = try ReversingServer(fixtures, ["-tls1_2", "-Verify", "1", "-CAfile", fixtures.caFile])
            defer { server.stop() }
            let context = try TLSContext(configuration: .trusting(caFile: fixtures.caFile))
            let client = try TLSTestClient(port: server.port, context: context, host: "localhost")
            #expect(throws: TransportError.tlsPeerRequiredCertificate) {
                try client.handshake()
            }
        }

        @Test func mutualTLS12WorksWithCertificateAsPEMData() throws {
            let server = try ReversingServer(fixtures, ["-tls1_2", "-Verify", "1", "-CAfile", fixtures.caFile])
            defer { server.stop() }
            var configuration = TLSConfiguration.trusting(caFile: fixtures.caFile)
            configuration.clientCertificate = .pem(
                certificate: try fixtures.contents(fixtures.clientCertificate),
                privateKey: try fixtures.contents(fixtures.clientKey)
            )
            let context = try TLSContext(configuration: configuration)
            let client = try TLSTestClient(port: server.port, context: context, host: "localhost")
            try client.handshake()
            #expect(client.engine.protocolVersion == "TLSv1.2")
            try expectReversedEcho(client, "mutual TLS 1.2")
        }

        @Test func minimumVersionIsEnforced() throws {
            let server = try ReversingServer(fixtures, ["-tls1_2"])
            defer { server.stop() }
            var configuration = TLSConfiguration.trusting(caFile: fixtures.caFile)
            configuration.minimumVersion = .tls13
            let context = try TLSContext(configuration: configuration)
            let client = try TLSTestClient(port: server.port, context: context, host: "localhost")
            let error = #expect(throws: TransportError.self) { try client.handshake() }
            guard case .tlsFailure(let message) = error else {
                Issue.record("expected tlsFailure, got \(String(describing: error))")
                return
            }
            #expect(message.contains("protocol version"))
        }

        @Test func alpnProtocolIsNegotiated() throws {
            let server = try ReversingServer(fixtures, ["-alpn", "mqtt"])
            defer { server.stop() }
            var configuration = TLSConfiguration.trusting(caFile: fixtures.caFile)
            configuration.alpnProtocols = ["x-unknown", "mqtt"]
            let context = try TLSContext(configuration: configuration)
            let client = try TLSTestClient(port: server.port, context: context, host: "localhost")
            try client.handshake()
            #expect(client.engine.negotiatedALPN == "mqtt")
            try expectReversedEcho(client, "alpn")
        }

        @Test func fullPlaintextRingLeavesDataInTheEngine() throws {
            let server = try ReversingServer(fixtures)
            defer { server.stop() }
            let context = try TLSContext(configuration: .trusting(caFile: fixtures.caFile))
            // A ring that can never hold a whole reply: 64 bytes, no growth.
            let ring = ByteRing(initialCapacity: 64, maximumCapacity: 64)
            let client = try TLSTestClient(port: server.port, context: context, host: "localhost", plaintext: ring)
            try client.handshake()
            let line = String((0..<5_000).map { Character(UnicodeScalar(UInt8(48 + $0 % 10))) })
            try expectReversedEcho(client, line)
            #expect(client.sawPlaintextPending)
            #expect(ring.capacity == 64)
        }

        @Test func serverCloseNotifyIsClosedByPeer() throws {
            let server = try ReversingServer(fixtures)
            defer { server.stop() }
            let context = try TLSContext(configuration: .trusting(caFile: fixtures.caFile))
            let client = try TLSTestClient(port: server.port, context: context, host: "localhost")
            try client.handshake()
            try expectReversedEcho(client, "last words")
            // s_server -rev ends the session with close_notify when it reads the line "CLOSE" (sent
            // in its own record: s_server does not look for a second line in a buffered record).
            try client.write(Array("CLOSE\n".utf8))
            #expect(throws: TransportError.closedByPeer) { _ = try client.read(count: 1) }
            // And stays closed.
            #expect(throws: TransportError.closedByPeer) {
                _ = try client.engine.receive(UnsafeRawBufferPointer(start: nil, count: 0), plaintext: client.plaintext, output: client.output)
            }
        }

        @Test func failedConnectionLeavesNoErrorBehind() throws {
            let server = try ReversingServer(fixtures)
            defer { server.stop() }
            let context = try TLSContext(configuration: .trusting(caFile: fixtures.caFile))
            // Same thread, same context: a failure, then a success that must not see its errors.
            // (s_server serves one connection at a time: the failed one is closed first.)
            do {
                let failing = try TLSTestClient(port: server.port, context: context, host: "broker.example.com")
                #expect(throws: TransportError.tlsHostnameMismatch("broker.example.com")) { try failing.handshake() }
            }
            #expect(OpenSSLErrorQueue.peekFirst() == 0)
            let working = try TLSTestClient(port: server.port, context: context, host: "localhost")
            try working.handshake()
            try expectReversedEcho(working, "clean queue")
            #expect(OpenSSLErrorQueue.peekFirst() == 0)
        }
    }
}
