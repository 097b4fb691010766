/// A point on a monotonic clock, in nanoseconds from an arbitrary origin.
///
/// The client state machine never reads a clock: the caller passes the current instant with
/// every event (for example from `uv_hrtime()` or `ContinuousClock`), and tests drive time by
/// hand. Only differences between instants matter.
public struct MQTTInstant: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Nanoseconds since the clock's origin.
    public var nanoseconds: UInt64

    /// Creates an instant.
    ///
    /// - Parameter nanoseconds: Nanoseconds since the clock's origin.
    public init(nanoseconds: UInt64) {
        self.nanoseconds = nanoseconds
    }

    /// The clock's origin, useful as the start of a test.
    public static let zero = MQTTInstant(nanoseconds: 0)

    public static func < (lhs: MQTTInstant, rhs: MQTTInstant) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

    /// The instant `rhs` after `lhs`; negative durations count as zero and the sum saturates.
    public static func + (lhs: MQTTInstant, rhs: Duration) -> MQTTInstant {
        let (sum, overflow) = lhs.nanoseconds.addingReportingOverflow(rhs.clampedNanoseconds)
        return MQTTInstant(nanoseconds: overflow ? .max : sum)
    }

    /// The time from `rhs` to `lhs` (negative when `lhs` is earlier).
    public static func - (lhs: MQTTInstant, rhs: MQTTInstant) -> Duration {
        if lhs.nanoseconds >= rhs.nanoseconds {
            return .nanoseconds(Int64(clamping: lhs.nanoseconds - rhs.nanoseconds))
        }
        return .nanoseconds(-Int64(clamping: rhs.nanoseconds - lhs.nanoseconds))
    }

    public var description: String { "\(nanoseconds)ns" }
}

extension Duration {
    /// The duration in whole nanoseconds, negative values as 0, saturating at `UInt64.max`.
    @usableFromInline
    var clampedNanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return 0 }
        let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return .max }
        let (sum, overflow2) = whole.addingReportingOverflow(UInt64(max(0, attoseconds / 1_000_000_000)))
        return overflow2 ? .max : sum
    }
}
