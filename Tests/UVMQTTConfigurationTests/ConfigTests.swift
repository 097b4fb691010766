import Configuration
import Foundation
import Testing
import UVMQTT
import UVMQTTConfiguration

@Suite("MQTTClientOptions(config:) and MQTTServer(config:)")
struct ConfigTests {
    func env(_ values: [String: String]) -> ConfigReader {
        ConfigReader(provider: EnvironmentVariablesProvider(environmentVariables: values))
    }

    /// The configuration error `body` throws (another error is a test failure).
    func error(_ body: () throws -> Void) -> MQTTConfigurationError? {
        do {
            try body()
            return nil
        } catch let error as MQTTConfigurationError {
            return error
        } catch {
            Issue.record("not an MQTTConfigurationError: \(error)")
            return nil
        }
    }

    @Test("every option from MQTT_* environment variables")
    func environment() throws {
        let options = try MQTTClientOptions(config: env([
            "MQTT_CLIENT_ID": "gw-1", "MQTT_PROTOCOL_VERSION": "3.1", "MQTT_KEEP_ALIVE": "30",
            "MQTT_CLEAN_SESSION": "false", "MQTT_USERNAME": "alice", "MQTT_PASSWORD": "s3cret",
            "MQTT_WILL_TOPIC": "gw/status", "MQTT_WILL_PAYLOAD": "offline", "MQTT_WILL_QOS": "1", "MQTT_WILL_RETAIN": "true",
            "MQTT_CONNECT_TIMEOUT": "2.5", "MQTT_INFLIGHT_WINDOW": "8", "MQTT_MAX_QUEUED_MESSAGES": "50",
            "MQTT_MAX_QUEUED_BYTES": "4096", "MQTT_MAX_PENDING_REQUESTS": "4", "MQTT_MAXIMUM_INCOMING_PACKET_SIZE": "2048",
            "MQTT_MESSAGE_BUFFER_SIZE": "16", "MQTT_DISCONNECT_TIMEOUT": "1", "MQTT_DISCONNECT_DRAIN_TIMEOUT": "0.5",
            "MQTT_RECONNECT_INITIAL_DELAY": "0.25", "MQTT_RECONNECT_MAXIMUM_DELAY": "10",
            "MQTT_RECONNECT_MULTIPLIER": "3", "MQTT_RECONNECT_JITTER": "0.1",
        ]))
        #expect(options.clientID == "gw-1")
        #expect(options.protocolVersion == .v3_1)
        #expect(options.keepAlive == 30)
        #expect(options.cleanSession == false)
        #expect(options.username == "alice")
        #expect(options.password == Array("s3cret".utf8))
        #expect(options.will == Will(topic: "gw/status", payload: Array("offline".utf8), qos: .atLeastOnce, retain: true))
        #expect(options.connectTimeout == .milliseconds(2500))
        #expect(options.inflightWindow == 8)
        #expect(options.maxQueuedMessages == 50)
        #expect(options.maxQueuedBytes == 4096)
        #expect(options.maxPendingRequests == 4)
        #expect(options.maximumIncomingPacketSize == 2048)
        #expect(options.messageBufferSize == 16)
        #expect(options.disconnectTimeout == .seconds(1))
        #expect(options.disconnectDrainTimeout == .milliseconds(500))
        #expect(options.reconnectBackoff == ReconnectBackoff(initialDelay: .milliseconds(250), maximumDelay: .seconds(10), multiplier: 3, jitter: 0.1))
        #expect(options.metrics == nil)
    }

    @Test("defaults when only the client id is set; a missing client id names its key and variable")
    func defaultsAndMissing() throws {
        let options = try MQTTClientOptions(config: env(["MQTT_CLIENT_ID": "only"]))
        let plain = MQTTClientOptions(clientID: "only")
        #expect(options.keepAlive == plain.keepAlive && options.inflightWindow == plain.inflightWindow)
        #expect(options.reconnectBackoff == plain.reconnectBackoff && options.will == nil && options.password == nil)
        let missing = error { _ = try MQTTClientOptions(config: env([:])) }
        #expect(missing == .missing(key: "mqtt.clientID"))
        #expect(missing?.description.contains("MQTT_CLIENT_ID") == true)
    }

    @Test("invalid values are errors naming the key", arguments: [
        ("MQTT_KEEP_ALIVE", "soon", "mqtt.keepAlive"),
        ("MQTT_KEEP_ALIVE", "70000", "mqtt.keepAlive"),
        ("MQTT_PROTOCOL_VERSION", "5", "mqtt.protocolVersion"),
        ("MQTT_CLEAN_SESSION", "maybe", "mqtt.cleanSession"),
        ("MQTT_WILL_QOS", "3", "mqtt.will.qos"),
        ("MQTT_INFLIGHT_WINDOW", "0", "mqtt.inflightWindow"),
        ("MQTT_CONNECT_TIMEOUT", "-1", "mqtt.connectTimeout"),
        ("MQTT_RECONNECT_JITTER", "2", "mqtt.reconnect.jitter"),
        ("MQTT_RECONNECT_MAXIMUM_DELAY", "0.1", "mqtt.reconnect.maximumDelay"),
    ])
    func invalid(variable: String, value: String, key: String) {
        var values = ["MQTT_CLIENT_ID": "c", variable: value]
        if variable == "MQTT_WILL_QOS" { values["MQTT_WILL_TOPIC"] = "t" }
        let failure = error { _ = try MQTTClientOptions(config: env(values)) }
        #expect(failure?.key == key)
        if case .invalid(_, let found, _)? = failure {
            #expect(found != nil)
        } else {
            Issue.record("expected .invalid, got \(String(describing: failure))")
        }
    }

