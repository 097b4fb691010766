// Test helpers for the TLS suites: certificates made with the `openssl` command, child
// processes (openssl s_server, mosquitto) that are always stopped, and a blocking loopback
// socket that pumps bytes between a peer and a `TLSEngine` (the reactor's TCP is not used here).
import Foundation
import RingBuffers
import UVReactor

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failure of the test harness itself (not of the code under test).
struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

// MARK: Executables and child processes

/// The absolute path of a command found in PATH or the usual system directories.
func executablePath(_ name: String) throws -> String {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
    let directories = path.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"]
    for directory in directories {
        let candidate = directory + "/" + name
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    throw HarnessError("\(name) not found (install it: make deps)")
}

/// A process started by a test; ``stop()`` ends it (SIGTERM, then SIGKILL after a bounded wait).
///
/// Spawned with `posix_spawn` and a cleared signal mask and default dispositions: a child
/// inherits the spawning thread's mask, and a test runner thread that blocks SIGTERM would
/// otherwise leave servers that ignore it.
final class ChildProcess {
    let pid: pid_t
    let logPath: String
    let name: String
    private var exitStatus: Int32?

    /// Starts `executable` with `arguments`, stdout and stderr into `logPath`, stdin from
    /// /dev/null (the working directory is inherited: pass absolute paths).
    init(_ executable: String, _ arguments: [String], logPath: String) throws {
        self.logPath = logPath
        self.name = String(executable.split(separator: "/").last ?? Substring(executable))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGPIPE, SIGHUP] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard status == 0 else {
            throw HarnessError("posix_spawn \(executable): error \(status)")
        }
        self.pid = pid
    }

    /// Whether the process still runs (reaps it once it ended).
    var isRunning: Bool {
        if exitStatus != nil { return false }
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        if result == pid || result < 0 {
            exitStatus = status
            return false
        }
        return true
    }

    /// The raw wait status once the process ended.
    var terminationStatus: Int32? {
        _ = isRunning
        return exitStatus
    }

    /// Whether it ended with exit code 0.
    var exitedSuccessfully: Bool {
        guard let status = terminationStatus else { return false }
        return status & 0x7F == 0 && (status >> 8) & 0xFF == 0
    }

    /// What the process printed so far (for failure messages).
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Stops the process; returns within about 3 s whatever it does.
    func stop() {
        guard isRunning else { return }
        kill(pid, SIGTERM)
        let deadline = ContinuousClock.now + .seconds(2)
        while isRunning && ContinuousClock.now < deadline {
            usleep(2_000)
        }
        if isRunning {
            kill(pid, SIGKILL)
            let hardDeadline = ContinuousClock.now + .seconds(1)
            while isRunning && ContinuousClock.now < hardDeadline {
                usleep(2_000)
            }
        }
    }

    deinit { stop() }
}

/// Runs a short command to completion (at most `timeout`), throwing with its output on failure;
/// its log goes into `directory`.
func runTool(_ executable: String, _ arguments: [String], logIn directory: String, timeout: Duration = .seconds(20)) throws {
    let logPath = directory + "/tool-\(UUID().uuidString).log"
    let child = try ChildProcess(executable, arguments, logPath: logPath)
    defer {
        child.stop()
        try? FileManager.default.removeItem(atPath: logPath)
    }
    let deadline = ContinuousClock.now + timeout
    while child.isRunning {
        guard ContinuousClock.now < deadline else {
            throw HarnessError("\(arguments.prefix(2).joined(separator: " ")) timed out")
        }
        usleep(2_000)
    }
    guard child.exitedSuccessfully else {
        throw HarnessError("\(executable) \(arguments.joined(separator: " ")) failed: \(child.log)")
    }
}

// MARK: Certificates

/// Certificates for the TLS tests, generated once per test process with the `openssl` command in
/// a temporary directory that is removed at exit (no key is ever committed).
///
/// - `ca`: the CA that signs `server` (CN=localhost, SAN DNS:localhost, IP:127.0.0.1) and `client`.
/// - `wrongCA`: an unrelated CA, which also signs `wrongClient`.
struct TLSFixtures: Sendable {
    let directory: String

