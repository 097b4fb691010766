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
/// - A shared subscription `$share/{group}/{filter}` matches what `{filter}` matches (the
///   broker delivers each message to one member of the group; the client routes it like the
///   plain filter).
///
/// The inputs are expected to be valid (see ``MQTTValidation``). Invalid input never traps: a
/// `#` that is not alone in the last level, or a `+` that shares its level, is compared as an
/// ordinary character, and wildcard characters in the topic are ordinary characters too.
public enum TopicMatcher {
    // Computed, not stored: a stored `static let` is reached through a lazy-initialisation
    // accessor from inlined code, which costs a call per byte.
    /// `/`, the level separator [MQTT-4.7.1-1].
    @inlinable static var separator: UInt8 { 0x2F }
    /// `+`, the single-level wildcard [MQTT-4.7.1-3].
    @inlinable static var singleLevel: UInt8 { 0x2B }
    /// `#`, the multi-level wildcard [MQTT-4.7.1-2].
    @inlinable static var multiLevel: UInt8 { 0x23 }
    /// `$`, the first character of server-specific topics such as `$SYS` [MQTT-4.7.2-1].
    @inlinable static var dollar: UInt8 { 0x24 }

    /// Tells whether `topic` matches `filter`.
    ///
    /// Allocation-free, one pass over the two inputs.
    ///
    /// - Parameters:
    ///   - filter: The UTF-8 bytes of a topic filter, wildcards allowed.
    ///   - topic: The UTF-8 bytes of a topic name, as received in a PUBLISH.
    /// - Returns: `true` when every level of `topic` is matched by `filter`.
    @inlinable
    public static func matches(filter: UnsafeRawBufferPointer, topic: UnsafeRawBufferPointer) -> Bool {
        // A shared subscription `$share/{group}/{filter}` matches what `{filter}` matches.
        if filter.count > 7 && filter[0] == dollar, let inner = MQTTValidation.sharedFilterStart(filter) {
            return matchesPlain(filter: UnsafeRawBufferPointer(rebasing: filter[inner...]), topic: topic)
        }
        return matchesPlain(filter: filter, topic: topic)
    }

    /// ``matches(filter:topic:)`` for a filter that is not a shared subscription.
    @inlinable
    static func matchesPlain(filter: UnsafeRawBufferPointer, topic: UnsafeRawBufferPointer) -> Bool {
        let filterCount = filter.count
        let topicCount = topic.count
        // [MQTT-4.7.2-1]: a leading wildcard level never matches a `$` topic.
        if topicCount > 0 && topic[0] == dollar && filterCount > 0
            && (filter[0] == singleLevel || filter[0] == multiLevel)
            && (filterCount == 1 || filter[1] == separator)
        {
            return false
        }
        // One pass over both inputs. `f` and `t` are the starts of the current levels; `t` past
        // the end means every topic level is consumed (a trailing `/` leaves one more, empty,
        // level to consume).
        var f = 0
        var t = 0
        while true {
            if f < filterCount && filter[f] == multiLevel && f &+ 1 == filterCount {
                // `#` covers the parent level (already matched) and all remaining levels.
                return true
            }
            if t > topicCount { return false }
            if f < filterCount && filter[f] == singleLevel
                && (f &+ 1 == filterCount || filter[f &+ 1] == separator)
            {
                // `+` consumes exactly one topic level, whatever it holds.
                f &+= 1
                while t < topicCount && topic[t] != separator { t &+= 1 }
            } else {
                // A literal level: equal bytes up to the separator or the end in both.
                while f < filterCount && t < topicCount {
                    let b = filter[f]
                    if b != topic[t] { return false }
                    if b == separator { break }
                    f &+= 1
                    t &+= 1
                }
                if f < filterCount && filter[f] != separator { return false }
                if t < topicCount && topic[t] != separator { return false }
            }
            // Both are at a separator or their end.
            if f == filterCount { return t == topicCount }
            f &+= 1
            t &+= 1
        }
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
