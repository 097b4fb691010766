/// The NodeMCU connection failure reasons as an enum with their numbers as raw values.
///
/// -5 ... 5 are the ESP8266 `mqtt` module's values (kept so that ported code can compare
/// numbers); the others are this project's, for failures NodeMCU lumps together or does not
/// detect. ``MQTTConnectionFailure/reason`` maps a failure (which carries the detail: the host,
/// the CONNACK code, OpenSSL's message) to its reason.
///
/// Not frozen: later versions may add cases (a new failure reason, a new request error). Switch
/// over it with a `default:` (or `@unknown default:`) branch.
public enum MQTTConnectReason: Int, Sendable, Hashable, CaseIterable {
    /// Nothing listening at that address and port (`CONN_FAIL_SERVER_NOT_FOUND`).
    case serverNotFound = -5
    /// The broker's first packet was not a CONNACK (`CONN_FAIL_NOT_A_CONNACK_MSG`).
    case notAConnAck = -4
    /// The host name did not resolve (`CONN_FAIL_DNS`).
    case dns = -3
    /// No CONNACK in time (`CONN_FAIL_TIMEOUT_RECEIVING`).
    case timeoutReceiving = -2
    /// The transport was not up in time to send CONNECT (`CONN_FAIL_TIMEOUT_SENDING`).
    case timeoutSending = -1
    /// CONNACK 1: the broker does not speak this protocol version.
    case refusedProtocolVersion = 1
    /// CONNACK 2: client identifier rejected.
    case refusedIdentifier = 2
    /// CONNACK 3: server unavailable.
    case refusedServerUnavailable = 3
    /// CONNACK 4: bad user name or password.
    case refusedBadCredentials = 4
    /// CONNACK 5: not authorised.
    case refusedNotAuthorized = 5
    /// Another transport failure (reset, I/O error).
    case transport = -6
    /// The broker closed the connection.
    case closedByPeer = -7
    /// The broker sent bytes that break the protocol.
    case protocolError = -8
    /// No answer to PINGREQ within half a keepalive.
    case keepAliveTimeout = -9
    /// The TLS handshake failed (protocol, cipher, alert, configuration).
    case tlsHandshake = -10
    /// The server's certificate chain is not trusted.
    case tlsCertificateUntrusted = -11
    /// The server's certificate does not match the host name or address.
    case tlsHostnameMismatch = -12
    /// The server rejected our client certificate or its absence.
    case tlsClientCertificateRejected = -13
    /// The user closed the client during the attempt.
    case closedByUser = -20
}
