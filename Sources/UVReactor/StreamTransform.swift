public import RingBuffers

/// What a ``StreamTransform`` did with the bytes it was given.
public struct TransformProgress: Sendable, Hashable {
    /// The handshake is complete (the application may send).
    public var handshakeComplete: Bool
    /// Decrypted bytes remain inside the transform because `plaintext` had no room; the
    /// connection calls ``StreamTransform/receive(_:plaintext:output:)`` again (with no new
    /// bytes) once the consumer freed space.
    public var plaintextPending: Bool

    /// Creates a progress report.
    ///
    /// - Parameters:
    ///   - handshakeComplete: Whether the handshake is complete.
    ///   - plaintextPending: Whether decrypted bytes wait inside the transform.
    public init(handshakeComplete: Bool, plaintextPending: Bool) {
        self.handshakeComplete = handshakeComplete
        self.plaintextPending = plaintextPending
    }
}

/// A byte transform between the socket and the application (TLS), driven by a connection.
///
/// The connection hands it every byte that arrives and every byte the application sends; it
/// never touches a socket itself. Bytes it needs sent (handshake records, encrypted data,
/// `close_notify`) are appended to `output`, which the connection writes.
public protocol StreamTransform: AnyObject {
    /// Called once when the TCP connection is established; appends the first flight (ClientHello).
    func start(output: OutboundBuffer) throws(TransportError)

    /// Bytes arrived from the socket. Decrypted bytes go into `plaintext` (as much as fits);
    /// handshake replies go into `output`.
    func receive(_ bytes: UnsafeRawBufferPointer, plaintext: ByteRing, output: OutboundBuffer) throws(TransportError) -> TransformProgress

    /// Encrypts application bytes into `output`. Only called once the handshake completed.
    func send(_ bytes: UnsafeRawBufferPointer, output: OutboundBuffer) throws(TransportError)

    /// Appends a `close_notify` alert to `output` (best effort).
    func shutdown(output: OutboundBuffer)
}
