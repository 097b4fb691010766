import Foundation
import MQTTTestSupport
import Testing
import MQTTProtocol
@testable import UVMQTT
import UVReactor

/// Threads, open fds and virtual memory of this process (`/proc/self`).
private func processFigures() -> (threads: Int, fds: Int, vmSizeKiB: Int, rssKiB: Int) {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    func field(_ name: String) -> Int {
        for line in status.split(separator: "\n") where line.hasPrefix(name) {
            return Int(line.dropFirst(name.count).split(separator: " ").first ?? "") ?? -1
        }
        return -1
    }
    let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
    return (field("Threads:"), fds, field("VmSize:"), field("VmRSS:"))
}

/// Waits (bounded) until the process's thread count is at most `limit`.
private func threadsSettle(atMost limit: Int) async -> Int {
    for _ in 0..<400 {
        let threads = processFigures().threads
        if threads <= limit { return threads }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return processFigures().threads
}

@Suite("Client lifecycle: threads, fds, mappings", .serialized)
struct LifecycleTests {
    /// Issue 8, failure 3: the last reference dropped on the client's own loop thread (inside a
    /// callback) used to stop the loop without joining or detaching its thread: 8 MiB of stack
    /// and a thread per cycle.
    @Test("create/connect/drop-in-callback cycles leave threads, fds and VmSize flat")
    func dropInsideCallback() async throws {
        try await withMosquitto { broker in
            let cycles = 300
            func cycle(_ i: Int) async {
                let done = EventLog()
                let holder = Locked<NodeMCUClient?>(nil)
                let client = NodeMCUClient(options: MQTTClientOptions(clientID: "life-\(i)", keepAlive: 10, connectTimeout: .seconds(5)))
                holder.withLock { $0 = client }
                do {
                    try client.connect(broker.host, port: Int(broker.port), connected: { c in
                        c.close()
                        // The last reference goes away on the client's own loop thread, when
                        // this callback returns.
                        holder.withLock { $0 = nil }
                        done.add("dropped")
                    }, failed: { _, _ in
                        holder.withLock { $0 = nil }
                        done.add("dropped")
                    })
                } catch {
                    Issue.record("connect \(i): \(error)")
                }
                _ = await done.wait(for: "dropped", within: testTimeout)
            }
            // Warm up (the cooperative pool, the broker's first connections).
            for i in 0..<20 { await cycle(i) }
            let baseline = processFigures()
            _ = await threadsSettle(atMost: baseline.threads)
            for i in 20..<(20 + cycles) { await cycle(i) }
            let threads = await threadsSettle(atMost: baseline.threads + 2)
            let after = processFigures()
            #expect(threads <= baseline.threads + 2, "threads \(baseline.threads) -> \(threads)")
            #expect(after.fds <= baseline.fds + 8, "fds \(baseline.fds) -> \(after.fds)")
            // 8 MiB of stack per leaked thread: 300 cycles would add 2.4 GiB.
            #expect(after.vmSizeKiB - baseline.vmSizeKiB < 256 * 1024, "VmSize \(baseline.vmSizeKiB) -> \(after.vmSizeKiB) KiB")
        }
    }

    @Test("shutdownGracefully() ends the client's own loop thread; dropping after close leaves nothing")
    func explicitShutdown() async throws {
        try await withMosquitto { broker in
            let baseline = processFigures()
            for i in 0..<50 {
                let client = MQTTClient(options: MQTTClientOptions(clientID: "shut-\(i)", connectTimeout: .seconds(5)))
                try await withDeadline(testTimeout) { try await client.connect(to: broker.host, port: Int(broker.port)) }
                await client.disconnect()
                await client.shutdownGracefully()
            }
            let threads = await threadsSettle(atMost: baseline.threads + 2)
            #expect(threads <= baseline.threads + 2, "threads \(baseline.threads) -> \(threads)")
            #expect(processFigures().fds <= baseline.fds + 8)
        }
    }

    /// Issue 8, failure 4: `disconnect()` used to return before DISCONNECT was even encoded, so a
    /// process exiting right after could lose it and the broker published the will.
    @Test("disconnect() then immediate drop: the broker saw DISCONNECT and publishes no will")
    func disconnectThenDrop() async throws {
        try await withMosquitto { broker in
            let watcher = MQTTClient(options: MQTTClientOptions(clientID: "will-watch"))
            try await withDeadline(testTimeout) { try await watcher.connect(to: broker.host, port: Int(broker.port)) }
            let wills = try watcher.messages(matching: "life/will")
            _ = try await withDeadline(testTimeout) { try await watcher.subscribe("life/will", qos: .atLeastOnce) }
            for i in 0..<10 {
                let client = MQTTClient(options: MQTTClientOptions(
                    clientID: "will-\(i)", will: Will(topic: "life/will", payload: Array("gone \(i)".utf8), qos: .atLeastOnce)))
                try await withDeadline(testTimeout) { try await client.connect(to: broker.host, port: Int(broker.port)) }
                await client.disconnect()
                // The process could exit here: the DISCONNECT is already on the wire.
            }
            let log = broker.log()
            #expect(log.components(separatedBy: "Received DISCONNECT from will-").count - 1 == 10)
            let leaked = try? await withDeadline(1, "no will") { () -> MQTTMessage? in
                var iterator = wills.makeAsyncIterator()
                return await iterator.next()
            }
            #expect(leaked == nil, "the broker published a will: \(String(describing: leaked))")
            await watcher.disconnect()
        }
    }

    /// Issue 8, failure 7: QoS 0 counted as done once encoded, so an `await publish` loop against
    /// a stopped broker grew the outbound buffer without bound (hundreds of MiB here).
    @Test("QoS 0 publishing in a loop to a stopped (SIGSTOP) broker keeps RSS bounded")
    func stoppedBrokerBoundsMemory() async throws {
        try await withMosquitto { broker in
            let client = MQTTClient(options: MQTTClientOptions(clientID: "stopped-broker", keepAlive: 0))
            try await withDeadline(testTimeout) { try await client.connect(to: broker.host, port: Int(broker.port)) }
            let payload = [UInt8](repeating: 0x42, count: 1024)
            let before = processFigures().rssKiB
            broker.send(signal: SIGSTOP)
            let sent = Locked(0)
            let publisher = Task {
                for _ in 0..<300_000 {
                    try await client.publish("flood/qos0", payload: payload)
                    sent.withLock { $0 += 1 }
                }
            }
            // The kernel's socket buffers fill first (a few MiB on loopback), then the client's
            // high-water mark (1 MiB) and its send queue (1,000 messages); then publish waits.
            var last = -1
            for _ in 0..<100 {
                try await Task.sleep(for: .milliseconds(50))
                let now = sent.withLock { $0 }
                if now == last { break }
                last = now
            }
            try await Task.sleep(for: .milliseconds(500))
            let stalledAt = sent.withLock { $0 }
            try await Task.sleep(for: .milliseconds(500))
            let grown = processFigures().rssKiB - before
            #expect(sent.withLock { $0 } == stalledAt, "publish kept completing against a stopped broker")
            #expect(stalledAt < 300_000)
            #expect(grown < 48 * 1024, "RSS grew by \(grown) KiB while the broker was stopped")
            print("stopped broker: \(stalledAt) QoS 0 messages of 1 KiB completed before publish waited; RSS +\(grown) KiB")
            broker.send(signal: SIGCONT)
            publisher.cancel()
            _ = try? await publisher.value
            await client.disconnect()
        }
    }
}
