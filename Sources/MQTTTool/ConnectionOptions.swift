import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import Logging
import MQTTProtocol
import UVMQTT
import UVReactor

/// The flags `pub` and `sub` share (mosquitto_pub / mosquitto_sub names and meanings).
struct ConnectionOptions: ParsableArguments {
    @Option(name: .customShort("h"), help: ArgumentHelp("Broker host (default localhost); repeat for a server list (all with -p's port), tried in order with failover.", valueName: "host"))
    var host: [String] = []

    @Option(name: .customShort("p"), help: ArgumentHelp("Broker port (default 1883, 8883 with TLS).", valueName: "port"))
    var port: Int?

    @Option(name: .customShort("L"), help: ArgumentHelp("mqtt(s)://[user[:password]@]host[:port]/topic or ws(s)://... (sets host, port, credentials, TLS, WebSocket and topic); repeat for a server list, tried in order with failover.", valueName: "url"))
    var url: [String] = []

    @Flag(name: .customLong("ws"), help: "MQTT over WebSocket (wss with any TLS flag; default port 80, 443 with TLS).")
    var webSocket = false

    @Option(name: .customLong("ws-path"), help: ArgumentHelp("WebSocket request path (default /mqtt).", valueName: "path"))
    var webSocketPath: String?

    @Option(name: .customShort("i"), help: ArgumentHelp("Client id (default mqtt-<command>-<pid>).", valueName: "id"))
    var id: String?

    @Option(name: .customShort("k"), help: ArgumentHelp("Keepalive in seconds (0 = off).", valueName: "seconds"))
    var keepalive: Int = 60

    @Option(name: .customShort("u"), help: ArgumentHelp("User name.", valueName: "user"))
    var username: String?

    @Option(name: .customShort("P"), help: ArgumentHelp("Password.", valueName: "password"))
    var password: String?

    @Option(name: .customShort("V"), help: ArgumentHelp("Protocol version: mqttv31 or mqttv311.", valueName: "version"))
    var protocolVersion: String = "mqttv311"

    @Option(name: .customShort("q"), help: ArgumentHelp("QoS 0, 1 or 2 (publish QoS for pub, subscription QoS for sub).", valueName: "qos"))
    var qos: Int = 0

    @Option(name: .customLong("will-topic"), help: ArgumentHelp("Topic of the last will.", valueName: "topic"))
    var willTopic: String?

    @Option(name: .customLong("will-payload"), help: ArgumentHelp("Payload of the last will.", valueName: "payload"))
    var willPayload: String?

    @Option(name: .customLong("will-qos"), help: ArgumentHelp("QoS of the last will.", valueName: "qos"))
    var willQoS: Int = 0

    @Flag(name: .customLong("will-retain"), help: "Ask the broker to retain the last will.")
    var willRetain = false





    @OptionGroup var tls: TLSFlags

    @Flag(name: .customShort("d"), help: "Debug: packet trace on stderr.")
    var debug = false
}

/// Everything needed to connect, checked before any connection is made.
struct ConnectionPlan {
    /// The servers, tried in order (one, unless -L or -h was repeated).
    var servers: [MQTTServer]
    var server: MQTTServer { servers[0] }
    var options: MQTTClientOptions
    var qos: QoS
    /// The topic of an `-L` URL path, if any.
    var urlTopic: String?
    var logger: Logger?
}

