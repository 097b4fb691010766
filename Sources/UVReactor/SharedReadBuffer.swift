/// The one read buffer of an event loop, which every plain TCP connection on the loop reads into
/// (issue 9: memory per idle connection).
///
/// A connection borrows it for one read: libuv's allocation callback hands it out (after the
/// connection's trailing partial packet, copied in front), the consumer decodes the packets in
/// place from it through the connection's ``RingBuffers/ByteRing`` (borrowed storage), and what
/// is left (a packet that straddles two reads) is copied back into a ring of the connection's
/// own, sized for it, before the buffer is handed back. So a connection holds receive memory
/// only while a packet is incomplete, and the per-connection memory of 20,000 idle connections
/// is the size of their objects, not of their buffers.
///
/// Loop thread only. Borrowing is exclusive: a read that starts while the buffer is borrowed
/// (a connection that reads inside another's read callback) goes into its own ring instead.
final class SharedReadBuffer {
    /// The size (a power of two): as large as one read of the connections (up to ~4,800 small
    /// PUBLISH packets per read system call).
    static let size = 128 * 1024

    private var storage: UnsafeMutableRawBufferPointer?
    /// Whether a connection holds the buffer.
    private(set) var isBorrowed = false

    init() {}

    deinit {
        storage?.deallocate()
    }

    /// The buffer, now borrowed; nil while another read holds it.
    func borrow() -> UnsafeMutableRawBufferPointer? {
        guard !isBorrowed else { return nil }
        isBorrowed = true
        if let storage { return storage }
        let made = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.size, alignment: 16)
        storage = made
        return made
    }

    /// The buffer while borrowed.
    var borrowedStorage: UnsafeMutableRawBufferPointer {
        precondition(isBorrowed, "the shared read buffer is not borrowed")
        return storage!
    }

    /// Hands the buffer back.
    func giveBack() {
        isBorrowed = false
    }
}
