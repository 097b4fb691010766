import Histogram
import Synchronization
import MQTTProtocol
import UVMQTT
import UVReactor
#if canImport(Glibc)
import Glibc
#endif

/// Set by SIGINT / SIGTERM: the run stops and still prints its summary.
nonisolated(unsafe) private var stopRequested: sig_atomic_t = 0

/// The counters and histograms of the clients on one event loop.
///
/// The counters are written on that loop's thread and read by the main thread once a second
/// (relaxed atomics: one writer each, the reader only needs a recent value). The histograms are
/// loop-thread only; the main thread copies them through the loop (``LoadBench/collect()``).
final class LoopStats: @unchecked Sendable {
    let loop: EventLoop
    let online = Atomic<Int>(0)
    let subscribed = Atomic<Int>(0)
    let sent = Atomic<Int>(0)
    let acked = Atomic<Int>(0)
    let received = Atomic<Int>(0)
    let inflight = Atomic<Int>(0)
    let connectFailed = Atomic<Int>(0)
    let lost = Atomic<Int>(0)
    let refused = Atomic<Int>(0)
    let publishFailed = Atomic<Int>(0)
    /// Subscriber side, --latency: messages whose sequence number jumped ahead (the count of
    /// numbers skipped), came back below one already seen (duplicate or reordered), or carried no
    /// stamp.
    let missing = Atomic<Int>(0)
    let late = Atomic<Int>(0)
    let unstamped = Atomic<Int>(0)
    /// Time of the last CONNACK on this loop (ns, monotonic).
    let lastConnected = Atomic<UInt64>(0)

    // Loop thread only (nanoseconds).
    var latency = LoopStats.histogram()
    var ackLatency = LoopStats.histogram()
    var connectLatency = LoopStats.histogram()
    /// The mode's latency (sub: publish→receive, pub: publish→ack) since the last per-second
    /// sample, taken and reset by ``LoadBench/takeInterval()``.
    var interval = LoopStats.histogram()

    init(loop: EventLoop) { self.loop = loop }

    /// 1 µs resolution to an hour, three significant digits.
    static func histogram() -> Histogram<UInt64> {
        Histogram<UInt64>(lowestDiscernibleValue: 1_000, highestTrackableValue: 3_600_000_000_000, numberOfSignificantValueDigits: .three)
    }
}

/// The totals over all loops at one moment.
struct LoadTotals: Sendable {
    var online = 0, subscribed = 0, sent = 0, acked = 0, received = 0, inflight = 0
    var connectFailed = 0, lost = 0, refused = 0, publishFailed = 0
    var missing = 0, late = 0, unstamped = 0
    var errors: Int { connectFailed + lost + refused + publishFailed }

    init(_ stats: [LoopStats]) {
        for s in stats {
            online += s.online.load(ordering: .relaxed)
            subscribed += s.subscribed.load(ordering: .relaxed)
            sent += s.sent.load(ordering: .relaxed)
            acked += s.acked.load(ordering: .relaxed)
            received += s.received.load(ordering: .relaxed)
            inflight += s.inflight.load(ordering: .relaxed)
            connectFailed += s.connectFailed.load(ordering: .relaxed)
            lost += s.lost.load(ordering: .relaxed)
            refused += s.refused.load(ordering: .relaxed)
            publishFailed += s.publishFailed.load(ordering: .relaxed)
            missing += s.missing.load(ordering: .relaxed)
            late += s.late.load(ordering: .relaxed)
            unstamped += s.unstamped.load(ordering: .relaxed)
        }
    }
}

/// A many-client run (`mqtt bench conn|pub|sub -c ...`): K event loops, clients handed out
/// round-robin, a start thread pacing the connections, and the main thread printing progress
/// once a second and deciding the end.
final class LoadBench: @unchecked Sendable {
    let args: LoadBenchArguments
    let loops: [EventLoop]
    let stats: [LoopStats]
    private(set) var clients: [BenchClient] = []
    /// Messages handed out to publishers (the -L budget).
    let issued = Atomic<Int>(0)
    /// Set once the run ends: no more publishing, an `offline` is no longer a loss.
    let stopping = Atomic<Bool>(false)
    /// Failure reasons and their counts (rare: a lock is fine).
    let reasons = Mutex<[String: Int]>([:])
    let startTime = monotonicNanos()
    /// Per-second samples for --json.
    private(set) var series: [LoadSample] = []

