import ArgumentParser
import Synchronization
import MQTTProtocol
import UVMQTT
import UVReactor
#if canImport(Glibc)
import Glibc
#endif

/// `mqtt scale`: many idle connections from one process, the fields of the libmosquitto
/// program in `../shared/scale/mosq_scale.c` (issue 9), so that the two compare line by line.
///
/// C ``NodeMCUClient``s on one event loop (or on an ``EventLoopGroup`` with `--loops K`) all
/// call `connect` at once (the library paces them: at most `--window` attempts in flight per
/// loop); each subscribes to `scale/<i>` at QoS 0. Then one more client publishes one QoS 0
/// message to every `scale/<i>`. Prints `RESULT` lines: connect-all seconds, RSS and virtual
/// memory per connection, fds and threads per connection, fan-out seconds, the broker's RSS.
struct ScaleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale",
        abstract: "Open C idle subscribed connections from one process and report memory, fds, connect-all and fan-out time.",
        discussion: """
            Loopback only (127.0.0.1). Raises the fd limit to the hard limit. Clients call connect \
            all at once; the event loop admits at most --window attempts at a time. Output: RESULT \
            lines with the fields of ../shared/scale/mosq_scale.c, plus virtual memory and threads. \
            Exit 0 when every client subscribed and received its message.
            """,
        helpNames: [.long]
    )

    @Option(name: .customShort("p"), help: "Broker port on 127.0.0.1.")
    var port: Int

    @Option(name: .customShort("c"), help: "Number of subscribed clients.")
    var clients: Int

    @Option(name: .customLong("loops"), help: "Event loops: 1 = one shared EventLoop, more = an EventLoopGroup of that size.")
    var loops: Int = 1

    @Option(name: .customLong("window"), help: "Connection attempts each loop admits at once.")
    var window: Int = 64

    @Option(name: .customLong("broker-pid"), help: "The broker's pid, for its RSS.")
    var brokerPID: Int32 = 0

    @Option(name: .customLong("deadline"), help: "Seconds for the connect phase (the fan-out gets 60).")
    var deadline: Double = 120

    func run() throws {
        ScaleProcess.raiseFileLimit()
        let group = EventLoopGroup(threads: max(1, loops), maximumConcurrentConnectionAttempts: window)
        // Let the loop threads start before the baseline.
        usleep(50_000)
        let counters = ScaleCounters()
        let rss0 = ScaleProcess.statusKiB("VmRSS"), vm0 = ScaleProcess.statusKiB("VmSize")
        let brss0 = ScaleProcess.statusKiB("VmRSS", pid: brokerPID)
        let fd0 = ScaleProcess.openFileCount(), threads0 = ScaleProcess.threadCount()
        let pid = getpid()

        let t0 = monotonicNanos()
        var subscribers: [NodeMCUClient] = []
        subscribers.reserveCapacity(clients)
        for i in 0..<clients {
            let client = NodeMCUClient(clientID: "scale-\(pid)-\(i)", keepAlive: 60, eventLoop: group.next())
            let topic = "scale/\(i)"
            client.on(.message) { _, _ in counters.received() }
            do {
                try client.connect("127.0.0.1", port: port, connected: { c in
                    counters.connacks.add(1, ordering: .relaxed)
                    try? c.subscribe(topic) { _, result in
                        if case .success = result { counters.subacks.add(1, ordering: .relaxed) }
                    }
                }, failed: { _, _ in counters.failed.add(1, ordering: .relaxed) })
            } catch {
                counters.failed.add(1, ordering: .relaxed)
            }
            subscribers.append(client)
        }
        let connectDeadline = t0 + UInt64(deadline * 1e9)
        while counters.subacks.load(ordering: .relaxed) < clients && monotonicNanos() < connectDeadline {
            usleep(5_000)
        }
        let connectAll = Double(monotonicNanos() - t0) / 1e9
        let fd1 = ScaleProcess.openFileCount(), threads1 = ScaleProcess.threadCount()
        let rss1 = ScaleProcess.statusKiB("VmRSS"), vm1 = ScaleProcess.statusKiB("VmSize")
        let brss1 = ScaleProcess.statusKiB("VmRSS", pid: brokerPID)
        let c = Double(max(1, clients))
        let subacks = counters.subacks.load(ordering: .relaxed)
        print("RESULT lib=swift-uv-mqtt loops=\(loops) window=\(window) C=\(clients) created=\(clients) connacks=\(counters.connacks.load(ordering: .relaxed)) subacks=\(subacks) conn_fail=\(counters.failed.load(ordering: .relaxed)) connect_all_s=\(format(connectAll))")
        print("RESULT rss_before_kib=\(rss0) rss_after_kib=\(rss1) kib_per_conn=\(format(Double(rss1 - rss0) / c, 2)) vm_before_kib=\(vm0) vm_after_kib=\(vm1) vm_kib_per_conn=\(format(Double(vm1 - vm0) / c, 2)) fds_before=\(fd0) fds_after=\(fd1) fds_per_conn=\(format(Double(fd1 - fd0) / c, 2)) threads_before=\(threads0) threads_after=\(threads1) threads_per_conn=\(format(Double(threads1 - threads0) / c, 4)) broker_rss_before_kib=\(brss0) broker_rss_after_kib=\(brss1)")
        fflush(nil)
        guard subacks >= clients else {
            print("RESULT fanout=skipped (not all subscribed)")
            throw ExitCode(1)
        }

        // Fan-out: one more client publishes one message to every scale/<i>.
        let publisherLoop = group.next()
        let publisher = NodeMCUClient(clientID: "scale-\(pid)-pub", keepAlive: 60, eventLoop: publisherLoop)
        let publisherUp = Atomic<Bool>(false)
        try publisher.connect("127.0.0.1", port: port, connected: { _ in publisherUp.store(true, ordering: .releasing) })
        let upDeadline = monotonicNanos() + 10_000_000_000
        while !publisherUp.load(ordering: .acquiring) && monotonicNanos() < upDeadline { usleep(1_000) }
        let tp0 = monotonicNanos()
        counters.fanOutStart.store(tp0, ordering: .relaxed)
        let queued = Atomic<UInt64>(0)
        let count = clients
        publisherLoop.execute {
            for i in 0..<count {
                try? publisher.publish("scale/\(i)", Array("\(i)".utf8))
            }
            queued.store(monotonicNanos(), ordering: .relaxed)
        }
        let fanOutDeadline = tp0 + 60_000_000_000
        while counters.receivedCount.load(ordering: .relaxed) < clients && monotonicNanos() < fanOutDeadline {
            usleep(1_000)
        }
        let received = counters.receivedCount.load(ordering: .relaxed)
        let last = counters.lastReceived.load(ordering: .relaxed)
        let fanOut = Double((received > 0 ? last : monotonicNanos()) - tp0) / 1e9
        let queuedAt = queued.load(ordering: .relaxed)
        let publishLoop = queuedAt > tp0 ? Double(queuedAt - tp0) / 1e9 : 0
        print("RESULT fanout_received=\(received)/\(clients) fanout_s=\(format(fanOut)) publish_loop_s=\(format(publishLoop)) rss_after_fanout_kib=\(ScaleProcess.statusKiB("VmRSS")) broker_rss_after_fanout_kib=\(ScaleProcess.statusKiB("VmRSS", pid: brokerPID))")
        fflush(nil)

        for client in subscribers { client.close() }
        publisher.close()
        usleep(200_000)
        subscribers.removeAll()
        try? group.shutdown()
        if received < clients { throw ExitCode(1) }
    }

    private func format(_ value: Double, _ digits: Int = 3) -> String {
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = Int((abs(value) * scale).rounded())
        let whole = scaled / Int(scale), fraction = String(scaled % Int(scale))
        let padded = String(repeating: "0", count: max(0, digits - fraction.count)) + fraction
        return (value < 0 ? "-" : "") + "\(whole)" + (digits > 0 ? "." + padded : "")
    }
}

