public import RingBuffers
import CLibUV
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A TCP connection on an event loop (a `uv_tcp_t`), optionally through a ``StreamTransform``
/// such as TLS. Used on the loop thread only.
///
/// Reading: bytes go straight from the socket into ``inbound`` (libuv's allocation callback hands
/// out the ring's free region; with a transform, ciphertext lands in one reusable buffer and the
/// plaintext in the ring). After bytes arrived, ``onRead`` runs; the consumer decodes from the
/// ring and consumes what it used. When the ring is full at its maximum size the connection stops
/// reading until the consumer frees space, so memory stays bounded; ``pauseReading()`` and
/// ``resumeReading()`` give the consumer the same control.
///
/// Writing: the consumer encodes into ``outbound`` (or ``withOutbound(_:)``) and calls ``flush()``.
/// Everything flushed during one loop iteration is written together at the end of that iteration:
/// first with `uv_try_write`; whatever the kernel did not take goes out with one `uv_write` while
/// new bytes collect in a second buffer (the bytes in flight stay untouched until libuv's write
/// callback). ``onWritabilityChanged`` reports crossing ``TCPOptions/highWaterMark`` and falling
/// back to ``TCPOptions/lowWaterMark``.
///
/// Closing: ``close()`` flushes, ends the transform (`close_notify`), shuts the write side down
/// and closes; ``abort()`` closes at once. ``onClose`` fires exactly once, after the handle closed,
/// with nil for a local close and the error otherwise (``TransportError/closedByPeer``,
/// ``TransportError/connectionReset``, ...). A connection whose connect failed reports only through
/// the connect completion. When a write fails because the peer reset the connection, the bytes
/// the peer sent before are read and delivered (through the transform) first, so that the
/// reason it gave (a TLS alert) is reported instead of the reset.
///
/// The per-byte-path stored properties are `@exclusivity(unchecked)`: they are touched on the loop thread only,
/// never with overlapping accesses, and the dynamic exclusivity check (`swift_beginAccess`, a
/// thread-local access set) cost about a third of the CPU per message on the hot path (perf).
public final class TCPConnection {
    /// The loop the connection runs on.
    public let loop: EventLoop
    /// The settings the connection was made with.
    public let options: TCPOptions
    /// Received bytes (plaintext when a transform is used). The consumer reads and consumes them.
    public let inbound: ByteRing
    /// Runs on the loop thread after bytes were added to ``inbound``.
    public var onRead: ((TCPConnection) -> Void)?
    /// Runs once when the connection closed: nil after ``close()``/``abort()``, the error otherwise.
    public var onClose: ((TransportError?) -> Void)?
    /// Runs with `false` when the unsent bytes exceed the high-water mark, and with `true` when
    /// they drained to the low-water mark again.
    public var onWritabilityChanged: ((Bool) -> Void)?
    /// Runs once, after ``notifyWhenDrained()``, when every byte appended so far was taken by
    /// the kernel (nothing unsent, nothing in flight).
    public var onDrained: (() -> Void)?
    /// The peer's address, e.g. `127.0.0.1:1883` or `[::1]:1883` (empty before connecting).
    public private(set) var remoteAddress: String = ""

    enum State: Equatable {
        case idle, resolving, connecting, handshaking, open, closing, closingHandle, closed
    }

    @exclusivity(unchecked) private(set) var state = State.idle
    @exclusivity(unchecked) private var tcp: UnsafeMutablePointer<uv_tcp_t>?

    private let transform: (any StreamTransform)?
    /// Whether reads go to the loop's ``SharedReadBuffer`` (plain TCP, a ring that may hold it).
    private let sharesReadBuffer: Bool
    /// While a read into the shared buffer is under way: the bytes of the ring copied in front
    /// of it; -1 otherwise.
    @exclusivity(unchecked) private var sharedReadOffset = -1
    private var transformScratch: UnsafeMutableRawBufferPointer?
    @exclusivity(unchecked) private var transformPlaintextPending = false
    /// Application bytes before the transform (only with a transform).
    private let plaintextOut: OutboundBuffer?
    /// Bytes for the socket that are not in flight; new bytes are appended here.
    @exclusivity(unchecked) private var wire: OutboundBuffer
    /// Bytes handed to `uv_write`, untouched until the write callback.
    @exclusivity(unchecked) private var inFlight: OutboundBuffer
    @exclusivity(unchecked) private var writeInFlight = false
    @exclusivity(unchecked) private var flushScheduled = false
    /// Made by the first `uv_write` (a write the kernel did not take at once) and kept: an idle
    /// connection, whose writes `uv_try_write` takes whole, never needs one.
    private var writeRequest: UnsafeMutablePointer<uv_write_t>?
    private var shutdownRequest: UnsafeMutablePointer<uv_shutdown_t>?
    @exclusivity(unchecked) private var reading = false
    @exclusivity(unchecked) private var readingPaused = false
    @exclusivity(unchecked) private var aboveHighWater = false
    @exclusivity(unchecked) private var drainedWanted = false
    private var closeError: TransportError?
    private var registered = false
    // Graceful close: the write side was shut down / the peer's end of stream arrived.
    private var writeSideShut = false
    private var peerEnded = false
    private var closeTimer: LoopTimer?
    /// Write calls made (`uv_try_write` plus `uv_write`), for tests of the coalescing.
    private(set) var writeCallCount = 0