    var caFile: String { directory + "/ca.pem" }
    var wrongCAFile: String { directory + "/wrong-ca.pem" }
    var serverCertificate: String { directory + "/server.pem" }
    var serverKey: String { directory + "/server.key" }
    var clientCertificate: String { directory + "/client.pem" }
    var clientKey: String { directory + "/client.key" }
    var wrongClientCertificate: String { directory + "/wrong-client.pem" }
    var wrongClientKey: String { directory + "/wrong-client.key" }

    /// The fixtures, generated on first use.
    static func shared() throws -> TLSFixtures { try generated.get() }

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
    func contents(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw HarnessError("cannot read \(path)")
        }
        return [UInt8](data)
    }
}

// MARK: Loopback sockets

/// A loopback TCP port that was free a moment ago (bound to port 0, then closed).
func freeLoopbackPort() throws -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw HarnessError("socket: errno \(errno)") }
    defer { close(fd) }
    var address = loopbackAddress(port: 0)
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard bound == 0 else { throw HarnessError("bind: errno \(errno)") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    guard named == 0 else { throw HarnessError("getsockname: errno \(errno)") }
    return UInt16(bigEndian: address.sin_port)
}

private func loopbackAddress(port: UInt16) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    return address
}

/// The peer reset or closed the connection while we were sending.
enum SocketError: Error {
    case peerGone(Int32)
}

/// A blocking TCP client socket to 127.0.0.1 whose sends and receives time out after 100 ms, so
/// every loop around it can check a deadline.
final class LoopbackSocket {
    let fd: Int32

    /// Connects to 127.0.0.1:`port`.
    init(port: UInt16) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket: errno \(errno)") }
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = loopbackAddress(port: port)
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard status == 0 else {
            let code = errno
            close(fd)
            throw HarnessError("connect to 127.0.0.1:\(port): errno \(code)")
        }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Sends every byte before `deadline`; throws ``SocketError`` when the peer reset or closed.
    func sendAll(_ bytes: UnsafeRawBufferPointer, deadline: ContinuousClock.Instant) throws {
        var offset = 0
        while offset < bytes.count {
            guard ContinuousClock.now < deadline else { throw HarnessError("send timed out") }
            let sent = send(fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            if sent > 0 {
                offset += sent
            } else if sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                continue
            } else if errno == ECONNRESET || errno == EPIPE {
                throw SocketError.peerGone(errno)
            } else {
                throw HarnessError("send: errno \(errno)")
            }
        }
    }

    /// Receives into `buffer`: the count, 0 at end of stream, nil when nothing came within 100 ms.
    func receive(into buffer: UnsafeMutableRawBufferPointer) throws -> Int? {
        let count = recv(fd, buffer.baseAddress, buffer.count, 0)
        if count >= 0 { return count }
        if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return nil }
        throw HarnessError("recv: errno \(errno)")
    }
}

/// Waits (bounded) until something accepts connections on 127.0.0.1:`port`.
func waitUntilListening(port: UInt16, process: ChildProcess, timeout: Duration = .seconds(10)) throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        guard process.isRunning else {
            throw HarnessError("\(process.name) exited before listening: \(process.log)")
        }
        if (try? LoopbackSocket(port: port)) != nil { return }
        usleep(20_000)
    }
    throw HarnessError("\(process.name) did not listen on \(port) within \(timeout): \(process.log)")
}

// MARK: Driving the engine

/// A TLS client made of a ``TLSEngine`` and a blocking loopback socket: the test's stand-in for
/// the reactor's connection, pumping bytes both ways with every wait bounded.
final class TLSTestClient {
    let socket: LoopbackSocket
    let engine: TLSEngine
    let plaintext: ByteRing
    let output = OutboundBuffer(initialCapacity: 4096)
    private var scratch = [UInt8](repeating: 0, count: 16 * 1024)
    /// Decrypted bytes are waiting inside the engine (the ring was full).
    private var enginePending = false
    /// Whether the engine ever reported back-pressure.
    private(set) var sawPlaintextPending = false

