/// A growable, linear byte buffer that an encoder appends to and a socket writer drains.
///
/// Bytes are appended at the end and released from the front. Released space is reclaimed when
/// the buffer empties (the indices reset, no copy) or when an append needs room and more than
/// half of the storage is released (one `memmove` of the unsent tail).
///
/// The writer may hand ``readableRegion`` to the kernel directly; a writer that must keep the
/// bytes stable until an asynchronous write completes (libuv's `uv_write`) swaps in a second
/// buffer for new appends (double buffering) rather than appending to one in flight.
///
/// Lazy storage (many idle connections): a buffer made with `initialCapacity: 0` has no storage
/// until the first append; with a ``OutboundStoragePool`` it takes a block from the pool then
/// (of the size it needed last time) and gives it back each time it drains, so an idle
/// connection holds no send buffer while a busy one reuses the pool's blocks without `malloc`.
///
/// Not thread-safe: one owner (the event loop thread) uses it.
public final class OutboundBuffer {
    // Exclusivity checks are disabled on the hot fields: the buffer has one owner, no access to
    // these fields is ever held across a call (no inout of them escapes), and the dynamic checks
    // (swift_beginAccess) cost about half of the decode time of a small packet (measured with
    // perf on the protocol-core benchmarks).
    @exclusivity(unchecked) @usableFromInline var storage: UnsafeMutableRawPointer
    @exclusivity(unchecked) @usableFromInline var capacity: Int
    @exclusivity(unchecked) @usableFromInline var readIndex: Int = 0
    @exclusivity(unchecked) @usableFromInline var writeIndex: Int = 0

    /// Where lazy storage comes from and goes back to when drained (nil: `malloc`, kept).
    @usableFromInline let pool: OutboundStoragePool?

    /// Creates an empty buffer with `initialCapacity` bytes of storage (at least 64).
    public init(initialCapacity: Int = 64 * 1024) {
        self.capacity = max(64, initialCapacity)
        self.storage = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        self.pool = nil
    }

    /// Creates an empty buffer without storage: the first append takes a block from `pool`
    /// (or allocates one of the pool's block size, or larger for a larger append), and each
    /// time the buffer drains the storage goes back to the pool.
    public init(pool: OutboundStoragePool) {
        self.capacity = 0
        self.storage = OutboundStoragePool.noStorage
        self.pool = pool
    }

    deinit {
        // Freed, not given back: the last reference may go on another thread than the pool's.
        if capacity > 0 { storage.deallocate() }
    }

    /// Whether the buffer holds storage now (false for a lazy buffer that is drained).
    public var hasStorage: Bool { capacity > 0 }

    /// The size the next lazy storage starts at: what the buffer needed before it last drained.
    @usableFromInline var nextStorageSize = 0

    /// Gives lazy storage back to the pool when drained.
    @usableFromInline
    func drained() {
        guard let pool, capacity > 0 else { return }
        nextStorageSize = capacity
        pool.give(storage, capacity: capacity)
        storage = OutboundStoragePool.noStorage
        capacity = 0
    }

    /// Bytes appended and not yet released.
    @inlinable
    public var readableBytes: Int { writeIndex &- readIndex }

    /// Whether nothing is waiting.
    @inlinable
    public var isEmpty: Bool { writeIndex == readIndex }

    /// The bytes waiting, valid until the next mutation.
    @inlinable
    public var readableRegion: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: storage + readIndex, count: readableBytes)
    }

    /// Releases `count` bytes from the front (they were written to the socket).
    @inlinable
    public func consume(_ count: Int) {
        precondition(count >= 0 && count <= readableBytes, "consume beyond the readable bytes")
        readIndex &+= count
        if readIndex == writeIndex {
            readIndex = 0
            writeIndex = 0
            if pool != nil { drained() }
        }
    }

    /// Drops everything.
    @inlinable
    public func removeAll() {
        readIndex = 0
        writeIndex = 0
        if pool != nil { drained() }
    }

    /// Makes room for `count` more bytes at the end.
    @inlinable
    public func reserveAppend(_ count: Int) {
        if capacity &- writeIndex >= count { return }
        makeRoom(count)
    }

    @usableFromInline
    func makeRoom(_ count: Int) {
        if capacity == 0 {
            if let pool {
                (storage, capacity) = pool.take(atLeast: max(count, nextStorageSize))
            } else {
                capacity = max(64, count)
                storage = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
            }
            readIndex = 0
            writeIndex = 0
            return
        }
        let live = readableBytes
        if readIndex > 0 && capacity - live >= count && readIndex >= capacity / 2 {
            storage.copyMemory(from: storage + readIndex, byteCount: live)
        } else {
            var newCapacity = capacity
            while newCapacity - live < count { newCapacity *= 2 }
            let newStorage: UnsafeMutableRawPointer
            if let pool {
                (newStorage, newCapacity) = pool.take(atLeast: newCapacity)
            } else {
                newStorage = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
            }
            newStorage.copyMemory(from: storage + readIndex, byteCount: live)
            if let pool { pool.give(storage, capacity: capacity) } else { storage.deallocate() }
            storage = newStorage
            capacity = newCapacity
        }
        readIndex = 0
        writeIndex = live
    }

    /// Appends one byte.
    @inlinable
    public func writeByte(_ byte: UInt8) {
        reserveAppend(1)
        storage.storeBytes(of: byte, toByteOffset: writeIndex, as: UInt8.self)
        writeIndex &+= 1
    }

    /// Appends a big-endian 16-bit integer.
    @inlinable
    public func writeUInt16(_ value: UInt16) {
        reserveAppend(2)
        storage.storeBytes(of: UInt8(truncatingIfNeeded: value >> 8), toByteOffset: writeIndex, as: UInt8.self)
        storage.storeBytes(of: UInt8(truncatingIfNeeded: value), toByteOffset: writeIndex &+ 1, as: UInt8.self)
        writeIndex &+= 2
    }

    /// Appends raw bytes.
    @inlinable
    public func writeBytes(_ bytes: UnsafeRawBufferPointer) {
        let n = bytes.count
        if n == 0 { return }
        reserveAppend(n)
        (storage + writeIndex).copyMemory(from: bytes.baseAddress!, byteCount: n)
        writeIndex &+= n
    }

    /// Appends the bytes of an array.
    @inlinable
    public func writeBytes(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { writeBytes($0) }
    }

    /// Appends the UTF-8 bytes of a string (no length prefix).
    @inlinable
    public func writeUTF8(_ string: String) {
        var s = string
        s.withUTF8 { writeBytes(UnsafeRawBufferPointer($0)) }
    }

    /// Reserves `count` bytes at the end and lets `body` fill them in place.
    ///
    /// - Parameter body: Receives writable memory of exactly `count` bytes and must initialise it.
    @inlinable
    public func withUnsafeAppend<R>(count: Int, _ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        reserveAppend(count)
        let region = UnsafeMutableRawBufferPointer(start: storage + writeIndex, count: count)
        let result = try body(region)
        writeIndex &+= count
        return result
    }

    /// Copies the waiting bytes into an array (tests and slow paths).
    public func bytes() -> [UInt8] {
        [UInt8](readableRegion)
    }
}

