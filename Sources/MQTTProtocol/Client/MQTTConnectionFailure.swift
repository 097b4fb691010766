/// Why a connection attempt failed or an established connection ended.
///
/// The NodeMCU-style API reports these through its `connfail` callback and `offline` event; the
/// async API throws them. ``nodeMCUReasonCode`` keeps the ESP8266 numbers (-5 ... 5) for the
/// cases NodeMCU has, and gives the others (TLS, keepalive, protocol errors) their own numbers
/// outside that table. The transport layer maps its errors to the transport and TLS cases and
/// puts its detail in the associated strings.
public enum MQTTConnectionFailure: Error, Sendable, Hashable {
    /// Nothing listening at that address and port (connection refused / unreachable). NodeMCU -5.
    case serverNotFound
    /// The broker's first packet was not a CONNACK. NodeMCU -4.
    case notConnAck(PacketType)
    /// The host name did not resolve. NodeMCU -3.
    case dnsFailure(host: String)
    /// No CONNACK within the connect timeout. NodeMCU -2.
    case connAckTimeout
    /// The transport (TCP, TLS handshake) did not come up, so CONNECT could not be sent in
    /// time. NodeMCU -1.
    case sendTimeout
    /// The broker refused the connection with a CONNACK return code 1...5 [MQTT-3.2.2-5].
    case refused(ConnectReturnCode)
    /// The TLS handshake failed (protocol or cipher mismatch, alert from the peer).
    case tlsHandshakeFailed(String)
    /// The server's certificate chain did not verify against the trusted CAs.
    case tlsCertificateUntrusted(String)
    /// The server's certificate does not match the host name or address.
    case tlsHostnameMismatch(String)
    /// The server required a client certificate and rejected ours or the lack of one.
    case tlsClientCertificateRejected(String)
    /// No PINGRESP (nor any other packet) within half a keepalive after a PINGREQ.
    case keepAliveTimeout
    /// The broker sent bytes that break the protocol; the connection was closed.
    case protocolError(MQTTProtocolError)
    /// The broker closed the connection (end of stream).
    case closedByPeer
    /// Another transport failure (reset, I/O error), with the transport's description.
    case transport(String)
    /// The user closed the client.
    case closedByUser

    /// The reason code the NodeMCU `connfail` callback reports.
    ///
    /// ESP8266 values for the cases NodeMCU knows: -5 server not found, -4 not a CONNACK,
    /// -3 DNS, -2 timeout receiving (no CONNACK), -1 timeout sending, 1...5 the CONNACK refusal
    /// codes. Ours beyond that table: -6 other transport failure (ESP32's generic code),
    /// -7 closed by the peer, -8 protocol error, -9 keepalive timeout, -10 TLS handshake,
    /// -11 untrusted certificate, -12 host name mismatch, -13 client certificate rejected,
    /// -20 closed by the user.
    public var nodeMCUReasonCode: Int {
        switch self {
        case .serverNotFound: -5
        case .notConnAck: -4
        case .dnsFailure: -3
        case .connAckTimeout: -2
        case .sendTimeout: -1
        case .refused(let code): Int(code.rawValue)
        case .transport: -6
        case .closedByPeer: -7
        case .protocolError: -8
        case .keepAliveTimeout: -9
        case .tlsHandshakeFailed: -10
        case .tlsCertificateUntrusted: -11
        case .tlsHostnameMismatch: -12
        case .tlsClientCertificateRejected: -13
        case .closedByUser: -20
        }
    }

    /// Whether trying again later can help.
    ///
    /// A refusal for protocol version, client id, credentials or authorisation (codes 1, 2, 4,
    /// 5) and a TLS certificate or name failure will fail the same way on every attempt, so
    /// automatic reconnect stops on them; everything else (network, timeouts, server
    /// unavailable, protocol errors) is retried with back-off.
    public var isRetryable: Bool {
        switch self {
        case .refused(let code): code == .serverUnavailable
        case .tlsCertificateUntrusted, .tlsHostnameMismatch, .tlsClientCertificateRejected: false
        case .closedByUser: false
        default: true
        }
    }
}

extension MQTTConnectionFailure: CustomStringConvertible {
    public var description: String {
        let what: String
        switch self {
        case .serverNotFound: what = "server not found"
        case .notConnAck(let type): what = "first packet from the broker was \(type), not CONNACK"
        case .dnsFailure(let host): what = "host name '\(host)' did not resolve"
        case .connAckTimeout: what = "no CONNACK in time"
        case .sendTimeout: what = "CONNECT could not be sent in time"
        case .refused(let code): what = "connection refused by the broker: \(code)"
        case .tlsHandshakeFailed(let d): what = "TLS handshake failed: \(d)"
        case .tlsCertificateUntrusted(let d): what = "server certificate not trusted: \(d)"
        case .tlsHostnameMismatch(let d): what = "server certificate does not match the host: \(d)"
        case .tlsClientCertificateRejected(let d): what = "client certificate rejected: \(d)"
        case .keepAliveTimeout: what = "no answer to PINGREQ: broker considered dead"
        case .protocolError(let e): what = "protocol error: \(e)"
        case .closedByPeer: what = "connection closed by the broker"
        case .transport(let d): what = "transport failure: \(d)"
        case .closedByUser: what = "closed by the user"
        }
        return "\(what) (reason \(nodeMCUReasonCode))"
    }
}

/// Why a client request (connect, publish, subscribe, unsubscribe) cannot be carried out.
public enum MQTTClientError: Error, Sendable, Hashable {
    /// The client is not connected and not trying to connect (never connected, closed, or the
    /// connection was lost with automatic reconnect off).
    case notConnected
    /// Offline with reconnect on, and the offline queue holds its maximum count or bytes.
    case offlineQueueFull(messages: Int, bytes: Int)
    /// Connected, the in-flight window is full and the queue behind it holds its maximum.
    case sendQueueFull(messages: Int, bytes: Int)
    /// Too many SUBSCRIBE / UNSUBSCRIBE requests wait for their acknowledgement.
    case tooManyPendingRequests(limit: Int)
    /// `connect` while connected.
    case alreadyConnected
    /// `connect` while a connection attempt or a reconnect is under way.
    case alreadyConnecting
    /// A SUBSCRIBE or UNSUBSCRIBE without topic filters [MQTT-3.8.3-3], [MQTT-3.10.3-2].
    case noTopicFilters
    /// The packet would be `size` bytes (fixed header included), above `limit`: the configured
    /// ``MQTTClientConfiguration/maximumOutgoingPacketSize``, or MQTT's own limit
    /// (``MQTTEncoder/maximumPacketSize``, a remaining length of at most 268,435,455
    /// [MQTT-2.2.3]). Nothing was queued.
    case packetTooLarge(size: Int, limit: Int)
    /// The request was outstanding when the user closed the client, or was made while a
    /// graceful disconnect is under way.
    case closed
    /// The caller cancelled the request (``MQTTClientStateMachine/cancel(_:now:into:)``).
    case cancelled
    /// The request was outstanding when the connection ended and no reconnect follows.
    case connectionLost(MQTTConnectionFailure)
}