    init(_ args: LoadBenchArguments) {
        self.args = args
        loops = (0..<args.threads).map { _ in EventLoop() }
        for loop in loops { loop.start() }
        stats = loops.map { LoopStats(loop: $0) }
        clients = (0..<args.clients).map { n in
            BenchClient(run: self, index: args.firstIndex + n, stats: stats[n % stats.count])
        }
    }

    func note(_ reason: String) {
        reasons.withLock { $0[reason, default: 0] += 1 }
    }

    /// Reserves one message of the -L budget; false once it is spent.
    func reserveMessage() -> Bool {
        if stopping.load(ordering: .relaxed) { return false }
        if args.limit == 0 { return true }
        return issued.wrappingAdd(1, ordering: .relaxed).newValue <= args.limit
    }

    /// Runs to the end, prints the summary, writes --json; returns the exit status.
    func execute() -> Int32 {
        signal(SIGINT) { _ in stopRequested = 1 }
        signal(SIGTERM) { _ in stopRequested = 1 }
        let clients = self.clients
        let spacing = args.connectSpacing
        let window = args.connectWindow
        let stats = self.stats
        let starter = SharedCounter()
        let started = startTime
        spawnThread { [self] in
            // Connection starts on a schedule of their own (absolute deadlines: no drift).
            for (n, client) in clients.enumerated() {
                if stopping.load(ordering: .relaxed) { break }
                if spacing > 0 && n > 0 {
                    let due = started + UInt64(n) * spacing
                    let now = monotonicNanos()
                    if due > now { sleepNanos(due - now) }
                }
                // A burst of SYNs larger than the broker's listen backlog is dropped by the
                // kernel and retried after 1 s, 3 s, ...: keep at most the window in progress.
                while window > 0 && !stopping.load(ordering: .relaxed) {
                    let done = stats.reduce(0) { $0 + $1.online.load(ordering: .relaxed) + $1.lost.load(ordering: .relaxed)
                        + $1.connectFailed.load(ordering: .relaxed) }
                    if n - done < window { break }
                    sleepNanos(100_000)
                }
                client.start()
                starter.value.store(n + 1, ordering: .relaxed)
            }
        }

        let progress = ProgressLine(prefix: "mqtt bench \(args.mode.rawValue)")
        var lastSecond = 0
        var previous = LoadTotals(stats)
        var goalTime: UInt64?
        var heldSince: UInt64?
        var ended = "goal"
        while true {
            usleep(10_000)
            let now = monotonicNanos()
            let totals = LoadTotals(stats)
            let elapsed = Double(now - startTime) / 1e9
            if Int(elapsed) > lastSecond {
                lastSecond = Int(elapsed)
                var sample = LoadSample(second: Double(lastSecond), totals: totals, previous: previous, target: args.clients)
                if args.latency { sample.latency = IntervalLatency(takeInterval()) }
                series.append(sample)
                progress.show(sample.line(mode: args.mode))
                previous = totals
            }
            if stopRequested != 0 { ended = "interrupted"; break }
            if args.duration > 0 && elapsed >= args.duration { ended = "duration"; break }
            let attempted = totals.online + totals.connectFailed + totals.lost
            let allStarted = starter.value.load(ordering: .relaxed) == args.clients
            switch args.mode {
            case .conn:
                if allStarted && totals.connectFailed + totals.online + totals.lost >= args.clients {
                    if heldSince == nil { heldSince = now }
                    if let heldSince, Double(now - heldSince) / 1e9 >= args.hold { goalTime = goalTime ?? now }
                }
            case .pub:
                if args.limit > 0 && totals.sent + totals.publishFailed >= args.limit
                    && (args.qos == .atMostOnce || totals.acked + totals.publishFailed >= args.limit) {
                    goalTime = now
                }
            case .sub:
                if args.limit > 0 && totals.received >= args.limit { goalTime = now }
            }
            if goalTime != nil { break }
            // Every client has given up (failed or lost): nothing more can happen.
            if allStarted && attempted >= args.clients && totals.online == 0 && args.mode != .conn {
                ended = "no connection left"
                break
            }
        }
        stopping.store(true, ordering: .relaxed)
        let endTime = monotonicNanos()
        let totals = LoadTotals(stats)
        // The last partial second, so that the series adds up to the totals.
        var finalSample = LoadSample(second: Double(endTime - startTime) / 1e9, totals: totals, previous: previous,
                                     target: args.clients)
        if args.latency { finalSample.latency = IntervalLatency(takeInterval()) }
        if finalSample.sent > 0 || finalSample.received > 0 || finalSample.acked > 0 || series.isEmpty || args.mode == .conn {
            series.append(finalSample)
        }
        progress.finish(finalSample.line(mode: args.mode))

        let histograms = collect()
        let closeStart = monotonicNanos()
        let closed = closeAll()
        let closeSeconds = Double(monotonicNanos() - closeStart) / 1e9
        let report = LoadReport(args: args, ended: ended, elapsed: Double(endTime - startTime) / 1e9,
                                totals: totals, histograms: histograms, reasons: reasons.withLock { $0 },
                                lastConnected: stats.map { $0.lastConnected.load(ordering: .relaxed) }.max() ?? 0,
                                startTime: startTime, closeSeconds: closeSeconds, closedAll: closed)
        for line in report.summaryLines() { writeStdoutLine(line) }
        if let path = args.csvPath, !writeFile(path, report.csv(series: series)) {
            writeStderr("Error: cannot write --csv file '\(path)': \(String(cString: strerror(errno)))")
            return 1
        }
        if let path = args.plotPath {
            let title = "mqtt bench \(args.mode.rawValue): \(args.clients) clients, QoS \(args.qos.rawValue), \(args.payloadSize) B, "
                + "\(args.hosts.joined(separator: ",")):\(args.port)"
            if !writeFile(path, LoadPlot(title: title, series: series, mode: args.mode).render()) {
                writeStderr("Error: cannot write --plot file '\(path)': \(String(cString: strerror(errno)))")
                return 1
            }
        }
        if let path = args.jsonPath {
            if !writeFile(path, report.json(series: series)) {
                writeStderr("Error: cannot write --json file '\(path)': \(String(cString: strerror(errno)))")
                return 1
            }
        }
        return report.succeeded ? 0 : 1
    }

