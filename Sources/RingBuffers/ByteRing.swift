/// A byte ring buffer that a socket reader fills in place and a decoder reads in place.
///
/// The capacity is always a power of two, so a position is an index masked with `capacity - 1`.
/// The read and write indices grow monotonically; `writeIndex - readIndex` is the number of
/// readable bytes, and the storage positions are the indices masked.
///
/// Filling: ``writableRegion(preferred:)`` hands out the contiguous free region that starts at the
/// write position (it ends at the end of the storage or at the read position, whichever comes
/// first), the reader writes into it, then ``commitWrite(_:)`` says how many bytes arrived.
///
/// Reading: ``byte(at:)`` reads at an offset from the read position, wrapping as needed;
/// ``contiguousRegion(offset:count:)`` returns a pointer into the storage when the range does not
/// straddle the end of the storage (the common case); ``copyBytes(offset:count:into:)`` linearises
/// a range that does. ``consume(_:)`` releases bytes.
///
/// Growth: ``reserve(_:)`` doubles the storage until it holds the requested number of bytes, up to
/// ``maximumCapacity``. Growing linearises the readable bytes at the start of the new storage.
///
/// Lazy storage: a ring made with `initialCapacity: 0` has no storage (capacity 0) until the
/// first write, and ``releaseStorageIfEmpty()`` gives the storage back once drained.
///
/// Borrowed storage (a reader shared by many rings, such as an event loop's read buffer):
/// ``adoptBorrowed(_:readable:)`` points the ring at memory it does not own, holding bytes
/// already written there, so that the consumer decodes in place from the shared memory; then
/// ``endBorrow()`` copies what the consumer left (a trailing partial packet) into storage of the
/// ring's own, sized for it, or leaves the ring without storage when nothing is left.
///
/// Not thread-safe: one owner (the event loop thread) uses it.
public final class ByteRing {
    // Exclusivity checks are disabled on the hot fields: the buffer has one owner, no access to
    // these fields is ever held across a call (no inout of them escapes), and the dynamic checks
    // (swift_beginAccess) cost about half of the decode time of a small packet (measured with
    // perf on the protocol-core benchmarks).
    @exclusivity(unchecked) @usableFromInline var storage: UnsafeMutableRawPointer
    @exclusivity(unchecked) @usableFromInline var mask: Int
    @exclusivity(unchecked) @usableFromInline var readIndex: Int = 0
    @exclusivity(unchecked) @usableFromInline var writeIndex: Int = 0

    /// The current capacity in bytes (a power of two).
    @exclusivity(unchecked) public private(set) var capacity: Int
    /// The largest capacity the ring may grow to (a power of two).
    public let maximumCapacity: Int
    /// Whether ``storage`` is borrowed (``adoptBorrowed(_:readable:)``): never deallocated here.
    @exclusivity(unchecked) public private(set) var isBorrowing = false

    /// A non-null placeholder for a ring without storage (capacity 0): never read, written or
    /// deallocated.
    @usableFromInline nonisolated(unsafe) static let noStorage = UnsafeMutableRawPointer.allocate(byteCount: 16, alignment: 16)

    /// Creates a ring.
    ///
    /// - Parameters:
    ///   - initialCapacity: Rounded up to a power of two (at least 64); 0 makes a ring without
    ///     storage until the first write.
    ///   - maximumCapacity: Rounded up to a power of two, at least the initial capacity.
    public init(initialCapacity: Int = 16 * 1024, maximumCapacity: Int = 1 << 30) {
        let initial = initialCapacity <= 0 ? 0 : ByteRing.roundUpToPowerOfTwo(max(64, initialCapacity))
        self.capacity = initial
        self.maximumCapacity = max(initial, ByteRing.roundUpToPowerOfTwo(max(1, maximumCapacity)))
        self.mask = initial &- 1
        self.storage = initial == 0 ? ByteRing.noStorage
            : UnsafeMutableRawPointer.allocate(byteCount: initial, alignment: 16)
    }

    deinit {
        releaseOwnedStorage()
    }

    private func releaseOwnedStorage() {
        if !isBorrowing && capacity > 0 { storage.deallocate() }
    }

    // MARK: Lazy and borrowed storage

    /// Gives the storage back when nothing is readable (the next write allocates again).
    public func releaseStorageIfEmpty() {
        guard readIndex == writeIndex, capacity > 0 else { return }
        releaseOwnedStorage()
        isBorrowing = false
        storage = ByteRing.noStorage
        capacity = 0
        mask = -1
        readIndex = 0
        writeIndex = 0
    }

