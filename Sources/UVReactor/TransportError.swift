/// Why a connection could not be made, or ended.
///
/// The cases keep the distinctions the NodeMCU reason codes need (DNS failure, nothing
/// listening, timeout) and carry TLS details (the OpenSSL verify result, the expected host).
///
/// Not frozen: later versions may add cases. Switch over it
/// with a `default:` branch.
public enum TransportError: Error, Sendable, Hashable {
    /// The host name did not resolve.
    case dnsFailure(host: String, UVError)
    /// Nothing listening at any resolved address (ECONNREFUSED).
    case connectionRefused
    /// No TCP connection (or TLS handshake) within the connect timeout.
    case connectTimeout
    /// The peer reset the connection (ECONNRESET, EPIPE).
    case connectionReset
    /// The peer closed the stream (end of file).
    case closedByPeer
    /// Another libuv error.
    case io(UVError)
    /// The TLS configuration could not be loaded (CA, certificate or key file/data).
    case tlsConfiguration(String)
    /// The peer's certificate chain is not trusted; carries OpenSSL's verify result string.
    case tlsCertificateUntrusted(String)
    /// The certificate does not match the expected host name or IP address.
    case tlsHostnameMismatch(String)
    /// The server required a client certificate and none (or an unacceptable one) was sent.
    case tlsPeerRequiredCertificate
    /// Any other TLS failure (handshake, alert, protocol), with OpenSSL's error text.
    case tlsFailure(String)
    /// The WebSocket handshake was refused or malformed, a frame broke RFC 6455, or the server
    /// closed the WebSocket with a code other than 1000 (``WebSocketError`` says which).
    case webSocket(WebSocketError)
}
