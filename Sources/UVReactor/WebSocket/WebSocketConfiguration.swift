/// One HTTP header line of the WebSocket upgrade request.
public struct HTTPHeader: Sendable, Hashable {
    /// The field name, e.g. `Authorization`.
    public var name: String
    /// The field value.
    public var value: String

    /// Creates a header line.
    ///
    /// - Parameters:
    ///   - name: The field name (no colon, no line breaks).
    ///   - value: The field value (no line breaks).
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// How a WebSocket connection is opened: the request path, the subprotocol, extra headers.
///
/// MQTT over WebSocket (MQTT 3.1.1 §6) uses binary frames and the subprotocol `mqtt`
/// (`mqttv3.1` for MQTT 3.1); the usual path is `/mqtt`.
public struct WebSocketConfiguration: Sendable, Hashable {
    /// The request target, starting with `/` (may carry a query).
    public var path: String
    /// The subprotocol offered in `Sec-WebSocket-Protocol`; the server must select it. nil: the
    /// client chooses by protocol level (`mqtt` for 3.1.1, `mqttv3.1` for 3.1).
    public var subprotocol: String?
    /// More header lines for the request (authentication, cookies, `Origin`).
    public var extraHeaders: [HTTPHeader]
    /// The `Host` header; nil: the connection's host and port.
    public var hostHeader: String?
    /// The largest response header block accepted (bytes).
    public var maximumHandshakeSize: Int

    /// The default path of MQTT over WebSocket.
    public static let defaultPath = "/mqtt"
    /// The subprotocol of MQTT 3.1.1 [MQTT-6.0.0-3].
    public static let mqttSubprotocol = "mqtt"
    /// The subprotocol MQTT 3.1 brokers expect.
    public static let mqtt31Subprotocol = "mqttv3.1"

    /// Creates a configuration.
    ///
    /// - Parameters:
    ///   - path: The request target (default `/mqtt`); a missing leading `/` is added.
    ///   - subprotocol: The subprotocol, or nil to choose by protocol level.
    ///   - extraHeaders: More request header lines.
    ///   - hostHeader: The `Host` header, or nil for the connection's host and port.
    ///   - maximumHandshakeSize: The response header limit (default 16 KiB).
    public init(path: String = WebSocketConfiguration.defaultPath, subprotocol: String? = nil,
                extraHeaders: [HTTPHeader] = [], hostHeader: String? = nil,
                maximumHandshakeSize: Int = 16 * 1024) {
        self.path = path.hasPrefix("/") ? path : "/" + path
        self.subprotocol = subprotocol
        self.extraHeaders = extraHeaders
        self.hostHeader = hostHeader
        self.maximumHandshakeSize = maximumHandshakeSize
    }
}