/// The counters of a scale run (any loop thread).
final class ScaleCounters: Sendable {
    let connacks = Atomic<Int>(0)
    let subacks = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    let receivedCount = Atomic<Int>(0)
    let lastReceived = Atomic<UInt64>(0)
    let fanOutStart = Atomic<UInt64>(0)

    func received() {
        receivedCount.add(1, ordering: .relaxed)
        let now = monotonicNanos()
        var seen = lastReceived.load(ordering: .relaxed)
        while now > seen {
            let (exchanged, original) = lastReceived.compareExchange(expected: seen, desired: now, ordering: .relaxed)
            if exchanged { break }
            seen = original
        }
    }
}

/// What `/proc` says about a process.
enum ScaleProcess {
    /// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmSize`); pid 0 = this process. 0 when
    /// unreadable.
    static func statusKiB(_ field: String, pid: Int32 = 0) -> Int {
        let path = pid == 0 ? "/proc/self/status" : "/proc/\(pid)/status"
        guard let file = fopen(path, "r") else { return 0 }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if text.hasPrefix(field + ":") {
                return Int(text.dropFirst(field.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "") ?? 0
            }
        }
        return 0
    }

    /// Entries of a `/proc/self/...` directory.
    private static func entries(_ path: String) -> Int {
        guard let dir = opendir(path) else { return 0 }
        defer { closedir(dir) }
        var n = 0
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { n += 1 }
        }
        return n
    }

    /// Open fds, minus the directory stream used to count them.
    static func openFileCount() -> Int { entries("/proc/self/fd") - 1 }

    static func threadCount() -> Int { entries("/proc/self/task") }

    /// Raises the soft fd limit to the hard limit.
    static func raiseFileLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
}