/// Storage blocks shared by the lazy ``OutboundBuffer``s of one owner (an event loop's
/// connections), in power-of-two size classes from ``smallestBlock`` to ``largestBlock``: a
/// drained buffer gives its block back, the next append takes one of the size the buffer needed
/// last time, and growth moves to a block of the next class, so buffers that drain every loop
/// iteration do not call `malloc`. Keeps at most ``maximumFreeBlocks`` free blocks per class;
/// storage beyond the largest class is allocated and freed directly.
///
/// Not thread-safe: one owner (the event loop thread) uses it and its buffers.
public final class OutboundStoragePool {
    /// The smallest block (what a buffer starts with: a few small packets).
    public let smallestBlock: Int
    /// The largest pooled block.
    public let largestBlock: Int
    /// The most free blocks kept per size class.
    public let maximumFreeBlocks: Int
    /// The most bytes the free blocks may hold together.
    public let maximumFreeBytes: Int
    private var freeBytes = 0
    private var free: [[UnsafeMutableRawPointer]]

    @usableFromInline nonisolated(unsafe) static let noStorage = UnsafeMutableRawPointer.allocate(byteCount: 16, alignment: 16)

    /// Creates an empty pool.
    ///
    /// - Parameters:
    ///   - smallestBlock: Bytes of the smallest class (a power of two, at least 64).
    ///   - largestBlock: Bytes of the largest class (a power of two, at least the smallest).
    ///   - maximumFreeBlocks: Free blocks kept for reuse per class.
    ///   - maximumFreeBytes: Bytes the free blocks may hold together (default: unbounded).
    public init(smallestBlock: Int = 1024, largestBlock: Int = 64 * 1024, maximumFreeBlocks: Int = 64,
                maximumFreeBytes: Int = .max) {
        self.maximumFreeBytes = maximumFreeBytes
        let smallest = ByteRing.roundUpToPowerOfTwo(max(64, smallestBlock))
        self.smallestBlock = smallest
        self.largestBlock = max(smallest, ByteRing.roundUpToPowerOfTwo(max(1, largestBlock)))
        self.maximumFreeBlocks = max(0, maximumFreeBlocks)
        let classes = (self.largestBlock / smallest).trailingZeroBitCount + 1
        free = (0..<classes).map { _ in
            var list: [UnsafeMutableRawPointer] = []
            list.reserveCapacity(max(0, maximumFreeBlocks))
            return list
        }
    }

    deinit {
        for list in free { for block in list { block.deallocate() } }
    }

    /// Free blocks held now, over all classes.
    public var freeBlockCount: Int { free.reduce(0) { $0 + $1.count } }

    /// The block size for `count` bytes (a power of two, at least ``smallestBlock``).
    func blockSize(for count: Int) -> Int {
        ByteRing.roundUpToPowerOfTwo(max(smallestBlock, count))
    }

    /// Storage of at least `count` bytes: a pooled block up to ``largestBlock``.
    func take(atLeast count: Int) -> (UnsafeMutableRawPointer, Int) {
        let size = blockSize(for: count)
        if size <= largestBlock {
            let index = (size / smallestBlock).trailingZeroBitCount
            if let block = free[index].popLast() {
                freeBytes -= size
                return (block, size)
            }
        }
        return (UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16), size)
    }

    /// Takes storage back: kept when it is a block of a class with room, freed otherwise.
    func give(_ storage: UnsafeMutableRawPointer, capacity: Int) {
        if capacity >= smallestBlock && capacity <= largestBlock && capacity & (capacity - 1) == 0 {
            let index = (capacity / smallestBlock).trailingZeroBitCount
            if free[index].count < maximumFreeBlocks && freeBytes + capacity <= maximumFreeBytes {
                freeBytes += capacity
                free[index].append(storage)
                return
            }
        }
        storage.deallocate()
    }
}
