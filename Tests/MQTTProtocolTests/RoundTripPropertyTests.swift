import MQTTProtocol
import RingBuffers
import Testing

/// Random packets, encoded, fed to the decoder split at every byte boundary and across the ring's
/// wrap point, decoded back equal. The PRNG is seeded, so a failure names a reproducible seed.
@Suite struct RoundTripPropertyTests {
    struct Generator {
        var rng: SplitMix64

        mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &rng) }
        mutating func bool() -> Bool { Bool.random(using: &rng) }
        mutating func bytes(_ range: ClosedRange<Int>) -> [UInt8] {
            (0..<int(range)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        }
        mutating func qos() -> QoS { QoS.allCases[int(0...2)] }
        mutating func packetID() -> UInt16 { UInt16.random(in: 1...UInt16.max, using: &rng) }

        static let levels = ["a", "sensors", "données", "日本", "x1", "$SYS", "temp", "€", "z"]

        mutating func topicName() -> String {
            (0..<int(1...4)).map { _ in Self.levels[int(0...(Self.levels.count - 1))] }.joined(separator: "/")
        }

        mutating func topicFilter() -> String {
            var levels = (0..<int(1...4)).map { _ in int(0...4) == 0 ? "+" : Self.levels[int(0...(Self.levels.count - 1))] }
            if int(0...3) == 0 { levels.append("#") }
            return levels.joined(separator: "/")
        }

        mutating func string(_ maxLength: Int) -> String {
            (0..<int(0...maxLength)).map { _ in ["a", "b", "Z", "9", "-", "é", "日"][int(0...6)] }.joined()
        }

        mutating func packet(version: ProtocolVersion) -> Packet {
            switch int(0...13) {
            case 0:
                let clean = bool()
                var id = string(23)
                if version == .v3_1 && id.utf8.count > 23 || id.isEmpty && (version == .v3_1 || !clean) { id = "c" }
                let username: String? = bool() ? string(10) : nil
                return .connect(ConnectPacket(
                    version: version, clientID: id, cleanSession: clean, keepAlive: UInt16(int(0...65_535)),
                    will: bool() ? Will(topic: topicName(), payload: bytes(0...40), qos: qos(), retain: bool()) : nil,
                    username: username, password: username != nil && bool() ? bytes(0...20) : nil))
            case 1:
                let code = ConnectReturnCode.allCases[int(0...5)]
                return .connack(ConnAckPacket(sessionPresent: version == .v3_1_1 && code == .accepted && bool(), returnCode: code))
            case 2, 3, 4:
                let qos = qos()
                let payload = int(0...5) == 0 ? bytes(100...400) : bytes(0...40)
                return .publish(PublishPacket(
                    topic: topicName(), payload: payload, qos: qos, retain: bool(),
                    dup: qos != .atMostOnce && bool(), packetID: qos == .atMostOnce ? 0 : packetID()))
            case 5: return .puback(packetID: packetID())
            case 6: return .pubrec(packetID: packetID())
            case 7: return .pubrel(packetID: packetID())
            case 8: return .pubcomp(packetID: packetID())
            case 9:
                return .subscribe(SubscribePacket(
                    packetID: packetID(), subscriptions: (0..<int(1...4)).map { _ in TopicSubscription(filter: topicFilter(), qos: qos()) }))
            case 10:
                let codes: [SubAckReturnCode] = (0..<int(1...5)).map { _ in int(0...3) == 0 ? .failure : .granted(qos()) }
                return .suback(SubAckPacket(packetID: packetID(), returnCodes: codes))
            case 11:
                return bool()
                    ? .unsubscribe(UnsubscribePacket(packetID: packetID(), filters: (0..<int(1...3)).map { _ in topicFilter() }))
                    : .unsuback(packetID: packetID())
            case 12: return bool() ? .pingreq : .pingresp
            default: return .disconnect
            }
        }
    }

    /// Feeds `stream` in the given chunk sizes into a ring whose write position starts at
    /// `offset`, decoding after every chunk.
    static func decode(
        _ stream: [UInt8], chunks: [Int], offset: Int, capacity: Int, version: ProtocolVersion
    ) throws(MQTTProtocolError) -> (packets: [Packet], scratchCopies: Int) {
        let ring = ByteRing(initialCapacity: capacity, maximumCapacity: 1 << 20)
        ring.append([UInt8](repeating: 0xEE, count: offset + 1))
        ring.consume(offset)
        var decoder = MQTTDecoder(version: version)
        var packets: [Packet] = []
        var index = 0
        var filler = true
        var chunkIndex = 0
        while index < stream.count {
            let n = min(chunks[chunkIndex % chunks.count], stream.count - index)
            chunkIndex += 1
            let copied = stream[index..<(index + n)].withUnsafeBytes { ring.append($0) }
            index += copied
            if filler {
                // Drop the filler byte that kept the ring from resetting its indices.
                ring.consume(1)
                filler = false
            }
            for _ in 0..<10_000 {
                guard let packet = try decoder.next(in: ring) else { break }
                packets.append(packet.makeOwned())
            }
        }
        #expect(ring.readableBytes == 0 || decoder.bytesToSkip == 0)
        return (packets, decoder.scratchCopies)
    }

    @Test(arguments: 0..<40)
    func randomStreamsInRandomChunks(seed: Int) throws {
        var generator = Generator(rng: SplitMix64(seed: UInt64(seed)))
        let version: ProtocolVersion = seed % 3 == 0 ? .v3_1 : .v3_1_1
        let packets = (0..<30).map { _ in generator.packet(version: version) }
        var stream: [UInt8] = []
        for packet in packets { stream += try encoded(packet, version) }
        let capacity = [64, 256, 1024][seed % 3]
        var scratchCopies = 0
        for round in 0..<8 {
            let chunks = (0..<5).map { _ in generator.int(1...(round < 4 ? 16 : 300)) }
            let offset = generator.int(0...(capacity - 2))
            let decoded = try Self.decode(stream, chunks: chunks, offset: offset, capacity: capacity, version: version)
            #expect(decoded.packets == packets, "seed \(seed) round \(round) chunks \(chunks) offset \(offset)")
            scratchCopies += decoded.scratchCopies
        }
        // Packets did cross the wrap point (the scratch path ran).
        #expect(scratchCopies > 0)
    }

    @Test(arguments: 0..<6)
    func everySplitPointAndWrapOffset(seed: Int) throws {
        var generator = Generator(rng: SplitMix64(seed: 1000 + UInt64(seed)))
        let version: ProtocolVersion = seed % 2 == 0 ? .v3_1 : .v3_1_1
        let packets = (0..<6).map { _ in generator.packet(version: version) }
        var stream: [UInt8] = []
        for packet in packets { stream += try encoded(packet, version) }
        let capacity = 1024
        for split in 0...stream.count {
            // The wrap point moves with the split, so every byte of the stream sits at it once.
            let offset = (capacity - 1 - split % capacity + capacity) % (capacity - 1)
            let chunks = [max(1, split), max(1, stream.count - split)]
            let decoded = try Self.decode(stream, chunks: split == 0 ? [stream.count] : chunks, offset: offset, capacity: capacity, version: version)
            #expect(decoded.packets == packets, "seed \(seed) split \(split)")
        }
    }

    @Test(arguments: 0..<10)
    func fastPublishEncoderRoundTrips(seed: Int) throws {
        var generator = Generator(rng: SplitMix64(seed: 5000 + UInt64(seed)))
        let buffer = OutboundBuffer(initialCapacity: 64)
        var expected: [Packet] = []
        for _ in 0..<50 {
            let qos = generator.qos()
            let topic = generator.topicName()
            let payload = generator.bytes(0...300)
            let dup = qos != .atMostOnce && generator.bool()
            let retain = generator.bool()
            let id = qos == .atMostOnce ? 0 : generator.packetID()
            try Array(topic.utf8).withUnsafeBytes { t in
                try payload.withUnsafeBytes { p in
                    try MQTTEncoder.encodePublish(topic: t, payload: p, qos: qos, retain: retain, dup: dup, packetID: id, into: buffer)
                }
            }
            expected.append(.publish(PublishPacket(topic: topic, payload: payload, qos: qos, retain: retain, dup: dup, packetID: id)))
        }
        #expect(try decodeAll(buffer.bytes()) == expected)
    }
}
