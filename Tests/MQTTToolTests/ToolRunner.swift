// Runs the built `mqtt` executable. The broker, the certificates, the child processes and the
// ports come from the shared harness (`MQTTTestSupport`); only what is about this tool is here.
import Foundation
import MQTTTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The `mqtt` executable built next to this test binary (`swift build --build-tests` builds it:
/// the test target depends on it).
let toolPath: String = {
    var buffer = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    let exe = n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
    // .build/<triple>/debug/swift-uv-mqttPackageTests.xctest -> .build/<triple>/debug/mqtt
    return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("mqtt").path
}()

/// One run of `mqtt`: its own stdin, stdout and stderr files in a temporary directory, a
/// bounded wait, and a kill at the end whatever happens (a ``ChildProcess``: it also dies with
/// the test process).
final class ToolProcess: @unchecked Sendable {
    let directory: URL
    let child: ChildProcess
    var stdoutURL: URL { directory.appendingPathComponent("stdout") }
    var stderrURL: URL { directory.appendingPathComponent("stderr") }

    /// Starts `mqtt arguments...`; `stdin` (if any) is written to a file and fed to it.
    init(_ arguments: [String], stdin: [UInt8]? = nil, environment: [String: String] = [:]) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("mqtt-tool-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let input = directory.appendingPathComponent("stdin")
        try Data(stdin ?? []).write(to: input)
        // The runtime's crash backtracer would make a killed child slow to go.
        let variables = ["SWIFT_BACKTRACE": "enable=no"].merging(environment) { _, new in new }
        child = try ChildProcess(toolPath, arguments, logPath: directory.appendingPathComponent("stdout").path,
                                 errorPath: directory.appendingPathComponent("stderr").path,
                                 inputPath: input.path, environment: variables)
    }

    /// Waits for the exit (bounded: `timeout` seconds); the exit code (128 + signal after a
    /// signal), or nil on timeout (the process is killed then).
    func wait(timeout: Double = 10) -> Int32? {
        child.wait(timeout: .milliseconds(Int64(timeout * 1000))).map(ChildProcess.exitCode(waitStatus:))
    }

    var stdout: [UInt8] { (try? [UInt8](Data(contentsOf: stdoutURL))) ?? [] }
    var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    var stderrText: String { (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "" }

    /// Kills it (SIGKILL: no DISCONNECT, as a crash).
    func kill() { child.terminate(signal: SIGKILL) }

    deinit {
        child.terminate(signal: SIGKILL)
        try? FileManager.default.removeItem(at: directory)
    }
}

/// The outcome of a finished run.
struct ToolResult {
    var status: Int32?
    var stdout: [UInt8]
    var stderr: String
    var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
}

/// Runs `mqtt arguments...` to completion (bounded: `timeout` seconds).
func runMQTT(_ arguments: [String], stdin: [UInt8]? = nil, timeout: Double = 10, environment: [String: String] = [:]) throws -> ToolResult {
    let process = try ToolProcess(arguments, stdin: stdin, environment: environment)
    let status = process.wait(timeout: timeout)
    return ToolResult(status: status, stdout: process.stdout, stderr: process.stderrText)
}

extension MosquittoBroker {
    /// The `mqtt` flags for a plain connection to this broker.
    var flags: [String] { ["-h", host, "-p", String(port)] }
}