    // Connecting.
    private var host = ""
    private var connectCompletion: ((Result<TCPConnection, TransportError>) -> Void)?
    private var connectRequest: UnsafeMutablePointer<uv_connect_t>?
    private var resolveRequest: UnsafeMutablePointer<uv_getaddrinfo_t>?
    private var addresses: [sockaddr_storage] = []
    private var nextAddress = 0
    private var lastConnectError: TransportError?
    private var connectTimer: LoopTimer?

    /// libuv writes with `write`/`writev`, which raise `SIGPIPE` when the peer is gone (a reset
    /// socket), and `SIGPIPE`'s default action ends the process: a refusing TLS server or a
    /// broker that closes would kill its client. Like any libuv program, the reactor ignores
    /// it (once per process, when the first connection is made) and handles `EPIPE` instead; a
    /// handler the application installed itself is left alone.
    private static let sigpipeIgnored: Void = {
        var current = sigaction()
        // SIG_DFL is the null handler.
        if sigaction(SIGPIPE, nil, &current) == 0 && unsafeBitCast(current.__sigaction_handler, to: Int.self) == 0 {
            signal(SIGPIPE, SIG_IGN)
        }
    }()

    init(loop: EventLoop, options: TCPOptions, transform: (any StreamTransform)?) {
        _ = Self.sigpipeIgnored
        self.loop = loop
        self.options = options
        self.transform = transform
        // Plain TCP with a ring that may hold a shared read (the usual case): no receive or send
        // storage of its own until it is needed (issue 9), see `SharedReadBuffer`.
        self.sharesReadBuffer = transform == nil
            && ByteRing.roundUpToPowerOfTwo(max(1, options.receiveBufferMaximumCapacity)) >= SharedReadBuffer.size
        self.inbound = ByteRing(initialCapacity: sharesReadBuffer ? 0 : options.receiveBufferInitialCapacity,
                                maximumCapacity: options.receiveBufferMaximumCapacity)
        if options.sendBufferInitialCapacity == 0 || transform == nil {
            self.wire = OutboundBuffer(pool: loop.core.outboundPool)
            self.inFlight = OutboundBuffer(pool: loop.core.outboundPool)
        } else {
            self.wire = OutboundBuffer(initialCapacity: options.sendBufferInitialCapacity)
            self.inFlight = OutboundBuffer(initialCapacity: options.sendBufferInitialCapacity)
        }
        self.plaintextOut = transform == nil ? nil : OutboundBuffer(initialCapacity: options.sendBufferInitialCapacity)
        if transform != nil {
            transformScratch = .allocate(byteCount: max(1024, options.transformReadBufferSize), alignment: 16)
        }
    }

    deinit {
        writeRequest?.deallocate()
        shutdownRequest?.deallocate()
        connectRequest?.deallocate()
        transformScratch?.deallocate()
    }

    // MARK: Public state

    /// Whether the connection is established (and not closing).
    public var isOpen: Bool { state == .open }

    /// Whether the unsent bytes are below the high-water mark (see ``onWritabilityChanged``).
    public var isWritable: Bool { !aboveHighWater }

    /// Bytes appended and not yet acknowledged by a completed write (including bytes in flight).
    public var unsentByteCount: Int {
        (plaintextOut?.readableBytes ?? 0) + wire.readableBytes + inFlight.readableBytes
    }

    /// Whether reading is paused by ``pauseReading()``.
    public var isReadingPaused: Bool { readingPaused }

    // MARK: Writing

    /// The buffer to append outgoing bytes to. Call ``flush()`` after appending.
    ///
    /// Do not keep the reference across a flush: the connection swaps buffers (double buffering)
    /// when a write is in flight.
    public var outbound: OutboundBuffer { plaintextOut ?? wire }

    /// Runs `body` with ``outbound``, then calls ``flush()``. Bytes appended after ``close()`` are
    /// dropped.
    ///
    /// - Parameter body: Appends encoded bytes to the buffer it receives.
    /// - Returns: What `body` returned.
    public func withOutbound<R>(_ body: (OutboundBuffer) throws -> R) rethrows -> R {
        let result = try body(outbound)
        flush()
        return result
    }

    /// Whether application bytes may still be queued (not after ``close()`` or ``abort()``).
    private var acceptsWrites: Bool {
        switch state {
        case .idle, .resolving, .connecting, .handshaking, .open: return true
        case .closing, .closingHandle, .closed: return false
        }
    }

    /// Appends `bytes` to ``outbound`` and flushes (a copy; encoders should append in place).
    /// Ignored after ``close()``.
    public func write(_ bytes: UnsafeRawBufferPointer) {
        guard acceptsWrites else { return }
        outbound.writeBytes(bytes)
        flush()
    }

