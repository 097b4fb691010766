@testable import MQTTProtocol
import Testing

extension TopicTrie {
    /// Every value matching `topic`, in the trie's order.
    func matches(_ topic: String) -> [Value] {
        var found: [Value] = []
        forEachMatch(topic: topic) { found.append($0) }
        return found
    }

    /// Nodes in use, the root included.
    var liveNodeCount: Int { nodes.count { $0.live } }
}

@Suite struct TopicTrieTests {
    @Test func findsEveryMatchingFilter() throws {
        var trie = TopicTrie<String>()
        let filters = [
            "sport/tennis/player1/#", "sport/#", "#", "sport/tennis/+", "+/+", "/+", "+", "sport/+",
            "$SYS/#", "+/monitor/Clients", "sport/tennis/player1", "a//b", "a/+/b", "//#",
        ]
        for filter in filters { try trie.insert(filter: filter, value: filter) }
        #expect(trie.count == filters.count)
        let topics = [
            "sport/tennis/player1", "sport/tennis/player1/ranking", "sport", "sport/", "/finance", "finance",
            "$SYS/monitor/Clients", "a//b", "a/x/b", "//", "/", "sports/tennis", "$SYS",
        ]
        for topic in topics {
            let expected = filters.filter { TopicMatcher.matches(filter: $0, topic: topic) }.sorted()
            #expect(trie.matches(topic).sorted() == expected, "topic \(topic)")
        }
        #expect(trie.matches("sport").sorted() == ["#", "+", "sport/#"])
        #expect(trie.matches("$SYS/monitor/Clients") == ["$SYS/#"])
    }

    @Test func severalValuesPerFilterInInsertionOrderAndRemovalByToken() throws {
        var trie = TopicTrie<Int>()
        let first = try trie.insert(filter: "sensors/+/temp", value: 1)
        let second = try trie.insert(filter: "sensors/+/temp", value: 2)
        let third = try trie.insert(filter: "sensors/+/temp", value: 3)
        #expect(first != second)
        #expect(trie.matches("sensors/kitchen/temp") == [1, 2, 3])
        #expect(trie.remove(second) == 2)
        #expect(trie.remove(second) == nil)
        #expect(trie[second] == nil)
        #expect(trie[first] == 1)
        #expect(trie.count == 2)
        #expect(trie.matches("sensors/kitchen/temp") == [1, 3])
        let fourth = try trie.insert(filter: "sensors/+/temp", value: 4)
        // The freed entry is reused, but the old token stays stale.
        #expect(fourth.index == second.index)
        #expect(trie[second] == nil)
        #expect(trie.remove(second) == nil)
        #expect(trie.matches("sensors/kitchen/temp") == [1, 3, 4])
        #expect(trie.remove(first) == 1)
        #expect(trie.remove(fourth) == 4)
        #expect(trie.matches("sensors/kitchen/temp") == [3])
        #expect(trie.remove(third) == 3)
        #expect(trie.isEmpty)
        #expect(trie.matches("sensors/kitchen/temp").isEmpty)
        // Nodes nothing needs any more are pruned back to the root.
        #expect(trie.liveNodeCount == 1)
    }

    @Test func pruningKeepsSharedPrefixes() throws {
        var trie = TopicTrie<Int>()
        let deep = try trie.insert(filter: "a/b/c/d", value: 1)
        try trie.insert(filter: "a/b", value: 2)
        let plus = try trie.insert(filter: "a/+/#", value: 3)
        #expect(trie.liveNodeCount == 1 + 4 + 2)
        trie.remove(deep)
        #expect(trie.liveNodeCount == 1 + 2 + 2)
        #expect(trie.matches("a/b/c/d") == [3])
        #expect(trie.matches("a/b").sorted() == [2, 3])
        trie.remove(plus)
        #expect(trie.liveNodeCount == 3)
        #expect(trie.matches("a/b") == [2])
        #expect(trie.matches("a/x").isEmpty)
    }

    @Test func dollarTopicsAreNotMatchedByLeadingWildcards() throws {
        var trie = TopicTrie<String>()
        for filter in ["#", "+/monitor/Clients", "+", "+/#", "$SYS/#", "$SYS/monitor/+", "a/#"] {
            try trie.insert(filter: filter, value: filter)
        }
        #expect(trie.matches("$SYS/monitor/Clients").sorted() == ["$SYS/#", "$SYS/monitor/+"])
        #expect(trie.matches("$SYS") == ["$SYS/#"])
        #expect(trie.matches("$other").isEmpty)
        #expect(trie.matches("x/monitor/Clients").sorted() == ["#", "+/#", "+/monitor/Clients"])
        #expect(trie.matches("a/$SYS").sorted() == ["#", "+/#", "a/#"])
    }

