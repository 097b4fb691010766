public import UVReactor
/// Whether and how a connection is encrypted.
///
/// NodeMCU's `secure` argument: off, on (verify the server against the system trust store), or
/// a TLS configuration with a CA, a client certificate and key (PEM data or files), a server
/// name; host name verification is on unless explicitly turned off.
public enum MQTTSecurity: Sendable, Hashable {
    /// Plain TCP.
    case off
    /// TLS, server verified against the system trust store and the host name.
    case on
    /// TLS with this configuration.
    case tls(TLSConfiguration)

    /// The TLS configuration, or nil for plain TCP.
    var tlsConfiguration: TLSConfiguration? {
        switch self {
        case .off: nil
        case .on: .default
        case .tls(let configuration): configuration
        }
    }
}

/// Where a client connects: host, port and security.
///
/// Built from a host name or IP literal, or from an `mqtt://host[:port]` / `mqtts://host[:port]`
/// URI (the scheme decides the security and the default port: 1883 plain, 8883 TLS).
public struct MQTTServer: Sendable, Hashable {
    /// Host name or IP literal (IPv6 without brackets).
    public var host: String
    /// TCP port.
    public var port: Int
    /// Plain or TLS.
    public var security: MQTTSecurity

    /// The IANA port for MQTT over TCP.
    public static let defaultPort = 1883
    /// The IANA port for MQTT over TLS.
    public static let defaultSecurePort = 8883

    /// Creates a server address.
    ///
    /// - Parameters:
    ///   - host: Host name or IP literal.
    ///   - port: TCP port; nil for 1883 (plain) or 8883 (TLS).
    ///   - security: Plain (default) or TLS.
    public init(host: String, port: Int? = nil, security: MQTTSecurity = .off) {
        self.host = host
        self.security = security
        self.port = port ?? (security == .off ? MQTTServer.defaultPort : MQTTServer.defaultSecurePort)
    }

    /// Parses NodeMCU's `connect` host argument: a host, or an `mqtt://` / `mqtts://` URI.
    ///
    /// An explicit `port` wins over the URI's; an explicit `security` other than `.off` wins over
    /// the scheme (so `mqtts://` with a custom CA is `security: .tls(...)`).
    ///
    /// - Parameters:
    ///   - hostOrURI: `broker.example`, `127.0.0.1`, `::1`, `mqtt://host:1883`, `mqtts://[::1]:8883`.
    ///   - port: Port, or nil for the URI's or the scheme's default.
    ///   - security: Security, or `.off` to take it from the scheme.
    /// - Throws: ``MQTTServerAddressError`` for an unknown scheme, an empty host or a bad port.
    public init(parsing hostOrURI: String, port: Int? = nil, security: MQTTSecurity = .off) throws(MQTTServerAddressError) {
        var rest = Substring(hostOrURI)
        var schemeSecurity = MQTTSecurity.off
        let separator = ClientURI.schemeSeparator(in: rest)
        if let separator {
            let scheme = rest[..<separator.lowerBound].lowercased()
            switch scheme {
            case "mqtt", "tcp": schemeSecurity = .off
            case "mqtts", "ssl", "tls": schemeSecurity = .on
            default: throw .unsupportedScheme(String(scheme))
            }
            rest = rest[separator.upperBound...]
            // Anything after the authority (a path) has no meaning for MQTT; ignore it.
            if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
            if let at = rest.lastIndex(of: "@") { rest = rest[rest.index(after: at)...] }
        }
        var host = rest
        var uriPort: Int?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw .invalidHost(hostOrURI) }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()) else { throw .invalidPort(String(after.dropFirst())) }
                uriPort = p
            } else if !after.isEmpty {
                throw .invalidHost(hostOrURI)
            }
        } else if separator != nil, let colon = rest.lastIndex(of: ":") {
            // A URI authority: host:port. (A bare IPv6 literal without a scheme keeps its colons.)
            host = rest[..<colon]
            let text = rest[rest.index(after: colon)...]
            guard let p = Int(text) else { throw .invalidPort(String(text)) }
            uriPort = p
        }
        guard !host.isEmpty else { throw .invalidHost(hostOrURI) }
        let chosenSecurity = security == .off ? schemeSecurity : security
        let chosenPort = port ?? uriPort
        if let chosenPort, !(1...65535).contains(chosenPort) { throw .invalidPort(String(chosenPort)) }
        self.init(host: String(host), port: chosenPort, security: chosenSecurity)
    }
}

/// Why a host or URI given to `connect` cannot be used.
public enum MQTTServerAddressError: Error, Sendable, Hashable {
    /// A URI scheme other than `mqtt` / `mqtts` (or `tcp` / `ssl` / `tls`).
    case unsupportedScheme(String)
    /// No host, or a bracketed IPv6 literal that is not closed.
    case invalidHost(String)
    /// A port that is not a number in 1...65535.
    case invalidPort(String)
}

/// URI helpers of ``MQTTServer/init(parsing:port:security:)``.
enum ClientURI {
    /// The range of `://` in `text`, if any.
    static func schemeSeparator(in text: Substring) -> Range<Substring.Index>? {
        var index = text.startIndex
        while index < text.endIndex {
            if text[index...].hasPrefix("://") {
                return index..<text.index(index, offsetBy: 3)
            }
            index = text.index(after: index)
        }
        return nil
    }
}