    /// Takes every loop's interval histogram on its own thread and resets it (one hop per loop
    /// and second; bounded wait).
    private func takeInterval() -> Histogram<UInt64> {
        let merged = SharedValue(LoopStats.histogram())
        let pending = SharedCounter(stats.count)
        let done = Outcome()
        for s in stats {
            s.loop.execute {
                let taken = s.interval
                s.interval.reset()
                merged.value.withLock { $0.add(taken) }
                if pending.value.wrappingSubtract(1, ordering: .acquiringAndReleasing).newValue == 0 { done.finish(0) }
            }
        }
        _ = done.wait(timeout: 0.5)
        return merged.value.withLock { $0 }
    }

    /// Copies every loop's histograms on its own thread (bounded wait).
    private func collect() -> LoadHistograms {
        let merged = SharedValue(LoadHistograms())
        let tracksPublishers = args.latency && args.mode == .sub
        let clients = self.clients
        for s in stats {
            let done = Outcome()
            s.loop.execute {
                merged.value.withLock { m in
                    m.latency.add(s.latency)
                    m.ackLatency.add(s.ackLatency)
                    m.connectLatency.add(s.connectLatency)
                    if tracksPublishers {
                        for c in clients where c.stats === s { c.addTallies(into: &m.publishers) }
                    }
                }
                done.finish(0)
            }
            _ = done.wait(timeout: 5)
        }
        return merged.value.withLock { $0 }
    }

    /// DISCONNECT for every client, waiting (bounded: 10 s in all) until the broker closed them,
    /// so that it read everything that was sent; whether all closed in time.
    private func closeAll() -> Bool {
        let open = SharedCounter(clients.count)
        let done = Outcome()
        for c in clients {
            c.client.close { _ in
                if open.value.wrappingSubtract(1, ordering: .acquiringAndReleasing).newValue == 0 { done.finish(0) }
            }
        }
        return done.wait(timeout: 10) != nil
    }
}

