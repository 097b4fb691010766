import ArgumentParser
import Synchronization
import MQTTProtocol
import UVMQTT
import UVReactor
#if canImport(Glibc)
import Glibc
#endif

/// `mqtt bench`: a load generator for many clients (`conn|pub|sub -c COUNT ...`, emqtt-bench's
/// flags; ``LoadBench``) and, as a mode of the same command, the one-client throughput driver of
/// `../shared/bench` (`pub|sub -n N`, the driver contract in its README; ``BenchRun``).
///
/// Both are built on the public NodeMCU-style API: every publish, completion and message runs on
/// a client's event loop thread, with no thread hop per message.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmark a broker with many clients (emqtt-bench's flags), or drive the throughput harness.",
        discussion: """
            MANY CLIENTS (chosen by -c or -t; conn always): conn connects -c clients, one every -i ms, \
            and exits when all are up (--hold S keeps them open S seconds). pub: each client publishes \
            on -t every -I ms (0 = as fast as --inflight / the socket allow) until -L messages in all. \
            sub: each client subscribes to -t and counts until -L messages in all. -t takes %i (client \
            index, from -n), %c (client id), %u (user name). Clients are spread round-robin over \
            --threads event loops and over the -h hosts. Progress once a second on stderr (one line \
            overwritten in place on a terminal); a summary on stdout; --json FILE the per-second series \
            and the summary, --csv FILE the series, --plot FILE.svg a picture of the rates and \
            latencies over time. --latency: publishers stamp each payload (24 bytes: clock, sequence, \
            publisher index), subscribers report publish-to-receive percentiles and gaps in the \
            sequences; QoS 1/2 publishers also publish-to-PUBACK/PUBCOMP. Use --clock realtime across \
            hosts with synchronized clocks. Exit 0 when the run reached its goal without a failed or \
            lost connection, 1 otherwise.

            HARNESS DRIVER (pub|sub with -n N and neither -c nor -t; -n is then the message count, \
            not emqtt-bench's first index): one client, loopback only. pub: publishes N messages on \
            bench/t keeping at most WINDOW not done (QoS 0: written to the socket, QoS 1: PUBACK), \
            then one on bench/end, then DISCONNECT. sub: subscribes to bench/#, prints READY after the \
            SUBACK, counts messages until N or bench/end. Environment: BENCH_TIMEOUT (s, default 120), \
            BENCH_IDLE (s, default 10), BENCH_TCP_NODELAY (the client always sets TCP_NODELAY: it \
            coalesces writes itself). Last stdout line: RESULT lib=swift-uv-mqtt mode=... rate=... \
            status=ok; exit 0 iff ok.
            """,
        helpNames: [.long]
    )

    enum Mode: String, ExpressibleByArgument, Sendable {
        case conn, pub, sub
    }

    @Argument(help: "conn, pub or sub.")
    var mode: Mode

    @Option(name: .customShort("h"), help: ArgumentHelp("Broker host; several separated by commas spread the clients (default localhost; harness: 127.0.0.1, loopback only).", valueName: "host[,host...]"))
    var host: String?

    @Option(name: .customShort("p"), help: ArgumentHelp("Broker port (default 1883).", valueName: "port"))
    var port: Int?

    @Option(name: .customShort("n"), help: ArgumentHelp("Index of the first client (default 0). Harness form: the number of messages.", valueName: "n"))
    var number: Int?

    @Option(name: .customShort("s"), help: ArgumentHelp("Payload size in bytes (default 256; harness: 16).", valueName: "bytes"))
    var payloadSize: Int?

    @Option(name: .customShort("q"), help: ArgumentHelp("QoS 0, 1 or 2.", valueName: "qos"))
    var qos: Int = 0

    @Option(name: .customLong("window"), help: ArgumentHelp("Harness pub: most messages not yet done (default 1000 for QoS 0, 100 for QoS 1; 0 = no limit).", valueName: "messages"))
    var window: Int?

    @Option(name: .customShort("c"), help: ArgumentHelp("Number of clients (default 200).", valueName: "count"))
    var clients: Int?

    @Option(name: .customShort("i"), help: ArgumentHelp("Milliseconds between two connection starts (default 10).", valueName: "ms"))
    var connectInterval: Int?

    @Option(name: .customShort("R"), help: ArgumentHelp("Connection starts per second (instead of -i).", valueName: "rate"))
    var connectRate: Double?

    @Option(name: .customLong("connect-window"), help: ArgumentHelp("Most connections in progress (started, no CONNACK yet) at once; 0 = no limit.", valueName: "n"))
    var connectWindow: Int = 64

    @Option(name: .customShort("I"), help: ArgumentHelp("pub: milliseconds between two messages of a client; 0 = as fast as the window allows.", valueName: "ms"))
    var messageInterval: Int = 1000

    @Option(name: .customShort("L"), help: ArgumentHelp("Total messages: published (pub) or received (sub) by all clients together; 0 = no limit.", valueName: "count"))
    var limit: Int = 0

    @Option(name: .customShort("t"), help: ArgumentHelp("Topic (pub) or filter (sub); %i = client index, %c = client id, %u = user name.", valueName: "topic"))
    var topic: String?

    @Option(name: .customShort("r"), help: ArgumentHelp("pub: retain flag, true or false.", valueName: "bool"))
    var retain: Bool = false

    @Option(name: .customShort("k"), help: ArgumentHelp("Keepalive in seconds.", valueName: "seconds"))
    var keepalive: Int = 300

    @Option(name: .customShort("C"), help: ArgumentHelp("Clean session, true or false.", valueName: "bool"))
    var clean: Bool = true

    @Option(name: .customShort("u"), help: ArgumentHelp("User name.", valueName: "user"))
    var username: String?

    @Option(name: .customShort("P"), help: ArgumentHelp("Password.", valueName: "password"))
    var password: String?

    @Option(name: .customLong("prefix"), help: ArgumentHelp("Client id prefix: ids are PREFIX_MODE_INDEX (default mqtt-bench-PID).", valueName: "prefix"))
    var prefix: String?

    @Option(name: .customShort("V"), help: ArgumentHelp("Protocol version: 3 (MQTT 3.1) or 4 (MQTT 3.1.1).", valueName: "version"))
    var protocolVersion: Int = 4

    @Option(name: .customLong("threads"), help: ArgumentHelp("Event loops the clients share (default: one per core).", valueName: "n"))
    var threads: Int?

    @Option(name: .customLong("inflight"), help: ArgumentHelp("pub, QoS 1/2: messages a client keeps awaiting acknowledgement.", valueName: "n"))
    var inflight: Int = 100

    @Flag(name: .customLong("latency"), help: "Stamp payloads (pub) and measure publish-to-receive latency (sub); needs -s 24 or more.")
    var latency = false

    @Option(name: .customLong("clock"), help: ArgumentHelp("Latency clock: monotonic (one host) or realtime (synchronized hosts).", valueName: "clock"))
    var clockName: String = "monotonic"





    @OptionGroup var tls: TLSFlags

    @Option(name: .customLong("csv"), help: ArgumentHelp("Write the per-second series as CSV to this file.", valueName: "file"))
    var csv: String?

    @Option(name: .customLong("plot"), help: ArgumentHelp("Draw the rates and the per-second latency percentiles over time into this SVG file.", valueName: "file.svg"))
    var plot: String?

    @Option(name: .customLong("json"), help: ArgumentHelp("Write the per-second series and the summary to this file.", valueName: "file"))
    var json: String?

    @Option(name: .customLong("duration"), help: ArgumentHelp("Stop after this many seconds (0 = no limit; Ctrl-C also stops with a summary).", valueName: "seconds"))
    var duration: Double = 0

    @Option(name: .customLong("hold"), help: ArgumentHelp("conn: keep the connections open this many seconds after the last came up.", valueName: "seconds"))
    var hold: Double = 0

    /// The harness form: `pub|sub -n N` without any flag of the many-client form.
    var isHarnessForm: Bool { mode != .conn && clients == nil && topic == nil && number != nil }

    func run() throws {
        if !isHarnessForm {
            let arguments = try loadArguments()
            Glibc.exit(LoadBench(arguments).execute())
        }
        guard let count = number else { throw ToolFailure("-n is required") }
        func environment(_ name: String) -> Double? {
            guard let raw = getenv(name), let value = Double(String(cString: raw)), value > 0 else { return nil }
            return value
        }
        let host = self.host ?? "127.0.0.1"
        let port = self.port ?? 1883
        let payloadSize = self.payloadSize ?? 16
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
        case .sub, .conn: prepareSubscriber()  // conn never reaches the harness form
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
        case .sub, .conn:
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