    /// Appends `bytes` to ``outbound`` and flushes (a copy; for tests and tools).
    public func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { write($0) }
    }

    /// Marks the appended bytes for sending at the end of this loop iteration (with everything
    /// else flushed in the same iteration), and checks the high-water mark.
    public func flush() {
        loop.assertInLoop()
        // Already scheduled in this iteration (many small packets, one flush each): nothing to
        // do; the water marks are checked when the flush runs.
        if flushScheduled { return }
        guard state == .open || state == .handshaking else { return }
        checkWaterMarks()
        requestFlush()
    }

    private func requestFlush() {
        if !flushScheduled {
            flushScheduled = true
            loop.scheduleFlush(self)
        }
    }

    /// Writes what is queued: called by the loop at the end of an iteration, and after a write
    /// completed.
    func performFlush() {
        flushScheduled = false
        guard let tcp, state == .open || state == .handshaking || state == .closing else { return }
        if let transform, let plaintextOut, !plaintextOut.isEmpty, state != .handshaking {
            do {
                try transform.send(plaintextOut.readableRegion, output: wire)
                plaintextOut.removeAll()
            } catch {
                failWithTransformError(error)
                return
            }
        }
        if shutdownRequest != nil {
            // Appended after the write side was shut down: nothing may follow the end of stream.
            wire.removeAll()
            plaintextOut?.removeAll()
            return
        }
        guard !writeInFlight, !wire.isEmpty else {
            finishGracefulCloseIfDrained()
            return
        }
        let stream = uvStream(tcp)
        var buffer = Self.uvBuffer(wire.readableRegion)
        writeCallCount += 1
        let written = Int(uv_try_write(stream, &buffer, 1))
        if written == wire.readableBytes {
            wire.consume(written)
            checkWaterMarks()
            finishGracefulCloseIfDrained()
            return
        }
        if written < 0 && written != Int(UV_EAGAIN.rawValue) {
            failAfterReadingRemains(.from(uv: Int32(written)))
            return
        }
        if written > 0 { wire.consume(written) }
        // The rest goes out asynchronously from the other buffer, which stays untouched until
        // the write callback; new bytes collect in `wire` meanwhile.
        swap(&wire, &inFlight)
        writeInFlight = true
        buffer = Self.uvBuffer(inFlight.readableRegion)
        writeCallCount += 1
        let request: UnsafeMutablePointer<uv_write_t>
        if let writeRequest {
            request = writeRequest
        } else {
            request = .allocate(capacity: 1)
            // Requests on the handle complete before the handle's close callback, which
            // releases the last retain: an unretained pointer is enough for them.
            request.pointee.data = Unmanaged.passUnretained(self).toOpaque()
            writeRequest = request
        }
        let status = uv_write(request, stream, &buffer, 1) { request, status in
            guard let data = request?.pointee.data else { return }
            Unmanaged<TCPConnection>.fromOpaque(data).takeUnretainedValue().didWrite(status: status)
        }
        if status < 0 {
            writeInFlight = false
            failAfterReadingRemains(.from(uv: status))
            return
        }
        checkWaterMarks()
    }

    private func didWrite(status: Int32) {
        writeInFlight = false
        inFlight.removeAll()
        if status < 0 {
            // ECANCELED: the handle is closing; anything else ends the connection.
            if state != .closingHandle && state != .closed { failAfterReadingRemains(.from(uv: status)) }
            return
        }
        if !wire.isEmpty || !(plaintextOut?.isEmpty ?? true) {
            performFlush()
        } else {
            finishGracefulCloseIfDrained()
        }
        if state == .open || state == .closing { checkWaterMarks() }
    }

    /// Asks for one ``onDrained`` call when every byte appended so far has been taken by the
    /// kernel (a QoS 0 publish completes then).
    public func notifyWhenDrained() {
        drainedWanted = true
    }

    private func checkWaterMarks() {
        let unsent = unsentByteCount
        if drainedWanted && unsent == 0 && state == .open {
            drainedWanted = false
            onDrained?()
        }
        if !aboveHighWater && unsent > options.highWaterMark {
            aboveHighWater = true
            onWritabilityChanged?(false)
        } else if aboveHighWater && unsent <= options.lowWaterMark {
            aboveHighWater = false
            onWritabilityChanged?(true)
        }
    }

    private static func uvBuffer(_ region: UnsafeRawBufferPointer) -> uv_buf_t {
        let base = region.baseAddress.map { UnsafeMutablePointer(mutating: $0.assumingMemoryBound(to: CChar.self)) }
        return uv_buf_t(base: base, len: region.count)
    }

    // MARK: Reading

    /// Stops reading from the socket until ``resumeReading()`` (read back-pressure).
    public func pauseReading() {
        loop.assertInLoop()
        readingPaused = true
        updateReading()
    }

    /// Resumes reading after ``pauseReading()``, or after the consumer freed space in a full ring
    /// outside ``onRead``. May call ``onRead`` before returning when a transform held decrypted
    /// bytes back for lack of space.
    public func resumeReading() {
        loop.assertInLoop()
        readingPaused = false
        if transformPlaintextPending {
            deliverRead()
        } else {
            updateReading()
        }
    }

    private var ringHasRoom: Bool {
        inbound.freeBytes > 0 || inbound.capacity < inbound.maximumCapacity
    }

    private var readingWanted: Bool {
        guard tcp != nil else { return false }
        switch state {
        case .closing:
            // Read and discard until the peer ends its stream (lingering close).
            return !peerEnded
        case .open:
            return !readingPaused && !transformPlaintextPending && ringHasRoom
        case .handshaking:
            return !transformPlaintextPending && ringHasRoom
        default:
            return false
        }
    }

    private func updateReading() {
        guard let tcp else { return }
        let wanted = readingWanted
        if wanted && !reading {
            let status = uv_read_start(uvStream(tcp), { handle, suggested, buffer in
                guard let data = handle?.pointee.data, let buffer else { return }
                let connection = Unmanaged<TCPConnection>.fromOpaque(data).takeUnretainedValue()
                buffer.pointee = connection.readBuffer(suggested: suggested)
            }, { stream, count, _ in
                guard let data = stream?.pointee.data else { return }
                Unmanaged<TCPConnection>.fromOpaque(data).takeUnretainedValue().didRead(count)
            })
            if status < 0 {
                fail(.from(uv: status))
                return
            }
            reading = true
        } else if !wanted && reading {
            uv_read_stop(uvStream(tcp))
            reading = false
        }
    }

    /// The memory the next read goes to: the ring's free region, or the transform's scratch
    /// buffer. An empty buffer makes libuv report `UV_ENOBUFS` (the ring is full).
    private func readBuffer(suggested: Int) -> uv_buf_t {
        if let transformScratch {
            return uv_buf_t(base: transformScratch.baseAddress?.assumingMemoryBound(to: CChar.self),
                            len: transformScratch.count)
        }
        if sharesReadBuffer, !inbound.isBorrowing, let shared = loop.core.sharedReadBuffer.borrow() {
            // The ring's partial packet goes in front (a copy of at most a quarter of the buffer:
            // what a packet straddling two reads costs); a larger one is read into the ring.
            let partial = inbound.readableBytes
            if partial <= shared.count / 4 {
                if partial > 0 { inbound.copyBytes(offset: 0, count: partial, into: shared.baseAddress!) }
                sharedReadOffset = partial
                return uv_buf_t(base: (shared.baseAddress! + partial).assumingMemoryBound(to: CChar.self),
                                len: shared.count - partial)
            }
            loop.core.sharedReadBuffer.giveBack()
        }
        let region = inbound.writableRegion(preferred: suggested)
        return uv_buf_t(base: region.baseAddress?.assumingMemoryBound(to: CChar.self), len: region.count)
    }

    /// Ends a read from ``readBuffer(suggested:)`` that delivered nothing (the loop of
    /// ``failAfterReadingRemains(_:)``).
    private func abandonRead() {
        if sharedReadOffset >= 0 {
            sharedReadOffset = -1
            loop.core.sharedReadBuffer.giveBack()
        }
    }

    private func didRead(_ count: Int) {
        if sharedReadOffset >= 0 {
            didReadShared(count)
            return
        }
        if state == .closing {
            discardWhileClosing(count)
            return
        }
        if count > 0 {
            if let transform, let transformScratch {
                let bytes = UnsafeRawBufferPointer(rebasing: transformScratch[0..<count])
                do {
                    let progress = try transform.receive(bytes, plaintext: inbound, output: wire)
                    transformProgressed(progress)
                } catch {
                    failWithTransformError(error)
                }
            } else {
                inbound.commitWrite(count)
                deliverRead()
                // A large packet read into the ring of the connection's own: give the storage
                // back once drained (the next read goes to the shared buffer again).
                if sharesReadBuffer { inbound.releaseStorageIfEmpty() }
            }
        } else if count == Int(UV_ENOBUFS.rawValue) {
            // The ring is full at its maximum size: stop until the consumer frees space.
            updateReading()
        } else if count < 0 {
            fail(.from(uv: Int32(count)))
        }
    }

    /// A read into the loop's shared buffer: the ring borrows it for the consumer's decode, then
    /// keeps only what is left (a partial packet) in storage of its own.
    private func didReadShared(_ count: Int) {
        let partial = sharedReadOffset
        sharedReadOffset = -1
        let shared = loop.core.sharedReadBuffer
        if count > 0 && state == .open {
            inbound.adoptBorrowed(shared.borrowedStorage, readable: partial + count)
            deliverRead()
            inbound.endBorrow()
            shared.giveBack()
            return
        }
        shared.giveBack()
        if state == .closing {
            // Bytes while closing are dropped (they never entered the ring).
            discardWhileClosing(count > 0 ? 0 : count)
        } else if count < 0 {
            fail(.from(uv: Int32(count)))
        }
    }

    /// During a graceful close: bytes are dropped (the transform still sees them, so that it
    /// can process the peer's `close_notify`); the peer's end of stream completes the close.
    private func discardWhileClosing(_ count: Int) {
        if count > 0 {
            if let transform, let transformScratch {
                var bytes = UnsafeRawBufferPointer(rebasing: transformScratch[0..<count])
                repeat {
                    _ = try? transform.receive(bytes, plaintext: inbound, output: wire)
                    bytes = UnsafeRawBufferPointer(start: nil, count: 0)
                    let held = inbound.readableBytes
                    inbound.consume(held)
                    if held == 0 { break }
                } while true
            } else {
                inbound.commitWrite(count)
                inbound.consume(count)
            }
        } else if count < 0 && count != Int(UV_ENOBUFS.rawValue) {
            peerEnded = true
            updateReading()
            if count == Int(UV_EOF.rawValue) {
                if writeSideShut { closeHandle(nil) }
            } else {
                closeHandle(.from(uv: Int32(count)))
            }
        }
    }

    private func transformProgressed(_ progress: TransformProgress) {
        transformPlaintextPending = progress.plaintextPending
        if !wire.isEmpty { requestFlush() }
        if state == .handshaking {
            if progress.handshakeComplete {
                connectionEstablished()
            } else {
                updateReading()
            }
        } else if state == .open {
            deliverRead()
        }
    }

    /// Hands the bytes to the consumer; with a transform, keeps pulling held-back plaintext while
    /// the consumer makes room.
    private func deliverRead() {
        while state == .open {
            if !inbound.isEmpty { onRead?(self) }
            guard state == .open, transformPlaintextPending, !readingPaused, ringHasRoom,
                  let transform else { break }
            let before = inbound.readableBytes
            do {
                let progress = try transform.receive(UnsafeRawBufferPointer(start: nil, count: 0),
                                                     plaintext: inbound, output: wire)
                transformPlaintextPending = progress.plaintextPending
                if !wire.isEmpty { requestFlush() }
            } catch {
                failWithTransformError(error)
                return
            }
            if inbound.readableBytes == before { break }
        }
        updateReading()
    }

    // MARK: Closing

    /// Closes gracefully: writes what is queued, ends the transform (`close_notify`), shuts the
    /// write side down, reads and drops what the peer still sends until it closes its side too
    /// (closing a socket with unread bytes would send a reset, which can destroy data the peer
    /// has not read yet), then closes. ``onClose`` then runs with nil. After `timeout` the
    /// connection is closed at once (unsent bytes are dropped). Before the connection is
    /// established, this cancels the connect (its completion reports `io(ECANCELED)`).
    ///
    /// - Parameter timeout: The limit for the graceful part.
    public func close(timeout: Duration = .seconds(10)) {
        loop.assertInLoop()
        switch state {
        case .idle, .resolving, .connecting, .handshaking:
            failConnect(.io(UVError(UV_ECANCELED.rawValue)))
        case .open:
            state = .closing
            inbound.consume(inbound.readableBytes)
            transformPlaintextPending = false
            closeTimer = loop.scheduleTimer(after: timeout) { [self] in closeHandle(nil) }
            updateReading()
            if let transform {
                if let plaintextOut, !plaintextOut.isEmpty {
                    do {
                        try transform.send(plaintextOut.readableRegion, output: wire)
                        plaintextOut.removeAll()
                    } catch {
                        writeQueuedBestEffort()
                        closeHandle(error)
                        return
                    }
                }
                transform.shutdown(output: wire)
            }
            performFlush()
        case .closing, .closingHandle, .closed:
            return
        }
    }

    /// Closes at once, dropping unsent bytes. ``onClose`` then runs with nil.
    public func abort() {
        loop.assertInLoop()
        switch state {
        case .idle, .resolving, .connecting, .handshaking:
            failConnect(.io(UVError(UV_ECANCELED.rawValue)))
        case .open, .closing:
            closeHandle(nil)
        case .closingHandle, .closed:
            return
        }
    }

    private func finishGracefulCloseIfDrained() {
        guard state == .closing, !writeInFlight, wire.isEmpty, plaintextOut?.isEmpty ?? true,
              shutdownRequest == nil, let tcp else { return }
        let request = UnsafeMutablePointer<uv_shutdown_t>.allocate(capacity: 1)
        request.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        shutdownRequest = request
        let status = uv_shutdown(request, uvStream(tcp)) { request, status in
            guard let data = request?.pointee.data else { return }
            Unmanaged<TCPConnection>.fromOpaque(data).takeUnretainedValue().didShutdown(status: status)
        }
        if status < 0 { closeHandle(nil) }
    }

    private func didShutdown(status: Int32) {
        guard state == .closing else { return }
        writeSideShut = true
        // Wait for the peer's end of stream unless it came already (or the shutdown failed).
        if peerEnded || status < 0 { closeHandle(nil) }
    }

    /// Ends the connection after the transform threw (docs/tls.md, "For the connection").
    ///
    /// The transform may have queued bytes that say why: our TLS alert (`unknown_ca`,
    /// `bad_certificate_hostname`, ...) tells the server the reason instead of a bare close, so
    /// they are written (best effort) before the handle closes. Plaintext the transform committed
    /// before it failed was authenticated: the consumer gets it (``onRead``) before ``onClose``.
    private func failWithTransformError(_ error: TransportError) {
        writeQueuedBestEffort()
        if state == .open && !inbound.isEmpty { onRead?(self) }
        fail(error)
    }

    /// Writes what is queued for the socket with one `uv_try_write`, without waiting: for the
    /// last bytes before the handle closes (a transform's alert, a few dozen bytes). Nothing is
    /// written while a `uv_write` is in flight (the bytes would overtake it; libuv refuses too).
    private func writeQueuedBestEffort() {
        guard let tcp, !writeInFlight, !wire.isEmpty else { return }
        var buffer = Self.uvBuffer(wire.readableRegion)
        writeCallCount += 1
        let written = Int(uv_try_write(uvStream(tcp), &buffer, 1))
        if written > 0 { wire.consume(written) }
    }

    /// Ends the connection after a write failed, but first reads what the peer sent before it
    /// went away (docs/tls.md, "For the connection").
    ///
    /// A peer that refuses the session sends its reason and closes at once; our next write then
    /// fails (`ECONNRESET`/`EPIPE`) while the reason is still unread in the socket: with TLS 1.3
    /// mutual TLS the server's `certificate_required` alert, which arrives only after the
    /// client's handshake completed, typically while the CONNECT is being written (measured
    /// against mosquitto: about half the runs). Linux keeps the received bytes readable after a
    /// reset, so they are read here with non-blocking `recv` calls and go through the normal
    /// read path (transform, ``onRead``). If the transform fails on them, its error (e.g.
    /// ``TransportError/tlsPeerRequiredCertificate``) is reported; otherwise `error`.
    private func failAfterReadingRemains(_ error: TransportError) {
        if let tcp, state == .open || state == .handshaking {
            var fd: uv_os_fd_t = -1
            if uv_fileno(uvHandle(tcp), &fd) == 0 {
                // Bounded: the socket holds at most its receive buffer; stops at the end of the
                // queued bytes (EAGAIN, 0 or the reset), when the ring is full, or once the read
                // path ended the connection.
                var reads = 0
                while reads < 256 && (state == .open || state == .handshaking) && self.tcp != nil {
                    reads += 1
                    let buffer = readBuffer(suggested: 64 * 1024)
                    guard buffer.len > 0 else {
                        abandonRead()
                        break
                    }
                    let count = recv(fd, buffer.base, buffer.len, Int32(MSG_DONTWAIT))
                    guard count > 0 else {
                        abandonRead()
                        break
                    }
                    didRead(count)
                }
            }
        }
        fail(error)
    }

    /// Ends the connection with `error` (during connect: fails the connect).
    private func fail(_ error: TransportError) {
        switch state {
        case .idle, .resolving, .connecting, .handshaking: failConnect(error)
        case .open, .closing: closeHandle(error)
        case .closingHandle, .closed: return
        }
    }

    private func closeHandle(_ error: TransportError?) {
        guard state == .open || state == .closing, let tcp else { return }
        state = .closingHandle
        closeError = error
        reading = false
        closeTimer?.close()
        closeTimer = nil
        self.tcp = nil
        uv_close(uvHandle(tcp)) { handle in
            guard let handle, let data = handle.pointee.data else { return }
            let connection = Unmanaged<TCPConnection>.fromOpaque(data).takeRetainedValue()
            UnsafeMutableRawPointer(handle).deallocate()
            connection.didClose()
        }
    }

    private func didClose() {
        state = .closed
        unregisterIfNeeded()
        let callback = onClose
        releaseCallbacks()
        callback?(closeError)
    }

    private func releaseCallbacks() {
        // Breaks the cycles through closures that capture the connection.
        onRead = nil
        onClose = nil
        onWritabilityChanged = nil
        onDrained = nil
        connectCompletion = nil
    }

    private func registerIfNeeded() {
        if !registered {
            registered = true
            loop.register(self)
        }
    }

    private func unregisterIfNeeded() {
        if registered {
            registered = false
            loop.unregister(self)
        }
    }

    // MARK: Socket handles

    /// Initialises a new `uv_tcp_t` (retaining self into its `data`) and applies the options.
    private func openHandle() -> Int32 {
        let handle = UnsafeMutablePointer<uv_tcp_t>.allocate(capacity: 1)
        let status = uv_tcp_init(loop.uvLoop, handle)
        if status < 0 {
            handle.deallocate()
            return status
        }
        handle.pointee.data = Unmanaged.passRetained(self as AnyObject).toOpaque()
        tcp = handle
        return 0
    }

    private func applySocketOptions() {
        guard let tcp else { return }
        if options.noDelay { uv_tcp_nodelay(tcp, 1) }
        if let keepAlive = options.keepAlive {
            uv_tcp_keepalive(tcp, 1, UInt32(clamping: max(1, uvMilliseconds(keepAlive) / 1000)))
        }
    }

    /// Closes the handle of a failed attempt (not the connection).
    private func discardHandle() {
        guard let tcp else { return }
        self.tcp = nil
        reading = false
        uv_close(uvHandle(tcp), releasingCloseCallback)
    }

    // MARK: Accepting

    /// Accepts a pending connection from a listening stream; nil when libuv refused it.
    static func accept(from server: UnsafeMutablePointer<uv_stream_t>, loop: EventLoop,
                       options: TCPOptions) -> TCPConnection? {
        let connection = TCPConnection(loop: loop, options: options, transform: nil)
        guard connection.openHandle() == 0, let tcp = connection.tcp else { return nil }
        if uv_accept(server, uvStream(tcp)) != 0 {
            connection.discardHandle()
            return nil
        }
        connection.applySocketOptions()
        connection.state = .open
        var address = sockaddr_storage()
        var length = Int32(MemoryLayout<sockaddr_storage>.size)
        let status = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { uv_tcp_getpeername(tcp, $0, &length) }
        }
        if status == 0 { connection.remoteAddress = SocketAddress.describe(address) }
        connection.registerIfNeeded()
        return connection
    }

    /// Starts reading once the listener's accept handler installed the callbacks.
    func acceptReported() {
        if state == .open { updateReading() }
    }

    // MARK: Connecting

    func presetAddresses(_ preset: [sockaddr_storage]) {
        addresses = preset
    }

    /// Whether the socket is being read (false while paused, and while the ring is full).
    var isReadingFromSocket: Bool { reading }

    func beginConnect(host: String, port: Int, timeout: Duration?,
                      completion: @escaping (Result<TCPConnection, TransportError>) -> Void) {
        self.host = host
        connectCompletion = completion
        registerIfNeeded()
        // Start on the next wake-up so that the completion never runs inside `connect(...)`.
        let bound = LoopBound(self, loop: loop)
        loop.execute {
            bound.value.startConnecting(port: port, timeout: timeout)
        }
    }

    private func startConnecting(port: Int, timeout: Duration?) {
        guard state == .idle else { return }
        state = .resolving
        if let timeout {
            connectTimer = loop.scheduleTimer(after: timeout) { [self] in
                failConnect(.connectTimeout)
            }
        }
        guard (0...65535).contains(port) else {
            failConnect(.io(UVError(UV_EINVAL.rawValue)))
            return
        }
        if !addresses.isEmpty {
            // Preset by `connect(addresses:...)` (tests of the address fallback).
            state = .connecting
            attemptNextAddress()
            return
        }
        if let literal = SocketAddress.ipLiteral(host, port: port) {
            addresses = [literal]
            state = .connecting
            attemptNextAddress()
            return
        }
        resolve(port: port)
    }

    private func resolve(port: Int) {
        let request = UnsafeMutablePointer<uv_getaddrinfo_t>.allocate(capacity: 1)
        // A resolve request is not tied to a handle: it keeps the connection alive itself.
        request.pointee.data = Unmanaged.passRetained(self).toOpaque()
        resolveRequest = request
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        let status = uv_getaddrinfo(loop.uvLoop, request, { request, status, result in
            guard let request, let data = request.pointee.data else { return }
            let connection = Unmanaged<TCPConnection>.fromOpaque(data).takeRetainedValue()
            request.deallocate()
            connection.didResolve(status: status, result: result)
            uv_freeaddrinfo(result)
        }, host, String(port), &hints)
        if status < 0 {
            resolveRequest = nil
            Unmanaged<TCPConnection>.fromOpaque(request.pointee.data!).release()
            request.deallocate()
            failConnect(.dnsFailure(host: host, UVError(status)))
        }
    }

    private func didResolve(status: Int32, result: UnsafeMutablePointer<addrinfo>?) {
        resolveRequest = nil
        guard state == .resolving else { return }
        guard status == 0 else {
            failConnect(.dnsFailure(host: host, UVError(status)))
            return
        }
        var entry = result
        while let info = entry {
            let family = info.pointee.ai_family
            if let address = info.pointee.ai_addr, family == AF_INET || family == AF_INET6 {
                var storage = sockaddr_storage()
                withUnsafeMutableBytes(of: &storage) { destination in
                    let length = min(Int(info.pointee.ai_addrlen), destination.count)
                    destination.copyMemory(from: UnsafeRawBufferPointer(start: address, count: length))
                }
                addresses.append(storage)
            }
            entry = info.pointee.ai_next
        }
        guard !addresses.isEmpty else {
            failConnect(.dnsFailure(host: host, UVError(UV_EAI_NONAME.rawValue)))
            return
        }
        state = .connecting
        attemptNextAddress()
    }

    /// Tries the resolved addresses in turn; fails with the last error when none is left.
    private func attemptNextAddress() {
        while nextAddress < addresses.count {
            var address = addresses[nextAddress]
            nextAddress += 1
            let opened = openHandle()
            guard opened == 0, let tcp else {
                lastConnectError = .from(uv: opened)
                continue
            }
            applySocketOptions()
            if connectRequest == nil {
                let request = UnsafeMutablePointer<uv_connect_t>.allocate(capacity: 1)
                request.pointee.data = Unmanaged.passUnretained(self).toOpaque()
                connectRequest = request
            }
            let status = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                    uv_tcp_connect(connectRequest, tcp, socketAddress) { request, status in
                        guard let data = request?.pointee.data else { return }
                        Unmanaged<TCPConnection>.fromOpaque(data).takeUnretainedValue().didConnect(status: status)
                    }
                }
            }
            if status == 0 {
                remoteAddress = SocketAddress.describe(address)
                return
            }
            lastConnectError = .from(uv: status)
            discardHandle()
        }
        failConnect(lastConnectError ?? .connectionRefused)
    }

    private func didConnect(status: Int32) {
        // ECANCELED: this attempt's handle was closed (timeout, cancel, shutdown).
        guard status != UV_ECANCELED.rawValue, state == .connecting else { return }
        if status < 0 {
            lastConnectError = .from(uv: status)
            discardHandle()
            attemptNextAddress()
            return
        }
        if let transform {
            state = .handshaking
            do {
                try transform.start(output: wire)
            } catch {
                failWithTransformError(error)
                return
            }
            requestFlush()
            updateReading()
        } else {
            connectionEstablished()
        }
    }

    private func connectionEstablished() {
        state = .open
        connectTimer?.close()
        connectTimer = nil
        // What connecting needed is not kept for the connection's life.
        addresses = []
        connectRequest?.deallocate()
        connectRequest = nil
        let completion = connectCompletion
        connectCompletion = nil
        completion?(.success(self))
        guard state == .open else { return }
        // Bytes written through the returned connection before it was established.
        if !wire.isEmpty || !(plaintextOut?.isEmpty ?? true) { requestFlush() }
        if !inbound.isEmpty || transformPlaintextPending {
            deliverRead()
        } else {
            updateReading()
        }
    }

    private func failConnect(_ error: TransportError) {
        switch state {
        case .idle, .resolving, .connecting, .handshaking: break
        default: return
        }
        state = .closed
        connectTimer?.close()
        connectTimer = nil
        if let resolveRequest {
            // The callback still runs (with UV_EAI_CANCELED, or with a result if the lookup was
            // already running); it finds the connection closed and only releases.
            uv_cancel(UnsafeMutableRawPointer(resolveRequest).assumingMemoryBound(to: uv_req_t.self))
        }
        discardHandle()
        unregisterIfNeeded()
        let completion = connectCompletion
        releaseCallbacks()
        completion?(.failure(error))
    }
}