/// The merged histograms of a run (nanoseconds).
struct LoadHistograms: Sendable {
    /// Subscribers with --latency: per publisher index.
    var publishers: [UInt32: PublisherTally] = [:]
    var latency = LoopStats.histogram()
    var ackLatency = LoopStats.histogram()
    var connectLatency = LoopStats.histogram()
}

/// One client of a many-client run. Everything but `start()` runs on its loop thread.
final class BenchClient: @unchecked Sendable {
    unowned let run: LoadBench
    let index: Int
    let stats: LoopStats
    let client: NodeMCUClient
    let topic: String
    let host: String
    let qos: QoS
    // Loop-thread state.
    private var payload: [UInt8]
    private var sequence: UInt64 = 0
    private var pumpScheduled = false
    private var connectStarted: UInt64 = 0
    private var timer: LoopTimer?
    /// Publish times of the messages awaiting PUBACK / PUBCOMP, oldest first: a broker
    /// acknowledges in the order it received them [MQTT-4.6.0-2], [MQTT-4.6.0-3].
    private var pending: [UInt64]
    private var pendingHead = 0
    private var pendingCount = 0
    /// --latency, subscriber: per publisher index, the next sequence number expected and the
    /// counts.
    private var publishers: [UInt32: PublisherTally] = [:]
    private var isOnline = false

    init(run: LoadBench, index: Int, stats: LoopStats) {
        let args = run.args
        self.run = run
        self.index = index
        self.stats = stats
        self.qos = args.qos
        self.topic = args.mode == .conn ? "" : args.topic(for: index)
        self.host = args.hosts[(index - args.firstIndex) % args.hosts.count]
        self.payload = [UInt8](repeating: UInt8(ascii: "x"), count: args.mode == .pub ? args.payloadSize : 0)
        self.pending = [UInt64](repeating: 0, count: args.mode == .pub && args.qos != .atMostOnce ? args.inflight : 0)
        let options = MQTTClientOptions(
            clientID: args.clientID(index), protocolVersion: args.version, keepAlive: UInt16(args.keepalive),
            cleanSession: args.cleanSession, username: args.username, password: args.password.map { Array($0.utf8) },
            inflightWindow: args.inflight, maxQueuedMessages: max(1_000, args.inflight * 2),
            maximumIncomingPacketSize: ConnectionOptions.largestPacket)
        client = NodeMCUClient(options: options, eventLoop: stats.loop)
    }

    /// Connects (any thread; the rest happens on the loop thread).
    func start() {
        client.on(.offline) { [self] _ in offline() }
        if run.args.mode == .sub {
            client.on(.message) { [self] _, message in received(message) }
        }
        if run.args.mode == .pub && qos != .atMostOnce {
            client.on(.puback) { [self] _ in acknowledged() }
        }
        stats.loop.execute { [self] in
            connectStarted = monotonicNanos()
            do {
                try client.connect(host, port: run.args.port, secure: run.args.security, connected: { [self] _ in connected() },
                                   failed: { [self] _, reason in
                                       stats.connectFailed.wrappingAdd(1, ordering: .relaxed)
                                       run.note("connect failed: \(reason)")
                                   })
            } catch {
                stats.connectFailed.wrappingAdd(1, ordering: .relaxed)
                run.note("connect failed: \(error)")
            }
        }
    }

    private func connected() {
        let now = monotonicNanos()
        isOnline = true
        stats.online.wrappingAdd(1, ordering: .relaxed)
        stats.connectLatency.record(now - connectStarted)
        if now > stats.lastConnected.load(ordering: .relaxed) { stats.lastConnected.store(now, ordering: .relaxed) }
        switch run.args.mode {
        case .conn:
            break
        case .sub:
            do {
                try client.subscribe(topic, qos: qos) { [self] _, result in
                    switch result {
                    case .success(.granted):
                        stats.subscribed.wrappingAdd(1, ordering: .relaxed)
                    case .success(.failure):
                        stats.refused.wrappingAdd(1, ordering: .relaxed)
                        run.note("subscription refused (SUBACK 0x80)")
                    case .failure(let error):
                        stats.refused.wrappingAdd(1, ordering: .relaxed)
                        run.note("subscribe failed: \(error)")
                    }
                }
            } catch {
                stats.refused.wrappingAdd(1, ordering: .relaxed)
                run.note("subscribe failed: \(error)")
            }
        case .pub:
            let interval = run.args.messageInterval
            if interval > 0 {
                timer = stats.loop.scheduleTimer(after: .milliseconds(interval), repeating: .milliseconds(interval)) { [self] in
                    tick()
                }
            } else {
                schedulePump()
            }
        }
    }

