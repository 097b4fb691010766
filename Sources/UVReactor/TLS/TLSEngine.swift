import COpenSSL
import CUVShims
public import RingBuffers

/// A TLS client session over a pair of OpenSSL memory BIOs: the ``StreamTransform`` a TCP
/// connection runs its bytes through.
///
/// The engine never touches a socket. The connection hands it the bytes that arrived
/// (``receive(_:plaintext:output:)``), the bytes the application sends (``send(_:output:)``),
/// and writes whatever the engine appended to `output` (handshake records, encrypted data,
/// alerts). The sequence is `start` → `receive`/`send` → `shutdown`.
///
/// Verification (unless ``TLSConfiguration/insecure``): the chain must lead to a trusted CA,
/// and the leaf must match the host: a DNS name is checked with the subject alternative names
/// (`SSL_set1_host`, no partial wildcards), an IP literal with the IP address entries
/// (`X509_VERIFY_PARAM_set1_ip_asc`). SNI is sent for names only (RFC 6066 §3 forbids literals).
///
/// Data path: arriving records are decrypted straight into the plaintext ring's free region,
/// encrypted records are copied once from the write BIO into the outbound buffer; neither
/// allocates per record once the BIOs reached their working size. Sends are encrypted in chunks
/// of at most 16 KiB (one record), so the write BIO stays small whatever the send size.
///
/// Back-pressure: when the plaintext ring is full (at its maximum capacity), decrypted bytes
/// stay inside OpenSSL and ``TransformProgress/plaintextPending`` is set; the connection calls
/// `receive` again with no bytes once the consumer made room (and should stop reading the
/// socket meanwhile, or the read BIO grows by what it keeps feeding).
///
/// Errors: the first failure is final. It is thrown as a ``TransportError`` and thrown again by
/// any later `receive` or `send`. Plaintext committed to the ring before the failure stays there
/// (it was authenticated). Not thread-safe: one connection on one loop thread owns it.
public final class TLSEngine: StreamTransform {
    private enum State {
        case idle
        case handshaking
        case established
        case closed
        case failed(TransportError)
    }

    /// Largest plaintext given to one `SSL_write` (the TLS maximum record payload).
    private static let maximumRecordPayload = 16 * 1024

    /// Keeps the `SSL_CTX` alive as long as the `SSL`.
    public let context: TLSContext
    /// The host the connection was opened to.
    public let host: String
    /// The name or IP address the certificate is checked against (``TLSConfiguration/serverName``
    /// or the host).
    public let expectedName: String

    private let ssl: OpaquePointer
    /// Network → OpenSSL (bytes received from the peer).
    private let readBIO: OpaquePointer
    /// OpenSSL → network (bytes to send to the peer).
    private let writeBIO: OpaquePointer
    private var state: State = .idle
    /// The peer sent `close_notify`; the next `receive` reports the end.
    private var peerClosed = false
    /// Set by the context's client-certificate callback: the server sent a CertificateRequest and
    /// there was no certificate to send.
    var serverRequestedCertificate = false