    @Test func invalidFiltersAreRefusedWithTheirRule() {
        var trie = TopicTrie<Int>()
        #expect(throws: MQTTProtocolError.misplacedMultiLevelWildcard("a/#/b")) { try trie.insert(filter: "a/#/b", value: 1) }
        #expect(throws: MQTTProtocolError.misplacedSingleLevelWildcard("a+")) { try trie.insert(filter: "a+", value: 1) }
        #expect(throws: MQTTProtocolError.emptyTopic(field: .topicFilter)) { try trie.insert(filter: "", value: 1) }
        #expect(throws: MQTTProtocolError.nullCharacter(field: .topicFilter)) { try trie.insert(filter: "a\u{0}", value: 1) }
        #expect(trie.isEmpty)
        #expect(trie.liveNodeCount == 1)
    }

    @Test func filterForTokenRebuildsTheFilter() throws {
        var trie = TopicTrie<Int>()
        for filter in ["sport/+/player1/#", "#", "+", "/", "a//b", "$SYS/é/+", "/#"] {
            let token = try trie.insert(filter: filter, value: 0)
            #expect(trie.filter(for: token) == filter)
        }
        let token = try trie.insert(filter: "x/y", value: 1)
        trie.remove(token)
        #expect(trie.filter(for: token) == nil)
    }

    @Test func removeAllMakesOldTokensStale() throws {
        var trie = TopicTrie<Int>()
        let tokens = try (0..<10).map { try trie.insert(filter: "t/\($0)", value: $0) }
        trie.removeAll()
        #expect(trie.isEmpty)
        #expect(trie.matches("t/3").isEmpty)
        for token in tokens { #expect(trie[token] == nil) }
        let fresh = try trie.insert(filter: "t/3", value: 33)
        #expect(trie.remove(tokens[0]) == nil)
        #expect(trie.matches("t/3") == [33])
        #expect(trie[fresh] == 33)
    }

    @Test func bodyErrorStopsTheWalk() throws {
        struct Stop: Error, Equatable {}
        var trie = TopicTrie<Int>()
        for i in 0..<5 { try trie.insert(filter: "#", value: i) }
        var seen = 0
        #expect(throws: Stop()) {
            try trie.forEachMatch(topic: "a") { (value: Int) throws(Stop) in
                seen += 1
                if value == 2 { throw Stop() }
            }
        }
        #expect(seen == 3)
        let topic: [UInt8] = Array("a".utf8)
        #expect(topic.withUnsafeBytes { trie.hasMatch(topic: $0) })
        #expect(!TopicTrie<Int>().hasMatch(topic: UnsafeRawBufferPointer(start: nil, count: 0)))
    }

