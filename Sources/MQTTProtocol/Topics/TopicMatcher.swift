/// Matching of a topic name against a topic filter (MQTT 3.1.1 section 4.7).
///
/// Works on the raw UTF-8 bytes so that a received topic, still a view into the receive ring,
/// is matched without building a `String` and without allocating.
///
/// Rules, all applied level by level (levels are separated by `/` and may be empty [MQTT-4.7.1]):
/// - `+` matches exactly one level, including an empty one ("sport/+" matches "sport/" but not
///   "sport").
/// - `#` matches its parent level and any number of child levels ("sport/#" matches "sport",
///   "sport/" and "sport/tennis/player1"); "#" alone matches every topic.
/// - A filter whose first level is a wildcard does not match a topic that starts with `$`
///   [MQTT-4.7.2-1]; "$SYS/#" still matches "$SYS/broker".
/// - Any other level matches byte for byte (case-sensitive, no normalisation [MQTT-4.7.3-4]).
///
/// The inputs are expected to be valid (see ``MQTTValidation``). Invalid input never traps: a
/// `#` that is not alone in the last level, or a `+` that shares its level, is compared as an
/// ordinary character, and wildcard characters in the topic are ordinary characters too.
public enum TopicMatcher {
    /// `/`, the level separator [MQTT-4.7.1-1].
    @usableFromInline static let separator: UInt8 = 0x2F
    /// `+`, the single-level wildcard [MQTT-4.7.1-3].
    @usableFromInline static let singleLevel: UInt8 = 0x2B
    /// `#`, the multi-level wildcard [MQTT-4.7.1-2].
    @usableFromInline static let multiLevel: UInt8 = 0x23
    /// `$`, the first character of server-specific topics such as `$SYS` [MQTT-4.7.2-1].
    @usableFromInline static let dollar: UInt8 = 0x24

    /// Tells whether `topic` matches `filter`.
    ///
    /// Allocation-free and linear in the length of the two inputs.
    ///
    /// - Parameters:
    ///   - filter: The UTF-8 bytes of a topic filter, wildcards allowed.
    ///   - topic: The UTF-8 bytes of a topic name, as received in a PUBLISH.
    /// - Returns: `true` when every level of `topic` is matched by `filter`.
    @inlinable
    public static func matches(filter: UnsafeRawBufferPointer, topic: UnsafeRawBufferPointer) -> Bool {
        let filterCount = filter.count
        let topicCount = topic.count
        // [MQTT-4.7.2-1]: a leading wildcard level never matches a `$` topic.
        if topicCount > 0 && topic[0] == dollar && filterCount > 0
            && (filter[0] == singleLevel || filter[0] == multiLevel)
            && (filterCount == 1 || filter[1] == separator)
        {
            return false
        }
        // `f` and `t` are the starts of the current levels; a start past the end means that
        // every level has been consumed (a trailing `/` leaves one more, empty, level).
        var f = 0
        var t = 0
        while f <= filterCount {
            let filterEnd = levelEnd(filter, from: f)
            let isWholeLevel = filterEnd &- f == 1
            if isWholeLevel && filterEnd == filterCount && filter[f] == multiLevel {
                // `#` covers the parent level (already matched) and all remaining levels.
                return true
            }
            if t > topicCount { return false }
            let topicEnd = levelEnd(topic, from: t)
            if !(isWholeLevel && filter[f] == singleLevel) {
                if !levelsEqual(filter, f, filterEnd, topic, t, topicEnd) { return false }
            }
            f = filterEnd &+ 1
            t = topicEnd &+ 1
        }
        return t > topicCount
    }

    /// Tells whether `topic` matches `filter`; see the byte variant for the rules.
    ///
    /// - Parameters:
    ///   - filter: A topic filter, wildcards allowed.
    ///   - topic: A topic name.
    /// - Returns: `true` when every level of `topic` is matched by `filter`.
    public static func matches(filter: String, topic: String) -> Bool {
        var filter = filter
        var topic = topic
        return filter.withUTF8 { f in
            topic.withUTF8 { t in matches(filter: UnsafeRawBufferPointer(f), topic: UnsafeRawBufferPointer(t)) }
        }
    }

    /// The index of the `/` that ends the level starting at `start`, or `bytes.count`.
    @inlinable
    static func levelEnd(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Int {
        var i = start
        let count = bytes.count
        while i < count && bytes[i] != separator { i &+= 1 }
        return i
    }

    /// Byte-wise equality of `a[aStart..<aEnd]` and `b[bStart..<bEnd]`, eight bytes at a time.
    @inlinable
    static func levelsEqual(
        _ a: UnsafeRawBufferPointer, _ aStart: Int, _ aEnd: Int,
        _ b: UnsafeRawBufferPointer, _ bStart: Int, _ bEnd: Int
    ) -> Bool {
        let length = aEnd &- aStart
        if length != bEnd &- bStart { return false }
        var i = 0
        while i &+ 8 <= length {
            if a.loadUnaligned(fromByteOffset: aStart &+ i, as: UInt64.self)
                != b.loadUnaligned(fromByteOffset: bStart &+ i, as: UInt64.self)
            {
                return false
            }
            i &+= 8
        }
        while i < length {
            if a[aStart &+ i] != b[bStart &+ i] { return false }
            i &+= 1
        }
        return true
    }
}
