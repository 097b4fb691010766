// A mosquitto broker per test: its own configuration in its own temporary directory, a free
// loopback port, a guaranteed stop (and the parent-death signal of `ChildProcess`).
public import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// How a test broker is configured. The default is a plain TCP listener, anonymous clients,
/// unlimited in-flight messages and persistence in the broker's directory.
public struct MosquittoOptions: Sendable {
    /// User name to password; when set, anonymous clients are refused (CONNACK 5) and a wrong
    /// password gets CONNACK 4. The password file is made with `mosquitto_passwd`.
    public var users: [String: String]?
    /// Serve TLS with these certificates (the server certificate and key, `caFile` to verify
    /// clients) instead of plain TCP.
    public var tls: TLSFixtures?
    /// With `tls`: ask for and verify a client certificate (`require_certificate true`).
    public var requireClientCertificate: Bool
    /// `max_inflight_messages`; 0 = unlimited. Must be 0 or at least the client's window
    /// (PLATFORM-NOTES: mosquitto 2.0.11 silently drops QoS 2 messages past this limit).
    public var maxInflightMessages: Int
    /// Keep sessions in a file in the broker's directory (they survive ``MosquittoBroker/restart()``).
    public var persistence: Bool
    /// More lines for the configuration file.
    public var extraLines: [String]
    /// Serve MQTT over WebSocket too, on a second listener (`protocol websockets`, with `tls`
    /// the same certificates: wss) at ``MosquittoBroker/webSocketPort``. mosquitto accepts any
    /// request path and the subprotocols `mqtt` and `mqttv3.1`. (mosquitto 2.0.11 refuses to
    /// start with a websockets listener alone, and libwebsockets ignores the bind address: that
    /// listener is on all interfaces; the tests connect to 127.0.0.1 only.)
    public var webSockets: Bool

    public init(users: [String: String]? = nil, tls: TLSFixtures? = nil, requireClientCertificate: Bool = false,
                maxInflightMessages: Int = 0, persistence: Bool = true, extraLines: [String] = [],
                webSockets: Bool = false) {
        self.webSockets = webSockets
        self.users = users
        self.tls = tls
        self.requireClientCertificate = requireClientCertificate
        self.maxInflightMessages = maxInflightMessages
        self.persistence = persistence
        self.extraLines = extraLines
    }
}

/// A mosquitto broker started for one test (`log_type all` into ``logURL``: every packet per
/// client id, see ``log()``).
///
/// Prefer ``withMosquitto(_:_:)``, which stops the broker whatever the body does; otherwise call
/// ``stop(removeDirectory:)`` in a `defer`. The broker is also killed when the object goes away
/// and, by the kernel, when the test process dies.
public final class MosquittoBroker: @unchecked Sendable {
    /// The options it was started with.
    public let options: MosquittoOptions
    /// Its own temporary directory (configuration, log, password file, persistence).
    public let directory: URL
    /// The loopback port it listens on (kept across ``restart()``).
    public let port: UInt16
    /// The WebSocket listener's port, with ``MosquittoOptions/webSockets``.
    public let webSocketPort: UInt16?
    private let lock = NSLock()
    private var process: ChildProcess?

    /// Always 127.0.0.1.
    public var host: String { "127.0.0.1" }
    /// The broker's log file.
    public var logURL: URL { directory.appendingPathComponent("mosquitto.log") }
    /// The configuration file.
    public var configURL: URL { directory.appendingPathComponent("mosquitto.conf") }
    /// What the process printed on stdout/stderr (start-up errors).
    public var outputURL: URL { directory.appendingPathComponent("stderr.txt") }

    private init(options: MosquittoOptions, directory: URL, port: UInt16, webSocketPort: UInt16?) {
        self.options = options
        self.directory = directory
        self.port = port
        self.webSocketPort = webSocketPort
    }

