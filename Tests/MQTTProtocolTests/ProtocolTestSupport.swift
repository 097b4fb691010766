import MQTTProtocol
import RingBuffers
import Testing

/// Encodes one packet into a fresh buffer.
func encoded(_ packet: Packet, _ version: ProtocolVersion = .v3_1_1) throws(MQTTProtocolError) -> [UInt8] {
    let buffer = OutboundBuffer(initialCapacity: 64)
    try MQTTEncoder.encode(packet, version: version, into: buffer)
    return buffer.bytes()
}

/// The error `body` throws, or nil.
func thrownError(_ body: () throws(MQTTProtocolError) -> Void) -> MQTTProtocolError? {
    do {
        try body()
        return nil
    } catch {
        return error
    }
}

/// Decodes every complete packet in `bytes` (fed at once) and copies each out.
func decodeAll(
    _ bytes: [UInt8], version: ProtocolVersion = .v3_1_1, maximumPacketSize: Int = 1 << 20
) throws(MQTTProtocolError) -> [Packet] {
    let ring = ByteRing(initialCapacity: 64, maximumCapacity: 1 << 22)
    ring.append(bytes)
    var decoder = MQTTDecoder(maximumPacketSize: maximumPacketSize, version: version)
    var packets: [Packet] = []
    // Bounded: each iteration consumes at least two bytes.
    for _ in 0...bytes.count {
        guard let packet = try decoder.next(in: ring) else { break }
        packets.append(packet.makeOwned())
    }
    return packets
}

/// Expects decoding `bytes` to fail with `expected`, whose rule is `rule`.
func expectDecodeError(
    _ bytes: [UInt8], _ expected: MQTTProtocolError, rule: String, version: ProtocolVersion = .v3_1_1,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let error = thrownError { () throws(MQTTProtocolError) in _ = try decodeAll(bytes, version: version) }
    #expect(error == expected, sourceLocation: sourceLocation)
    #expect(error?.rule == rule, sourceLocation: sourceLocation)
}

/// Expects encoding `packet` to fail with `expected`, whose rule is `rule`, writing nothing.
func expectEncodeError(
    _ packet: Packet, _ expected: MQTTProtocolError, rule: String, version: ProtocolVersion = .v3_1_1,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let buffer = OutboundBuffer(initialCapacity: 64)
    let error = thrownError { () throws(MQTTProtocolError) in try MQTTEncoder.encode(packet, version: version, into: buffer) }
    #expect(error == expected, sourceLocation: sourceLocation)
    #expect(error?.rule == rule, sourceLocation: sourceLocation)
    #expect(buffer.isEmpty, "nothing is written on error", sourceLocation: sourceLocation)
}

/// Bytes of an ASCII string.
func ascii(_ s: String) -> [UInt8] { Array(s.utf8) }

/// A small deterministic PRNG (SplitMix64) so that property tests are reproducible.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A value in `0..<n` (a slight modulo bias is fine for tests).
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}
