import MQTTProtocol
import RingBuffers
import Testing

/// Framing in the ring: incomplete packets, the wrap point, growth, oversize skipping.
@Suite struct DecoderFramingTests {
    /// A ring holding `bytes` starting at storage position `offset` (wrapping past the end).
    static func ring(capacity: Int, holding bytes: [UInt8], at offset: Int) -> ByteRing {
        let ring = ByteRing(initialCapacity: capacity, maximumCapacity: capacity)
        // Keep one filler byte readable so that the ring does not reset its indices when emptied.
        ring.append([UInt8](repeating: 0xEE, count: offset))
        ring.consume(offset - 1)
        ring.append(bytes)
        ring.consume(1)
        return ring
    }

    @Test func incompletePacketsConsumeNothing() throws {
        let bytes = try encoded(.publish(PublishPacket(topic: "a/b", payload: [UInt8](repeating: 7, count: 300), qos: .atLeastOnce, packetID: 3)))
        for cut in 0..<bytes.count {
            let ring = ByteRing(initialCapacity: 1024)
            ring.append(Array(bytes.prefix(cut)))
            var decoder = MQTTDecoder()
            #expect(try decoder.next(in: ring) == nil, "cut at \(cut)")
            #expect(ring.readableBytes == cut)
            ring.append(Array(bytes.dropFirst(cut)))
            let packet = try decoder.next(in: ring)
            #expect(packet?.makeOwned() == .publish(PublishPacket(topic: "a/b", payload: [UInt8](repeating: 7, count: 300), qos: .atLeastOnce, packetID: 3)))
        }
    }

    @Test func headerStraddlingTheWrapPoint() throws {
        let packet = Packet.publish(PublishPacket(topic: "t/1", payload: [UInt8](repeating: 1, count: 200)))
        let bytes = try encoded(packet)  // 3-byte fixed header
        for offset in [1023, 1022] {
            let ring = Self.ring(capacity: 1024, holding: bytes, at: offset)
            #expect(!ring.isContiguous(offset: 0, count: 3))
            var decoder = MQTTDecoder()
            #expect(try decoder.next(in: ring)?.makeOwned() == packet)
            // The body starts after the wrap, so it is read in place.
            #expect(decoder.scratchCopies == 0)
        }
    }

    @Test func bodyStraddlingTheWrapPointIsCopiedOnce() throws {
        let packet = Packet.publish(PublishPacket(topic: "t/1", payload: (0..<200).map { UInt8($0) }, qos: .exactlyOnce, packetID: 9))
        let bytes = try encoded(packet)
        let ring = Self.ring(capacity: 256, holding: bytes, at: 200)
        var decoder = MQTTDecoder()
        guard case .publish(let view) = try decoder.next(in: ring) else {
            Issue.record("expected a PUBLISH")
            return
        }
        #expect(decoder.scratchCopies == 1)
        #expect(view.makeOwned() == PublishPacket(topic: "t/1", payload: (0..<200).map { UInt8($0) }, qos: .exactlyOnce, packetID: 9))
        // The view points outside the ring's storage (into the scratch buffer).
        let storage = ring.firstReadableRegion.baseAddress! - 200
        let inRing = view.payload.baseAddress! >= storage && view.payload.baseAddress! < storage + ring.capacity
        #expect(!inRing)
        #expect(try decoder.next(in: ring) == nil)
        #expect(ring.isEmpty)
    }

    @Test func scratchBufferIsReusedAcrossManyWrappedPackets() throws {
        let ring = ByteRing(initialCapacity: 128, maximumCapacity: 128)
        var decoder = MQTTDecoder(maximumPacketSize: 128)
        var expected: [Packet] = []
        var stream: [UInt8] = []
        for i in 0..<200 {
            let packet = Packet.publish(PublishPacket(topic: "x", payload: [UInt8](repeating: UInt8(i & 0xFF), count: 30 + i % 40)))
            expected.append(packet)
            stream += try encoded(packet)
        }
        var decoded: [Packet] = []
        // 37-byte reads leave a partial packet behind, so packets keep crossing the wrap point.
        try Self.stream(stream, chunk: 37, ring: ring, decoder: &decoder) { packet, _ in decoded.append(packet.makeOwned()) }
        #expect(decoded == expected)
        #expect(decoder.scratchCopies > 10)
        #expect(ring.capacity == 128)
    }

    @Test func ringGrowsForAPacketLargerThanItsCapacity() throws {
        let packet = Packet.publish(PublishPacket(topic: "big", payload: [UInt8](repeating: 5, count: 5000)))
        let bytes = try encoded(packet)
        let ring = ByteRing(initialCapacity: 64, maximumCapacity: 1 << 16)
        var decoder = MQTTDecoder()
        var result: Packet?
        var index = 0
        // Fill like a socket reader: at most what the writable region offers, 64 bytes a time.
        for _ in 0..<10_000 where result == nil {
            if let p = try decoder.next(in: ring) {
                result = p.makeOwned()
                break
            }
            let region = ring.writableRegion(preferred: 64)
            let n = min(region.count, 64, bytes.count - index)
            #expect(n > 0, "the decoder must have grown the ring")
            if n == 0 { break }
            region.copyBytes(from: bytes[index..<(index + n)])
            ring.commitWrite(n)
            index += n
        }
        #expect(result == packet)
        #expect(ring.capacity >= bytes.count)
    }

