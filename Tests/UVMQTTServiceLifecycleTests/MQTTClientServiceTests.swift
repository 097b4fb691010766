import Foundation
import Logging
import MQTTTestSupport
import ServiceLifecycle
import Testing
import UVMQTT
import UVMQTTServiceLifecycle

/// The bound of every wait for something that should happen (generous: CI is a loaded 2-core
/// machine; it costs nothing when the thing happens).
private let testTimeout: Double = 20

/// The first message of `stream`, or nil when none arrives within `seconds`.
private func firstMessage(_ stream: MQTTMessageStream, within seconds: Double) async -> MQTTMessage? {
    try? await withDeadline(seconds, "receiving a message") {
        var iterator = stream.makeAsyncIterator()
        return await iterator.next()
    }
}

/// Subscribes once the service's client has connected: `subscribe` fails while the connection
/// is still being made, so it is retried every 20 ms, bounded by `testTimeout`.
private func subscribeWhenConnected(_ client: MQTTClient, _ filter: String) async throws {
    let deadline = ContinuousClock.now + .seconds(testTimeout)
    while true {
        do {
            let granted = try await client.subscribe(filter, qos: .atLeastOnce)
            #expect(granted == .granted(.atLeastOnce))
            return
        } catch MQTTClientError.notConnected, MQTTClientError.alreadyConnecting {
            if ContinuousClock.now >= deadline { throw TimeoutError(description: "the service did not connect") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}

private let logger = Logger(label: "UVMQTTServiceLifecycleTests") { _ in SwiftLogNoOpLogHandler() }

@Suite("MQTTClientService in a ServiceGroup (ServiceLifecycle)")
struct MQTTClientServiceLifecycleTests {
    @Test("runs in a ServiceGroup, round trip while running, graceful shutdown disconnects cleanly (no will)")
    func gracefulShutdownDisconnectsCleanly() async throws {
        try await withMosquitto { broker in
            let id = UUID().uuidString.prefix(8)
            let willTopic = "svc/\(id)/will"
            let dataTopic = "svc/\(id)/data"
            let server = MQTTServer(host: broker.host, port: Int(broker.port))

            // A second client watches the will topic.
            let watcher = MQTTClient(options: MQTTClientOptions(clientID: "svc-watch-\(id)"), logger: logger)
            try await withDeadline(testTimeout, "watcher connect") { try await watcher.connect(to: server) }
            let wills = try watcher.messages(matching: willTopic)
            _ = try await withDeadline(testTimeout, "watcher subscribe") {
                try await watcher.subscribe(willTopic, qos: .atLeastOnce)
            }

            let client = MQTTClient(
                options: MQTTClientOptions(
                    clientID: "svc-main-\(id)",
                    will: Will(topic: willTopic, payload: Array("gone".utf8), qos: .atLeastOnce)
                ),
                logger: logger
            )
            let service = MQTTClientService(client: client, server: server)
            #expect(service.reconnect)
            let group = ServiceGroup(configuration: ServiceGroupConfiguration(
                services: [service], gracefulShutdownSignals: [], logger: logger
            ))
            let running = Task { try await group.run() }

            // Round trip through the broker while the service runs.
            let received = try client.messages(matching: dataTopic)
            try await subscribeWhenConnected(client, dataTopic)
            try await withDeadline(testTimeout, "publish") {
                try await client.publish(dataTopic, string: "hello", qos: .atLeastOnce)
            }
            let message = await firstMessage(received, within: testTimeout)
            #expect(message?.topic == dataTopic)
            #expect(message?.payloadString == "hello")

            // Graceful shutdown: run() returns, and the group with it.
            await group.triggerGracefulShutdown()
            try await withDeadline(testTimeout, "group.run after graceful shutdown") { try await running.value }

            // Disconnected: requests fail, and no reconnect is under way.
            await #expect(throws: MQTTClientError.notConnected) {
                try await client.publish(dataTopic, string: "after", qos: .atMostOnce)
            }

            // DISCONNECT was sent: the broker discarded the will [MQTT-3.14.4-3].
            let will = await firstMessage(wills, within: 2)
            #expect(will == nil, "the will was published: \(will?.payloadString ?? "")")

            // Control: the watcher's subscription to the will topic was live all along.
            let control = try watcher.messages(matching: willTopic)
            try await withDeadline(testTimeout, "control publish") {
                try await watcher.publish(willTopic, string: "control", qos: .atLeastOnce)
            }
            #expect(await firstMessage(control, within: testTimeout)?.payloadString == "control")
            await watcher.disconnect()
        }
    }

    @Test("cancelling the group's task ends run() with a clean disconnect")
    func cancellationDisconnects() async throws {
        try await withMosquitto { broker in
            let id = UUID().uuidString.prefix(8)
            let client = MQTTClient(options: MQTTClientOptions(clientID: "svc-cancel-\(id)"), logger: logger)
            let service = MQTTClientService(client: client, server: MQTTServer(host: broker.host, port: Int(broker.port)))
            let group = ServiceGroup(configuration: ServiceGroupConfiguration(
                services: [service], gracefulShutdownSignals: [], logger: logger
            ))
            let running = Task { try await group.run() }
            try await subscribeWhenConnected(client, "svc/\(id)/x")
            running.cancel()
            // The group ends (it may report the cancellation); the service disconnected.
            _ = try? await withDeadline(testTimeout, "group.run after cancellation") { try await running.value }
            #expect(running.isCancelled)
            await #expect(throws: MQTTClientError.notConnected) {
                try await client.publish("svc/\(id)/x", string: "after", qos: .atMostOnce)
            }
        }
    }

    @Test("reconnect off: a refused first connect is thrown from run() and from the group")
    func refusedConnectThrows() async throws {
        let refusing = try RefusingPort()
        let server = MQTTServer(host: "127.0.0.1", port: Int(refusing.port))

        let client = MQTTClient(options: MQTTClientOptions(clientID: "svc-refused"), logger: logger)
        let service = MQTTClientService(client: client, server: server, reconnect: false)
        await #expect(throws: MQTTConnectionFailure.self) {
            try await withDeadline(testTimeout, "service.run") { try await service.run() }
        }

        let groupClient = MQTTClient(options: MQTTClientOptions(clientID: "svc-refused-group"), logger: logger)
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [MQTTClientService(client: groupClient, server: server, reconnect: false)],
            gracefulShutdownSignals: [], logger: logger
        ))
        await #expect(throws: MQTTConnectionFailure.self) {
            try await withDeadline(testTimeout, "group.run") { try await group.run() }
        }
        withExtendedLifetime(refusing) {}
    }

    @Test("reconnect on: a daemon that starts before its broker keeps trying, connects, and reports readiness")
    func startsBeforeBroker() async throws {
        try await withMosquitto { broker in
            let server = MQTTServer(host: broker.host, port: Int(broker.port))
            // The broker goes away before the service starts; it comes back on the same port.
            broker.kill()
            var options = MQTTClientOptions(clientID: "svc-early-\(UUID().uuidString.prefix(6))")
            options.reconnectBackoff = ReconnectBackoff(initialDelay: .milliseconds(50), maximumDelay: .milliseconds(200), multiplier: 2, jitter: 0.1)
            let client = MQTTClient(options: options, logger: logger)
            let service = MQTTClientService(client: client, server: server)
            let events = service.connectionEvents
            let group = ServiceGroup(configuration: ServiceGroupConfiguration(
                services: [service], gracefulShutdownSignals: [], logger: logger))
            let running = Task { try await group.run() }
            // Failed attempts are reported, and the group keeps running.
            let sawFailures = try await withDeadline(testTimeout, "connect failures") { () -> Bool in
                var failures = 0
                for await event in events {
                    if case .connectFailed = event { failures += 1 }
                    if failures >= 2 { return true }
                }
                return false
            }
            #expect(sawFailures)
            // Readiness from a sequence made before the broker comes back (one made later could
            // miss the event).
            let readiness = client.connectionEvents
            try broker.restart()
            let ready = try await withDeadline(testTimeout, "readiness") { () -> Bool in
                for await event in readiness {
                    if case .connected = event { return true }
                }
                return false
            }
            #expect(ready)
            #expect(client.isConnected)
            try await withDeadline(testTimeout, "publish") { try await client.publish("svc/early", string: "up", qos: .atLeastOnce) }
            await group.triggerGracefulShutdown()
            try await withDeadline(testTimeout, "group.run") { try await running.value }
            #expect(!client.isConnected)
        }
    }

    @Test("graceful shutdown while the first connect is still retrying ends run() normally")
    func shutdownWhileRetrying() async throws {
        let refusing = try RefusingPort()
        let server = MQTTServer(host: "127.0.0.1", port: Int(refusing.port))
        var options = MQTTClientOptions(clientID: "svc-retrying")
        options.reconnectBackoff = ReconnectBackoff(initialDelay: .milliseconds(50), maximumDelay: .milliseconds(100), multiplier: 2, jitter: 0)
        let client = MQTTClient(options: options, logger: logger)
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [MQTTClientService(client: client, server: server)], gracefulShutdownSignals: [], logger: logger))
        let running = Task { try await group.run() }
        try await Task.sleep(for: .milliseconds(300))
        await group.triggerGracefulShutdown()
        try await withDeadline(testTimeout, "group.run") { try await running.value }
        withExtendedLifetime(refusing) {}
    }
}
