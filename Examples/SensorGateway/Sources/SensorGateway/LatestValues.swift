import Foundation
import Synchronization

/// The latest message per topic, shared by the MQTT consumer (writer) and the HTTP handlers
/// (readers). Bounded: past `capacity` topics, new topics are counted and ignored.
final class LatestValues: Sendable {
    /// One topic's latest value, as `/latest` serves it.
    struct Entry: Codable, Sendable, Equatable {
        /// The payload as UTF-8 text (invalid bytes replaced).
        var value: String
        /// Messages seen on this topic.
        var count: Int
        /// When the latest arrived (seconds since 1970).
        var receivedAt: Double
        /// Whether the broker delivered it as a retained message.
        var retained: Bool
    }

    private let state = Mutex<(entries: [String: Entry], ignoredTopics: Int)>(([:], 0))
    let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// Records a message; returns false when the topic was new and the table is full.
    @discardableResult
    func record(topic: String, payload: [UInt8], retained: Bool, at date: Date = Date()) -> Bool {
        state.withLock { state in
            let value = String(decoding: payload, as: UTF8.self)
            if var entry = state.entries[topic] {
                entry.value = value
                entry.count += 1
                entry.receivedAt = date.timeIntervalSince1970
                entry.retained = retained
                state.entries[topic] = entry
                return true
            }
            guard state.entries.count < capacity else {
                state.ignoredTopics += 1
                return false
            }
            state.entries[topic] = Entry(value: value, count: 1, receivedAt: date.timeIntervalSince1970, retained: retained)
            return true
        }
    }

    /// A copy of the table.
    var snapshot: [String: Entry] { state.withLock { $0.entries } }

    /// The table's size.
    var count: Int { state.withLock { $0.entries.count } }
}