extension TCPConnection: LoopResource {
    func closeForShutdown() {
        fail(.io(UVError(UV_ECANCELED.rawValue)))
    }
}

extension EventLoop {
    /// Opens a TCP connection (optionally through a transform such as TLS). Loop thread only.
    ///
    /// Resolves `host` with `uv_getaddrinfo` unless it is an IPv4 or IPv6 literal (`[::1]` or
    /// `::1`), then tries each address in turn until one accepts. With a transform, the
    /// connection counts as established only when the transform's handshake completed. The
    /// timeout covers resolving, connecting and the handshake.
    ///
    /// - Parameters:
    ///   - host: A host name or an IP literal.
    ///   - port: The TCP port.
    ///   - timeout: Time limit for the whole connect, or nil for none.
    ///   - options: Socket options and buffer sizes.
    ///   - transform: A stream transform (TLS) started once TCP is connected.
    ///   - completion: Runs on the loop thread (never inside this call) with the established
    ///     connection or the reason it failed: ``TransportError/dnsFailure(host:_:)``,
    ///     ``TransportError/connectionRefused``, ``TransportError/connectTimeout``, a transform
    ///     error, or ``TransportError/io(_:)``.
    /// - Returns: The connection being set up; ``TCPConnection/close()`` on it cancels the connect.
    @discardableResult
    public func connect(host: String, port: Int, timeout: Duration? = .seconds(10),
                        options: TCPOptions = TCPOptions(), transform: (any StreamTransform)? = nil,
                        completion: @escaping (Result<TCPConnection, TransportError>) -> Void) -> TCPConnection {
        assertInLoop()
        let connection = TCPConnection(loop: self, options: options, transform: transform)
        connection.beginConnect(host: host, port: port, timeout: timeout, completion: completion)
        return connection
    }

    /// Connects to the first of several IP literals that accepts, as if a name had resolved to
    /// them in this order (lets tests check the fallback to the next address). Loop thread only.
    @discardableResult
    func connect(addresses literals: [String], port: Int, timeout: Duration? = .seconds(10),
                 options: TCPOptions = TCPOptions(),
                 completion: @escaping (Result<TCPConnection, TransportError>) -> Void) -> TCPConnection {
        assertInLoop()
        let connection = TCPConnection(loop: self, options: options, transform: nil)
        connection.presetAddresses(literals.compactMap { SocketAddress.ipLiteral($0, port: port) })
        connection.beginConnect(host: literals.first ?? "", port: port, timeout: timeout, completion: completion)
        return connection
    }
}
