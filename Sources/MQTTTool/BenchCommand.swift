import ArgumentParser
import Synchronization
import MQTTProtocol
import UVMQTT
import UVReactor
#if canImport(Glibc)
import Glibc
#endif

/// `mqtt bench pub|sub`: the throughput driver of `../shared/bench` (the driver contract in its
/// README), built on the public NodeMCU-style API: every publish, completion and message runs on
/// the client's event loop thread, with no thread hop per message.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Throughput benchmark driver (loopback only; see docs/benchmarks.md).",
        discussion: """
            pub: publishes N messages on bench/t keeping at most WINDOW not done (QoS 0: written \
            to the socket, QoS 1: PUBACK), then one on bench/end, then DISCONNECT. sub: subscribes \
            to bench/#, prints READY after the SUBACK, counts messages until N or bench/end. \
            Environment: BENCH_TIMEOUT (s, default 120), BENCH_IDLE (s, default 10), \
            BENCH_TCP_NODELAY (the client always sets TCP_NODELAY: it coalesces writes itself). \
            Last stdout line: RESULT lib=swift-uv-mqtt mode=... rate=... status=ok; exit 0 iff ok.
            """,
        helpNames: [.long]
    )

    enum Mode: String, ExpressibleByArgument, Sendable {
        case pub, sub
    }

    @Argument(help: "pub or sub.")
    var mode: Mode

    @Option(name: .customShort("h"), help: ArgumentHelp("Broker host (loopback only).", valueName: "host"))
    var host: String = "127.0.0.1"

    @Option(name: .customShort("p"), help: ArgumentHelp("Broker port.", valueName: "port"))
    var port: Int = 1883

    @Option(name: .customShort("n"), help: ArgumentHelp("Number of messages.", valueName: "count"))
    var count: Int

    @Option(name: .customShort("s"), help: ArgumentHelp("Payload size in bytes.", valueName: "bytes"))
    var payloadSize: Int = 16

    @Option(name: .customShort("q"), help: ArgumentHelp("QoS 0 or 1 (2 also works).", valueName: "qos"))
    var qos: Int = 0

    @Option(name: .customLong("window"), help: ArgumentHelp("pub: most messages not yet done (default 1000 for QoS 0, 100 for QoS 1; 0 = no limit).", valueName: "messages"))
    var window: Int?

    func run() throws {
        func environment(_ name: String) -> Double? {
            guard let raw = getenv(name), let value = Double(String(cString: raw)), value > 0 else { return nil }
            return value
        }
        let args = BenchArguments(
            mode: mode, host: host == "localhost" ? "127.0.0.1" : host, port: port, count: count,
            payloadSize: payloadSize, qos: qos, window: window ?? (qos == 0 ? 1000 : 100),
            timeout: environment("BENCH_TIMEOUT") ?? 120,
            idle: environment("BENCH_IDLE") ?? 10)
        guard BenchArguments.isLoopback(host) else {
            writeStderr("swift-uv-mqtt: refusing non-loopback host '\(host)'")
            throw ExitCode(2)
        }
        guard (1...65535).contains(port), count > 0, (0...2).contains(qos), (0...16 << 20).contains(payloadSize),
              args.window >= 0 else {
            writeStderr("swift-uv-mqtt: bad arguments")
            throw ExitCode(2)
        }
        let run = BenchRun(args)
        Glibc.exit(run.execute())
    }
}

struct BenchArguments: Sendable {
    var mode: BenchCommand.Mode
    var host: String
    var port: Int
    var count: Int
    var payloadSize: Int
    var qos: Int
    var window: Int
    var timeout: Double
    var idle: Double

    /// 127.x.y.z or localhost, as the harness's `bench_is_loopback`.
    static func isLoopback(_ host: String) -> Bool {
        if host == "localhost" { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts.allSatisfy({ UInt8($0) != nil }) else { return false }
        return parts[0] == "127"
    }
}


/// One benchmark run. The `loop…` state is touched on the client's loop thread only; the main
/// thread reads the atomics to print progress and to enforce the time limits.
final class BenchRun: @unchecked Sendable {
    static let lib = "swift-uv-mqtt"

