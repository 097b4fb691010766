public import Configuration
public import UVMQTT

/// Typed reads with errors that name the key: a value of the wrong type is an error, not nil.
struct KeyedReader {
    let config: ConfigReader
    let prefix: String

    func full(_ key: String) -> String { prefix.isEmpty ? key : "\(prefix).\(key)" }

    private func secret(_ key: String) -> Bool { MQTTConfigurationError.isSecretKey(key) }

    /// What is stored under `key`, as text, whatever its type (for the error message); nil
    /// when nothing is.
    private func raw(_ key: String) -> String? {
        let k = ConfigKey(full(key))
        if let s = config.string(forKey: k, isSecret: secret(key)) { return s }
        if let i = config.int(forKey: k) { return "\(i)" }
        if let d = config.double(forKey: k) { return "\(d)" }
        if let b = config.bool(forKey: k) { return "\(b)" }
        if let a = config.stringArray(forKey: k) { return a.joined(separator: ",") }
        return nil
    }

    private func invalid(_ key: String, _ expected: String, _ value: String? = nil) -> MQTTConfigurationError {
        .invalid(key: full(key), value: secret(key) ? nil : (value ?? raw(key) ?? ""), expected: expected)
    }

    func string(_ key: String) throws(MQTTConfigurationError) -> String? {
        let k = ConfigKey(full(key))
        if let s = config.string(forKey: k, isSecret: secret(key)) { return s }
        if raw(key) != nil { throw invalid(key, "a string") }
        return nil
    }

    func requiredString(_ key: String) throws(MQTTConfigurationError) -> String {
        guard let s = try string(key) else { throw .missing(key: full(key)) }
        return s
    }

    func int(_ key: String, in range: ClosedRange<Int>) throws(MQTTConfigurationError) -> Int? {
        let k = ConfigKey(full(key))
        guard let value = config.int(forKey: k) else {
            if raw(key) != nil { throw invalid(key, "an integer in \(range.lowerBound)...\(range.upperBound)") }
            return nil
        }
        guard range.contains(value) else { throw invalid(key, "an integer in \(range.lowerBound)...\(range.upperBound)", "\(value)") }
        return value
    }

    func double(_ key: String, in range: ClosedRange<Double>) throws(MQTTConfigurationError) -> Double? {
        let k = ConfigKey(full(key))
        // An integer is a number too (`10` in JSON or an environment variable).
        guard let value = config.double(forKey: k) ?? config.int(forKey: k).map(Double.init) else {
            if raw(key) != nil { throw invalid(key, "a number in \(range.lowerBound)...\(range.upperBound)") }
            return nil
        }
        guard value.isFinite, range.contains(value) else {
            throw invalid(key, "a number in \(range.lowerBound)...\(range.upperBound)", "\(value)")
        }
        return value
    }

    /// Seconds (a number, fractions allowed) as a `Duration`.
    func seconds(_ key: String, in range: ClosedRange<Double> = 0...86_400) throws(MQTTConfigurationError) -> Duration? {
        try double(key, in: range).map { Duration.nanoseconds(Int64(($0 * 1e9).rounded())) }
    }

    func bool(_ key: String) throws(MQTTConfigurationError) -> Bool? {
        let k = ConfigKey(full(key))
        if let b = config.bool(forKey: k) { return b }
        if raw(key) != nil { throw invalid(key, "true or false") }
        return nil
    }

    func qos(_ key: String) throws(MQTTConfigurationError) -> QoS? {
        try int(key, in: 0...2).map { QoS(rawValue: UInt8($0))! }
    }
}

