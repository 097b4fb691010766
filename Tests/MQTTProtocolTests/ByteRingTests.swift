import RingBuffers
import Testing

@Suite struct ByteRingTests {
    @Test func capacityIsRoundedToPowerOfTwo() {
        let ring = ByteRing(initialCapacity: 100, maximumCapacity: 1000)
        #expect(ring.capacity == 128)
        #expect(ring.maximumCapacity == 1024)
    }

    @Test func fillAndConsumeAcrossTheWrapPoint() {
        let ring = ByteRing(initialCapacity: 64, maximumCapacity: 64)
        #expect(ring.append([UInt8](repeating: 1, count: 48)) == 48)
        ring.consume(40)
        // 8 readable at positions 40..<48; write 50 more: 16 at the end, 34 wrapped to the front.
        let input = (0..<50).map { UInt8($0) }
        #expect(ring.append(input) == 50)
        #expect(ring.readableBytes == 58)
        #expect(!ring.isContiguous(offset: 8, count: 50))
        #expect(ring.contiguousRegion(offset: 8, count: 50) == nil)
        #expect(ring.readBytes(offset: 8, count: 50) == input)
        #expect(ring.byte(at: 8 + 17) == 17)
        // Full at the maximum: no writable region, append copies nothing more.
        #expect(ring.append([UInt8](repeating: 9, count: 10)) == 6)
        #expect(ring.writableRegion(preferred: 100).count == 0)
        ring.consume(58 + 6)
        #expect(ring.isEmpty)
        #expect(ring.writableRegion().count == 64)
    }

    @Test func growsUpToTheMaximumAndKeepsBytesInOrder() {
        let ring = ByteRing(initialCapacity: 64, maximumCapacity: 256)
        ring.append([UInt8](repeating: 0, count: 60))
        ring.consume(50)
        let input = (0..<200).map { UInt8(truncatingIfNeeded: $0) }
        #expect(ring.append(input) == 200)
        #expect(ring.capacity == 256)
        #expect(ring.readBytes(offset: 10, count: 200) == input)
        #expect(ring.reserve(512) == false)
        #expect(ring.reserve(256) == true)
    }
}