extension ConnectionOptions {
    /// Checks every flag and builds the connection plan.
    ///
    /// - Parameters:
    ///   - command: `pub` or `sub` (for the default client id).
    ///   - cleanSession: Whether to ask for a clean session.
    /// - Throws: ``ToolFailure`` with a one-line reason for any bad input.
    func plan(command: String, cleanSession: Bool = true) throws(ToolFailure) -> ConnectionPlan {
        let qos = try Self.qos(qos, flag: "-q")
        let version: ProtocolVersion
        switch protocolVersion.lowercased() {
        case "mqttv311", "311", "v311", "3.1.1": version = .v3_1_1
        case "mqttv31", "31", "v31", "3.1": version = .v3_1
        default: throw ToolFailure("unknown protocol version '\(protocolVersion)' for -V (use mqttv31 or mqttv311)")
        }
        guard (0...65535).contains(keepalive) else {
            throw ToolFailure("keepalive \(keepalive) out of range for -k (0...65535)")
        }
        if let port, !(1...65535).contains(port) {
            throw ToolFailure("port \(port) out of range for -p (1...65535)")
        }

        var port = port
        var user = username
        var pass = password
        var urlTopic: String?
        var parsedURLs: [ParsedURL] = []
        for url in url {
            let parsed = try Self.parseURL(url)
            if parsedURLs.isEmpty {
                // Credentials and the topic come from the first URL.
                if port == nil && self.url.count == 1 { port = parsed.port }
                if user == nil { user = parsed.user }
                if pass == nil { pass = parsed.password }
                urlTopic = parsed.topic
            }
            parsedURLs.append(parsed)
        }
        if webSocketPath != nil && !webSocket && !parsedURLs.contains(where: \.webSocket) {
            throw ToolFailure("--ws-path needs --ws or a ws:// / wss:// URL")
        }
        if pass != nil && user == nil {
            throw ToolFailure("a password (-P) needs a user name (-u)")
        }

        var will: Will?
        if let willTopic {
            try Self.checkTopicName(willTopic, flag: "--will-topic")
            will = Will(topic: willTopic, payload: Array((willPayload ?? "").utf8), qos: try Self.qos(willQoS, flag: "--will-qos"),
                        retain: willRetain)
        } else if willPayload != nil || willRetain || willQoS != 0 {
            throw ToolFailure("--will-payload, --will-qos and --will-retain need --will-topic")
        }

        // TLS: any TLS flag, or an mqtts:// URL.
        let tlsConfiguration = try tls.configuration(required: parsedURLs.contains(where: \.tls))
        let flagTLS = tls.isSet
        // The URL path of -L is the topic (as with mosquitto_sub), so the WebSocket path is its own flag.
        func webSocketSettings(_ on: Bool) -> WebSocketConfiguration? {
            on ? WebSocketConfiguration(path: webSocketPath ?? WebSocketConfiguration.defaultPath) : nil
        }
        var servers: [MQTTServer] = []
        if !parsedURLs.isEmpty {
            for parsed in parsedURLs {
                let security: MQTTSecurity = (parsed.tls || flagTLS) ? tlsConfiguration.map { .tls($0) } ?? .on : .off
                // One URL: -p wins over its port (as before); several: each URL's port, else -p.
                servers.append(MQTTServer(host: parsed.host, port: self.url.count == 1 ? port : (parsed.port ?? port),
                                          security: security, webSocket: webSocketSettings(webSocket || parsed.webSocket)))
            }
        } else {
            let security: MQTTSecurity = tlsConfiguration.map { .tls($0) } ?? .off
            for host in host.isEmpty ? ["localhost"] : host {
                servers.append(MQTTServer(host: host, port: port, security: security, webSocket: webSocketSettings(webSocket)))
            }
        }

        let clientID = id ?? "mqtt-\(command)-\(getpid())"
        if !cleanSession && id == nil {
            throw ToolFailure("-c (no clean session) needs a client id (-i)")
        }
        let options = MQTTClientOptions(
            clientID: clientID, protocolVersion: version, keepAlive: UInt16(keepalive), cleanSession: cleanSession,
            username: user, password: pass.map { Array($0.utf8) }, will: will, inflightWindow: 100,
            maxQueuedMessages: 10_000, maximumIncomingPacketSize: Self.largestPacket)
        return ConnectionPlan(servers: servers, options: options, qos: qos, urlTopic: urlTopic,
                              logger: debug ? Logger(label: "mqtt", factory: { _ in TraceLogHandler() }) : nil)
    }