    @Test func manyFiltersGrowTheTableAndCompactTheKeys() throws {
        var trie = TopicTrie<Int>()
        var tokens: [TopicTrie<Int>.Token] = []
        for i in 0..<3_000 {
            tokens.append(try trie.insert(filter: "building-\(i % 7)/device-with-a-long-name-\(i)/temp", value: i))
        }
        #expect(trie.count == 3_000)
        for i in stride(from: 0, to: 3_000, by: 2) { #expect(trie.remove(tokens[i]) == i) }
        for i in [1, 2, 999, 1_000, 2_999] {
            let expected = i % 2 == 1 ? [i] : []
            #expect(trie.matches("building-\(i % 7)/device-with-a-long-name-\(i)/temp") == expected)
        }
        let before = trie.keyBytes.count
        for i in stride(from: 1, to: 3_000, by: 2) { trie.remove(tokens[i]) }
        #expect(trie.isEmpty)
        #expect(trie.liveNodeCount == 1)
        #expect(trie.keyBytes.count < before)
        // Reinsert after all that churn: lookups still find them.
        for i in 0..<100 { try trie.insert(filter: "building-\(i % 7)/device-with-a-long-name-\(i)/temp", value: i) }
        for i in 0..<100 { #expect(trie.matches("building-\(i % 7)/device-with-a-long-name-\(i)/temp") == [i]) }
    }

    @Test func deepFiltersAndHostileTopicsAreBounded() throws {
        var trie = TopicTrie<Int>()
        // 100 levels of `+`: deeper than the on-stack walk buffer.
        try trie.insert(filter: Array(repeating: "+", count: 100).joined(separator: "/"), value: 1)
        try trie.insert(filter: Array(repeating: "a", count: 100).joined(separator: "/"), value: 2)
        try trie.insert(filter: Array(repeating: "a", count: 50).joined(separator: "/") + "/#", value: 3)
        #expect(trie.matches(Array(repeating: "a", count: 100).joined(separator: "/")).sorted() == [1, 2, 3])
        #expect(trie.matches(Array(repeating: "b", count: 100).joined(separator: "/")) == [1])
        #expect(trie.matches(Array(repeating: "a", count: 99).joined(separator: "/")) == [3])
        // A topic of 65,535 separators (65,536 empty levels) against short filters.
        try trie.insert(filter: "#", value: 4)
        try trie.insert(filter: "+/+", value: 5)
        try trie.insert(filter: "//#", value: 6)
        #expect(trie.matches(String(repeating: "/", count: 65_535)).sorted() == [4, 6])
        #expect(trie.matches("/").sorted() == [4, 5, 6])
    }

    @Test func isSendableWhenTheValueIs() async throws {
        var trie = TopicTrie<Int>()
        try trie.insert(filter: "a/+", value: 7)
        let shared = trie
        let found = await Task.detached { shared.matches("a/b") }.value
        #expect(found == [7])
    }

    // MARK: Property test against TopicMatcher

    static let levels = ["a", "b", "ab", "", "$", "$SYS", "é", "abcdefghij"]

    static func randomTopic(_ random: inout SplitMix64) -> String {
        let count = Int.random(in: 1...5, using: &random)
        var parts: [String] = []
        for _ in 0..<count { parts.append(levels.randomElement(using: &random)!) }
        let topic = parts.joined(separator: "/")
        return topic.isEmpty ? "a" : topic
    }

    static func randomFilter(_ random: inout SplitMix64) -> String {
        let count = Int.random(in: 1...5, using: &random)
        var parts: [String] = []
        for index in 0..<count {
            switch Int.random(in: 0..<10, using: &random) {
            case 0...2: parts.append("+")
            case 3 where index == count - 1: parts.append("#")
            default: parts.append(levels.randomElement(using: &random)!)
            }
        }
        let filter = parts.joined(separator: "/")
        return filter.isEmpty ? "/" : filter
    }

    @Test(arguments: [1 as UInt64, 42, 0xDEAD_BEEF, 2026])
    func agreesWithTheMatcherOnRandomFiltersAndTopics(seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        var compared = 0
        var matched = 0
        for _ in 0..<60 {
            var trie = TopicTrie<Int>()
            var filters: [Int: String] = [:]
            var tokens: [Int: TopicTrie<Int>.Token] = [:]
            for id in 0..<Int.random(in: 1...40, using: &random) {
                // Repeat earlier filters now and then: several values per filter.
                let filter = id > 0 && Int.random(in: 0..<5, using: &random) == 0
                    ? filters[Int.random(in: 0..<id, using: &random)]!
                    : Self.randomFilter(&random)
                filters[id] = filter
                tokens[id] = try trie.insert(filter: filter, value: id)
            }
            for phase in 0..<2 {
                #expect(trie.count == filters.count)
                for _ in 0..<40 {
                    let topic = Self.randomTopic(&random)
                    let expected = filters.filter { TopicMatcher.matches(filter: $0.value, topic: topic) }.map(\.key)
                    let found = trie.matches(topic)
                    #expect(found.sorted() == expected.sorted(), "seed \(seed) topic \(topic) filters \(filters)")
                    compared += 1
                    matched += expected.count
                }
                if phase == 0 {
                    // Remove a random half, then compare again.
                    for id in filters.keys.sorted() where Bool.random(using: &random) {
                        #expect(trie.remove(tokens[id]!) == id)
                        filters[id] = nil
                    }
                }
            }
            for id in filters.keys { trie.remove(tokens[id]!) }
            #expect(trie.isEmpty)
            #expect(trie.liveNodeCount == 1)
        }
        #expect(compared == 60 * 2 * 40)
        // The generator must produce real matches, or the comparison proves little.
        #expect(matched > compared / 2)
    }
}