extension MQTTClientOptions {
    /// Options read from configuration (swift-configuration): environment variables
    /// (`MQTT_CLIENT_ID`, ...), JSON or YAML files, or any other provider.
    ///
    /// Keys, under `prefix` (`mqtt` by default; the environment variable is the full key in
    /// upper snake case: `mqtt.keepAlive` is `MQTT_KEEP_ALIVE`). Every key but `clientID` is
    /// optional and defaults to ``MQTTClientOptions/init(clientID:protocolVersion:keepAlive:cleanSession:username:password:will:connectTimeout:inflightWindow:maxQueuedMessages:maxQueuedBytes:maxPendingRequests:reconnectBackoff:maximumIncomingPacketSize:messageBufferSize:maximumOutgoingPacketSize:disconnectTimeout:disconnectDrainTimeout:metrics:)``'s
    /// default. Durations are seconds (fractions allowed).
    ///
    /// | key | type | option |
    /// |---|---|---|
    /// | `clientID` | string, required | ``clientID`` |
    /// | `protocolVersion` | `3.1.1` or `3.1` | ``protocolVersion`` |
    /// | `keepAlive` | integer 0...65535 | ``keepAlive`` |
    /// | `cleanSession` | bool | ``cleanSession`` |
    /// | `username` | string | ``username`` |
    /// | `password` | string, **secret** | ``password`` (UTF-8) |
    /// | `will.topic`, `will.payload` (**secret**), `will.qos` (0...2), `will.retain` | | ``will`` (topic required when any is set) |
    /// | `connectTimeout`, `disconnectTimeout`, `disconnectDrainTimeout` | seconds | the same options |
    /// | `inflightWindow` (1...65535), `maxQueuedMessages`, `maxQueuedBytes`, `maxPendingRequests` | integer ≥ 0 | the limits |
    /// | `maximumIncomingPacketSize`, `maximumOutgoingPacketSize`, `messageBufferSize` | integer ≥ 1 | the sizes |
    /// | `reconnect.initialDelay`, `reconnect.maximumDelay` (seconds), `reconnect.multiplier` (≥ 1), `reconnect.jitter` (0...1) | | ``reconnectBackoff`` |
    ///
    /// Secrets are read with `isSecret: true`, so swift-configuration's access reporters redact
    /// them, and they never appear in a ``MQTTConfigurationError``. Metrics are not read from
    /// configuration: set ``metrics`` in code.
    ///
    /// ```swift
    /// let config = ConfigReader(providers: [
    ///     EnvironmentVariablesProvider(),
    ///     try await FileProvider<JSONSnapshot>(filePath: "/etc/gateway/config.json", allowMissing: true),
    /// ])
    /// let options = try MQTTClientOptions(config: config)
    /// ```
    ///
    /// - Parameters:
    ///   - config: The reader; its providers decide the precedence.
    ///   - prefix: The scope of the keys (`mqtt`); empty for none.
    /// - Throws: ``MQTTConfigurationError`` naming the key: `clientID` missing, a value of the
    ///   wrong type or out of range, an unknown protocol version.
    public init(config: ConfigReader, prefix: String = "mqtt") throws(MQTTConfigurationError) {
        let r = KeyedReader(config: config, prefix: prefix)
        self.init(clientID: try r.requiredString("clientID"))
        if let version = try r.string("protocolVersion") {
            switch version {
            case "3.1.1", "4": protocolVersion = .v3_1_1
            case "3.1", "3": protocolVersion = .v3_1
            default: throw .invalid(key: r.full("protocolVersion"), value: version, expected: "3.1.1 or 3.1")
            }
        }
        if let v = try r.int("keepAlive", in: 0...65535) { keepAlive = UInt16(v) }
        if let v = try r.bool("cleanSession") { cleanSession = v }
        username = try r.string("username")
        if let v = try r.string("password") {
            guard username != nil else { throw .missing(key: r.full("username")) }
            password = Array(v.utf8)
        }
        let willTopic = try r.string("will.topic")
        let willPayload = try r.string("will.payload")
        let willQoS = try r.qos("will.qos")
        let willRetain = try r.bool("will.retain")
        if let willTopic {
            will = Will(topic: willTopic, payload: Array((willPayload ?? "").utf8), qos: willQoS ?? .atMostOnce,
                        retain: willRetain ?? false)
        } else if willPayload != nil || willQoS != nil || willRetain != nil {
            throw .missing(key: r.full("will.topic"))
        }
        if let v = try r.seconds("connectTimeout", in: 0.001...86_400) { connectTimeout = v }
        if let v = try r.seconds("disconnectTimeout") { disconnectTimeout = v }
        if let v = try r.seconds("disconnectDrainTimeout") { disconnectDrainTimeout = v }
        if let v = try r.int("inflightWindow", in: 1...65535) { inflightWindow = v }
        if let v = try r.int("maxQueuedMessages", in: 0...Int.max) { maxQueuedMessages = v }
        if let v = try r.int("maxQueuedBytes", in: 0...Int.max) { maxQueuedBytes = v }
        if let v = try r.int("maxPendingRequests", in: 0...Int.max) { maxPendingRequests = v }
        if let v = try r.int("maximumIncomingPacketSize", in: 2...268_435_455) { maximumIncomingPacketSize = v }
        if let v = try r.int("maximumOutgoingPacketSize", in: 2...MQTTClientOptions.largestPacketSize) { maximumOutgoingPacketSize = v }
        if let v = try r.int("messageBufferSize", in: 1...Int.max) { messageBufferSize = v }
        var backoff = reconnectBackoff
        if let v = try r.seconds("reconnect.initialDelay") { backoff.initialDelay = v }
        if let v = try r.seconds("reconnect.maximumDelay") { backoff.maximumDelay = v }
        if let v = try r.double("reconnect.multiplier", in: 1...1_000) { backoff.multiplier = v }
        if let v = try r.double("reconnect.jitter", in: 0...1) { backoff.jitter = v }
        if backoff.maximumDelay < backoff.initialDelay {
            throw .invalid(key: r.full("reconnect.maximumDelay"), value: "\(backoff.maximumDelay)",
                           expected: "at least reconnect.initialDelay (\(backoff.initialDelay))")
        }
        reconnectBackoff = backoff
    }
}