    @Test("secrets: read as secret, never in an error; a password needs a user name; a will needs its topic")
    func secrets() async throws {
        // A password that is not a string (an array in JSON) is invalid, and the error hides it.
        let json = #"{"mqtt": {"clientID": "c", "username": "u", "password": ["hunter2"]}}"#
        let reader = try await jsonReader(json)
        let failure = error { _ = try MQTTClientOptions(config: reader) }
        #expect(failure == .invalid(key: "mqtt.password", value: nil, expected: "a string"))
        #expect(failure?.description.contains("hunter2") == false)
        #expect(MQTTConfigurationError.isSecretKey("password") && MQTTConfigurationError.isSecretKey("will.payload"))
        #expect(error { _ = try MQTTClientOptions(config: env(["MQTT_CLIENT_ID": "c", "MQTT_PASSWORD": "p"])) }
            == .missing(key: "mqtt.username"))
        #expect(error { _ = try MQTTClientOptions(config: env(["MQTT_CLIENT_ID": "c", "MQTT_WILL_QOS": "1"])) }
            == .missing(key: "mqtt.will.topic"))
    }

    @Test("a JSON file and a YAML file, under another prefix; the environment wins when listed first")
    func files() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("uvmqtt-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let jsonPath = dir.appendingPathComponent("c.json").path
        try #"{"gateway": {"mqtt": {"clientID": "from-json", "keepAlive": 15, "server": {"uri": "mqtt://127.0.0.1:1999"}}}}"#
            .write(toFile: jsonPath, atomically: true, encoding: .utf8)
        let yamlPath = dir.appendingPathComponent("c.yaml").path
        try "mqtt:\n  clientID: from-yaml\n  keepAlive: 20\n  server:\n    host: broker.local\n    port: 2883\n  tls:\n    caFile: /etc/ca.pem\n"
            .write(toFile: yamlPath, atomically: true, encoding: .utf8)

        let json = ConfigReader(providers: [
            EnvironmentVariablesProvider(environmentVariables: ["GATEWAY_MQTT_KEEP_ALIVE": "5"]),
            try await FileProvider<JSONSnapshot>(filePath: .init(jsonPath)),
        ])
        let fromJSON = try MQTTClientOptions(config: json, prefix: "gateway.mqtt")
        #expect(fromJSON.clientID == "from-json" && fromJSON.keepAlive == 5)
        #expect(try MQTTServer(config: json, prefix: "gateway.mqtt") == MQTTServer(host: "127.0.0.1", port: 1999))

        let yaml = ConfigReader(provider: try await FileProvider<YAMLSnapshot>(filePath: .init(yamlPath)))
        let fromYAML = try MQTTClientOptions(config: yaml)
        #expect(fromYAML.clientID == "from-yaml" && fromYAML.keepAlive == 20)
        let server = try MQTTServer(config: yaml)
        #expect(server.host == "broker.local" && server.port == 2883)
        #expect(server.security == .tls(MQTTTLSConfiguration(trust: .pemFile("/etc/ca.pem"))))
    }

    @Test("server: URI schemes, host and default ports, TLS files, and the errors")
    func server() throws {
        #expect(try MQTTServer(config: env(["MQTT_SERVER_URI": "mqtts://b.example"])) == MQTTServer(host: "b.example", port: 8883, security: .on))
        #expect(try MQTTServer(config: env(["MQTT_SERVER_HOST": "b", "MQTT_TLS_ENABLED": "true"])) == MQTTServer(host: "b", port: 8883, security: .tls(MQTTTLSConfiguration())))
        let mutual = try MQTTServer(config: env(["MQTT_SERVER_HOST": "b", "MQTT_SERVER_PORT": "9000",
                                                 "MQTT_TLS_CERTIFICATE_FILE": "/c.pem", "MQTT_TLS_PRIVATE_KEY_FILE": "/k.pem",
                                                 "MQTT_TLS_SERVER_NAME": "broker"]))
        #expect(mutual == MQTTServer(host: "b", port: 9000, security: .tls(MQTTTLSConfiguration(
            clientCertificate: .pemFiles(certificate: "/c.pem", privateKey: "/k.pem"), serverName: "broker"))))
        #expect(error { _ = try MQTTServer(config: env([:])) } == .missing(key: "mqtt.server.uri"))
        #expect(error { _ = try MQTTServer(config: env(["MQTT_SERVER_URI": "http://x"])) }?.key == "mqtt.server.uri")
        #expect(error { _ = try MQTTServer(config: env(["MQTT_SERVER_URI": "mqtt://x", "MQTT_SERVER_HOST": "y"])) }
            == .conflicting(key: "mqtt.server.uri", otherKey: "mqtt.server.host"))
        #expect(error { _ = try MQTTServer(config: env(["MQTT_SERVER_HOST": "b", "MQTT_SERVER_PORT": "0"])) }?.key == "mqtt.server.port")
        #expect(error { _ = try MQTTServer(config: env(["MQTT_SERVER_HOST": "b", "MQTT_TLS_CERTIFICATE_FILE": "/c.pem"])) }
            == .missing(key: "mqtt.tls.privateKeyFile"))
    }
}

/// A reader over a JSON file made from `text` (removed when the reader is made: the provider
/// reads the file once, at creation).
func jsonReader(_ text: String) async throws -> ConfigReader {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("uvmqtt-\(UUID().uuidString).json").path
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return ConfigReader(provider: try await FileProvider<JSONSnapshot>(filePath: .init(path)))
}
