import MQTTProtocol
import Testing

@Suite struct ClientBackoffTests {
    @Test func defaultTableMatchesTheDocumentation() {
        let policy = ReconnectBackoff()
        // (attempt, base seconds) from the table in ReconnectBackoff's doc comment.
        let table: [(Int, Double)] = [(0, 1), (1, 2), (2, 4), (3, 8), (4, 16), (5, 32), (6, 60), (7, 60), (30, 60), (10_000, 60)]
        for (attempt, base) in table {
            #expect(policy.delay(attempt: attempt, random: 0) == .s(base))
            // r → 1 takes off up to 20 %.
            let shortest = policy.delay(attempt: attempt, random: 0.999_999_999)
            #expect(shortest >= .s(base * 0.8) && shortest < .s(base * 0.800_001))
            #expect(policy.delay(attempt: attempt, random: 0.5) == .s(base * 0.9))
        }
    }

    @Test func customPolicyAndClamping() {
        let policy = ReconnectBackoff(initialDelay: .milliseconds(100), maximumDelay: .seconds(5), multiplier: 3, jitter: 0)
        let expected: [Duration] = [.milliseconds(100), .milliseconds(300), .milliseconds(900), .milliseconds(2700), .seconds(5), .seconds(5)]
        for (attempt, delay) in expected.enumerated() {
            #expect(policy.delay(attempt: attempt, random: 0.7) == delay)
        }
        // Out-of-range inputs are clamped, never trap.
        let odd = ReconnectBackoff(initialDelay: .seconds(2), maximumDelay: .seconds(1), multiplier: 0.5, jitter: 7)
        #expect(odd.delay(attempt: -3, random: -1) == .seconds(1))
        #expect(odd.delay(attempt: 3, random: 2) == .zero)
        // Degenerate policies answer at once even for a huge attempt number.
        let flat = ReconnectBackoff(initialDelay: .seconds(3), maximumDelay: .seconds(60), multiplier: 1, jitter: 0)
        #expect(flat.delay(attempt: Int.max, random: 0) == .seconds(3))
        let zero = ReconnectBackoff(initialDelay: .zero, maximumDelay: .seconds(60), multiplier: 2, jitter: 0)
        #expect(zero.delay(attempt: Int.max, random: 0) == .zero)
    }

    @Test func instantArithmeticSaturates() {
        let start = MQTTInstant(nanoseconds: 10)
        #expect(start + .seconds(1) == MQTTInstant(nanoseconds: 1_000_000_010))
        #expect(start + .seconds(-5) == start)
        #expect(MQTTInstant(nanoseconds: .max - 1) + .seconds(1) == MQTTInstant(nanoseconds: .max))
        #expect(MQTTInstant(nanoseconds: 5) - MQTTInstant(nanoseconds: 8) == .nanoseconds(-3))
    }
}
