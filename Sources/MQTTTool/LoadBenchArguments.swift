#if canImport(Glibc)
import Glibc
#endif
import MQTTProtocol
import UVMQTT
import UVReactor

/// The checked settings of a many-client run (`mqtt bench conn|pub|sub -c ...`), emqtt-bench's
/// flags and meanings. Everything is checked before any connection is made.
struct LoadBenchArguments: Sendable {
    enum Clock: String, Sendable {
        case monotonic, realtime
    }

    var mode: BenchCommand.Mode
    var hosts: [String]
    var port: Int
    var clients: Int
    var firstIndex: Int
    /// Nanoseconds between two connection starts (-i in ms, or -R per second).
    var connectSpacing: UInt64
    var security: MQTTSecurity
    /// Most connections in progress at once (0 = no limit).
    var connectWindow: Int
    /// Milliseconds between two messages of one publisher; 0 = as fast as the window allows.
    var messageInterval: Int
    /// Total messages (published for pub, received for sub); 0 = no limit.
    var limit: Int
    var topic: String
    var payloadSize: Int
    var qos: QoS
    var retain: Bool
    var keepalive: Int
    var cleanSession: Bool
    var username: String?
    var password: String?
    var prefix: String
    var version: ProtocolVersion
    var threads: Int
    /// Per publisher: QoS 1 / 2 messages awaiting their acknowledgement.
    var inflight: Int
    var latency: Bool
    var clock: Clock
    var jsonPath: String?
    var csvPath: String?
    var plotPath: String?
    /// Seconds; 0 = no limit.
    var duration: Double
    /// conn: seconds to keep the connections open after the last one came up.
    var hold: Double

    /// Bytes of the latency stamp at the start of a payload: magic, clock ns, sequence, publisher.
    static let stampSize = 24

    /// The client id of client `index` (emqtt-bench: `<prefix>_<mode>_<n>`).
    func clientID(_ index: Int) -> String { "\(prefix)_\(mode.rawValue)_\(index)" }

    /// The topic of client `index`: `%i` the index, `%c` the client id, `%u` the user name.
    func topic(for index: Int) -> String {
        Self.expand(topic, index: index, clientID: clientID(index), user: username ?? "")
    }

    static func expand(_ template: String, index: Int, clientID: String, user: String) -> String {
        var out = ""
        var iterator = template.makeIterator()
        while let c = iterator.next() {
            guard c == "%" else { out.append(c); continue }
            switch iterator.next() {
            case "i": out += String(index)
            case "c": out += clientID
            case "u": out += user
            case "%": out.append("%")
            case let other?: out.append("%"); out.append(other)
            case nil: out.append("%")
            }
        }
        return out
    }

    /// The placeholders a topic may hold; anything else after `%` is refused.
    static func checkPlaceholders(_ template: String) throws(ToolFailure) {
        var iterator = template.makeIterator()
        while let c = iterator.next() {
            guard c == "%" else { continue }
            switch iterator.next() {
            case "i", "c", "u", "%": continue
            case let other?: throw ToolFailure("unknown placeholder '%\(other)' in -t '\(template)' (use %i, %c, %u or %%)")
            case nil: throw ToolFailure("a lone '%' ends -t '\(template)' (use %% for a percent sign)")
            }
        }
    }
}

