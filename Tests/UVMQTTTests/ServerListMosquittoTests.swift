import Foundation
import MQTTTestSupport
import Testing
import MQTTProtocol
@testable import UVMQTT
import UVReactor

/// Server lists against two mosquittos on this machine.
@Suite("Server lists against two mosquittos", .serialized)
struct ServerListMosquittoTests {
    func options(_ id: String, cleanSession: Bool = true) -> MQTTClientOptions {
        var options = MQTTClientOptions(clientID: String(uniqueID(id).prefix(23)), keepAlive: 10, cleanSession: cleanSession,
                                        connectTimeout: .seconds(3))
        options.reconnectBackoff = testBackoff
        return options
    }

    /// The first server is down: the connect goes on to the second at once, the failure names the
    /// first; then the second goes down and the client fails over to the first (started again),
    /// re-subscribes (no shared session) and receives there.
    @Test func failsOverBothWays() async throws {
        let a = try await blockingCall { try MosquittoBroker.start() }
        defer { a.stop() }
        let b = try await blockingCall { try MosquittoBroker.start() }
        defer { b.stop() }
        try await blockingCall { a.stop(removeDirectory: false) }
        let serverA = MQTTServer(host: a.host, port: Int(a.port))
        let serverB = MQTTServer(host: b.host, port: Int(b.port))

        let listOptions = options("list")
        let client = MQTTClient(options: listOptions)
        let events = client.connectionEvents
        let started = ContinuousClock.now
        _ = try await withDeadline(testTimeout) { try await client.connect(to: [serverA, serverB], reconnect: true) }
        #expect(ContinuousClock.now - started < .seconds(2), "no back-off between the servers of a pass")
        #expect(client.currentServer == serverB)
        var iterator = events.makeAsyncIterator()
        var seen: [MQTTConnectionEvent] = []
        while let event = await iterator.next() {
            seen.append(event)
            if case .connected = event { break }
        }
        #expect(seen == [.connectFailed(.serverNotFound), .reconnecting(attempt: 0, delay: .zero), .connected(sessionPresent: false)])

        let stream = try client.messages(matching: "list/#")
        _ = try await withDeadline(testTimeout) { try await client.subscribe("list/#", qos: .atLeastOnce) }
        try await withDeadline(testTimeout) { try await client.publish("list/b", string: "on b", qos: .atLeastOnce) }
        #expect(try await collect(stream, count: 1).first?.payloadString == "on b")

        // B goes down, A comes back: the client moves to A and subscribes again there.
        try await blockingCall { try a.restart() }
        try await blockingCall { b.stop(removeDirectory: false) }
        // Bounded: the loop ends at the reconnect, or when the client's events end; the
        // publish below has its own deadline.
        var reconnected = false
        let deadline = ContinuousClock.now + .seconds(testTimeout)
        while !reconnected && ContinuousClock.now < deadline, let event = await iterator.next() {
            if case .connected = event { reconnected = true }
        }
        #expect(reconnected)
        #expect(client.currentServer == serverA)
        #expect(try await blockingCall { a.waitForSubscription(of: listOptions.clientID) })
        try await withDeadline(testTimeout) { try await client.publish("list/a", string: "on a", qos: .atLeastOnce) }
        #expect(try await collect(stream, count: 1).first?.payloadString == "on a")
        await client.disconnect()
    }

    /// The NodeMCU face: `connfail` fires for the stopped server (and `currentServer` names it),
    /// then `connect` for the running one.
    @Test func nodeMCUReportsEachFailedServer() async throws {
        let a = try await blockingCall { try MosquittoBroker.start() }
        let b = try await blockingCall { try MosquittoBroker.start() }
        defer { b.stop() }
        try await blockingCall { a.stop() }
        let serverA = MQTTServer(host: a.host, port: Int(a.port))
        let serverB = MQTTServer(host: b.host, port: Int(b.port))
        let log = EventLog()
        let client = NodeMCUClient(options: options("listn"))
        client.on(.connfail) { client, failure in
            log.add("connfail \(client.currentServer?.port ?? 0) \(failure.nodeMCUReasonCode)")
        }
        try client.connect(to: [serverA, serverB], connected: { client in
            log.add("connected \(client.currentServer?.port ?? 0)")
        }, failed: { _, _ in log.add("failed") })
        #expect(await log.wait(for: "connected \(b.port)"))
        #expect(log.all.first == "connfail \(a.port) -5")
        #expect(log.count("failed") == 0)
        client.close()
    }
}
