import COpenSSL
import CUVShims

/// A loaded ``TLSConfiguration``: one OpenSSL `SSL_CTX`, built once and shared by many connections.
///
/// Loading reads and parses the trust store, CA certificates, client certificate and key; doing it
/// once per configuration (not per connection) keeps reconnects cheap. Each connection then makes
/// a ``TLSEngine`` from the context.
///
/// Thread safety: the `SSL_CTX` is never modified after `init`, and OpenSSL allows creating `SSL`
/// objects from one context on several threads at once, so a context may be shared between
/// event loops (hence `@unchecked Sendable`).
public final class TLSContext: @unchecked Sendable {
    /// The `SSL_CTX` (owned; freed in `deinit`).
    let handle: OpaquePointer
    /// The configuration this context was built from.
    public let configuration: TLSConfiguration

    /// Builds the OpenSSL context for `configuration`.
    ///
    /// - Parameter configuration: What to trust, the client certificate, versions and ALPN.
    /// - Throws: ``TransportError/tlsConfiguration(_:)`` with OpenSSL's error text when a CA,
    ///   certificate or key cannot be read or parsed, the key does not match the certificate, or an
    ///   ALPN protocol name is empty or longer than 255 bytes.
    public init(configuration: TLSConfiguration = .default) throws(TransportError) {
        OpenSSLErrorQueue.clear()
        guard let ctx = SSL_CTX_new(TLS_client_method()) else {
            throw .tlsConfiguration("SSL_CTX_new: \(OpenSSLErrorQueue.drain())")
        }
        do {
            try TLSContext.configure(ctx, with: configuration)
        } catch {
            SSL_CTX_free(ctx)
            OpenSSLErrorQueue.clear()
            throw error
        }
        OpenSSLErrorQueue.clear()
        self.handle = ctx
        self.configuration = configuration
    }

    deinit {
        SSL_CTX_free(handle)
    }

    // MARK: Loading

    private static func configure(_ ctx: OpaquePointer, with configuration: TLSConfiguration) throws(TransportError) {
        let minimum: Int32 = switch configuration.minimumVersion {
        case .tls12: TLS1_2_VERSION
        case .tls13: TLS1_3_VERSION
        }
        guard cuv_SSL_CTX_set_min_proto_version(ctx, minimum) == 1 else {
            throw .tlsConfiguration("minimum protocol version: \(OpenSSLErrorQueue.drain())")
        }
        // Never let OpenSSL prompt on the terminal for a key passphrase (its default): an
        // encrypted key fails to load with an error instead.
        SSL_CTX_set_default_passwd_cb(ctx, noPassphrase)

        SSL_CTX_set_verify(ctx, configuration.insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, nil)
        // Tells the engine that the server asked for a certificate this context does not have, so
        // a later handshake_failure alert can be reported as "certificate required" (TLS 1.2).
        SSL_CTX_set_client_cert_cb(ctx, clientCertificateRequested)

        try loadTrust(configuration.trust, into: ctx)
        if let certificate = configuration.clientCertificate {
            try loadClientCertificate(certificate, into: ctx)
        }
        if !configuration.alpnProtocols.isEmpty {
            try setALPN(configuration.alpnProtocols, on: ctx)
        }
    }

    private static func loadTrust(_ trust: TLSConfiguration.Trust, into ctx: OpaquePointer) throws(TransportError) {
        switch trust.source {
        case .system:
            guard SSL_CTX_set_default_verify_paths(ctx) == 1 else {
                throw .tlsConfiguration("system trust store: \(OpenSSLErrorQueue.drain())")
            }
        case .pemFile(let path):
            guard SSL_CTX_load_verify_locations(ctx, path, nil) == 1 else {
                throw .tlsConfiguration("CA file \(path): \(OpenSSLErrorQueue.drain())")
            }
        case .pemData(let data):
            guard let store = SSL_CTX_get_cert_store(ctx) else {
                throw .tlsConfiguration("no certificate store: \(OpenSSLErrorQueue.drain())")
            }
            let added = try readCertificates(data, what: "CA PEM data") { certificate throws(TransportError) in
                guard X509_STORE_add_cert(store, certificate) == 1 else {
                    throw .tlsConfiguration("CA PEM data: \(OpenSSLErrorQueue.drain())")
                }
            }
            if added == 0 {
                throw .tlsConfiguration("CA PEM data: no certificate found")
            }
        }
    }

