import Configuration
import Foundation
import Hummingbird
import Logging
import Prometheus
import ServiceLifecycle
import UVMQTT
import UVMQTTConfiguration
import UVMQTTServiceLifecycle

// Sensor gateway: subscribes to `sensors/#` (configurable) on the broker from its configuration,
// keeps the latest value per topic, serves `/latest` and `/metrics` over HTTP, and shuts down
// gracefully on SIGTERM or SIGINT (DISCONNECT first, so the broker does not publish the will).
//
// Configuration (environment variables first, then the JSON file named by GATEWAY_CONFIG_FILE):
//   MQTT_CLIENT_ID, MQTT_SERVER_URI / MQTT_SERVER_HOST + MQTT_SERVER_PORT, MQTT_USERNAME,
//   MQTT_PASSWORD, MQTT_TLS_*, ... (see MQTTClientOptions(config:) and MQTTServer(config:))
//   GATEWAY_FILTER (default sensors/#), GATEWAY_QOS (default 1), GATEWAY_MAX_TOPICS (10000)
//   HTTP_HOST (default 127.0.0.1), HTTP_PORT (default 8080), LOG_LEVEL (default info)

var providers: [any ConfigProvider] = [EnvironmentVariablesProvider()]
if let file = ProcessInfo.processInfo.environment["GATEWAY_CONFIG_FILE"] {
    providers.append(try await FileProvider<JSONSnapshot>(filePath: .init(file)))
}
let config = ConfigReader(providers: providers)

var logger = Logger(label: "sensor-gateway")
logger.logLevel = config.string(forKey: "log.level", as: Logger.Level.self, default: .info)

let registry = PrometheusCollectorRegistry()
let options: MQTTClientOptions
let server: MQTTServer
do {
    var read = try MQTTClientOptions(config: config)
    read.metrics = MQTTMetrics(factory: PrometheusMetricsFactory(registry: registry))
    options = read
    server = try MQTTServer(config: config)
} catch {
    logger.critical("invalid configuration", metadata: ["error": "\(error)", "key": "\(error.key)"])
    exit(78)  // EX_CONFIG
}
let filter = config.string(forKey: "gateway.filter", default: "sensors/#")
let qos = QoS(rawValue: UInt8(clamping: config.int(forKey: "gateway.qos", default: 1))) ?? .atLeastOnce
let latest = LatestValues(capacity: config.int(forKey: "gateway.maxTopics", default: 10_000))
let httpHost = config.string(forKey: "http.host", default: "127.0.0.1")
let httpPort = config.int(forKey: "http.port", default: 8080)

var mqttLogger = logger
mqttLogger[metadataKey: "mqtt.server"] = "\(server.host):\(server.port)"
let client = MQTTClient(options: options, logger: mqttLogger)
// Made before the group runs, so that no early event is missed.
let ingestEvents = client.connectionEvents
let logEvents = client.connectionEvents

let app = Application(
    router: makeRouter(latest: latest, registry: registry, isConnected: { client.isConnected }),
    configuration: .init(address: .hostname(httpHost, port: httpPort), serverName: "sensor-gateway"),
    logger: logger
)
let group = ServiceGroup(
    configuration: .init(
        services: [
            .init(service: MQTTClientService(client: client, server: server)),
            .init(service: ConnectionLog(events: logEvents, logger: mqttLogger)),
            .init(service: Ingest(client: client, events: ingestEvents, filter: filter, qos: qos, latest: latest, logger: mqttLogger)),
            .init(service: app),
        ],
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: logger
    )
)
logger.info("starting", metadata: ["filter": "\(filter)", "http": "\(httpHost):\(httpPort)", "mqtt.client": "\(options.clientID)"])
try await group.run()
logger.info("stopped")
