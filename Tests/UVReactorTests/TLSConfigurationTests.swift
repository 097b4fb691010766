import MQTTTestSupport
import RingBuffers
import Testing
import UVReactor

/// Loading configurations into a ``TLSContext``: no network, certificates from the fixtures.
@Suite("TLS configuration loading")
struct TLSConfigurationTests {
    let fixtures: TLSFixtures

    init() throws {
        fixtures = try TLSFixtures.shared()
    }

    /// The message of a `.tlsConfiguration` error thrown by `body`, or nil (recording an issue).
    private func configurationError(_ body: () throws -> Void) -> String? {
        let error = #expect(throws: TransportError.self) { try body() }
        guard case .tlsConfiguration(let message) = error else {
            Issue.record("expected tlsConfiguration, got \(String(describing: error))")
            return nil
        }
        return message
    }

    @Test func defaultsAreSafe() {
        let configuration = TLSConfiguration.default
        #expect(configuration.trust == .system)
        #expect(!configuration.insecure)
        #expect(configuration.minimumVersion == .tls12)
        #expect(configuration.clientCertificate == nil)
        #expect(configuration.serverName == nil)
        #expect(configuration.alpnProtocols.isEmpty)
        #expect(TLSConfiguration.insecureNoVerification.insecure)
    }

    @Test func validConfigurationsLoad() throws {
        _ = try TLSContext()
        _ = try TLSContext(configuration: .trusting(caFile: fixtures.caFile))
        // Two CAs in one PEM blob.
        let both = try fixtures.contents(fixtures.caFile) + fixtures.contents(fixtures.wrongCAFile)
        _ = try TLSContext(configuration: TLSConfiguration(trust: .pem(both)))
        _ = try TLSContext(configuration: TLSConfiguration(
            trust: .pemFile(fixtures.caFile),
            clientCertificate: .pemFiles(certificate: fixtures.clientCertificate, privateKey: fixtures.clientKey),
            alpnProtocols: ["mqtt"]
        ))
        _ = try TLSContext(configuration: TLSConfiguration(
            clientCertificate: .pem(
                certificate: try fixtures.contents(fixtures.clientCertificate),
                privateKey: try fixtures.contents(fixtures.clientKey)
            )
        ))
    }

    @Test func missingCAFileNamesTheFile() {
        let path = fixtures.directory + "/does-not-exist.pem"
        let message = configurationError { _ = try TLSContext(configuration: .trusting(caFile: path)) }
        #expect(message?.contains(path) == true)
        #expect(message?.contains("No such file") == true)
    }

    @Test func caDataWithoutCertificateIsRejected() {
        let message = configurationError {
            _ = try TLSContext(configuration: TLSConfiguration(trust: .pem("not a certificate")))
        }
        #expect(message?.contains("no certificate") == true)
    }

    @Test func truncatedCADataIsRejected() throws {
        // A good certificate followed by half of another one: no silent partial load.
        let good = try fixtures.contents(fixtures.caFile)
        let truncated = Array(try fixtures.contents(fixtures.wrongCAFile).prefix(200))
        let message = configurationError {
            _ = try TLSContext(configuration: TLSConfiguration(trust: .pem(good + truncated)))
        }
        #expect(message?.hasPrefix("CA PEM data:") == true)
    }

    @Test func keyNotMatchingCertificateIsRejected() {
        let message = configurationError {
            _ = try TLSContext(configuration: TLSConfiguration(
                clientCertificate: .pemFiles(certificate: fixtures.clientCertificate, privateKey: fixtures.serverKey)
            ))
        }
        #expect(message?.contains("key values mismatch") == true)
    }

    @Test func garbageKeyDataIsRejected() throws {
        let certificate = try fixtures.contents(fixtures.clientCertificate)
        let message = configurationError {
            _ = try TLSContext(configuration: TLSConfiguration(
                clientCertificate: .pem(certificate: certificate, privateKey: Array("garbage".utf8))
            ))
        }
        #expect(message?.hasPrefix("private key PEM data:") == true)
    }

    @Test func invalidALPNNameIsRejected() {
        let message = configurationError {
            _ = try TLSContext(configuration: TLSConfiguration(alpnProtocols: [""]))
        }
        #expect(message?.contains("ALPN") == true)
    }

    @Test func engineNeedsANameToVerify() throws {
        let context = try TLSContext(configuration: .trusting(caFile: fixtures.caFile))
        #expect(throws: TransportError.tlsConfiguration("no host name to verify the certificate against")) {
            _ = try TLSEngine(context: context, host: "")
        }
        // Bracketed IPv6 literals are accepted and checked as addresses.
        let engine = try TLSEngine(context: context, host: "[::1]")
        #expect(engine.expectedName == "::1")
    }

    @Test func startProducesAClientHello() throws {
        let context = try TLSContext(configuration: .trusting(caFile: fixtures.caFile))
        let engine = try TLSEngine(context: context, host: "localhost")
        let output = OutboundBuffer()
        try engine.start(output: output)
        let bytes = output.bytes()
        // A handshake record (22), TLS 1.x legacy record version, carrying a ClientHello (1).
        #expect(bytes.count > 5)
        #expect(bytes.first == 22)
        #expect(bytes.count > 5 && bytes[5] == 1)
        #expect(throws: TransportError.tlsFailure("send called before the handshake completed")) {
            try [UInt8](repeating: 0, count: 4).withUnsafeBytes { try engine.send($0, output: output) }
        }
    }
}
