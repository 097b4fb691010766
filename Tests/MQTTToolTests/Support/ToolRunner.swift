import Foundation
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
/// bounded wait, and a kill at the end whatever happens.
final class ToolProcess: @unchecked Sendable {
    let directory: URL
    let child: ChildProcess2
    var stdoutURL: URL { directory.appendingPathComponent("stdout") }
    var stderrURL: URL { directory.appendingPathComponent("stderr") }

    /// Starts `mqtt arguments...`; `stdin` (if any) is written to a file and fed to it.
    init(_ arguments: [String], stdin: [UInt8]? = nil, environment: [String: String] = [:]) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("mqtt-tool-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let input = directory.appendingPathComponent("stdin")
        try Data(stdin ?? []).write(to: input)
        child = try ChildProcess2(toolPath, arguments, stdin: input.path, stdout: directory.appendingPathComponent("stdout").path,
                                  stderr: directory.appendingPathComponent("stderr").path, environment: environment)
    }

    /// Waits for the exit (bounded); nil on timeout (the process is killed then).
    func wait(timeout: Double = 10) -> Int32? { child.wait(timeout: timeout) }

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

/// Runs `mqtt arguments...` to completion (bounded).
func runMQTT(_ arguments: [String], stdin: [UInt8]? = nil, timeout: Double = 10, environment: [String: String] = [:]) throws -> ToolResult {
    let process = try ToolProcess(arguments, stdin: stdin, environment: environment)
    let status = process.wait(timeout: timeout)
    return ToolResult(status: status, stdout: process.stdout, stderr: process.stderrText)
}

/// Waits (bounded) until `predicate` holds, polling every 10 ms.
func eventually(within seconds: Double = 5, _ predicate: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if predicate() { return true }
        usleep(10_000)
    }
    return predicate()
}

extension MosquittoBroker {
    /// Waits until the broker has answered a SUBSCRIBE of `clientID` (its `log_type all` log).
    func waitForSubscription(of clientID: String, count: Int = 1, within seconds: Double = 5) -> Bool {
        eventually(within: seconds) { log().components(separatedBy: "Sending SUBACK to \(clientID)").count - 1 >= count }
    }

    /// Common flags for a plain connection to this broker.
    var flags: [String] { ["-h", host, "-p", String(port)] }
}

/// A child process with its own stdin, stdout and stderr files (posix_spawn, reaped with waitpid).
final class ChildProcess2: @unchecked Sendable {
    let pid: pid_t
    private var exitStatus: Int32?

    init(_ path: String, _ arguments: [String], stdin: String, stdout: String, stderr: String, environment: [String: String]) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdin, O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var env = ProcessInfo.processInfo.environment
        // The runtime's crash backtracer would make a killed child slow to go.
        env["SWIFT_BACKTRACE"] = "enable=no"
        for (k, v) in environment { env[k] = v }
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in envp { free(p) } }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for sig in [SIGTERM, SIGINT, SIGPIPE, SIGHUP] { sigaddset(&defaults, sig) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        guard rc == 0 else { throw HarnessError("posix_spawn \(path) failed: \(rc)") }
        self.pid = pid
    }

    var isRunning: Bool {
        if exitStatus != nil { return false }
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        if r == pid || r < 0 {
            // WIFEXITED ? WEXITSTATUS : 128 + signal
            exitStatus = r < 0 ? -1 : ((status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f))
            return false
        }
        return true
    }

    func wait(timeout: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while isRunning {
            if Date() >= deadline { terminate(signal: SIGKILL); return nil }
            usleep(2_000)
        }
        return exitStatus
    }

    func terminate(signal: Int32) {
        guard isRunning else { return }
        Glibc.kill(pid, signal)
        let deadline = Date().addingTimeInterval(3)
        while isRunning && Date() < deadline { usleep(2_000) }
        if isRunning {
            Glibc.kill(pid, SIGKILL)
            let hard = Date().addingTimeInterval(2)
            while isRunning && Date() < hard { usleep(2_000) }
        }
    }
}
