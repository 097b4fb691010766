public import RingBuffers

/// The variable-length "remaining length" of the fixed header (MQTT 3.1.1 section 2.2.3).
///
/// Seven bits per byte, least significant group first, the high bit set on every byte but the
/// last; at most four bytes, so at most 268,435,455.
public enum RemainingLength {
    /// The largest value four bytes can carry [MQTT-2.2.3].
    public static let maximum = 268_435_455

    /// How many bytes encode `value` (1...4); `value` must be in `0...maximum`.
    @inlinable
    public static func size(of value: Int) -> Int {
        if value < 128 { return 1 }
        if value < 16_384 { return 2 }
        if value < 2_097_152 { return 3 }
        return 4
    }

    /// Appends the encoding of `value` (in `0...maximum`).
    @inlinable
    public static func write(_ value: Int, into buffer: OutboundBuffer) {
        var v = value
        repeat {
            var b = UInt8(truncatingIfNeeded: v & 0x7F)
            v >>= 7
            if v > 0 { b |= 0x80 }
            buffer.writeByte(b)
        } while v > 0
    }

    /// Stores the encoding of `value` at `pointer`; returns the number of bytes written.
    @inlinable
    public static func store(_ value: Int, at pointer: UnsafeMutableRawPointer) -> Int {
        var v = value
        var i = 0
        repeat {
            var b = UInt8(truncatingIfNeeded: v & 0x7F)
            v >>= 7
            if v > 0 { b |= 0x80 }
            pointer.storeBytes(of: b, toByteOffset: i, as: UInt8.self)
            i &+= 1
        } while v > 0
        return i
    }
}
