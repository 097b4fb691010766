/// How long the client waits before each reconnect attempt: exponential back-off with a cap and
/// downward jitter.
///
/// The delay before attempt `n` (0 for the first retry after a loss) is
///
///     base(n)  = min(initialDelay × multiplier^n, maximumDelay)
///     delay(n) = base(n) × (1 − jitter × r)        r ∈ [0, 1), supplied by the caller
///
/// so it never exceeds `maximumDelay` and never falls below `(1 − jitter) × base(n)`. Jitter
/// only shortens the wait, which spreads a crowd of clients that lost the same broker over
/// `[0.8, 1] × base` (with the default 0.2) instead of letting them return in lock step. The
/// random value comes from the caller (the state machine draws it from a generator seeded in
/// its configuration), so tests are deterministic.
///
/// With the defaults (initial 1 s, multiplier 2, maximum 60 s, jitter 0.2):
///
/// | attempt n | base(n) | delay range (r from 1 to 0) |
/// |---|---|---|
/// | 0 | 1 s | 0.8 s – 1 s |
/// | 1 | 2 s | 1.6 s – 2 s |
/// | 2 | 4 s | 3.2 s – 4 s |
/// | 3 | 8 s | 6.4 s – 8 s |
/// | 4 | 16 s | 12.8 s – 16 s |
/// | 5 | 32 s | 25.6 s – 32 s |
/// | 6 and later | 60 s (cap) | 48 s – 60 s |
///
/// The attempt counter restarts at 0 when a CONNACK accepts a connection.
public struct ReconnectBackoff: Sendable, Hashable {
    /// Delay base for the first attempt. Default 1 s.
    public var initialDelay: Duration
    /// Largest delay. Default 60 s.
    public var maximumDelay: Duration
    /// Growth factor per attempt (at least 1). Default 2.
    public var multiplier: Double
    /// Fraction of the base that jitter may take off, clamped to 0...1. Default 0.2.
    public var jitter: Double

    /// Creates a back-off policy.
    ///
    /// - Parameters:
    ///   - initialDelay: Delay base for the first attempt.
    ///   - maximumDelay: Cap on every delay.
    ///   - multiplier: Growth factor per attempt; values below 1 count as 1.
    ///   - jitter: Fraction of the base that jitter may take off (0 = none, clamped to 0...1).
    public init(
        initialDelay: Duration = .seconds(1),
        maximumDelay: Duration = .seconds(60),
        multiplier: Double = 2,
        jitter: Double = 0.2
    ) {
        self.initialDelay = initialDelay
        self.maximumDelay = maximumDelay
        self.multiplier = multiplier
        self.jitter = jitter
    }

    /// The delay before attempt `attempt`.
    ///
    /// - Parameters:
    ///   - attempt: 0 for the first retry after a loss, counting up per failed attempt.
    ///   - random: A value in `0..<1` (values outside are clamped).
    /// - Returns: `min(initialDelay × multiplier^attempt, maximumDelay) × (1 − jitter × random)`.
    public func delay(attempt: Int, random: Double) -> Duration {
        let cap = Double(maximumDelay.clampedNanoseconds)
        var base = Double(initialDelay.clampedNanoseconds)
        let factor = max(1, multiplier)
        var n = 0
        // Bounded by the cap, not by `attempt` (which grows for as long as the broker is away).
        while n < attempt && base < cap && base > 0 && factor > 1 {
            base *= factor
            n += 1
        }
        base = min(base, cap)
        let r = min(max(random, 0), 1)
        let j = min(max(jitter, 0), 1)
        let nanoseconds = (base * (1 - j * r)).rounded(.down)
        return .nanoseconds(Int64(min(nanoseconds, Double(Int64.max / 2))))
    }
}

/// SplitMix64: a small deterministic generator for back-off jitter (not for cryptography).
struct JitterGenerator: Sendable {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A value in `0..<1` with 53 random bits.
    mutating func nextUnit() -> Double {
        Double(next() >> 11) * 0x1p-53
    }
}
