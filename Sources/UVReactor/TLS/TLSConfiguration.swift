/// How a TLS client connection trusts the server, identifies itself, and what it accepts.
///
/// The defaults are the safe ones: the system trust store, certificate chain and host name (or
/// IP address) verification on, TLS 1.2 as the minimum version, no client certificate, no ALPN.
/// Verification is off only when ``insecure`` is set explicitly.
///
/// ```swift
/// var tls = TLSConfiguration.default
/// tls.trust = .pemFile("/etc/mqtt/ca.pem")
/// tls.clientCertificate = .pemFiles(certificate: "client.pem", privateKey: "client.key")
/// let context = try TLSContext(configuration: tls)   // once, shared by many connections
/// ```
///
/// A configuration is a plain value; ``TLSContext`` loads it (files are read then, once).
public struct TLSConfiguration: Sendable, Hashable {
    /// Where the certificates that may sign the server's chain come from.
    public struct Trust: Sendable, Hashable {
        enum Source: Sendable, Hashable {
            case system
            case pemData([UInt8])
            case pemFile(String)
        }

        let source: Source

        /// The operating system's trust store (OpenSSL's default verify paths).
        public static let system = Trust(source: .system)

        /// One or more CA certificates in PEM form, given as bytes.
        ///
        /// Only these certificates are trusted (the system store is not consulted).
        public static func pem(_ data: [UInt8]) -> Trust { Trust(source: .pemData(data)) }

        /// One or more CA certificates in PEM form, given as text.
        public static func pem(_ text: String) -> Trust { Trust(source: .pemData(Array(text.utf8))) }

        /// A file holding one or more CA certificates in PEM form.
        public static func pemFile(_ path: String) -> Trust { Trust(source: .pemFile(path)) }
    }

    /// A client certificate (with its chain) and the matching private key, for mutual TLS.
    public struct ClientCertificate: Sendable, Hashable {
        enum Source: Sendable, Hashable {
            case pemData(certificate: [UInt8], privateKey: [UInt8])
            case pemFiles(certificate: String, privateKey: String)
        }

        let source: Source

        /// A certificate chain (leaf first) and an unencrypted private key in PEM form, as bytes.
        public static func pem(certificate: [UInt8], privateKey: [UInt8]) -> ClientCertificate {
            ClientCertificate(source: .pemData(certificate: certificate, privateKey: privateKey))
        }

        /// A certificate chain (leaf first) and an unencrypted private key in PEM form, as text.
        public static func pem(certificate: String, privateKey: String) -> ClientCertificate {
            .pem(certificate: Array(certificate.utf8), privateKey: Array(privateKey.utf8))
        }

        /// A certificate chain file (leaf first) and an unencrypted private key file, both PEM.
        public static func pemFiles(certificate: String, privateKey: String) -> ClientCertificate {
            ClientCertificate(source: .pemFiles(certificate: certificate, privateKey: privateKey))
        }
    }

    /// The lowest protocol version the client accepts.
    public enum Version: Sendable, Hashable {
        /// TLS 1.2 (RFC 5246): the default minimum.
        case tls12
        /// TLS 1.3 (RFC 8446).
        case tls13
    }

    /// Which certificate authorities sign a trusted server chain (default: ``Trust/system``).
    public var trust: Trust
    /// The client certificate and key sent when the server asks for one (default: none).
    public var clientCertificate: ClientCertificate?
    /// The name sent as SNI and checked against the server certificate, instead of the host the
    /// connection was opened to (default: nil, use that host). An IP literal here is checked
    /// against the certificate's IP address entries and sends no SNI.
    public var serverName: String?
    /// Skips certificate chain and host name verification (default: false).
    ///
    /// Encryption still happens, but anyone on the path can impersonate the server. Meant for
    /// tests and for brokers with self-signed certificates that cannot be distributed.
    public var insecure: Bool
    /// The lowest protocol version accepted (default: ``Version/tls12``).
    public var minimumVersion: Version
    /// Application protocols offered with ALPN, most preferred first (default: none, no ALPN
    /// extension). MQTT over port 443 brokers commonly expect `"mqtt"`.
    public var alpnProtocols: [String]

    /// Creates a configuration; every parameter has the safe default.
    ///
    /// - Parameters:
    ///   - trust: Which certificate authorities are trusted.
    ///   - clientCertificate: The certificate and key for mutual TLS, if any.
    ///   - serverName: SNI and verification name override.
    ///   - insecure: Turns verification off; only when explicitly needed.
    ///   - minimumVersion: The lowest protocol version accepted.
    ///   - alpnProtocols: Protocols offered with ALPN.
    public init(
        trust: Trust = .system,
        clientCertificate: ClientCertificate? = nil,
        serverName: String? = nil,
        insecure: Bool = false,
        minimumVersion: Version = .tls12,
        alpnProtocols: [String] = []
    ) {
        self.trust = trust
        self.clientCertificate = clientCertificate
        self.serverName = serverName
        self.insecure = insecure
        self.minimumVersion = minimumVersion
        self.alpnProtocols = alpnProtocols
    }

    /// System trust store, full verification, TLS 1.2 minimum.
    public static var `default`: TLSConfiguration { TLSConfiguration() }

    /// Full verification against the given CA certificates only (PEM file).
    ///
    /// - Parameter caFile: Path of a PEM file with one or more CA certificates.
    public static func trusting(caFile: String) -> TLSConfiguration {
        TLSConfiguration(trust: .pemFile(caFile))
    }

    /// Encryption without any verification of the server (see ``insecure``).
    public static var insecureNoVerification: TLSConfiguration { TLSConfiguration(insecure: true) }
}
