public import RingBuffers

/// Two ``StreamTransform``s on top of each other, driven as one: `lower` next to the socket
/// (TLS), `upper` next to the application (WebSocket). `wss://` is a WebSocket over TLS.
///
/// The upper transform starts once the lower one's handshake completed, and the stack's
/// handshake is complete when both are. Bytes between the two pass through one ring (received)
/// and one buffer (sent), reused for the connection's lifetime; the upper transform takes every
/// byte it is given (the contract of ``StreamTransform/receive(_:plaintext:output:)``), so the
/// ring is empty after each call. Back-pressure: while the upper one holds plaintext back, the
/// lower one is not asked for more; the stack reports pending while either holds bytes.
public final class TransformStack: StreamTransform {
    /// The transform next to the socket.
    public let lower: any StreamTransform
    /// The transform next to the application.
    public let upper: any StreamTransform

    private let middleIn: ByteRing
    private let middleOut = OutboundBuffer(initialCapacity: 16 * 1024)
    private var upperStarted = false
    private var upperComplete = false

    /// Stacks `upper` over `lower`.
    ///
    /// - Parameters:
    ///   - lower: The transform next to the socket (TLS).
    ///   - upper: The transform next to the application (WebSocket).
    ///   - middleCapacity: The size of the ring between them.
    public init(lower: any StreamTransform, upper: any StreamTransform, middleCapacity: Int = 32 * 1024) {
        self.lower = lower
        self.upper = upper
        self.middleIn = ByteRing(initialCapacity: middleCapacity, maximumCapacity: middleCapacity)
    }

    /// Starts the lower transform.
    public func start(output: OutboundBuffer) throws(TransportError) {
        try lower.start(output: output)
    }

    /// Runs received bytes through the lower transform, then what it produced through the upper.
    public func receive(_ bytes: UnsafeRawBufferPointer, plaintext: ByteRing,
                        output: OutboundBuffer) throws(TransportError) -> TransformProgress {
        var input = bytes
        // Bounded: each pass either moves bytes out of the lower transform or returns.
        while true {
            if upperStarted {
                // First what the upper one held back (no new bytes).
                let progress = try upper.receive(UnsafeRawBufferPointer(start: nil, count: 0),
                                                 plaintext: plaintext, output: middleOut)
                upperComplete = progress.handshakeComplete
                try flushMiddle(output: output)
                if progress.plaintextPending {
                    // Bytes given in this call must not be dropped: the lower transform keeps them.
                    if !input.isEmpty {
                        _ = try lower.receive(input, plaintext: middleIn, output: output)
                        input = UnsafeRawBufferPointer(start: nil, count: 0)
                        if !middleIn.isEmpty { try feedUpper(plaintext: plaintext, output: output) }
                    }
                    return TransformProgress(handshakeComplete: upperComplete, plaintextPending: true)
                }
            }
            let lowerProgress = try lower.receive(input, plaintext: middleIn, output: output)
            input = UnsafeRawBufferPointer(start: nil, count: 0)
            guard lowerProgress.handshakeComplete else {
                return TransformProgress(handshakeComplete: false, plaintextPending: false)
            }
            if !upperStarted {
                upperStarted = true
                try upper.start(output: middleOut)
                try flushMiddle(output: output)
            }
            let upperPending = try feedUpper(plaintext: plaintext, output: output)
            if upperPending || !lowerProgress.plaintextPending {
                return TransformProgress(handshakeComplete: upperComplete,
                                         plaintextPending: upperPending || lowerProgress.plaintextPending)
            }
        }
    }

    /// Gives the upper transform everything in the middle ring (it takes all of it).
    @discardableResult
    private func feedUpper(plaintext: ByteRing, output: OutboundBuffer) throws(TransportError) -> Bool {
        var pending = false
        repeat {
            let region = middleIn.firstReadableRegion
            let progress = try upper.receive(region, plaintext: plaintext, output: middleOut)
            middleIn.consume(region.count)
            upperComplete = progress.handshakeComplete
            pending = progress.plaintextPending
        } while !middleIn.isEmpty
        try flushMiddle(output: output)
        return pending
    }

    /// Runs what the upper transform wrote through the lower one.
    private func flushMiddle(output: OutboundBuffer) throws(TransportError) {
        guard !middleOut.isEmpty else { return }
        try lower.send(middleOut.readableRegion, output: output)
        middleOut.removeAll()
    }

    /// Sends through the upper transform, then the lower.
    public func send(_ bytes: UnsafeRawBufferPointer, output: OutboundBuffer) throws(TransportError) {
        try upper.send(bytes, output: middleOut)
        try flushMiddle(output: output)
    }

    /// Ends the upper transform (its close message goes through the lower one), then the lower.
    public func shutdown(output: OutboundBuffer) {
        if upperStarted {
            upper.shutdown(output: middleOut)
            try? flushMiddle(output: output)
            middleOut.removeAll()
        }
        lower.shutdown(output: output)
    }
}
