public import UVReactor
import MQTTProtocol
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

/// Where a client connects: host, port, security and, for MQTT over WebSocket, the WebSocket
/// settings.
///
/// Built from a host name or IP literal, or from a URI: `mqtt://host[:port]`,
/// `mqtts://host[:port]`, `ws://host[:port][/path]`, `wss://host[:port][/path]`. The scheme
/// decides the security and the default port (1883 plain, 8883 TLS, 80 ws, 443 wss); a
/// WebSocket URI without a path uses `/mqtt`.
public struct MQTTServer: Sendable, Hashable {
    /// Host name or IP literal (IPv6 without brackets).
    public var host: String
    /// TCP port.
    public var port: Int
    /// Plain or TLS.
    public var security: MQTTSecurity
    /// MQTT over WebSocket (RFC 6455, over TLS when ``security`` is on), or nil for MQTT
    /// directly over TCP/TLS.
    public var webSocket: WebSocketConfiguration?

    /// The IANA port for MQTT over TCP.
    public static let defaultPort = 1883
    /// The IANA port for MQTT over TLS.
    public static let defaultSecurePort = 8883
    /// The HTTP port, the default for `ws://`.
    public static let defaultWebSocketPort = 80
    /// The HTTPS port, the default for `wss://`.
    public static let defaultSecureWebSocketPort = 443

    /// Creates a server address.
    ///
    /// - Parameters:
    ///   - host: Host name or IP literal.
    ///   - port: TCP port; nil for 1883 (plain) or 8883 (TLS), 80 or 443 with WebSocket.
    ///   - security: Plain (default) or TLS.
    ///   - webSocket: WebSocket settings for MQTT over WebSocket, or nil (default) for none.
    public init(host: String, port: Int? = nil, security: MQTTSecurity = .off,
                webSocket: WebSocketConfiguration? = nil) {
        self.host = host
        self.security = security
        self.webSocket = webSocket
        if webSocket != nil {
            self.port = port ?? (security == .off ? MQTTServer.defaultWebSocketPort : MQTTServer.defaultSecureWebSocketPort)
        } else {
            self.port = port ?? (security == .off ? MQTTServer.defaultPort : MQTTServer.defaultSecurePort)
        }
    }

    /// The server with the WebSocket subprotocol chosen for `version` when the configuration
    /// names none: `mqtt` for 3.1.1 [MQTT-6.0.0-3], `mqttv3.1` for 3.1.
    func resolvingSubprotocol(for version: ProtocolVersion) -> MQTTServer {
        guard var webSocket, webSocket.subprotocol == nil else { return self }
        webSocket.subprotocol = version == .v3_1 ? WebSocketConfiguration.mqtt31Subprotocol
                                                 : WebSocketConfiguration.mqttSubprotocol
        var server = self
        server.webSocket = webSocket
        return server
    }

    /// Parses NodeMCU's `connect` host argument: a host, or an `mqtt://`, `mqtts://`, `ws://` or
    /// `wss://` URI (a WebSocket URI keeps its path, default `/mqtt`).
    ///
    /// An explicit `port` wins over the URI's; an explicit `security` other than `.off` wins over
    /// the scheme (so `mqtts://` with a custom CA is `security: .tls(...)`).
    ///
    /// - Parameters:
    ///   - hostOrURI: `broker.example`, `127.0.0.1`, `::1`, `mqtt://host:1883`, `mqtts://[::1]:8883`,
    ///     `ws://host:8080/mqtt`, `wss://host/ws`.
    ///   - port: Port, or nil for the URI's or the scheme's default.
    ///   - security: Security, or `.off` to take it from the scheme.
    /// - Throws: ``MQTTServerAddressError`` for an unknown scheme, an empty host or a bad port.
    public init(parsing hostOrURI: String, port: Int? = nil, security: MQTTSecurity = .off) throws(MQTTServerAddressError) {
        var rest = Substring(hostOrURI)
        var schemeSecurity = MQTTSecurity.off
        var webSocket: WebSocketConfiguration?
        let separator = ClientURI.schemeSeparator(in: rest)
        if let separator {
            let scheme = rest[..<separator.lowerBound].lowercased()
            switch scheme {
            case "mqtt", "tcp": schemeSecurity = .off
            case "mqtts", "ssl", "tls": schemeSecurity = .on
            case "ws": webSocket = WebSocketConfiguration()
            case "wss":
                schemeSecurity = .on
                webSocket = WebSocketConfiguration()
            default: throw .unsupportedScheme(String(scheme))
            }
            rest = rest[separator.upperBound...]
            if let slash = rest.firstIndex(of: "/") {
                // The path is the WebSocket request target; for MQTT over TCP it has no meaning.
                let path = rest[slash...]
                if webSocket != nil && path != "/" { webSocket?.path = String(path) }
                rest = rest[..<slash]
            }
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
        self.init(host: String(host), port: chosenPort, security: chosenSecurity, webSocket: webSocket)
    }
}

/// Why a host or URI given to `connect` cannot be used.
public enum MQTTServerAddressError: Error, Sendable, Hashable {
    /// A URI scheme other than `mqtt` / `mqtts` / `ws` / `wss` (or `tcp` / `ssl` / `tls`).
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
