import Logging
import ServiceLifecycle
import UVMQTT

/// Subscribes to the configured filter once the client is connected and records every message
/// in ``LatestValues``, until graceful shutdown. The client re-subscribes by itself after a
/// reconnect without session, so the loop runs once.
struct Ingest: Service {
    let client: MQTTClient
    let events: MQTTConnectionEvents
    let filter: String
    let qos: QoS
    let latest: LatestValues
    let logger: Logger

    func run() async throws {
        // Readiness: the event stream was made before the group started, so the first
        // `.connected` is not missed.
        if !client.isConnected {
            for await event in events.cancelOnGracefulShutdown() {
                if case .connected = event { break }
            }
        }
        // The loop also ends on graceful shutdown before any connection: then there is nothing to do.
        if Task.isCancelled || Task.isShuttingDownGracefully { return }
        let subscription = try await client.subscribe(to: filter, qos: qos)
        logger.info("subscribed", metadata: ["filter": "\(filter)", "granted": "\(subscription.grantedQoS)"])
        for await message in subscription.cancelOnGracefulShutdown() {
            if !latest.record(topic: message.topic, payload: message.payload, retained: message.retain) {
                logger.warning("topic table full; topic ignored", metadata: ["topic": "\(message.topic)", "capacity": "\(latest.capacity)"])
            }
        }
        logger.info("ingest stopped", metadata: ["topics": "\(latest.count)"])
    }
}

/// Logs the client's connection events with metadata, until graceful shutdown.
struct ConnectionLog: Service {
    let events: MQTTConnectionEvents
    let logger: Logger

    func run() async {
        for await event in events.cancelOnGracefulShutdown() {
            switch event {
            case .connected(let sessionPresent):
                logger.info("mqtt connected", metadata: ["mqtt.sessionPresent": "\(sessionPresent)"])
            case .connectFailed(let failure):
                logger.warning("mqtt connect failed", metadata: ["mqtt.reason": "\(failure.reason)", "mqtt.detail": "\(failure)"])
            case .offline(let failure):
                logger.warning("mqtt offline", metadata: ["mqtt.reason": "\(failure.reason)"])
            case .reconnecting(let attempt, let delay):
                logger.info("mqtt reconnecting", metadata: ["mqtt.attempt": "\(attempt)", "mqtt.delay": "\(delay)"])
            }
        }
    }
}