    init(port: UInt16, context: TLSContext, host: String, plaintext: ByteRing = ByteRing(initialCapacity: 4096)) throws {
        self.socket = try LoopbackSocket(port: port)
        self.engine = try TLSEngine(context: context, host: host)
        self.plaintext = plaintext
    }

    /// Runs the handshake to completion (or the engine's error).
    func handshake(timeout: Duration = .seconds(10)) throws {
        let deadline = ContinuousClock.now + timeout
        try engine.start(output: output)
        try flush(deadline: deadline)
        while true {
            if try pumpOnce(deadline: deadline)?.handshakeComplete == true { return }
        }
    }

    /// Encrypts and sends `bytes`.
    ///
    /// When the peer already reset the connection the send error is kept, not thrown, like a
    /// connection that still reads what arrived before the reset: a TLS peer that refuses the
    /// session sends its alert and closes, and the alert (read next) says why.
    func write(_ bytes: [UInt8], timeout: Duration = .seconds(10)) throws {
        try bytes.withUnsafeBytes { try engine.send($0, output: output) }
        do {
            try flush(deadline: ContinuousClock.now + timeout)
        } catch SocketError.peerGone(let code) {
            sendFailure = code
            output.removeAll()
        }
    }

    /// errno of a send that found the peer gone (the next reads still run).
    private(set) var sendFailure: Int32?

    /// Receives until `count` decrypted bytes arrived and returns them, draining the plaintext
    /// ring as it fills (so a ring smaller than `count` exercises back-pressure).
    func read(count: Int, timeout: Duration = .seconds(10)) throws -> [UInt8] {
        let deadline = ContinuousClock.now + timeout
        var result: [UInt8] = []
        result.reserveCapacity(count)
        while true {
            let take = min(plaintext.readableBytes, count - result.count)
            if take > 0 {
                result += plaintext.readBytes(count: take)
                plaintext.consume(take)
            }
            if result.count == count { return result }
            _ = try pumpOnce(deadline: deadline)
        }
    }

    /// Sends close_notify.
    func close() throws {
        engine.shutdown(output: output)
        try flush(deadline: ContinuousClock.now + .seconds(5))
    }

    /// One step: retries the engine when it holds plaintext, otherwise one socket receive.
    /// Returns nil when nothing arrived within the socket's timeout.
    private func pumpOnce(deadline: ContinuousClock.Instant) throws -> TransformProgress? {
        guard ContinuousClock.now < deadline else { throw HarnessError("timed out waiting for the peer") }
        if enginePending && plaintext.freeBytes > 0 {
            let progress = try engine.receive(UnsafeRawBufferPointer(start: nil, count: 0), plaintext: plaintext, output: output)
            return try after(progress, deadline: deadline)
        }
        let received = try scratch.withUnsafeMutableBytes { try socket.receive(into: $0) }
        guard let received else { return nil }
        guard received > 0 else { throw HarnessError("peer closed the connection") }
        let progress: TransformProgress
        do {
            progress = try scratch.withUnsafeBytes {
                try engine.receive(UnsafeRawBufferPointer(rebasing: $0[0..<received]), plaintext: plaintext, output: output)
            }
        } catch {
            // Like a connection: the alert the engine queued still goes out.
            try? flush(deadline: deadline)
            throw error
        }
        return try after(progress, deadline: deadline)
    }

    private func after(_ progress: TransformProgress, deadline: ContinuousClock.Instant) throws -> TransformProgress {
        enginePending = progress.plaintextPending
        sawPlaintextPending = sawPlaintextPending || progress.plaintextPending
        try flush(deadline: deadline)
        return progress
    }

    private func flush(deadline: ContinuousClock.Instant) throws {
        guard !output.isEmpty else { return }
        try socket.sendAll(output.readableRegion, deadline: deadline)
        output.consume(output.readableBytes)
    }
}