extension MQTTServer {
    /// The broker address read from configuration: a URI, or a host and port, and TLS files.
    ///
    /// Keys, under `prefix` (`mqtt`; environment variables `MQTT_SERVER_URI`, ...):
    ///
    /// | key | type | meaning |
    /// |---|---|---|
    /// | `server.uri` | `mqtt://host[:port]` or `mqtts://host[:port]` | host, port and TLS on or off |
    /// | `server.host`, `server.port` | string, integer 1...65535 | instead of the URI |
    /// | `tls.enabled` | bool | TLS without a URI (default: the scheme's, else off) |
    /// | `tls.caFile` | path | trust these CAs (PEM) instead of the system store; turns TLS on |
    /// | `tls.certificateFile`, `tls.privateKeyFile` | paths | client certificate and key (PEM), both or neither; turns TLS on |
    /// | `tls.serverName` | string | SNI and the name verified |
    /// | `tls.insecure` | bool | no verification at all (tests only) |
    ///
    /// - Parameters:
    ///   - config: The reader.
    ///   - prefix: The scope of the keys (`mqtt`); empty for none.
    /// - Throws: ``MQTTConfigurationError``: no address, both a URI and a host, a bad URI or
    ///   port, one of the certificate and key files without the other.
    public init(config: ConfigReader, prefix: String = "mqtt") throws(MQTTConfigurationError) {
        let r = KeyedReader(config: config, prefix: prefix)
        let uri = try r.string("server.uri")
        let host = try r.string("server.host")
        let port = try r.int("server.port", in: 1...65535)
        var server: MQTTServer
        switch (uri, host) {
        case (let uri?, nil):
            do {
                server = try MQTTServer(parsing: uri, port: port)
            } catch {
                throw .invalid(key: r.full("server.uri"), value: uri, expected: "mqtt://host[:port] or mqtts://host[:port] (\(error))")
            }
        case (nil, let host?):
            guard !host.isEmpty else { throw .invalid(key: r.full("server.host"), value: host, expected: "a host name or IP address") }
            server = MQTTServer(host: host, port: port)
        case (.some, .some):
            throw .conflicting(key: r.full("server.uri"), otherKey: r.full("server.host"))
        case (nil, nil):
            throw .missing(key: r.full("server.uri"))
        }
        let enabled = try r.bool("tls.enabled")
        let caFile = try r.string("tls.caFile")
        let certificateFile = try r.string("tls.certificateFile")
        let keyFile = try r.string("tls.privateKeyFile")
        let serverName = try r.string("tls.serverName")
        let insecure = try r.bool("tls.insecure") ?? false
        if (certificateFile == nil) != (keyFile == nil) {
            throw .missing(key: r.full(certificateFile == nil ? "tls.certificateFile" : "tls.privateKeyFile"))
        }
        let custom = caFile != nil || certificateFile != nil || serverName != nil || insecure
        let tlsOn = enabled ?? (server.security != .off || custom)
        if enabled == false && custom {
            throw .invalid(key: r.full("tls.enabled"), value: "false", expected: "true when TLS files or options are set")
        }
        if tlsOn && (custom || server.security == .off) {
            var tls = MQTTTLSConfiguration()
            if let caFile { tls.trust = .pemFile(caFile) }
            if let certificateFile, let keyFile { tls.clientCertificate = .pemFiles(certificate: certificateFile, privateKey: keyFile) }
            tls.serverName = serverName
            tls.insecure = insecure
            let wasDefaultPort = uri == nil && port == nil
            server.security = .tls(tls)
            if wasDefaultPort { server.port = MQTTServer.defaultSecurePort }
        } else if !tlsOn {
            server.security = .off
        }
        self = server
    }
}
