import Foundation
import MQTTTestSupport
import RingBuffers
import Testing
import UVReactor

#if canImport(Glibc)
import Glibc
#endif

extension BlockingTLSSuites {
    @Suite("TLS engine against a mosquitto TLS listener", .serialized)
    struct TLSMosquittoTests {
        let fixtures: TLSFixtures

        init() throws {
            fixtures = try TLSFixtures.shared()
        }

        @Test func connectOverVerifiedTLSGetsConnack() throws {
            let broker = try MosquittoBroker.start(MosquittoOptions(tls: fixtures, requireClientCertificate: false, persistence: false))
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
            while !broker.log().contains("New client connected") && ContinuousClock.now < deadline {
                usleep(10_000)
            }
            #expect(broker.log().contains("tls-engine-test"))
        }

        @Test func wrongCAFailsAgainstBroker() throws {
            let broker = try MosquittoBroker.start(MosquittoOptions(tls: fixtures, requireClientCertificate: false, persistence: false))
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
            let broker = try MosquittoBroker.start(MosquittoOptions(tls: fixtures, requireClientCertificate: true, persistence: false))
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
            let broker = try MosquittoBroker.start(MosquittoOptions(tls: fixtures, requireClientCertificate: true, persistence: false))
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
}