    /// Creates a client session for one connection.
    ///
    /// - Parameters:
    ///   - context: The loaded configuration (shared by many engines).
    ///   - host: The host name or IP literal the connection is opened to (an IPv6 literal may be
    ///     written in brackets). Used for SNI and verification unless the configuration has a
    ///     ``TLSConfiguration/serverName``.
    /// - Throws: ``TransportError/tlsConfiguration(_:)`` when the name to verify is empty or not
    ///   acceptable to OpenSSL; ``TransportError/tlsFailure(_:)`` when OpenSSL cannot allocate.
    public init(context: TLSContext, host: String) throws(TransportError) {
        let configuration = context.configuration
        var name = configuration.serverName ?? host
        if name.hasPrefix("[") && name.hasSuffix("]") && name.count > 2 {
            name = String(name.dropFirst().dropLast())
        }

        OpenSSLErrorQueue.clear()
        guard let ssl = SSL_new(context.handle) else {
            throw .tlsFailure("SSL_new: \(OpenSSLErrorQueue.drain())")
        }
        guard let readBIO = BIO_new(BIO_s_mem()), let writeBIO = BIO_new(BIO_s_mem()) else {
            // Either may have been created; SSL_free does not own them yet.
            let message = OpenSSLErrorQueue.drain()
            SSL_free(ssl)
            throw .tlsFailure("BIO_new: \(message)")
        }
        // An empty read BIO must mean "no bytes yet" (retry), not end of stream.
        _ = cuv_BIO_set_mem_eof_return(readBIO, -1)
        SSL_set_bio(ssl, readBIO, writeBIO) // the SSL owns both BIOs from here on
        SSL_set_connect_state(ssl)

        do {
            try TLSEngine.setUpVerification(ssl, name: name, insecure: configuration.insecure)
        } catch {
            SSL_free(ssl)
            OpenSSLErrorQueue.clear()
            throw error
        }

        self.context = context
        self.host = host
        self.expectedName = name
        self.ssl = ssl
        self.readBIO = readBIO
        self.writeBIO = writeBIO
        // The client-certificate callback finds the engine here; unretained, since the engine
        // owns (and outlives) the SSL.
        SSL_set_ex_data(ssl, 0, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit {
        SSL_free(ssl) // frees both BIOs
    }

    private static func setUpVerification(_ ssl: OpaquePointer, name: String, insecure: Bool) throws(TransportError) {
        let isIPLiteral = TLSEngine.isIPLiteral(name)
        if !isIPLiteral && !name.isEmpty {
            guard cuv_SSL_set_tlsext_host_name(ssl, name) == 1 else {
                throw .tlsConfiguration("server name \"\(name)\": \(OpenSSLErrorQueue.drain())")
            }
        }
        if insecure { return }
        guard !name.isEmpty else {
            throw .tlsConfiguration("no host name to verify the certificate against")
        }
        if isIPLiteral {
            guard X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1 else {
                throw .tlsConfiguration("IP address \"\(name)\": \(OpenSSLErrorQueue.drain())")
            }
        } else {
            SSL_set_hostflags(ssl, UInt32(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS))
            guard SSL_set1_host(ssl, name) == 1 else {
                throw .tlsConfiguration("host name \"\(name)\": \(OpenSSLErrorQueue.drain())")
            }
        }
    }

    /// Whether `name` is an IPv4 or IPv6 literal (OpenSSL's own parser, as used for the check).
    static func isIPLiteral(_ name: String) -> Bool {
        guard let address = a2i_IPADDRESS(name) else {
            OpenSSLErrorQueue.clear()
            return false
        }
        ASN1_OCTET_STRING_free(address)
        return true
    }

    // MARK: Information

    /// Whether the handshake completed (and no failure or shutdown happened since).
    public var isEstablished: Bool {
        if case .established = state { return true }
        return false
    }

    /// The negotiated protocol version ("TLSv1.3"), once the handshake completed.
    public var protocolVersion: String? {
        guard isEstablished, let version = SSL_get_version(ssl) else { return nil }
        return String(cString: version)
    }

    /// The negotiated cipher suite name, once the handshake completed.
    public var cipherSuite: String? {
        guard isEstablished, let cipher = SSL_get_current_cipher(ssl), let name = SSL_CIPHER_get_name(cipher) else {
            return nil
        }
        return String(cString: name)
    }

    /// The application protocol the server selected with ALPN, if any.
    public var negotiatedALPN: String? {
        var data: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &data, &length)
        guard let data, length > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(length)), as: UTF8.self)
    }

    // MARK: StreamTransform

    /// Starts the handshake: appends the ClientHello to `output`.
    ///
    /// - Parameter output: Receives the bytes to send.
    /// - Throws: ``TransportError/tlsFailure(_:)`` when called twice or OpenSSL fails.
    public func start(output: OutboundBuffer) throws(TransportError) {
        guard case .idle = state else {
            throw .tlsFailure("start called twice")
        }
        state = .handshaking
        _ = try advanceHandshake(output: output)
    }

    /// Feeds received bytes; decrypts what it can into `plaintext` and appends replies to `output`.
    ///
    /// - Parameters:
    ///   - bytes: Bytes read from the socket (may be empty: retry after back-pressure).
    ///   - plaintext: Receives decrypted application bytes, as much as fits.
    ///   - output: Receives handshake records and alerts to send.
    /// - Returns: Whether the handshake is complete and whether plaintext is still waiting.
    /// - Throws: ``TransportError/tlsCertificateUntrusted(_:)``,
    ///   ``TransportError/tlsHostnameMismatch(_:)``, ``TransportError/tlsPeerRequiredCertificate``
    ///   (also after the handshake: with TLS 1.3 the server's "certificate required" alert
    ///   arrives with the first read), ``TransportError/closedByPeer`` after the peer's
    ///   `close_notify`, ``TransportError/tlsFailure(_:)`` otherwise.
    public func receive(_ bytes: UnsafeRawBufferPointer, plaintext: ByteRing, output: OutboundBuffer) throws(TransportError) -> TransformProgress {
        switch state {
        case .failed(let error):
            throw error
        case .idle:
            throw .tlsFailure("receive called before start")
        case .closed:
            // After our own shutdown whatever still arrives (the peer's close_notify, data in
            // flight) is dropped: the caller chose to end the session.
            return TransformProgress(handshakeComplete: true, plaintextPending: false)
        case .handshaking, .established:
            break
        }
        if peerClosed { throw .closedByPeer }
        try feed(bytes)

        if case .handshaking = state {
            guard try advanceHandshake(output: output) else {
                return TransformProgress(handshakeComplete: false, plaintextPending: false)
            }
        }

        var decrypted = 0
        var pending = false
        // Bounded: each pass either decrypts at least one byte from the finite input or stops.
        while true {
            let region = plaintext.writableRegion(preferred: TLSEngine.maximumRecordPayload)
            if region.count == 0 {
                pending = SSL_has_pending(ssl) == 1 || cuv_BIO_pending(readBIO) > 0
                break
            }
            OpenSSLErrorQueue.clear()
            var count = 0
            if SSL_read_ex(ssl, region.baseAddress, region.count, &count) == 1 {
                plaintext.commitWrite(count)
                decrypted &+= count
                continue
            }
            let code = SSL_get_error(ssl, 0)
            if code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE {
                break
            }
            if code == SSL_ERROR_ZERO_RETURN {
                // close_notify: deliver what came before it first, report the end next time.
                OpenSSLErrorQueue.clear()
                peerClosed = true
                break
            }
            flush(into: output) // our alert, if OpenSSL queued one, tells the peer why
            throw fail(code)
        }
        flush(into: output) // post-handshake replies (key update), if any
        if peerClosed && decrypted == 0 {
            throw .closedByPeer
        }
        return TransformProgress(handshakeComplete: true, plaintextPending: pending)
    }

    /// Encrypts `bytes` into `output`, in records of at most 16 KiB.
    ///
    /// - Parameters:
    ///   - bytes: Application bytes.
    ///   - output: Receives the encrypted records.
    /// - Throws: The earlier failure, ``TransportError/tlsFailure(_:)`` before the handshake
    ///   completed or when OpenSSL fails.
    public func send(_ bytes: UnsafeRawBufferPointer, output: OutboundBuffer) throws(TransportError) {
        switch state {
        case .established:
            break
        case .failed(let error):
            throw error
        case .idle, .handshaking:
            throw .tlsFailure("send called before the handshake completed")
        case .closed:
            throw .tlsFailure("send called after shutdown")
        }
        guard let base = bytes.baseAddress else { return }
        var offset = 0
        while offset < bytes.count {
            let chunk = min(bytes.count &- offset, TLSEngine.maximumRecordPayload)
            OpenSSLErrorQueue.clear()
            var written = 0
            guard SSL_write_ex(ssl, base + offset, chunk, &written) == 1 else {
                let code = SSL_get_error(ssl, 0)
                flush(into: output)
                throw fail(code)
            }
            offset &+= written
            flush(into: output)
        }
    }

    /// Appends a `close_notify` alert to `output` when the session is established; afterwards
    /// `send` fails and `receive` drops what arrives. Safe to call more than once.
    ///
    /// - Parameter output: Receives the alert.
    public func shutdown(output: OutboundBuffer) {
        if case .established = state {
            OpenSSLErrorQueue.clear()
            _ = SSL_shutdown(ssl) // 0: our close_notify is queued; the peer's is not awaited
            flush(into: output)
            OpenSSLErrorQueue.clear()
        }
        if case .failed = state { return }
        state = .closed
    }

    // MARK: Internals

    /// Appends received bytes to the read BIO (a memory BIO takes everything).
    private func feed(_ bytes: UnsafeRawBufferPointer) throws(TransportError) {
        guard let base = bytes.baseAddress else { return }
        var offset = 0
        while offset < bytes.count {
            let count = Int32(clamping: bytes.count &- offset)
            let written = BIO_write(readBIO, base + offset, count)
            guard written > 0 else {
                throw fail(message: "BIO_write: \(OpenSSLErrorQueue.drain())")
            }
            offset &+= Int(written)
        }
    }

    /// Runs the handshake as far as the bytes allow; queues its output.
    ///
    /// - Returns: true once the handshake completed.
    private func advanceHandshake(output: OutboundBuffer) throws(TransportError) -> Bool {
        OpenSSLErrorQueue.clear()
        let status = SSL_do_handshake(ssl)
        let code = status == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl, status)
        flush(into: output)
        if status == 1 {
            state = .established
            return true
        }
        if code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE {
            return false
        }
        throw fail(code)
    }

    /// Moves everything OpenSSL wrote to the write BIO into `output`.
    private func flush(into output: OutboundBuffer) {
        let pending = cuv_BIO_pending(writeBIO)
        guard pending > 0 else { return }
        output.withUnsafeAppend(count: pending) { region in
            // A memory BIO hands out exactly what it reports pending.
            let read = BIO_read(writeBIO, region.baseAddress, Int32(clamping: region.count))
            assert(read == region.count, "memory BIO returned fewer bytes than pending")
        }
    }

    /// Turns the failed operation's `SSL_get_error` code (and the error queue) into the final
    /// error, records it, and empties the queue.
    private func fail(_ code: Int32) -> TransportError {
        let error = classify(code)
        OpenSSLErrorQueue.clear()
        state = .failed(error)
        return error
    }

    private func fail(message: String) -> TransportError {
        let error = TransportError.tlsFailure(message)
        state = .failed(error)
        return error
    }

    private func classify(_ code: Int32) -> TransportError {
        switch code {
        case SSL_ERROR_ZERO_RETURN:
            return .closedByPeer
        case SSL_ERROR_SYSCALL:
            // No system calls happen on memory BIOs: only an unexpected end of input lands here.
            return .tlsFailure("unexpected end of the TLS stream: \(OpenSSLErrorQueue.drain(fallback: "no error recorded"))")
        case SSL_ERROR_SSL:
            break
        default:
            return .tlsFailure("SSL_get_error \(code): \(OpenSSLErrorQueue.drain(fallback: "no error recorded"))")
        }

        if !context.configuration.insecure {
            let verify = SSL_get_verify_result(ssl)
            if verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH {
                return .tlsHostnameMismatch(expectedName)
            }
            if verify != X509_V_OK {
                return .tlsCertificateUntrusted(String(cString: X509_verify_cert_error_string(verify)))
            }
        }

        let first = OpenSSLErrorQueue.peekFirst()
        if ERR_GET_LIB(first) == ERR_LIB_SSL, let alert = TLSEngine.receivedAlert(reason: ERR_GET_REASON(first)) {
            switch alert {
            // A server sends certificate alerts only about the client's certificate, the one
            // certificate it receives: missing (certificate_required, TLS 1.3 RFC 8446 §4.4.2.4)
            // or unacceptable (bad, unsupported, revoked, expired, unknown, unknown CA).
            case 116, 42, 43, 44, 45, 46, 48:
                OpenSSLErrorQueue.clear()
                return .tlsPeerRequiredCertificate
            // TLS 1.2 servers (OpenSSL's among them) answer a missing certificate with a
            // handshake_failure alert; it means that only when the server asked for one.
            case 40 where serverRequestedCertificate && context.configuration.clientCertificate == nil:
                OpenSSLErrorQueue.clear()
                return .tlsPeerRequiredCertificate
            default:
                break
            }
        }
        return .tlsFailure(OpenSSLErrorQueue.drain())
    }

    /// The alert number when an OpenSSL SSL-library reason code reports an alert received from
    /// the peer (OpenSSL encodes those as 1000 + the alert number, `SSL_AD_REASON_OFFSET`).
    static func receivedAlert(reason: Int32) -> Int32? {
        let offset: Int32 = 1000
        guard reason >= offset && reason < offset + 256 else { return nil }
        return reason - offset
    }
}