    let args: BenchArguments
    let client: NodeMCUClient
    let qos: QoS
    let payload: [UInt8]
    let outcome = Outcome()
    /// Messages done (pub) or received (sub), for progress and the idle limit.
    let progress = Atomic<Int>(0)
    let failure = Mutex<String?>(nil)

    // Loop-thread state.
    private var issued = 0
    private var completed = 0
    private var pumpScheduled = false
    private var mainPhase = true
    private var received = 0
    private(set) var startTime = 0.0
    private(set) var endTime = 0.0
    private var finalCount = 0

    init(_ args: BenchArguments) {
        self.args = args
        self.qos = QoS(rawValue: UInt8(args.qos)) ?? .atMostOnce
        self.payload = [UInt8](repeating: UInt8(ascii: "x"), count: args.payloadSize)
        let id = "swift-uv-mqtt-bench-\(args.mode.rawValue)-\(getpid())"
        var queued = 1_000
        if args.mode == .pub { queued = max(queued, (args.window == 0 ? args.count : args.window) + 16) }
        let options = MQTTClientOptions(
            clientID: id, keepAlive: 60, cleanSession: true, inflightWindow: 100, maxQueuedMessages: queued,
            maxQueuedBytes: max(16 << 20, queued * (args.payloadSize + 16)))
        client = NodeMCUClient(options: options)
    }

    /// Runs to the end and prints the RESULT line; returns the exit status.
    func execute() -> Int32 {
        let started = monotonicSeconds()
        client.on(.offline) { [self] _ in fail("connection lost") }
        switch args.mode {
        case .pub: preparePublisher()
        case .sub: prepareSubscriber()
        }
        do {
            try client.connect(args.host, port: args.port, connected: { [self] _ in connected() },
                               failed: { [self] _, reason in fail("connect failed: \(reason)") })
        } catch {
            fail("connect failed: \(error)")
        }

        // Main thread: progress once a second, time limits.
        var lastProgress = 0
        var lastProgressTime = monotonicSeconds()
        var nextReport = started + 1
        var status = "ok"
        while outcome.wait(timeout: 0.02) == nil {
            let now = monotonicSeconds()
            let done = progress.load(ordering: .relaxed)
            if done != lastProgress {
                lastProgress = done
                lastProgressTime = now
            }
            if now >= nextReport {
                nextReport += 1
                writeStderr("\(Self.lib) \(args.mode.rawValue): \(done)/\(args.count) messages after \(Int(now - started)) s")
            }
            if now - started > args.timeout {
                status = "timeout"
                break
            }
            if done > 0 && now - lastProgressTime > args.idle {
                status = "idle"
                break
            }
        }
        if let reason = failure.withLock({ $0 }) {
            writeStderr("\(Self.lib): \(reason)")
            writeStdoutLine("RESULT lib=\(Self.lib) status=error reason=\"\(reason)\"")
            return 1
        }
        let snapshot = Outcome()
        let finalStatus = status
        client.eventLoop.execute { [self] in
            if finalStatus != "ok" { finalCount = args.mode == .pub ? completed : received }
            snapshot.finish(0)
        }
        _ = snapshot.wait(timeout: 2)
        // DISCONNECT, then wait until the broker closed its side: the client's graceful close
        // reads until the broker's end of stream (at most 10 s), so everything published was
        // read by the broker before the process exits (an exiting process would otherwise leave
        // megabytes in an orphaned socket that the kernel may drop).
        closeAndWait(client, timeout: max(1, min(12, args.timeout - (monotonicSeconds() - started))))
        let count = status == "ok" ? finalCount : finalCount
        if status == "ok" && count != args.count { status = "short" }
        let secs = endTime > startTime ? endTime - startTime : 0
        let rate = secs > 0 ? Double(count) / secs : 0
        writeStdoutLine("RESULT lib=\(Self.lib) mode=\(args.mode.rawValue) qos=\(args.qos) payload=\(args.payloadSize) n=\(args.count) count=\(count) secs=\(formatFixed(secs, digits: 6)) rate=\(formatFixed(rate, digits: 0)) status=\(status)")
        return status == "ok" ? 0 : 1
    }