    /// Starts a broker on a free port; retries with another port if the chosen one was taken in
    /// between (bounded: 3 attempts, each waiting at most 20 s for the listener).
    ///
    /// - Throws: ``HarnessError`` when mosquitto is missing or does not start.
    public static func start(_ options: MosquittoOptions = MosquittoOptions()) throws -> MosquittoBroker {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("uvmqtt-mosquitto-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var lastError: any Error = HarnessError("mosquitto did not start")
        for _ in 0..<3 {
            let port = try freeLoopbackPort()
            let webSocketPort = options.webSockets ? try freeLoopbackPort() : nil
            let broker = MosquittoBroker(options: options, directory: directory, port: port, webSocketPort: webSocketPort)
            do {
                try broker.writeConfiguration()
                try broker.launch()
                return broker
            } catch {
                broker.stop(removeDirectory: false)
                lastError = error
            }
        }
        try? FileManager.default.removeItem(at: directory)
        throw lastError
    }

    private func writeConfiguration() throws {
        var lines = [String]()
        // As root, mosquitto otherwise switches to the `mosquitto` user (and cannot write here).
        if getuid() == 0 { lines.append("user root") }
        lines.append("listener \(port) 127.0.0.1")
        if let users = options.users {
            let passwordFile = directory.appendingPathComponent("passwd").path
            try? FileManager.default.removeItem(atPath: passwordFile)
            let passwd = try executablePath("mosquitto_passwd")
            var first = true
            for (user, password) in users.sorted(by: { $0.key < $1.key }) {
                // -c creates the file (first user only), -b takes the password from the command line.
                let args = (first ? ["-c"] : []) + ["-b", passwordFile, user, password]
                try runTool(passwd, args)
                first = false
            }
            lines.append("allow_anonymous false")
            lines.append("password_file \(passwordFile)")
        } else {
            lines.append("allow_anonymous true")
        }
        if let tls = options.tls {
            lines.append("cafile \(tls.caFile)")
            lines.append("certfile \(tls.serverCertificate)")
            lines.append("keyfile \(tls.serverKey)")
            lines.append("require_certificate \(options.requireClientCertificate)")
        }
        if let webSocketPort {
            lines.append("listener \(webSocketPort) 127.0.0.1")
            lines.append("protocol websockets")
            if let tls = options.tls {
                lines.append("cafile \(tls.caFile)")
                lines.append("certfile \(tls.serverCertificate)")
                lines.append("keyfile \(tls.serverKey)")
                lines.append("require_certificate \(options.requireClientCertificate)")
            }
        }
        lines.append("max_inflight_messages \(options.maxInflightMessages)")
        lines.append("max_queued_messages 0")
        if options.persistence {
            lines.append("persistence true")
            lines.append("persistence_location \(directory.path)/")
        } else {
            lines.append("persistence false")
        }
        lines.append("log_dest file \(logURL.path)")
        lines.append("log_type all")
        lines.append(contentsOf: options.extraLines)
        try (lines.joined(separator: "\n") + "\n").write(to: configURL, atomically: true, encoding: .utf8)
    }

    private func launch() throws {
        let child = try ChildProcess(try executablePath("mosquitto"), ["-c", configURL.path],
                                     logPath: outputURL.path, append: true)
        lock.withLock { process = child }
        try waitUntilListening(port: port, process: child)
        if let webSocketPort { try waitUntilListening(port: webSocketPort, process: child) }
    }

    private func take() -> ChildProcess? {
        lock.withLock {
            let taken = process
            process = nil
            return taken
        }
    }

    /// Whether the broker process is running.
    public var isRunning: Bool { lock.withLock { process }?.isRunning ?? false }

    /// Stops the broker (SIGTERM, then SIGKILL after 3 s; bounded, see ``ChildProcess``) and
    /// removes its directory unless told not to.
    public func stop(removeDirectory: Bool = true) {
        take()?.terminate(signal: SIGTERM)
        if removeDirectory { try? FileManager.default.removeItem(at: directory) }
    }

    /// Sends `signal` to the broker process (`SIGSTOP` freezes it: it accepts nothing more and
    /// reads nothing, as a hung broker would; `SIGCONT` resumes it).
    public func send(signal: Int32) {
        if let pid = lock.withLock({ process })?.pid { _ = Glibc.kill(pid, signal) }
    }

    /// Kills the broker at once (no clean shutdown; persistence written at the last autosave only).
    public func kill() {
        take()?.terminate(signal: SIGKILL)
    }

    /// Stops the broker cleanly (it saves its sessions) and starts it again on the same port.
    ///
    /// - Throws: ``HarnessError`` when it does not come back (bounded: 10 attempts; the port was
    ///   just released and a slow release can make a bind fail).
    public func restart() throws {
        take()?.terminate(signal: SIGTERM)
        var lastError: any Error = HarnessError("restart failed")
        for _ in 0..<10 {
            do {
                try launch()
                return
            } catch {
                lastError = error
                take()?.terminate(signal: SIGKILL)
                usleep(200_000)
            }
        }
        throw lastError
    }

    /// The broker's log so far.
    public func log() -> String {
        (try? String(contentsOf: logURL, encoding: .utf8)) ?? ""
    }

    deinit {
        take()?.terminate(signal: SIGKILL)
    }
}

/// Runs `body` with a started broker, and always stops it afterwards (also when `body` throws).
/// Start and stop run off the cooperative thread pool (``blockingCall(_:)``).
///
/// - Throws: What `start` or `body` throws.
public func withMosquitto<T>(
    _ options: MosquittoOptions = MosquittoOptions(),
    _ body: (MosquittoBroker) async throws -> T
) async throws -> T {
    let broker = try await blockingCall { try MosquittoBroker.start(options) }
    do {
        let result = try await body(broker)
        _ = try? await blockingCall { broker.stop() }
        return result
    } catch {
        _ = try? await blockingCall { broker.stop() }
        throw error
    }
}

/// An `openssl s_server -rev` on a free loopback port: it answers each line with the line
/// reversed, so data is checked in both directions. Stopped by ``stop()`` or when it goes away.
public final class ReversingServer {
    /// The s_server process (its output: ``ChildProcess/log``).
    public let process: ChildProcess
    /// The loopback port it accepts on.
    public let port: UInt16

    /// Starts the server with the fixtures' server certificate plus `arguments`; retries with a new
    /// port when the chosen one was taken meanwhile.
    ///
    /// - Throws: ``HarnessError`` when it does not start (3 attempts).
    public init(_ fixtures: TLSFixtures, _ arguments: [String] = []) throws {
        let openssl = try executablePath("openssl")
        var lastError: (any Error)?
        for attempt in 0..<3 {
            let port = try freeLoopbackPort()
            let process = try ChildProcess(openssl, [
                "s_server", "-accept", "127.0.0.1:\(port)", "-rev",
                "-cert", fixtures.serverCertificate, "-key", fixtures.serverKey,
            ] + arguments, logPath: fixtures.directory + "/s_server-\(port)-\(attempt).log")
            do {
                try waitUntilListening(port: port, process: process)
                self.process = process
                self.port = port
                return
            } catch {
                process.stop()
                lastError = error
            }
        }
        throw lastError ?? HarnessError("s_server did not start")
    }

    /// Stops the server (bounded).
    public func stop() { process.stop() }
}