    private func offline() {
        guard isOnline else { return }
        isOnline = false
        timer?.cancel()
        timer = nil
        stats.online.wrappingSubtract(1, ordering: .relaxed)
        // A clean session forgets what was in flight: those messages count as failed, so that a
        // -L run with a lost client still ends.
        if pendingCount > 0 {
            stats.inflight.wrappingSubtract(pendingCount, ordering: .relaxed)
            stats.publishFailed.wrappingAdd(pendingCount, ordering: .relaxed)
            pendingCount = 0
        }
        if !run.stopping.load(ordering: .relaxed) {
            stats.lost.wrappingAdd(1, ordering: .relaxed)
            run.note("connection lost")
        }
    }

    // MARK: Publisher

    /// -I > 0: one message per tick, unless the window is full.
    private func tick() {
        guard isOnline else { return }
        if qos != .atMostOnce && pendingCount >= pending.count { return }
        guard run.reserveMessage() else {
            timer?.cancel()
            timer = nil
            return
        }
        publishOne()
    }

    private func schedulePump() {
        pumpScheduled = true
        stats.loop.execute { [self] in pump() }
    }

    /// -I 0: as fast as the window (QoS 1/2) or the socket (QoS 0) allows. Runs in a loop turn of
    /// its own, and yields to the other clients of the loop after a batch.
    private func pump() {
        pumpScheduled = false
        guard isOnline else { return }
        if qos == .atMostOnce {
            // Follow the broker's pace: the next batch once the kernel took the last one.
            if client.unsentByteCount > 0 {
                pumpScheduled = true
                stats.loop.scheduleTimer(after: .milliseconds(1)) { [self] in pump() }
                return
            }
            for _ in 0..<64 {
                guard run.reserveMessage() else { return }
                if !publishOne() { return }
            }
            schedulePump()
        } else {
            var batch = 0
            while pendingCount < pending.count && batch < 64 {
                guard run.reserveMessage() else { return }
                if !publishOne() { return }
                batch += 1
            }
            // Window full: the next PUBACK refills it. Batch limit: a turn of its own.
            if pendingCount < pending.count { schedulePump() }
        }
    }

    @discardableResult
    private func publishOne() -> Bool {
        let now = clockNanos(run.args.clock)
        if run.args.latency {
            sequence &+= 1
            let seq = sequence
            let publisher = UInt32(truncatingIfNeeded: index)
            payload.withUnsafeMutableBytes { raw in
                raw.storeBytes(of: stampMagic.littleEndian, toByteOffset: 0, as: UInt32.self)
                raw.storeBytes(of: publisher.littleEndian, toByteOffset: 4, as: UInt32.self)
                raw.storeBytes(of: now.littleEndian, toByteOffset: 8, as: UInt64.self)
                raw.storeBytes(of: seq.littleEndian, toByteOffset: 16, as: UInt64.self)
            }
        }
        do {
            try client.publish(topic, payload, qos: qos, retain: run.args.retain)
        } catch {
            stats.publishFailed.wrappingAdd(1, ordering: .relaxed)
            run.note("publish failed: \(error)")
            return false
        }
        stats.sent.wrappingAdd(1, ordering: .relaxed)
        if qos != .atMostOnce {
            pending[(pendingHead + pendingCount) % pending.count] = monotonicNanos()
            pendingCount += 1
            stats.inflight.wrappingAdd(1, ordering: .relaxed)
        }
        return true
    }