    /// Points the ring at `buffer`, which the caller owns, whose first `readable` bytes are the
    /// ring's readable bytes (the caller copied the ring's earlier readable bytes there first,
    /// followed by the new ones). The ring's own storage is released. Until ``endBorrow()`` the
    /// caller must keep `buffer` alive and not use it otherwise.
    ///
    /// - Parameters:
    ///   - buffer: A power-of-two sized region, at most ``maximumCapacity``.
    ///   - readable: The bytes at its start that are readable.
    public func adoptBorrowed(_ buffer: UnsafeMutableRawBufferPointer, readable: Int) {
        precondition(buffer.count > 0 && buffer.count & (buffer.count - 1) == 0 && buffer.count <= maximumCapacity,
                     "a borrowed buffer must be a power of two no larger than the maximum capacity")
        precondition(readable >= 0 && readable <= buffer.count)
        releaseOwnedStorage()
        storage = buffer.baseAddress!
        capacity = buffer.count
        mask = buffer.count - 1
        readIndex = 0
        writeIndex = readable
        isBorrowing = true
    }

    /// Ends ``adoptBorrowed(_:readable:)``: copies the bytes still readable into storage of the
    /// ring's own (the smallest power of two that holds them, at least 64 bytes), or, when none
    /// are left, leaves the ring without storage. Nothing happens when the ring is not borrowing
    /// (it grew into storage of its own meanwhile).
    public func endBorrow() {
        guard isBorrowing else { return }
        let count = readableBytes
        isBorrowing = false
        if count == 0 {
            storage = ByteRing.noStorage
            capacity = 0
            mask = -1
            readIndex = 0
            writeIndex = 0
            return
        }
        let newCapacity = ByteRing.roundUpToPowerOfTwo(max(64, count))
        let newStorage = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
        copyBytes(offset: 0, count: count, into: newStorage)
        storage = newStorage
        capacity = newCapacity
        mask = newCapacity - 1
        readIndex = 0
        writeIndex = count
    }

    /// Smallest power of two that is at least `value` (value must be positive and at most 2^62).
    @inlinable
    public static func roundUpToPowerOfTwo(_ value: Int) -> Int {
        precondition(value > 0 && value <= 1 << 62)
        return value <= 1 ? 1 : 1 << (Int.bitWidth - (value - 1).leadingZeroBitCount)
    }

    /// Number of bytes that can be read.
    @inlinable
    public var readableBytes: Int { writeIndex &- readIndex }

    /// Number of free bytes in the current storage (not necessarily contiguous).
    @inlinable
    public var freeBytes: Int { capacity &- readableBytes }

    /// Whether there is nothing to read.
    @inlinable
    public var isEmpty: Bool { writeIndex == readIndex }

    // MARK: Filling

    /// The contiguous free region at the write position.
    ///
    /// When the ring is empty the indices are reset first, so the whole storage is one region.
    /// When the ring is full it grows (doubling, up to ``maximumCapacity``) if `preferred` asks for
    /// more than is free; at the maximum a full ring returns an empty region, which a reader must
    /// treat as back-pressure (stop reading until bytes are consumed).
    ///
    /// - Parameter preferred: A hint of how many bytes the reader would like to write.
    /// - Returns: Writable memory, valid until the next call that mutates the ring.
    @inlinable
    public func writableRegion(preferred: Int = 1) -> UnsafeMutableRawBufferPointer {
        if readIndex == writeIndex {
            readIndex = 0
            writeIndex = 0
        }
        if freeBytes == 0 && capacity < maximumCapacity {
            grow(toHold: readableBytes &+ max(1, preferred))
        }
        let start = writeIndex & mask
        let readPos = readIndex & mask
        let free = freeBytes
        if free == 0 { return UnsafeMutableRawBufferPointer(start: storage, count: 0) }
        // Free space runs from `start` to the end of storage, or to the read position when the
        // read position is ahead of the write position in storage order.
        let end = (readPos > start) ? readPos : capacity
        let count = min(end &- start, free)
        return UnsafeMutableRawBufferPointer(start: storage + start, count: count)
    }

