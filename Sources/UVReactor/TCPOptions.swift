/// Settings of a TCP connection: socket options, buffer sizes and the write high-water mark.
public struct TCPOptions: Sendable, Hashable {
    /// `TCP_NODELAY` (no Nagle delay). On by default: MQTT sends small packets that must not wait
    /// for an acknowledgement, and the connection coalesces writes itself.
    public var noDelay: Bool = true
    /// TCP keep-alive probes after this idle time, or off (the default; MQTT has its own).
    public var keepAlive: Duration? = nil
    /// Initial capacity of the receive ring (rounded up to a power of two).
    public var receiveBufferInitialCapacity: Int = 16 * 1024
    /// Largest size the receive ring may grow to. When it is full at this size the connection
    /// stops reading until the consumer frees space, so memory stays bounded.
    public var receiveBufferMaximumCapacity: Int = 1024 * 1024
    /// Initial capacity of each outbound buffer (they grow as needed).
    public var sendBufferInitialCapacity: Int = 16 * 1024
    /// When the bytes queued and not yet written exceed this, the connection reports that it is
    /// not writable (``TCPConnection/onWritabilityChanged``).
    public var highWaterMark: Int = 1024 * 1024
    /// When the queued bytes drop to this or below after exceeding the high-water mark, the
    /// connection reports that it is writable again.
    public var lowWaterMark: Int = 256 * 1024
    /// Size of the reusable buffer that receives ciphertext when a ``StreamTransform`` is used.
    public var transformReadBufferSize: Int = 64 * 1024

    /// The defaults: `TCP_NODELAY` on, 16 KiB ring growing up to 1 MiB, 1 MiB high-water mark.
    public init() {}
}