    private func fail(_ reason: String) {
        guard !outcome.isFinished else { return }
        failure.withLock { if $0 == nil { $0 = reason } }
        outcome.finish(1)
    }

    private func connected() {
        switch args.mode {
        case .pub:
            // Publish outside the connect callback, from a loop turn of its own.
            schedulePump()
        case .sub:
            do {
                try client.subscribe("bench/#", qos: qos) { _, result in
                    switch result {
                    case .success(let code) where code != .failure:
                        writeStdoutLine("READY")
                    default:
                        self.fail("subscribe failed: \(result)")
                    }
                }
            } catch {
                fail("subscribe failed: \(error)")
            }
        }
    }

    // MARK: Publisher

    private func preparePublisher() {
        client.on(.puback) { [self] _ in
            // QoS 1 / 2 completions of the main phase (the end marker has its own completion).
            guard mainPhase, qos != .atMostOnce else { return }
            completed += 1
            progress.store(completed, ordering: .relaxed)
            if completed == args.count {
                endTime = monotonicSeconds()
                finishMainPhase()
            } else if issued < args.count && !pumpScheduled && issued - completed <= max(1, window / 2) {
                schedulePump()
            }
        }
    }

    private var window: Int { args.window == 0 ? args.count : args.window }

    private func schedulePump() {
        pumpScheduled = true
        client.eventLoop.execute { [self] in pump() }
    }

    /// Issues publishes up to the window. Runs in a loop turn of its own (not inside a client
    /// callback), so each publish goes straight into the send buffer.
    private func pump() {
        pumpScheduled = false
        guard mainPhase, !outcome.isFinished else { return }
        if startTime == 0 { startTime = monotonicSeconds() }
        if qos == .atMostOnce {
            // QoS 0 is done once written to the socket: the client encodes into its send buffer
            // and the loop writes it at the end of this turn. A batch of at most `window` per
            // turn, and the next one only once the kernel took everything (no send backlog):
            // then every message issued so far is done. With a backlog (a broker slower than
            // us), check again in a millisecond: the publisher follows the broker's pace.
            if client.unsentByteCount > 0 {
                pumpScheduled = true
                client.eventLoop.scheduleTimer(after: .milliseconds(1)) { [self] in pump() }
                return
            }
            completed = issued
            progress.store(completed, ordering: .relaxed)
            if issued == args.count {
                endTime = monotonicSeconds()
                finishMainPhase()
                return
            }
            let batch = min(window, args.count - issued)
            do {
                for _ in 0..<batch { try client.publish("bench/t", payload, qos: .atMostOnce) }
            } catch {
                fail("publish failed: \(error)")
                return
            }
            issued += batch
            // The next turn runs after this batch was handed to the socket.
            schedulePump()
        } else {
            do {
                while issued < args.count && issued - completed < window {
                    issued += 1
                    try client.publish("bench/t", payload, qos: qos)
                }
            } catch {
                fail("publish failed: \(error)")
            }
        }
    }

    private func finishMainPhase() {
        mainPhase = false
        finalCount = completed
        do {
            try client.publish("bench/end", payload, qos: qos) { [self] _, result in
                if case .failure(let error) = result { fail("end marker failed: \(error)") } else { outcome.finish(0) }
            }
        } catch {
            fail("end marker failed: \(error)")
        }
    }

    // MARK: Subscriber

    private func prepareSubscriber() {
        client.on(.message) { [self] _, message in
            guard mainPhase else { return }
            if message.topicBytes.count == 9 && message.topicEquals("bench/end") {
                if received > 0 { endTime = monotonicSeconds() }
                finishSubscriber()
                return
            }
            if received == 0 { startTime = monotonicSeconds() }
            received += 1
            progress.store(received, ordering: .relaxed)
            if received == args.count {
                endTime = monotonicSeconds()
                finishSubscriber()
            }
        }
    }

    private func finishSubscriber() {
        mainPhase = false
        finalCount = received
        outcome.finish(0)
    }
}
