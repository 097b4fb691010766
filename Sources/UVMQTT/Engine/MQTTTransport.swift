package import MQTTProtocol
package import RingBuffers
package import UVReactor
#if canImport(Glibc)
import Glibc
#endif

/// What happens on a transport, reported to the engine (loop thread).
package enum MQTTTransportEvent {
    /// Bytes were added to ``MQTTTransport/inbound``.
    case bytesRead
    /// The unsent bytes crossed the high-water mark (`false`) or drained to the low-water mark
    /// (`true`).
    case writabilityChanged(Bool)
    /// Every byte appended was taken by the kernel (once per ``MQTTTransport/notifyWhenDrained()``).
    case drained
    /// The transport closed: nil after a local ``MQTTTransport/close()`` / ``MQTTTransport/abort()``,
    /// the reason otherwise. Reported once; nothing follows.
    case closed(TransportError?)
}

/// The byte stream the engine runs MQTT over: TCP (``TCPConnection``), TLS over TCP, or the
/// in-memory transport of the tests. Used on its event loop's thread only.
///
/// The engine decodes in place from ``inbound`` and consumes what it decoded, encodes into
/// ``outbound`` and calls ``flush()`` once per batch of packets. Events come back through the
/// handler given to ``setEventHandler(_:)``.
package protocol MQTTTransport: AnyObject {
    /// Received bytes, decoded in place by the engine.
    var inbound: ByteRing { get }
    /// Where the engine encodes; do not keep the reference across a ``flush()``.
    var outbound: OutboundBuffer { get }
    /// Whether the transport is established and not closing.
    var isOpen: Bool { get }
    /// Whether the unsent bytes are below the high-water mark.
    var isWritable: Bool { get }
    /// Bytes encoded and not yet taken by the kernel (or the peer, in memory).
    var unsentByteCount: Int { get }
    /// Sends what was appended to ``outbound`` (coalesced: at the end of the loop iteration).
    func flush()
    /// Stops reading until ``resumeReading()`` (read back-pressure).
    func pauseReading()
    /// Reads again after ``pauseReading()``.
    func resumeReading()
    /// Closes gracefully: queued bytes go out first, then the transport waits (bounded by
    /// `timeout`) for the peer to close its side; `.closed(nil)` follows. Before the transport
    /// is established, cancels the connect (no event follows).
    func close(timeout: Duration)
    /// Closes at once, dropping unsent bytes.
    func abort()
    /// Asks for one `.drained` event when every byte appended so far has been taken by the
    /// kernel (or the peer, in memory).
    func notifyWhenDrained()
    /// Installs (or, with nil, removes) the one handler of this transport's events.
    func setEventHandler(_ handler: ((MQTTTransportEvent) -> Void)?)
}

/// Opens transports for the engine (loop thread).
package protocol MQTTTransportConnector {
    /// Starts opening a transport to `server`.
    ///
    /// - Parameters:
    ///   - server: Host, port and security.
    ///   - tls: The TLS context to use, when the server asks for TLS.
    ///   - timeout: Limit for the transport to come up.
    ///   - receiveBufferMaximum: The largest receive ring the engine needs (a whole packet).
    ///   - completion: Runs later on the loop thread (never inside this call) with the open
    ///     transport or the reason it failed.
    /// - Returns: The transport being opened: ``MQTTTransport/close(timeout:)`` on it cancels.
    /// - Throws: A ``TransportError`` known before any I/O (a TLS engine that cannot be made).
    func open(
        server: MQTTServer, tls: TLSContext?, timeout: Duration, receiveBufferMaximum: Int,
        completion: @escaping (Result<any MQTTTransport, TransportError>) -> Void
    ) throws(TransportError) -> any MQTTTransport
}

/// The engine's one deadline timer.
package protocol MQTTEngineTimer: AnyObject {
    /// Arms the timer for `deadline` (replacing an earlier arming).
    func schedule(at deadline: MQTTInstant)
    /// Disarms it.
    func cancel()
    /// Releases it for good.
    func close()
}

/// Time for the engine: the clock it passes to the state machine and its timer.
package protocol MQTTEngineClock {
    /// The monotonic clock.
    func now() -> MQTTInstant
    /// A clock that may be a few milliseconds behind ``now()`` and is cheaper to read (for the
    /// per-publish keepalive stamp).
    func coarseNow() -> MQTTInstant
    /// A timer that calls `fire` on the loop thread when due.
    func makeTimer(on loop: EventLoop, _ fire: @escaping () -> Void) -> any MQTTEngineTimer
}