extension BenchCommand {
    /// Checks the flags of the many-client form and builds its settings.
    ///
    /// - Throws: ``ToolFailure`` (one line, exit 1) for any bad input, before connecting.
    func loadArguments() throws(ToolFailure) -> LoadBenchArguments {
        let clients = self.clients ?? 200
        guard clients >= 1 else { throw ToolFailure("-c must be at least 1 client") }
        let firstIndex = number ?? 0
        guard firstIndex >= 0 else { throw ToolFailure("-n (first client index) must not be negative") }
        let hosts = (host ?? "localhost").split(separator: ",").map { String($0) }
        guard !hosts.isEmpty, hosts.allSatisfy({ !$0.isEmpty }) else {
            throw ToolFailure("-h needs host names, separated by commas")
        }
        let port = self.port ?? 1883
        guard (1...65535).contains(port) else { throw ToolFailure("port \(port) out of range for -p (1...65535)") }
        var spacing = UInt64(10_000_000)
        if let connectRate {
            guard connectRate > 0, connectRate <= 1e9, connectInterval == nil else {
                throw ToolFailure(connectInterval != nil ? "give -i or -R, not both" : "-R must be a positive rate (connections per second)")
            }
            spacing = UInt64(1e9 / connectRate)
        } else if let connectInterval {
            guard connectInterval >= 0 else { throw ToolFailure("-i must not be negative") }
            spacing = UInt64(connectInterval) * 1_000_000
        }
        guard connectWindow >= 0 else { throw ToolFailure("--connect-window must not be negative") }
        guard messageInterval >= 0 else { throw ToolFailure("-I must not be negative") }
        guard limit >= 0 else { throw ToolFailure("-L must not be negative") }
        let qos = try ConnectionOptions.qos(self.qos, flag: "-q")
        guard (0...65535).contains(keepalive) else { throw ToolFailure("keepalive \(keepalive) out of range for -k (0...65535)") }
        let version: ProtocolVersion
        switch protocolVersion {
        case 3: version = .v3_1
        case 4: version = .v3_1_1
        default: throw ToolFailure("-V \(protocolVersion): use 3 (MQTT 3.1) or 4 (MQTT 3.1.1)")
        }
        if password != nil && username == nil { throw ToolFailure("a password (-P) needs a user name (-u)") }
        let threads = self.threads ?? Int(max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        guard threads >= 1 else { throw ToolFailure("--threads must be at least 1") }
        guard (1...65535).contains(inflight) else { throw ToolFailure("--inflight must be 1...65535") }
        guard duration >= 0, hold >= 0 else { throw ToolFailure("--duration and --hold must not be negative") }
        guard let clock = LoadBenchArguments.Clock(rawValue: clockName) else {
            throw ToolFailure("--clock \(clockName): use monotonic (one host) or realtime (synchronized hosts)")
        }
        // TLS: any TLS flag (as mqtt pub / sub).
        let security = try tls.configuration().map { MQTTSecurity.tls($0) } ?? .off
        let payloadSize = self.payloadSize ?? 256
        guard (0...(256 << 20)).contains(payloadSize) else { throw ToolFailure("-s must be 0...268435456 bytes") }
        if latency && mode != .conn && payloadSize < LoadBenchArguments.stampSize {
            throw ToolFailure("-s \(payloadSize) is too small for the --latency stamp: use -s \(LoadBenchArguments.stampSize) or more")
        }

        var arguments = LoadBenchArguments(
            mode: mode, hosts: hosts, port: port, clients: clients, firstIndex: firstIndex,
            connectSpacing: spacing, security: security, connectWindow: connectWindow, messageInterval: messageInterval, limit: limit, topic: topic ?? "",
            payloadSize: payloadSize, qos: qos, retain: retain, keepalive: keepalive, cleanSession: clean,
            username: username, password: password, prefix: prefix ?? "mqtt-bench-\(getpid())", version: version,
            threads: min(threads, clients), inflight: inflight, latency: latency, clock: clock, jsonPath: json, csvPath: csv, plotPath: plot,
            duration: duration, hold: hold)

        if mode != .conn {
            guard let topic, !topic.isEmpty else { throw ToolFailure("bench \(mode.rawValue) needs a topic: -t TOPIC (%i = client index)") }
            try LoadBenchArguments.checkPlaceholders(topic)
            // The first and the last client's topic (the placeholders make them differ).
            for index in [firstIndex, firstIndex + clients - 1] {
                let expanded = arguments.topic(for: index)
                if mode == .pub {
                    try ConnectionOptions.checkTopicName(expanded, flag: "-t")
                } else {
                    try ConnectionOptions.checkTopicFilter(expanded, flag: "-t")
                }
            }
        }
        try Self.ensureDescriptors(clients: clients)
        arguments.topic = topic ?? ""
        return arguments
    }

    /// Each client holds a socket: raise the soft descriptor limit to the hard one if needed, and
    /// refuse a run that cannot have its sockets.
    static func ensureDescriptors(clients: Int) throws(ToolFailure) {
        // Sockets, plus the loops' own descriptors, stdio and the --json file.
        let needed = rlim_t(clients + 64)
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        if limit.rlim_cur >= needed { return }
        if limit.rlim_max >= needed {
            var raised = limit
            raised.rlim_cur = needed
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { return }
        }
        throw ToolFailure("\(clients) clients need about \(needed) file descriptors, the limit is \(limit.rlim_cur) (hard \(limit.rlim_max)): raise it (ulimit -n) or use fewer clients")
    }
}
