import RingBuffers
import Testing

/// Issue 9: buffers that hold storage only while they hold bytes.
@Suite struct LazyBufferTests {
    @Test func aLazyRingHasNoStorageUntilWrittenAndGivesItBackWhenDrained() {
        let ring = ByteRing(initialCapacity: 0, maximumCapacity: 1 << 20)
        #expect(ring.capacity == 0)
        #expect(ring.append([1, 2, 3]) == 3)
        #expect(ring.capacity == 64)
        ring.releaseStorageIfEmpty()
        #expect(ring.capacity == 64, "not while bytes are readable")
        ring.consume(3)
        ring.releaseStorageIfEmpty()
        #expect(ring.capacity == 0)
    }

    @Test func aBorrowedBufferIsDecodedInPlaceAndOnlyThePartialPacketIsKept() {
        let ring = ByteRing(initialCapacity: 0, maximumCapacity: 1 << 20)
        let shared = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
        defer { shared.deallocate() }
        for i in 0..<100 { shared[i] = UInt8(i) }
        ring.adoptBorrowed(shared, readable: 100)
        #expect(ring.isBorrowing)
        #expect(ring.firstReadableRegion.baseAddress == UnsafeRawPointer(shared.baseAddress!), "in place")
        ring.consume(90)
        ring.endBorrow()
        #expect(!ring.isBorrowing)
        #expect(ring.capacity == 64)
        #expect(ring.readBytes(count: 10) == Array(90..<100).map(UInt8.init))
        // The next read: the partial goes in front of the new bytes in the shared buffer.
        ring.copyBytes(offset: 0, count: 10, into: shared.baseAddress!)
        shared[10] = 200
        ring.adoptBorrowed(shared, readable: 11)
        #expect(ring.readBytes(count: 11) == Array(90..<100).map(UInt8.init) + [200])
        ring.consume(11)
        ring.endBorrow()
        #expect(ring.capacity == 0, "nothing left: no storage")
    }

    @Test func aRingThatGrowsWhileBorrowingOwnsItsNewStorage() {
        let ring = ByteRing(initialCapacity: 0, maximumCapacity: 1 << 20)
        let shared = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 16)
        defer { shared.deallocate() }
        for i in 0..<256 { shared[i] = UInt8(i) }
        ring.adoptBorrowed(shared, readable: 256)
        #expect(ring.reserve(1024))
        #expect(!ring.isBorrowing)
        #expect(ring.capacity == 1024)
        #expect(ring.readBytes(count: 256) == Array(0..<256).map(UInt8.init))
        ring.endBorrow()
        #expect(ring.capacity == 1024)
    }

    @Test func pooledOutboundStorageComesAndGoesWithTheBytes() {
        let pool = OutboundStoragePool(smallestBlock: 1024, largestBlock: 8192, maximumFreeBlocks: 4)
        let buffer = OutboundBuffer(pool: pool)
        #expect(!buffer.hasStorage)
        buffer.writeBytes([UInt8](repeating: 7, count: 100))
        #expect(buffer.hasStorage)
        buffer.consume(100)
        #expect(!buffer.hasStorage)
        #expect(pool.freeBlockCount == 1)
        // Growth moves to a larger block; the next storage starts at the size needed last time.
        buffer.writeBytes([UInt8](repeating: 1, count: 3000))
        #expect(buffer.readableBytes == 3000)
        #expect(buffer.bytes() == [UInt8](repeating: 1, count: 3000))
        buffer.removeAll()
        #expect(!buffer.hasStorage)
        buffer.writeByte(9)
        #expect(buffer.bytes() == [9])
        buffer.consume(1)
        #expect(pool.freeBlockCount >= 1 && pool.freeBlockCount <= 4)
    }
}