    @Test func releaseLastFrameFreesTheRingRightAway() throws {
        let ring = ByteRing(initialCapacity: 64)
        ring.append([0x40, 0x02, 0x00, 0x01, 0xD0, 0x00])
        var decoder = MQTTDecoder()
        #expect(try decoder.next(in: ring)?.makeOwned() == .puback(packetID: 1))
        #expect(ring.readableBytes == 6)
        decoder.releaseLastFrame(in: ring)
        #expect(ring.readableBytes == 2)
        decoder.releaseLastFrame(in: ring)
        #expect(ring.readableBytes == 2)
        #expect(try decoder.next(in: ring)?.makeOwned() == .pingresp)
        #expect(try decoder.next(in: ring) == nil)
        #expect(ring.isEmpty)
    }

    /// Streams `bytes` into `ring` in chunks of `chunk` and collects what the decoder reports.
    static func stream(
        _ bytes: [UInt8], chunk: Int, ring: ByteRing, decoder: inout MQTTDecoder,
        onPacket: (InboundPacket, _ skipping: Bool) -> Void
    ) throws(MQTTProtocolError) {
        var index = 0
        while index < bytes.count {
            let n = min(chunk, bytes.count - index)
            let copied = bytes[index..<(index + n)].withUnsafeBytes { ring.append($0) }
            index += copied
            for _ in 0..<1000 {
                guard let packet = try decoder.next(in: ring) else { break }
                onPacket(packet, decoder.isSkipping)
            }
            if copied == 0 { break }
        }
    }

    @Test(arguments: [1, 7, 64, 1000])
    func oversizePublishIsReportedOnceAndSkipped(chunk: Int) throws {
        let payload = (0..<1000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let big = try encoded(.publish(PublishPacket(topic: "big/topic", payload: payload, qos: .atLeastOnce, packetID: 7)))
        let after = try encoded(.pingresp) + encoded(.publish(PublishPacket(topic: "s", payload: [1, 2])))
        let ring = ByteRing(initialCapacity: 64, maximumCapacity: 1 << 20)
        var decoder = MQTTDecoder(maximumPacketSize: 64)
        var reports: [String] = []
        var sawSkipping = false
        try Self.stream(big + after, chunk: chunk, ring: ring, decoder: &decoder) { packet, skipping in
            switch packet {
            case .oversizePublish(let view):
                // Header 3 bytes (remaining length 1013), topic 2 + 9, packet id 2: 48 bytes of payload fit.
                #expect(view.topicString == "big/topic")
                #expect(view.packetID == 7)
                #expect(view.qos == .atLeastOnce)
                #expect(view.totalPayloadLength == 1000)
                #expect([UInt8](view.payloadPrefix) == Array(payload.prefix(48)))
                reports.append("oversize")
            case .pingresp: reports.append("pingresp")
            case .publish(let view): reports.append("publish \(view.topicString) \([UInt8](view.payload))")
            default: reports.append("other")
            }
            sawSkipping = sawSkipping || skipping
        }
        #expect(reports == ["oversize", "pingresp", "publish s [1, 2]"])
        #expect(!decoder.isSkipping)
        // The payload was never buffered whole.
        if chunk <= 64 { #expect(ring.capacity <= 128) }
        if chunk < 1000 { #expect(sawSkipping || chunk >= big.count) }
    }

    @Test func oversizeSkipStateCountsDown() throws {
        let big = try encoded(.publish(PublishPacket(topic: "t", payload: [UInt8](repeating: 0, count: 500))))
        let ring = ByteRing(initialCapacity: 64, maximumCapacity: 1 << 20)
        var decoder = MQTTDecoder(maximumPacketSize: 100)
        ring.append(Array(big.prefix(150)))
        guard case .oversizePublish(let view) = try decoder.next(in: ring) else {
            Issue.record("expected an oversize PUBLISH")
            return
        }
        #expect(view.payloadPrefix.count == 100 - 3 - 3)
        #expect(decoder.bytesToSkip == big.count - 100)
        decoder.releaseLastFrame(in: ring)
        #expect(ring.isEmpty)
        #expect(decoder.bytesToSkip == big.count - 150)
        ring.append(Array(big.dropFirst(150)) + [0xC0, 0x00])
        #expect(try decoder.next(in: ring)?.makeOwned() == .pingreq)
        #expect(decoder.bytesToSkip == 0)
    }

    @Test func oversizePublishWhoseTopicDoesNotFitIsAnError() throws {
        let big = try encoded(.publish(PublishPacket(topic: String(repeating: "t", count: 100), payload: [1])))
        let error = thrownError { () throws(MQTTProtocolError) in _ = try decodeAll(big, maximumPacketSize: 50) }
        #expect(error == .packetTooLarge(size: big.count, limit: 50))
    }
}
