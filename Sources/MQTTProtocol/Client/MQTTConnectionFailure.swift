/// Why a connection attempt failed or an established connection ended.
///
/// The NodeMCU-style API reports these through its `connfail` callback and `offline` event; the
/// async API throws them. ``nodeMCUReasonCode`` keeps the ESP8266 numbers (-5 ... 5) for the
/// cases NodeMCU has, and gives the others (TLS, keepalive, protocol errors) their own numbers
/// outside that table. The transport layer maps its errors to the transport and TLS cases and
/// puts its detail in the associated strings.
///
/// Not frozen: later versions may add cases (a new failure reason, a new request error). Switch
/// over it with a `default:` (or `@unknown default:`) branch.
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

    /// The reason code the NodeMCU `connfail` callback reports: ``reason``'s raw value (the one
    /// table of numbers is ``MQTTConnectReason``).
    public var nodeMCUReasonCode: Int { reason.rawValue }

    /// The failure's NodeMCU-style reason.
    public var reason: MQTTConnectReason {
        switch self {
        case .serverNotFound: .serverNotFound
        case .notConnAck: .notAConnAck
        case .dnsFailure: .dns
        case .connAckTimeout: .timeoutReceiving
        case .sendTimeout: .timeoutSending
        case .refused(let code):
            switch code {
            case .unacceptableProtocolVersion: .refusedProtocolVersion
            case .identifierRejected: .refusedIdentifier
            case .serverUnavailable: .refusedServerUnavailable
            case .badUsernameOrPassword: .refusedBadCredentials
            case .notAuthorized: .refusedNotAuthorized
            // A CONNACK that accepts is never a failure; kept total for the type.
            case .accepted: .transport
            }
        case .transport: .transport
        case .closedByPeer: .closedByPeer
        case .protocolError: .protocolError
        case .keepAliveTimeout: .keepAliveTimeout
        case .tlsHandshakeFailed: .tlsHandshake
        case .tlsCertificateUntrusted: .tlsCertificateUntrusted
        case .tlsHostnameMismatch: .tlsHostnameMismatch
        case .tlsClientCertificateRejected: .tlsClientCertificateRejected
        case .closedByUser: .closedByUser
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

