import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import UVReactor

/// The TLS flags `pub`, `sub` and `bench` share (mosquitto_pub's names), and the one place
/// that checks them and turns them into TLS settings.
struct TLSFlags: ParsableArguments {
    @Option(name: .customLong("cafile"), help: ArgumentHelp("PEM file of trusted CA certificates (turns TLS on).", valueName: "file"))
    var cafile: String?

    @Option(name: .customLong("cert"), help: ArgumentHelp("PEM client certificate (turns TLS on; needs --key).", valueName: "file"))
    var cert: String?

    @Option(name: .customLong("key"), help: ArgumentHelp("PEM private key of --cert.", valueName: "file"))
    var key: String?

    @Flag(name: .customLong("insecure"), help: "TLS without verifying the server certificate or host name.")
    var insecure = false

    /// Whether any TLS flag was given.
    var isSet: Bool { cafile != nil || cert != nil || insecure }

    /// Checks the flags (`--cert` with `--key`, readable files) and returns the TLS settings
    /// they ask for, or nil when no flag was given and `required` is false (an `mqtts://` URL
    /// requires TLS with the system trust store).
    ///
    /// - Throws: ``ToolFailure`` with a one-line reason.
    func configuration(required: Bool = false) throws(ToolFailure) -> TLSConfiguration? {
        if (cert == nil) != (key == nil) { throw ToolFailure("--cert and --key go together") }
        for (flag, path) in [("--cafile", cafile), ("--cert", cert), ("--key", key)] {
            if let path, access(path, R_OK) != 0 { throw ToolFailure("cannot read \(flag) file '\(path)'") }
        }
        guard isSet || required else { return nil }
        var tls = TLSConfiguration(trust: cafile.map { .pemFile($0) } ?? .system, insecure: insecure)
        if let cert, let key { tls.clientCertificate = .pemFiles(certificate: cert, privateKey: key) }
        return tls
    }
}