    /// A PUBACK (QoS 1) or PUBCOMP (QoS 2) of the oldest message in flight.
    private func acknowledged() {
        guard pendingCount > 0 else { return }
        let sentAt = pending[pendingHead]
        pendingHead = (pendingHead + 1) % pending.count
        pendingCount -= 1
        stats.inflight.wrappingSubtract(1, ordering: .relaxed)
        stats.acked.wrappingAdd(1, ordering: .relaxed)
        if run.args.latency {
            let now = monotonicNanos()
            if now > sentAt {
                stats.ackLatency.record(now - sentAt)
                stats.interval.record(now - sentAt)
            }
        }
        if run.args.messageInterval == 0 && !pumpScheduled && pendingCount <= pending.count / 2 { schedulePump() }
    }

    // MARK: Subscriber

    private func received(_ message: MQTTMessageView) {
        stats.received.wrappingAdd(1, ordering: .relaxed)
        guard run.args.latency else { return }
        let payload = message.payload
        guard payload.count >= LoadBenchArguments.stampSize,
              UInt32(littleEndian: payload.loadUnaligned(fromByteOffset: 0, as: UInt32.self)) == stampMagic else {
            stats.unstamped.wrappingAdd(1, ordering: .relaxed)
            return
        }
        let now = clockNanos(run.args.clock)
        let publisher = UInt32(littleEndian: payload.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        let stamp = UInt64(littleEndian: payload.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        let seq = UInt64(littleEndian: payload.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
        let latency = now > stamp ? now - stamp : 0
        stats.latency.record(latency)
        stats.interval.record(latency)
        // Sequences: the first message of a publisher sets the baseline (a subscriber may
        // start in the middle of its stream).
        if var tally = publishers[publisher] {
            tally.received += 1
            if seq == tally.next {
                tally.next = seq + 1
            } else if seq > tally.next {
                tally.missing += Int(seq - tally.next)
                stats.missing.wrappingAdd(Int(seq - tally.next), ordering: .relaxed)
                tally.next = seq + 1
            } else {
                tally.late += 1
                stats.late.wrappingAdd(1, ordering: .relaxed)
            }
            publishers[publisher] = tally
        } else {
            publishers[publisher] = PublisherTally(next: seq + 1, received: 1)
        }
    }

    /// Adds this subscriber's per-publisher tallies to `into` (loop thread).
    func addTallies(into totals: inout [UInt32: PublisherTally]) {
        for (publisher, tally) in publishers {
            totals[publisher, default: PublisherTally(next: 0, received: 0)].merge(tally)
        }
    }
}

/// What the subscribers saw of one publisher's sequence numbers (--latency).
struct PublisherTally: Sendable {
    /// The next sequence number expected (per subscriber; meaningless once merged).
    var next: UInt64
    var received: Int
    /// Numbers skipped, and numbers below one already seen (duplicates or reordering).
    var missing = 0
    var late = 0

    mutating func merge(_ other: PublisherTally) {
        received += other.received
        missing += other.missing
        late += other.late
    }
}

/// An atomic counter that escaping closures can share.
final class SharedCounter: Sendable {
    let value: Atomic<Int>
    init(_ initial: Int = 0) { value = Atomic(initial) }
}

/// A locked value that escaping closures can share.
final class SharedValue<Value: Sendable>: Sendable {
    let value: Mutex<Value>
    init(_ initial: Value) { value = Mutex(initial) }
}

/// "mqtb" in little-endian byte order: marks a stamped payload.
let stampMagic: UInt32 = 0x6274_716D

/// Nanoseconds on the monotonic clock (shared by the host's processes).
func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Nanoseconds on the latency clock.
func clockNanos(_ clock: LoadBenchArguments.Clock) -> UInt64 {
    guard clock == .realtime else { return monotonicNanos() }
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func sleepNanos(_ ns: UInt64) {
    var request = timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))
    var left = timespec()
    while nanosleep(&request, &left) != 0 && errno == EINTR { request = left }
}

/// Writes a whole file; false on failure (errno set).
func writeFile(_ path: String, _ text: String) -> Bool {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { return false }
    var text = text
    text.withUTF8 { writeAll(fd, UnsafeRawBufferPointer($0)) }
    return close(fd) == 0
}
