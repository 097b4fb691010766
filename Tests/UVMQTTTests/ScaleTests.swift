import Foundation
import MQTTTestSupport
import Synchronization
import Testing
@testable import UVMQTT
import UVReactor

/// Issue 9: thousands of clients on one event loop, connecting all at once with no pacing by
/// the caller. Measures the whole process (RSS, fds): runs in `make test`'s process-suite run.
@Suite("Scale: 5,000 connections on one loop", .serialized)
struct ScaleTests {
    /// What `/proc/self/status` says, in KiB.
    static func statusKiB(_ field: String) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            return Int(line.dropFirst(field.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "") ?? 0
        }
        return 0
    }

    static func openFileCount() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
    }

    /// Raises the soft fd limit to the hard limit (the broker, a child, inherits it); returns it.
    static func raiseFileLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        return Int(limit.rlim_cur)
    }

    /// 5,000 `connect` calls at once on one loop: every attempt succeeds (the loop admits 64 at
    /// a time, each attempt's timeout starting at its admission), every client subscribes and
    /// receives its fan-out message, one fd per connection, and the memory per connection stays
    /// far below the 40 KiB it was.
    @Test(.timeLimit(.minutes(2)))
    func fiveThousandConnectsAtOnce() async throws {
        let count = 5_000
        let fileLimit = Self.raiseFileLimit()
        try #require(fileLimit >= count + 200, "needs an fd limit above \(count) (hard limit \(fileLimit))")
        try await withMosquitto(MosquittoOptions(persistence: false)) { broker in
            let loop = EventLoop()
            loop.start()
            defer { try? loop.shutdown() }
            let connected = Atomic<Int>(0), subscribed = Atomic<Int>(0), failed = Atomic<Int>(0)
            let received = Atomic<Int>(0), wrongPayload = Atomic<Int>(0)
            // Baseline with the loop running and its shared buffers made.
            let warmup = NodeMCUClient(clientID: uniqueID("scale-warmup"), eventLoop: loop)
            try warmup.connect(broker.host, port: Int(broker.port), connected: { c in
                try? c.subscribe("scale-warmup") { _, _ in subscribed.add(1, ordering: .relaxed) }
            })
            try await waitUntil(seconds: 10) { subscribed.load(ordering: .relaxed) == 1 }
            subscribed.store(0, ordering: .relaxed)
            let rss0 = Self.statusKiB("VmRSS"), vm0 = Self.statusKiB("VmSize"), fds0 = Self.openFileCount()

            var clients: [NodeMCUClient] = []
            clients.reserveCapacity(count)
            let prefix = uniqueID("scale")
            for i in 0..<count {
                let client = NodeMCUClient(clientID: "\(prefix)-\(i)", eventLoop: loop)
                let topic = "\(prefix)/\(i)"
                let expected = Array("\(i)".utf8)
                client.on(.message) { _, message in
                    if message.payload.elementsEqual(expected) {
                        received.add(1, ordering: .relaxed)
                    } else {
                        wrongPayload.add(1, ordering: .relaxed)
                    }
                }
                try client.connect(broker.host, port: Int(broker.port), connected: { c in
                    connected.add(1, ordering: .relaxed)
                    try? c.subscribe(topic) { _, result in
                        if case .success = result { subscribed.add(1, ordering: .relaxed) }
                    }
                }, failed: { _, _ in failed.add(1, ordering: .relaxed) })
                clients.append(client)
            }
            try await waitUntil(seconds: 60) {
                subscribed.load(ordering: .relaxed) == count || failed.load(ordering: .relaxed) > 0
            }
            #expect(failed.load(ordering: .relaxed) == 0, "no attempt failed")
            #expect(connected.load(ordering: .relaxed) == count)
            #expect(subscribed.load(ordering: .relaxed) == count)

            let rss1 = Self.statusKiB("VmRSS"), vm1 = Self.statusKiB("VmSize"), fds1 = Self.openFileCount()
            let rssPerConnection = Double(rss1 - rss0) / Double(count)
            let vmPerConnection = Double(vm1 - vm0) / Double(count)
            print("scale: \(count) connections: RSS \(rssPerConnection) KiB, virtual \(vmPerConnection) KiB, fds \(fds1 - fds0) per connection")
            #expect(fds1 - fds0 == count, "one fd per connection")
            // Was ~40 KiB RSS and ~190 KiB virtual per connection (issue 9); the 1 KiB goal is
            // not reached yet (the client, engine and connection objects, see docs/benchmarks.md).
            #expect(rssPerConnection < 8, "RSS per idle connection")
            #expect(vmPerConnection < 16, "virtual memory per idle connection")

            // Fan-out: one message to each client's topic.
            let publisherUp = Atomic<Bool>(false)
            let publisher = NodeMCUClient(clientID: "\(prefix)-pub", eventLoop: loop)
            try publisher.connect(broker.host, port: Int(broker.port), connected: { _ in publisherUp.store(true, ordering: .relaxed) })
            try await waitUntil(seconds: 10) { publisherUp.load(ordering: .relaxed) }
            loop.execute {
                for i in 0..<count { try? publisher.publish("\(prefix)/\(i)", Array("\(i)".utf8)) }
            }
            try await waitUntil(seconds: 30) { received.load(ordering: .relaxed) == count }
            #expect(received.load(ordering: .relaxed) == count, "every client received its message")
            #expect(wrongPayload.load(ordering: .relaxed) == 0)

            for client in clients { client.close() }
            publisher.close()
            warmup.close()
            clients.removeAll()
            try await Task.sleep(for: .milliseconds(300))
        }
    }

    /// Polls `condition` every 10 ms for at most `seconds`.
    func waitUntil(seconds: Double, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while !condition() && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}