    /// The largest packet MQTT allows: a 268,435,455-byte remaining length plus at most 5 header
    /// bytes. The library's default incoming limit is 1 MiB, and a PUBLISH over it fires the
    /// `overflow` event (payload prefix only) instead of `message`; a command-line tool must take
    /// whatever the broker forwards, as mosquitto_sub does. The receive buffer grows to the size
    /// of a large message only when one arrives.
    static let largestPacket = 268_435_455 + 5

    static func qos(_ value: Int, flag: String) throws(ToolFailure) -> QoS {
        guard let qos = QoS(rawValue: UInt8(clamping: max(0, value))), (0...2).contains(value) else {
            throw ToolFailure("QoS \(value) out of range for \(flag) (0, 1 or 2)")
        }
        return qos
    }

    static func checkTopicName(_ topic: String, flag: String) throws(ToolFailure) {
        do {
            try MQTTValidation.validateTopicName(topic)
        } catch {
            throw ToolFailure("invalid topic '\(topic)' for \(flag): \(error)")
        }
    }

    static func checkTopicFilter(_ filter: String, flag: String) throws(ToolFailure) {
        do {
            try MQTTValidation.validateTopicFilter(filter)
        } catch {
            throw ToolFailure("invalid topic filter '\(filter)' for \(flag): \(error)")
        }
    }

    struct ParsedURL {
        var tls: Bool
        var webSocket = false
        var host: String
        var port: Int?
        var user: String?
        var password: String?
        var topic: String?
    }

    /// Parses `mqtt(s)://[user[:password]@]host[:port][/topic]` (or `ws(s)://`, the same with
    /// WebSocket).
    static func parseURL(_ url: String) throws(ToolFailure) -> ParsedURL {
        let tls: Bool
        var webSocket = false
        var rest: Substring
        let lowered = url.lowercased()
        if lowered.hasPrefix("mqtt://") {
            tls = false
            rest = url.dropFirst(7)
        } else if lowered.hasPrefix("mqtts://") {
            tls = true
            rest = url.dropFirst(8)
        } else if lowered.hasPrefix("ws://") {
            tls = false
            webSocket = true
            rest = url.dropFirst(5)
        } else if lowered.hasPrefix("wss://") {
            tls = true
            webSocket = true
            rest = url.dropFirst(6)
        } else {
            throw ToolFailure("unsupported URL '\(url)' for -L (use mqtt://, mqtts://, ws:// or wss://)")
        }
        var topic: String?
        if let slash = rest.firstIndex(of: "/") {
            let path = rest[rest.index(after: slash)...]
            if !path.isEmpty { topic = String(path) }
            rest = rest[..<slash]
        }
        var user: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let info = rest[..<at]
            if let colon = info.firstIndex(of: ":") {
                user = String(info[..<colon])
                password = String(info[info.index(after: colon)...])
            } else {
                user = String(info)
            }
            rest = rest[rest.index(after: at)...]
        }
        do {
            let server = try MQTTServer(parsing: "\(tls ? "mqtts" : "mqtt")://\(rest)")
            let explicitPort = rest.contains("]:") || (!rest.hasPrefix("[") && rest.contains(":"))
            return ParsedURL(tls: tls, webSocket: webSocket, host: server.host, port: explicitPort ? server.port : nil,
                             user: user, password: password, topic: topic)
        } catch {
            throw ToolFailure("invalid URL '\(url)' for -L: \(error)")
        }
    }
}

/// Maps a connection failure to mosquitto's exit statuses: the CONNACK code when the broker
/// refused, 1 otherwise.
func exitStatus(for failure: MQTTConnectionFailure) -> Int32 {
    if case .refused(let code) = failure { return Int32(code.rawValue) }
    return 1
}

/// Prints every log line at trace level and above to stderr: the `-d` packet trace.
struct TraceLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var line = "\(event.level): \(event.message)"
        if let extra = event.metadata, !extra.isEmpty {
            line += " " + extra.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        }
        writeStderr(line)
    }
}
