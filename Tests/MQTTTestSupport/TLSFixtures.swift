// Test certificates made at test time with the `openssl` command (no key is ever committed).
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Certificates for the TLS tests, generated once per test process with the `openssl` command
/// (EC P-256 keys: fast) in a temporary directory that is removed at exit.
///
/// - `ca`: the CA that signs `server` (CN=localhost, SAN DNS:localhost, IP:127.0.0.1) and `client`.
/// - `wrongCA`: an unrelated CA, which also signs `wrongClient`.
public struct TLSFixtures: Sendable {
    /// The directory holding every file (also a good place for a test server's logs).
    public let directory: String

    public var caFile: String { directory + "/ca.pem" }
    public var wrongCAFile: String { directory + "/wrong-ca.pem" }
    public var serverCertificate: String { directory + "/server.pem" }
    public var serverKey: String { directory + "/server.key" }
    public var clientCertificate: String { directory + "/client.pem" }
    public var clientKey: String { directory + "/client.key" }
    public var wrongClientCertificate: String { directory + "/wrong-client.pem" }
    public var wrongClientKey: String { directory + "/wrong-client.key" }

    /// The fixtures, generated on first use (once per process; later calls return the same set).
    ///
    /// - Throws: ``HarnessError`` when `openssl` is missing or fails.
    public static func shared() throws -> TLSFixtures { try generated.get() }

    private static let generated: Result<TLSFixtures, any Error> = Result {
        try generate()
    }

    /// The directory, fixed per process so the exit handler can find it.
    private static let directoryPath = NSTemporaryDirectory() + "swift-uv-mqtt-tls-\(getpid())"

    private static func generate() throws -> TLSFixtures {
        let directory = directoryPath
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        atexit {
            try? FileManager.default.removeItem(atPath: TLSFixtures.directoryPath)
        }
        let openssl = try executablePath("openssl")
        let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

        func file(_ name: String) -> String { directory + "/" + name }
        func makeCA(_ name: String, _ subject: String) throws {
            try runTool(openssl, ["req", "-x509"] + key + [
                "-keyout", file("\(name).key"), "-out", file("\(name).pem"), "-days", "2", "-subj", subject,
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            ], logIn: directory)
        }
        func makeLeaf(_ name: String, _ subject: String, signer: String, serial: Int, extensions: String) throws {
            try extensions.write(toFile: file("\(name).ext"), atomically: true, encoding: .utf8)
            try runTool(openssl, ["req", "-new"] + key + [
                "-keyout", file("\(name).key"), "-out", file("\(name).csr"), "-subj", subject,
            ], logIn: directory)
            try runTool(openssl, [
                "x509", "-req", "-in", file("\(name).csr"), "-CA", file("\(signer).pem"), "-CAkey", file("\(signer).key"),
                "-set_serial", "\(serial)", "-days", "2", "-out", file("\(name).pem"), "-extfile", file("\(name).ext"),
            ], logIn: directory)
        }

        try makeCA("ca", "/CN=swift-uv-mqtt test CA")
        try makeCA("wrong-ca", "/CN=swift-uv-mqtt unrelated CA")
        try makeLeaf("server", "/CN=localhost", signer: "ca", serial: 2, extensions: """
            basicConstraints=CA:FALSE
            keyUsage=critical,digitalSignature,keyEncipherment
            extendedKeyUsage=serverAuth
            subjectAltName=DNS:localhost,IP:127.0.0.1

            """)
        let clientExtensions = """
            basicConstraints=CA:FALSE
            keyUsage=critical,digitalSignature
            extendedKeyUsage=clientAuth

            """
        try makeLeaf("client", "/CN=tls-test-client", signer: "ca", serial: 3, extensions: clientExtensions)
        try makeLeaf("wrong-client", "/CN=tls-test-client", signer: "wrong-ca", serial: 4, extensions: clientExtensions)
        return TLSFixtures(directory: directory)
    }

    /// A file's bytes (PEM data tests).
    ///
    /// - Throws: ``HarnessError`` when it cannot be read.
    public func contents(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw HarnessError("cannot read \(path)")
        }
        return [UInt8](data)
    }
}