    private static func loadClientCertificate(
        _ certificate: TLSConfiguration.ClientCertificate, into ctx: OpaquePointer
    ) throws(TransportError) {
        switch certificate.source {
        case .pemFiles(let certificatePath, let keyPath):
            guard SSL_CTX_use_certificate_chain_file(ctx, certificatePath) == 1 else {
                throw .tlsConfiguration("certificate file \(certificatePath): \(OpenSSLErrorQueue.drain())")
            }
            guard SSL_CTX_use_PrivateKey_file(ctx, keyPath, SSL_FILETYPE_PEM) == 1 else {
                throw .tlsConfiguration("private key file \(keyPath): \(OpenSSLErrorQueue.drain())")
            }
        case .pemData(let certificateData, let keyData):
            var index = 0
            let count = try readCertificates(certificateData, what: "certificate PEM data") { x509 throws(TransportError) in
                defer { index += 1 }
                if index == 0 {
                    guard SSL_CTX_use_certificate(ctx, x509) == 1 else {
                        throw .tlsConfiguration("certificate PEM data: \(OpenSSLErrorQueue.drain())")
                    }
                } else {
                    // The rest of the PEM data is the chain sent after the leaf.
                    guard cuv_SSL_CTX_add1_chain_cert(ctx, x509) == 1 else {
                        throw .tlsConfiguration("certificate chain PEM data: \(OpenSSLErrorQueue.drain())")
                    }
                }
            }
            if count == 0 {
                throw .tlsConfiguration("certificate PEM data: no certificate found")
            }
            let key: OpaquePointer? = withMemoryBIO(keyData) { bio in
                PEM_read_bio_PrivateKey(bio, nil, noPassphrase, nil)
            }
            guard let key else {
                throw .tlsConfiguration("private key PEM data: \(OpenSSLErrorQueue.drain())")
            }
            defer { EVP_PKEY_free(key) }
            guard SSL_CTX_use_PrivateKey(ctx, key) == 1 else {
                throw .tlsConfiguration("private key PEM data: \(OpenSSLErrorQueue.drain())")
            }
        }
        guard SSL_CTX_check_private_key(ctx) == 1 else {
            throw .tlsConfiguration("client certificate and private key: \(OpenSSLErrorQueue.drain())")
        }
    }

    /// Encodes the protocol list in the ALPN wire format (each name prefixed with its length).
    private static func setALPN(_ protocols: [String], on ctx: OpaquePointer) throws(TransportError) {
        var wire: [UInt8] = []
        for name in protocols {
            let bytes = Array(name.utf8)
            guard !bytes.isEmpty && bytes.count <= 255 else {
                throw .tlsConfiguration("ALPN protocol name must be 1 to 255 bytes: \"\(name)\"")
            }
            wire.append(UInt8(bytes.count))
            wire.append(contentsOf: bytes)
        }
        // SSL_CTX_set_alpn_protos returns 0 on success (unlike most OpenSSL calls).
        let status = wire.withUnsafeBufferPointer { SSL_CTX_set_alpn_protos(ctx, $0.baseAddress, UInt32($0.count)) }
        guard status == 0 else {
            throw .tlsConfiguration("ALPN: \(OpenSSLErrorQueue.drain())")
        }
    }

    /// Reads every PEM certificate in `data`, in order, and hands each to `body` (which must not
    /// keep it: it is freed afterwards).
    ///
    /// - Returns: How many certificates were read.
    /// - Throws: When a block is not a readable certificate (garbage after the last block is an
    ///   error too, so a truncated file is not silently half-loaded).
    private static func readCertificates(
        _ data: [UInt8], what: String, _ body: (OpaquePointer) throws(TransportError) -> Void
    ) throws(TransportError) -> Int {
        let result: Result<Int, TransportError> = withMemoryBIO(data) { bio in
            var count = 0
            // Bounded by the data: each iteration consumes at least one PEM block or stops.
            while let x509 = PEM_read_bio_X509(bio, nil, noPassphrase, nil) {
                defer { X509_free(x509) }
                do throws(TransportError) {
                    try body(x509)
                } catch {
                    return .failure(error)
                }
                count += 1
            }
            // The loop ends with "no start line" once the data is exhausted: the normal end. Any
            // other error means a block that is not a readable certificate.
            let last = ERR_peek_last_error()
            let endOfData = last == 0 || (ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE)
            guard endOfData else {
                return .failure(.tlsConfiguration("\(what): \(OpenSSLErrorQueue.drain())"))
            }
            OpenSSLErrorQueue.clear()
            return .success(count)
        }
        return try result.get()
    }

    /// Runs `body` with a read-only memory BIO over `data` (freed afterwards).
    private static func withMemoryBIO<R>(_ data: [UInt8], _ body: (OpaquePointer?) -> R) -> R {
        data.withUnsafeBytes { raw in
            let bio = BIO_new_mem_buf(raw.baseAddress, Int32(clamping: raw.count))
            defer { if let bio { BIO_free(bio) } }
            return body(bio)
        }
    }
}

/// A passphrase callback that supplies none (so OpenSSL never reads the terminal).
private let noPassphrase: @convention(c) (UnsafeMutablePointer<CChar>?, Int32, Int32, UnsafeMutableRawPointer?) -> Int32 = { _, _, _, _ in
    0
}

/// Called by OpenSSL when the server sends a CertificateRequest and the context has no
/// certificate: records the request on the engine (the `SSL`'s app data) and sends none.
private let clientCertificateRequested: @convention(c) (OpaquePointer?, UnsafeMutablePointer<OpaquePointer?>?, UnsafeMutablePointer<OpaquePointer?>?) -> Int32 = { ssl, _, _ in
    if let ssl, let engine = SSL_get_ex_data(ssl, 0) {
        Unmanaged<TLSEngine>.fromOpaque(engine).takeUnretainedValue().serverRequestedCertificate = true
    }
    return 0
}