    /// Records that `count` bytes were written into the region from ``writableRegion(preferred:)``.
    @inlinable
    public func commitWrite(_ count: Int) {
        precondition(count >= 0 && count <= freeBytes, "commitWrite beyond the free space")
        writeIndex &+= count
    }

    /// Copies `bytes` in, growing as needed (up to the maximum); returns how many were copied.
    @discardableResult
    public func append(_ bytes: UnsafeRawBufferPointer) -> Int {
        var copied = 0
        while copied < bytes.count {
            let region = writableRegion(preferred: bytes.count &- copied)
            if region.count == 0 { break }
            let n = min(region.count, bytes.count &- copied)
            region.baseAddress!.copyMemory(from: bytes.baseAddress! + copied, byteCount: n)
            commitWrite(n)
            copied &+= n
        }
        return copied
    }

    /// Copies `bytes` in (convenience for tests and tools).
    @discardableResult
    public func append(_ bytes: [UInt8]) -> Int {
        bytes.withUnsafeBytes { append($0) }
    }

    // MARK: Reading

    /// The readable byte at `offset` from the read position (`offset < readableBytes`).
    @inlinable
    public func byte(at offset: Int) -> UInt8 {
        assert(offset >= 0 && offset < readableBytes)
        return storage.load(fromByteOffset: (readIndex &+ offset) & mask, as: UInt8.self)
    }

    /// Whether the range `[offset, offset + count)` of the readable bytes wraps around the end of
    /// the storage.
    @inlinable
    public func isContiguous(offset: Int, count: Int) -> Bool {
        let start = (readIndex &+ offset) & mask
        return start &+ count <= capacity
    }

    /// A pointer to `count` readable bytes at `offset`, or nil if the range straddles the end of
    /// the storage. Valid until the ring is next mutated.
    @inlinable
    public func contiguousRegion(offset: Int, count: Int) -> UnsafeRawBufferPointer? {
        assert(offset >= 0 && count >= 0 && offset &+ count <= readableBytes)
        let start = (readIndex &+ offset) & mask
        guard start &+ count <= capacity else { return nil }
        return UnsafeRawBufferPointer(start: storage + start, count: count)
    }

    /// The readable bytes from the read position to the end of the storage or the write position.
    @inlinable
    public var firstReadableRegion: UnsafeRawBufferPointer {
        let start = readIndex & mask
        let count = min(readableBytes, capacity &- start)
        return UnsafeRawBufferPointer(start: storage + start, count: count)
    }

    /// Copies `count` readable bytes at `offset` into `destination`, across the wrap if needed.
    @inlinable
    public func copyBytes(offset: Int, count: Int, into destination: UnsafeMutableRawPointer) {
        assert(offset >= 0 && count >= 0 && offset &+ count <= readableBytes)
        let start = (readIndex &+ offset) & mask
        let first = min(count, capacity &- start)
        destination.copyMemory(from: storage + start, byteCount: first)
        if first < count {
            (destination + first).copyMemory(from: storage, byteCount: count &- first)
        }
    }

    /// Copies `count` readable bytes at `offset` into a new array (tests and slow paths).
    public func readBytes(offset: Int = 0, count: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { buffer, initialised in
            if count > 0 { copyBytes(offset: offset, count: count, into: buffer.baseAddress!) }
            initialised = count
        }
    }

    /// Releases `count` bytes from the front.
    @inlinable
    public func consume(_ count: Int) {
        precondition(count >= 0 && count <= readableBytes, "consume beyond the readable bytes")
        readIndex &+= count
    }

    // MARK: Growth

    /// Grows the storage so that it can hold at least `total` bytes (readable plus free).
    ///
    /// - Returns: false when `total` exceeds ``maximumCapacity`` (nothing changes then).
    @discardableResult
    public func reserve(_ total: Int) -> Bool {
        if total <= capacity { return true }
        if total > maximumCapacity { return false }
        grow(toHold: total)
        return true
    }

    @usableFromInline
    func grow(toHold total: Int) {
        let newCapacity = min(maximumCapacity, ByteRing.roundUpToPowerOfTwo(max(64, total, capacity &* 2)))
        guard newCapacity > capacity else { return }
        let newStorage = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
        let count = readableBytes
        if count > 0 { copyBytes(offset: 0, count: count, into: newStorage) }
        releaseOwnedStorage()
        isBorrowing = false
        storage = newStorage
        capacity = newCapacity
        mask = newCapacity - 1
        readIndex = 0
        writeIndex = count
    }
}
