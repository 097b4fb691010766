import Foundation
import MQTTTestSupport
import Testing
import MQTTProtocol
@testable import UVMQTT
import UVReactor

/// The bound, in seconds, of every wait for something that should happen: a wait returns as
/// soon as its condition holds, so the bound costs nothing when the code works, and it is
/// generous because CI is a loaded 2-core machine (5 s was seen to run out there). Waits that
/// check that something does *not* happen pass their own short bound.
let testTimeout: Double = 20

/// Collects `count` messages from a stream, bounded in time.
func collect(_ stream: MQTTMessageStream, count: Int, within seconds: Double = testTimeout) async throws -> [MQTTMessage] {
    try await withDeadline(seconds, "receiving \(count) messages") {
        var result = [MQTTMessage]()
        var iterator = stream.makeAsyncIterator()
        while result.count < count, let message = await iterator.next() {
            result.append(message)
        }
        return result
    }
}

/// One live iterator over a stream, kept for the whole test: a back-pressure stream pauses the
/// client only while it is being iterated (a stream nobody iterates drops instead), so tests of
/// back-pressure read through one of these. Used by one task at a time.
final class StreamReader: @unchecked Sendable {
    private var iterator: MQTTMessageStream.AsyncIterator

    init(_ stream: MQTTMessageStream) {
        iterator = stream.makeAsyncIterator()
    }

    /// The next `count` messages, bounded in time.
    func collect(count: Int, within seconds: Double = testTimeout) async throws -> [MQTTMessage] {
        try await withDeadline(seconds, "receiving \(count) messages") {
            var result = [MQTTMessage]()
            while result.count < count, let message = await self.iterator.next() {
                result.append(message)
            }
            return result
        }
    }
}

/// Thread-safe event log for callback tests, with bounded waits.
final class EventLog: Sendable {
    private let entries = Locked<[(String, ContinuousClock.Instant)]>([])

    func add(_ event: String) {
        entries.withLock { $0.append((event, ContinuousClock.now)) }
    }

    var all: [String] { entries.withLock { $0.map(\.0) } }

    func count(_ event: String) -> Int { entries.withLock { $0.filter { $0.0 == event }.count } }

    /// When `event` was first logged.
    func time(of event: String) -> ContinuousClock.Instant? { entries.withLock { $0.first { $0.0 == event }?.1 } }

    /// Waits (polling, bounded) until `predicate` holds over the events; false on timeout.
    func wait(within seconds: Double = 5, until predicate: ([String]) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if predicate(all) { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return predicate(all)
    }

    /// Waits until `event` was logged at least `count` times.
    func wait(for event: String, count: Int = 1, within seconds: Double = testTimeout) async -> Bool {
        await wait(within: seconds) { $0.filter { $0 == event }.count >= count }
    }
}

/// A started event loop for a test, shut down (checking for leaked handles) by `stop`.
func makeLoop() -> EventLoop {
    let loop = EventLoop()
    loop.start()
    return loop
}

/// Fast reconnects for tests: 50 ms doubling up to 400 ms.
let testBackoff = ReconnectBackoff(initialDelay: .milliseconds(50), maximumDelay: .milliseconds(400), multiplier: 2, jitter: 0.1)

/// A client id unique to one test run.
func uniqueID(_ prefix: String) -> String {
    "\(prefix)-\(UInt32.random(in: 0...UInt32.max))"
}
