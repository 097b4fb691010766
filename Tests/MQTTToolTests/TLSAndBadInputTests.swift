import Foundation
import MQTTTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

extension MQTTToolSuites {
    /// TLS flags with generated certificates, and every bad-input case.
    @Suite("mqtt TLS flags and bad input", .serialized)
    struct TLSAndBadInputTests {
        @Test("--cafile, --cert/--key, --insecure and mqtts:// against a TLS mosquitto")
        func tlsFlags() throws {
            let certs = try TLSFixtures.shared()
            let broker = try MosquittoBroker.start(MosquittoOptions(tls: certs, requireClientCertificate: true))
            defer { broker.stop() }
            let client = ["--cert", certs.clientCertificate, "--key", certs.clientKey]
            let sub = try ToolProcess(["sub"] + broker.flags + ["-i", "tls-sub", "--cafile", certs.caFile] + client
                                      + ["-t", "tls", "-C", "2"])
            #expect(broker.waitForSubscription(of: "tls-sub"), "\(sub.stderrText)")
            let verified = try runMQTT(["pub"] + broker.flags + ["--cafile", certs.caFile] + client + ["-t", "tls", "-m", "a"])
            #expect(verified.status == 0, "\(verified.stderr)")
            // The server certificate is not for this name/CA, but --insecure skips verification.
            let insecure = try runMQTT(["pub", "-L", "mqtts://localhost:\(broker.port)/tls", "--insecure"] + client + ["-m", "b"])
            #expect(insecure.status == 0, "\(insecure.stderr)")
            #expect(sub.wait() == 0)
            #expect(sub.stdoutText == "a\nb\n")

            // Untrusted server certificate: one line, exit 1.
            let untrusted = try runMQTT(["pub"] + broker.flags + ["--cafile", certs.wrongCAFile] + client + ["-t", "tls", "-m", "x"])
            #expect(untrusted.status == 1)
            #expect(untrusted.stderr.contains("not trusted"), "\(untrusted.stderr)")
            #expect(untrusted.stderr.split(separator: "\n").count == 1, "\(untrusted.stderr)")
            // No client certificate where one is required.
            let noClientCert = try runMQTT(["pub"] + broker.flags + ["--cafile", certs.caFile, "-t", "tls", "-m", "x", "-q", "1"])
            #expect(noClientCert.status == 1, "\(noClientCert.stderr)")
            #expect(!noClientCert.stderr.isEmpty)
        }

        /// Every case must fail before connecting: the port has no listener, so a connection
        /// attempt would print a connection error instead of the expected message.
        @Test("bad input: clear message, exit 1, before connecting", arguments: [
            (["pub", "-t", "a/#", "-m", "x"], "invalid topic 'a/#'"),
            (["pub", "-t", "a/+", "-m", "x"], "invalid topic 'a/+'"),
            (["pub", "-t", "", "-m", "x"], "invalid topic ''"),
            (["sub", "-t", "a/#/b"], "invalid topic filter 'a/#/b'"),
            (["sub", "-t", "a", "-U", "x#"], "invalid topic filter 'x#'"),
            (["pub", "-t", "a", "-m", "x", "-q", "3"], "QoS 3 out of range"),
            (["sub", "-t", "a", "-q", "5"], "QoS 5 out of range"),
            (["pub", "-t", "a", "-m", "x", "--will-topic", "w", "--will-qos", "7"], "QoS 7 out of range"),
            (["pub", "-t", "a", "-f", "/nonexistent/file"], "cannot read file '/nonexistent/file'"),
            (["pub", "-t", "a", "-m", "x", "--cafile", "/nonexistent/ca.pem"], "cannot read --cafile"),
            (["pub", "-t", "a"], "no message"),
            (["pub", "-t", "a", "-m", "x", "-n"], "only one of"),
            (["pub", "-m", "x"], "no topic"),
            (["sub", "-t", "a", "-c"], "needs a client id"),
            (["pub", "-t", "a", "-m", "x", "-V", "mqttv5"], "unknown protocol version"),
            (["pub", "-t", "a", "-m", "x", "--will-topic", "w/#"], "invalid topic 'w/#'"),
            (["pub", "-t", "a", "-m", "x", "--unknown-flag"], "unknown-flag"),
        ] as [([String], String)])
        func badInput(arguments: [String], expected: String) throws {
            let port = try RefusingPort()  // reserved: no other test's server can take it meanwhile
            let result = try withExtendedLifetime(port) { try runMQTT(arguments + ["-h", "127.0.0.1", "-p", String(port.port)]) }
            #expect(result.status == 1, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains(expected), "\(arguments): \(result.stderr)")
            #expect(!result.stderr.contains("server not found") && !result.stderr.contains("reason"), "connected first: \(result.stderr)")
        }

        @Test("connection refused (nothing listening): one line, exit 1")
        func nothingListening() throws {
            let port = try RefusingPort()
            let result = try withExtendedLifetime(port) { try runMQTT(["pub", "-h", "127.0.0.1", "-p", String(port.port), "-t", "a", "-m", "x"]) }
            #expect(result.status == 1)
            #expect(result.stderr.hasPrefix("Error: "))
            #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
        }
    }
}