/// What the engine talks to: the transports and the clock. Production uses ``system``; the
/// engine tests use an in-memory transport and a manual clock (MQTTTestSupport).
package struct MQTTEngineEnvironment {
    package var connector: any MQTTTransportConnector
    package var clock: any MQTTEngineClock

    package init(connector: any MQTTTransportConnector, clock: any MQTTEngineClock) {
        self.connector = connector
        self.clock = clock
    }

    /// TCP (and TLS over TCP) on the given loop, and the monotonic clock.
    package static func system(loop: EventLoop) -> MQTTEngineEnvironment {
        MQTTEngineEnvironment(connector: TCPTransportConnector(loop: loop), clock: SystemClock())
    }
}

// MARK: - Production implementations

extension TCPConnection: MQTTTransport {
    package func setEventHandler(_ handler: ((MQTTTransportEvent) -> Void)?) {
        guard let handler else {
            onRead = nil
            onClose = nil
            onWritabilityChanged = nil
            onDrained = nil
            return
        }
        onRead = { _ in handler(.bytesRead) }
        onClose = { error in handler(.closed(error)) }
        onWritabilityChanged = { writable in handler(.writabilityChanged(writable)) }
        onDrained = { handler(.drained) }
    }
}

/// Opens ``TCPConnection``s, with a ``TLSEngine`` when the server asks for TLS and a
/// ``WebSocketTransform`` (over the TLS engine, if any) when it asks for WebSocket.
struct TCPTransportConnector: MQTTTransportConnector {
    let loop: EventLoop

    func open(
        server: MQTTServer, tls: TLSContext?, timeout: Duration, receiveBufferMaximum: Int,
        completion: @escaping (Result<any MQTTTransport, TransportError>) -> Void
    ) throws(TransportError) -> any MQTTTransport {
        var transform: (any StreamTransform)?
        if let tls {
            transform = try TLSEngine(context: tls, host: server.host)
        }
        if let webSocket = server.webSocket {
            // ws:// is a WebSocket over TCP, wss:// a WebSocket over TLS.
            let upper = WebSocketTransform(configuration: webSocket, host: server.host, port: server.port,
                                           secure: tls != nil)
            transform = transform.map { TransformStack(lower: $0, upper: upper) } ?? upper
        }
        var tcp = TCPOptions()
        // The ring must hold the largest packet decoded in full.
        tcp.receiveBufferMaximumCapacity = max(tcp.receiveBufferMaximumCapacity,
                                               ByteRing.roundUpToPowerOfTwo(receiveBufferMaximum + 8))
        // Plain TCP reads into the loop's shared 128 KiB read buffer (about 4,800 small PUBLISH
        // packets per read system call) and keeps no receive storage of its own between reads
        // but a trailing partial packet (issue 9); with TLS the ring starts at the reactor's
        // default and grows.
        return loop.connect(host: server.host, port: server.port, timeout: timeout, options: tcp,
                            transform: transform) { result in
            completion(result.map { $0 as any MQTTTransport })
        }
    }
}

/// `CLOCK_MONOTONIC` and a libuv timer.
struct SystemClock: MQTTEngineClock {
    func now() -> MQTTInstant {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return MQTTInstant(nanoseconds: UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec))
    }

    /// The monotonic clock at its kernel tick (a few ms coarse, same base as ``now()``, several
    /// times cheaper).
    func coarseNow() -> MQTTInstant {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts)
        return MQTTInstant(nanoseconds: UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec))
    }

    func makeTimer(on loop: EventLoop, _ fire: @escaping () -> Void) -> any MQTTEngineTimer {
        SystemTimer(timer: loop.makeTimer(fire), clock: self)
    }
}

final class SystemTimer: MQTTEngineTimer {
    let timer: LoopTimer
    let clock: SystemClock

    init(timer: LoopTimer, clock: SystemClock) {
        self.timer = timer
        self.clock = clock
    }

    func schedule(at deadline: MQTTInstant) {
        let now = clock.now()
        timer.schedule(after: deadline > now ? deadline - now : .zero)
    }

    func cancel() { timer.cancel() }
    func close() { timer.close() }
}
