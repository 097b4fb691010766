@testable import MQTTProtocol
import Testing

/// `$share/{group}/{filter}`: validated as a filter, routed as its inner filter.
@Suite struct SharedSubscriptionTests {
    @Test func validation() throws {
        for valid in ["$share/g/sensors/#", "$share/group-1/a/+/c", "$share/g/#", "$share/g/+", "$share/g/$SYS/x",
                      "$share/g//", "$share", "$shared/x", "$sharex/g/t"] {
            #expect(throws: Never.self, "\(valid)") { try MQTTValidation.validateTopicFilter(valid) }
        }
        for invalid in ["$share/", "$share//t", "$share/g", "$share/g/", "$share/g+/t", "$share/+/t", "$share/#/t",
                        "$share/g#/t"] {
            #expect(throws: MQTTProtocolError.invalidSharedSubscription(invalid), "\(invalid)") {
                try MQTTValidation.validateTopicFilter(invalid)
            }
        }
        // The inner filter follows the ordinary rules.
        #expect(throws: MQTTProtocolError.misplacedMultiLevelWildcard("a/#/b")) {
            try MQTTValidation.validateTopicFilter("$share/g/a/#/b")
        }
        #expect(throws: MQTTProtocolError.misplacedSingleLevelWildcard("a+")) {
            try MQTTValidation.validateTopicFilter("$share/g/a+")
        }
        #expect(MQTTProtocolError.invalidSharedSubscription("x").rule == "MQTT-5.0-4.8.2")
    }

    @Test func matchingStripsTheGroup() {
        #expect(TopicMatcher.matches(filter: "$share/g/sensors/#", topic: "sensors/t"))
        #expect(TopicMatcher.matches(filter: "$share/g/sensors/#", topic: "sensors"))
        #expect(TopicMatcher.matches(filter: "$share/g/+/t", topic: "sensors/t"))
        #expect(!TopicMatcher.matches(filter: "$share/g/sensors/#", topic: "other/t"))
        #expect(!TopicMatcher.matches(filter: "$share/g/sensors/#", topic: "$share/g/sensors/t"))
        // `#` inside a shared subscription still does not match `$` topics [MQTT-4.7.2-1].
        #expect(!TopicMatcher.matches(filter: "$share/g/#", topic: "$SYS/x"))
        // Not a shared subscription: literal levels.
        #expect(TopicMatcher.matches(filter: "$share", topic: "$share"))
        #expect(TopicMatcher.matches(filter: "$shared/x", topic: "$shared/x"))
    }

    @Test func trieRoutesSharedFilters() throws {
        var trie = TopicTrie<String>()
        let shared = try trie.insert(filter: "$share/g/sensors/#", value: "shared")
        try trie.insert(filter: "sensors/+", value: "plain")
        try trie.insert(filter: "$share/h/sensors/t", value: "other group")
        #expect(trie.matches("sensors/t").sorted() == ["other group", "plain", "shared"])
        #expect(trie.matches("sensors/u/v") == ["shared"])
        #expect(trie.filter(for: shared) == "sensors/#")
        #expect(trie.remove(shared) == "shared")
        #expect(trie.matches("sensors/u/v").isEmpty)
        #expect(throws: MQTTProtocolError.invalidSharedSubscription("$share/g")) {
            try trie.insert(filter: "$share/g", value: "x")
        }
    }
}
