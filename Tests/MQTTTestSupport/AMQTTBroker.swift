// An amqtt broker (PyPI `amqtt`, an MQTT 3.1.1 broker written in Python) per test: an
// independent implementation for interop tests, in a venv under .build (made by `make deps`,
// or here on first use), on a free loopback port, always stopped.
public import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An amqtt broker started for one test. Prefer ``withAMQTT(_:)``, which always stops it.
public final class AMQTTBroker: @unchecked Sendable {
    /// The amqtt version the venv installs (pinned: the interop tests name what they ran against).
    public static let version = "0.12.1"
    /// The venv: `.build/amqtt-venv` of this package.
    public static var venv: String {
        // Tests/MQTTTestSupport/AMQTTBroker.swift → the package root.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return root.appendingPathComponent(".build/amqtt-venv").path
    }

    /// Its own temporary directory (configuration, log).
    public let directory: URL
    /// The loopback port it listens on.
    public let port: UInt16
    private let process: ChildProcess

    /// Always 127.0.0.1.
    public var host: String { "127.0.0.1" }
    /// What the broker printed (its log).
    public var log: String { (try? String(contentsOf: directory.appendingPathComponent("amqtt.log"), encoding: .utf8)) ?? "" }

    private init(directory: URL, port: UInt16, process: ChildProcess) {
        self.directory = directory
        self.port = port
        self.process = process
    }

    /// The `amqtt` executable, installing the venv first when it is missing (bounded: 5 min).
    ///
    /// - Throws: ``HarnessError`` when python3's venv or pip fails.
    public static func executable() throws -> String {
        let amqtt = venv + "/bin/amqtt"
        if FileManager.default.isExecutableFile(atPath: amqtt) { return amqtt }
        try runTool(try executablePath("python3"), ["-m", "venv", venv], timeout: .seconds(60))
        try runTool(venv + "/bin/pip", ["install", "-q", "amqtt==\(version)"], timeout: .seconds(300))
        guard FileManager.default.isExecutableFile(atPath: amqtt) else {
            throw HarnessError("amqtt not installed in \(venv)")
        }
        return amqtt
    }

    /// Starts a broker on a free port: one TCP listener, anonymous clients allowed (3 attempts,
    /// each waiting at most 20 s for the listener).
    ///
    /// - Throws: ``HarnessError`` when amqtt is missing or does not start.
    public static func start() throws -> AMQTTBroker {
        let amqtt = try executable()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("uvmqtt-amqtt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var lastError: any Error = HarnessError("amqtt did not start")
        for _ in 0..<3 {
            let port = try freeLoopbackPort()
            let config = directory.appendingPathComponent("amqtt.yaml")
            try """
            listeners:
              default:
                type: tcp
                bind: 127.0.0.1:\(port)
            plugins:
              amqtt.plugins.authentication.AnonymousAuthPlugin:
                allow_anonymous: true
            """.write(to: config, atomically: true, encoding: .utf8)
            let child = try ChildProcess(amqtt, ["-c", config.path], logPath: directory.appendingPathComponent("amqtt.log").path,
                                         append: true)
            do {
                try waitUntilListening(port: port, process: child)
                return AMQTTBroker(directory: directory, port: port, process: child)
            } catch {
                child.terminate(signal: SIGKILL)
                lastError = error
            }
        }
        try? FileManager.default.removeItem(at: directory)
        throw lastError
    }

    /// Stops the broker (bounded) and removes its directory.
    public func stop() {
        process.terminate(signal: SIGTERM)
        try? FileManager.default.removeItem(at: directory)
    }

    deinit { process.terminate(signal: SIGKILL) }
}

/// Runs `body` with a started amqtt broker and always stops it afterwards.
///
/// - Throws: What `start` or `body` throws.
public func withAMQTT<T>(_ body: (AMQTTBroker) async throws -> T) async throws -> T {
    let broker = try await blockingCall { try AMQTTBroker.start() }
    do {
        let result = try await body(broker)
        _ = try? await blockingCall { broker.stop() }
        return result
    } catch {
        _ = try? await blockingCall { broker.stop() }
        throw error
    }
}
