import MQTTProtocol
import Testing

@Suite struct TopicMatcherTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let filter: String
        let topic: String
        let matches: Bool
        var testDescription: String { "\(filter) \(matches ? "~" : "!~") \(topic)" }
    }

    static func m(_ filter: String, _ topic: String) -> Case { Case(filter: filter, topic: topic, matches: true) }
    static func no(_ filter: String, _ topic: String) -> Case { Case(filter: filter, topic: topic, matches: false) }

    /// The examples of MQTT 3.1.1 sections 4.7.1.2, 4.7.1.3, 4.7.2 and 4.7.3, and the level rules
    /// around them.
    static let cases: [Case] = [
        // 4.7.1.2 multi-level wildcard
        m("sport/tennis/player1/#", "sport/tennis/player1"),
        m("sport/tennis/player1/#", "sport/tennis/player1/ranking"),
        m("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon"),
        m("sport/#", "sport"),
        m("sport/#", "sport/"),
        no("sport/#", "sports"),
        no("sport/tennis/player1/#", "sport/tennis/player2"),
        m("#", "sport/tennis/player1"),
        m("#", "/"),
        m("#", "a"),
        // 4.7.1.3 single-level wildcard
        m("sport/tennis/+", "sport/tennis/player1"),
        m("sport/tennis/+", "sport/tennis/player2"),
        no("sport/tennis/+", "sport/tennis/player1/ranking"),
        no("sport/+", "sport"),
        m("sport/+", "sport/"),
        m("+/+", "/finance"),
        m("/+", "/finance"),
        no("+", "/finance"),
        m("+/tennis/#", "sport/tennis/player1/ranking"),
        m("+/tennis/#", "sport/tennis"),
        no("+/tennis/#", "sport/badminton/player1"),
        m("sport/+/player1", "sport/tennis/player1"),
        no("sport/+/player1", "sport/tennis/player2"),
        m("+", "finance"),
        m("+/+", "/"),
        m("+", "é"),
        // 4.7.2 topics beginning with $ [MQTT-4.7.2-1]
        no("#", "$SYS/monitor/Clients"),
        no("+/monitor/Clients", "$SYS/monitor/Clients"),
        no("+", "$SYS"),
        no("+/#", "$SYS/a"),
        no("#", "$"),
        m("$SYS/#", "$SYS/monitor/Clients"),
        m("$SYS/#", "$SYS"),
        m("$SYS/monitor/+", "$SYS/monitor/Clients"),
        m("$SYS/+/Clients", "$SYS/monitor/Clients"),
        m("$", "$"),
        m("+/$SYS", "a/$SYS"),  // `$` is special only as the topic's first character
        m("#", "a/$SYS"),
        // 4.7.3 case-sensitive, empty levels are levels, no normalisation
        no("ACCOUNTS", "Accounts"),
        m("Accounts payable", "Accounts payable"),
        m("/", "/"),
        no("/", "//"),
        m("a//b", "a//b"),
        m("a/+/b", "a//b"),
        no("a/b", "a//b"),
        no("a//b", "a/b"),
        m("/a", "/a"),
        no("a", "/a"),
        no("/a", "a"),
        no("sport", "sport/"),
        no("sport/", "sport"),
        m("+/", "a/"),
        no("+/", "a"),
        m("//#", "//"),
        m("//#", "//x/y"),
        no("sport/tennis", "sport/tennis/player1"),
        no("sport/tennis/player1", "sport/tennis"),
        m("sport/tennis/player1", "sport/tennis/player1"),
        // Long levels, past the eight-byte comparison.
        m("abcdefghijklmnop/+", "abcdefghijklmnop/q"),
        no("abcdefghijklmnop/+", "abcdefghijklmnoq/q"),
        no("abcdefghijklmnopq", "abcdefghijklmnop"),
    ]

    @Test(arguments: cases)
    func specExamples(_ c: Case) {
        #expect(TopicMatcher.matches(filter: c.filter, topic: c.topic) == c.matches)
        // The byte form agrees, also on a view into a larger buffer (as a ring view would be).
        let framed = Array("<<".utf8) + Array(c.filter.utf8) + Array(">>".utf8)
        let topic = Array("##".utf8) + Array(c.topic.utf8) + Array("//".utf8)
        let result = framed.withUnsafeBytes { f in
            topic.withUnsafeBytes { t in
                TopicMatcher.matches(
                    filter: UnsafeRawBufferPointer(rebasing: f[2..<f.count - 2]),
                    topic: UnsafeRawBufferPointer(rebasing: t[2..<t.count - 2]))
            }
        }
        #expect(result == c.matches)
    }

    @Test func invalidInputNeverTrapsAndIsCompared() {
        // A `#` or `+` that is not a whole level is an ordinary character (documented behaviour).
        #expect(TopicMatcher.matches(filter: "sport/tennis#", topic: "sport/tennis#"))
        #expect(!TopicMatcher.matches(filter: "sport/tennis#", topic: "sport/tennis/x"))
        #expect(TopicMatcher.matches(filter: "a/#/b", topic: "a/#/b"))
        #expect(!TopicMatcher.matches(filter: "a/#/b", topic: "a/x/b"))
        #expect(TopicMatcher.matches(filter: "a+", topic: "a+"))
        #expect(!TopicMatcher.matches(filter: "a+", topic: "ab"))
        // Empty inputs: one empty level each.
        #expect(TopicMatcher.matches(filter: "", topic: ""))
        #expect(TopicMatcher.matches(filter: "+", topic: ""))
        #expect(TopicMatcher.matches(filter: "#", topic: ""))
        #expect(!TopicMatcher.matches(filter: "", topic: "a"))
        #expect(!TopicMatcher.matches(filter: "a", topic: ""))
        // A 65,535-byte topic of separators: 65,536 empty levels.
        let slashes = String(repeating: "/", count: 65_535)
        #expect(TopicMatcher.matches(filter: "#", topic: slashes))
        #expect(TopicMatcher.matches(filter: "//#", topic: slashes))
        #expect(!TopicMatcher.matches(filter: "+", topic: slashes))
        #expect(TopicMatcher.matches(filter: slashes, topic: slashes))
    }
}
