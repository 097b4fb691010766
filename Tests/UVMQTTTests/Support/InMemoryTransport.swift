import MQTTProtocol
import RingBuffers
@testable import UVMQTT
import UVReactor

// An in-memory transport and a manual clock for engine tests (in the spirit of swift-nio's
// `NIOAsyncTestingChannel`): the whole client runs on a real event loop thread, but no socket
// is opened and no time passes unless the test says so. Everything here is used on the loop
// thread only (the tests reach it with `harness.onLoop { ... }`).

/// A clock that stands still until ``advance(by:)``; its timers fire from there, in order.
final class ManualClock: MQTTEngineClock, @unchecked Sendable {
    private(set) var current = MQTTInstant(nanoseconds: 1_000_000_000)
    private var timers: [ManualTimer] = []

    func now() -> MQTTInstant { current }
    func coarseNow() -> MQTTInstant { current }

    func makeTimer(on loop: EventLoop, _ fire: @escaping () -> Void) -> any MQTTEngineTimer {
        let timer = ManualTimer(fire: fire)
        timers.append(timer)
        return timer
    }

    /// The earliest armed deadline.
    var nextDeadline: MQTTInstant? { timers.compactMap(\.deadline).min() }

    /// Moves time forward by `duration`, firing every timer that falls due on the way at its own
    /// instant, earliest first (a timer re-armed by its fire may fire again within the step).
    func advance(by duration: Duration) {
        let target = current + duration
        for _ in 0..<10_000 {
            guard let timer = timers.filter({ $0.deadline.map { $0 <= target } ?? false })
                .min(by: { $0.deadline! < $1.deadline! }) else { break }
            current = max(current, timer.deadline!)
            timer.deadline = nil
            timer.fire()
        }
        current = target
    }
}

final class ManualTimer: MQTTEngineTimer {
    var deadline: MQTTInstant?
    let fire: () -> Void
    var closed = false

    init(fire: @escaping () -> Void) {
        self.fire = fire
    }

    func schedule(at deadline: MQTTInstant) {
        precondition(!closed, "timer used after close")
        self.deadline = deadline
    }

    func cancel() { deadline = nil }

    func close() {
        deadline = nil
        closed = true
    }
}

/// Opens ``InMemoryTransport``s; the test decides how each attempt ends.
final class InMemoryConnector: MQTTTransportConnector, @unchecked Sendable {
    let loop: EventLoop
    private(set) var attempts: [InMemoryTransport] = []
    /// An error to throw from `open` itself (a TLS engine that cannot be made).
    var openError: TransportError?
    var highWaterMark = 1 << 20
    var lowWaterMark = 256 << 10

    init(loop: EventLoop) {
        self.loop = loop
    }

    func open(
        server: MQTTServer, tls: TLSContext?, timeout: Duration, receiveBufferMaximum: Int,
        completion: @escaping (Result<any MQTTTransport, TransportError>) -> Void
    ) throws(TransportError) -> any MQTTTransport {
        if let openError { throw openError }
        let transport = InMemoryTransport(loop: loop, server: server, completion: completion,
                                          receiveBufferMaximum: receiveBufferMaximum,
                                          highWaterMark: highWaterMark, lowWaterMark: lowWaterMark)
        attempts.append(transport)
        return transport
    }

    /// The newest attempt.
    var current: InMemoryTransport? { attempts.last }
}

/// One in-memory connection: the client's side is ``MQTTTransport``; the test plays the broker
/// with ``accept()``, ``refuse(_:)``, ``send(_:)``, ``readPackets()``, ``closeByPeer(_:)``.
final class InMemoryTransport: MQTTTransport, @unchecked Sendable {
    enum State { case connecting, open, closing, closed, cancelled }

    let loop: EventLoop
    let server: MQTTServer
    let inbound: ByteRing
    let outbound = OutboundBuffer(initialCapacity: 1024)
    private(set) var state = State.connecting
    private var completion: ((Result<any MQTTTransport, TransportError>) -> Void)?
    private var handler: ((MQTTTransportEvent) -> Void)?
    private(set) var isReadingPaused = false
    private var held: [UInt8] = []
    private var aboveHighWater = false
    let highWaterMark: Int
    let lowWaterMark: Int
    /// Bytes the broker side has read (all of them, in order).
    private(set) var written: [UInt8] = []
    private var peerRing = ByteRing(initialCapacity: 4096, maximumCapacity: 1 << 30)
    private var peerDecoder = MQTTDecoder(maximumPacketSize: 1 << 29)
    /// Whether the peer reads what the client flushes at once (false: a stopped broker).
    var peerReads = true
    private(set) var flushCount = 0
    /// When the graceful close completes: at once (the broker closes its side) or only when the
    /// test calls ``completeClose()``.
    var closesGracefullyAtOnce = true

    init(loop: EventLoop, server: MQTTServer, completion: @escaping (Result<any MQTTTransport, TransportError>) -> Void,
         receiveBufferMaximum: Int, highWaterMark: Int, lowWaterMark: Int) {
        self.loop = loop
        self.server = server
        self.completion = completion
        self.inbound = ByteRing(initialCapacity: 1024, maximumCapacity: ByteRing.roundUpToPowerOfTwo(receiveBufferMaximum + 8))
        self.highWaterMark = highWaterMark
        self.lowWaterMark = lowWaterMark
    }

    // MARK: MQTTTransport (the client's side)

    var isOpen: Bool { state == .open }
    var isWritable: Bool { !aboveHighWater }
    var unsentByteCount: Int { outbound.readableBytes }

    func flush() {
        flushCount += 1
        if peerReads { drainToPeer() }
        checkWaterMarks()
    }

    private var drainedWanted = false

    func notifyWhenDrained() {
        drainedWanted = true
    }

    func pauseReading() { isReadingPaused = true }

    func resumeReading() {
        isReadingPaused = false
        if !held.isEmpty {
            let bytes = held
            held.removeAll()
            deliver(bytes)
        }
    }

    func close(timeout: Duration) {
        switch state {
        case .connecting:
            state = .cancelled
            completion = nil
        case .open:
            state = .closing
            drainToPeer()
            if closesGracefullyAtOnce { completeClose() }
        case .closing, .closed, .cancelled:
            return
        }
    }

    func abort() {
        switch state {
        case .connecting:
            state = .cancelled
            completion = nil
        case .open, .closing:
            outbound.removeAll()
            state = .closed
            later(.closed(nil))
        case .closed, .cancelled:
            return
        }
    }

    func setEventHandler(_ handler: ((MQTTTransportEvent) -> Void)?) {
        self.handler = handler
    }

    // MARK: The broker's side

    /// The connect succeeds (the completion runs now, as the reactor's would on a later turn).
    func accept() {
        precondition(state == .connecting, "accept() on a transport that is not connecting: \(state)")
        state = .open
        let completion = completion
        self.completion = nil
        completion?(.success(self))
    }

    /// The connect fails with `error`.
    func refuse(_ error: TransportError) {
        precondition(state == .connecting, "refuse() on a transport that is not connecting: \(state)")
        state = .closed
        let completion = completion
        self.completion = nil
        completion?(.failure(error))
    }

    /// The broker's bytes arrive (held while the client paused reading).
    func deliver(_ bytes: [UInt8]) {
        guard state == .open else { return }
        if isReadingPaused {
            held += bytes
            return
        }
        var offset = 0
        while offset < bytes.count {
            let appended = bytes[offset...].withUnsafeBytes { inbound.append($0) }
            offset += appended
            handler?(.bytesRead)
            if appended == 0 { break }
        }
    }

    /// The broker sends `packet`.
    func send(_ packet: Packet, version: ProtocolVersion = .v3_1_1) {
        let buffer = OutboundBuffer(initialCapacity: 64)
        try! MQTTEncoder.encode(packet, version: version, into: buffer)
        deliver(buffer.bytes())
    }

    /// The packets the client wrote since the last call, decoded.
    func readPackets() -> [Packet] {
        drainToPeer()
        var packets: [Packet] = []
        while let packet = try! peerDecoder.next(in: peerRing) {
            packets.append(packet.makeOwned())
            peerDecoder.releaseLastFrame(in: peerRing)
        }
        return packets
    }

    /// A stopped broker starts reading again.
    func peerResumesReading() {
        peerReads = true
        drainToPeer()
        checkWaterMarks()
    }

    /// The broker closes the connection (or it breaks with `error`).
    func closeByPeer(_ error: TransportError? = .closedByPeer) {
        guard state == .open || state == .closing else { return }
        state = .closed
        handler?(.closed(error))
    }

    /// Completes a graceful close the client started.
    func completeClose() {
        guard state == .closing else { return }
        state = .closed
        later(.closed(nil))
    }

    /// Reports `event` on a later loop turn, as the reactor does for a close.
    private func later(_ event: MQTTTransportEvent) {
        let box = UncheckedBox(handler)
        loop.execute { box.value?(event) }
    }

    private func drainToPeer() {
        guard !outbound.isEmpty, state != .closed, state != .cancelled else { return }
        let region = outbound.readableRegion
        written += Array(region)
        _ = peerRing.append(region)
        outbound.removeAll()
    }

    private func checkWaterMarks() {
        let unsent = unsentByteCount
        if drainedWanted && unsent == 0 && state == .open {
            // On a later turn, as the reactor reports it from its end-of-iteration write.
            drainedWanted = false
            later(.drained)
        }
        if !aboveHighWater && unsent > highWaterMark {
            aboveHighWater = true
            handler?(.writabilityChanged(false))
        } else if aboveHighWater && unsent <= lowWaterMark {
            aboveHighWater = false
            handler?(.writabilityChanged(true))
        }
    }
}

/// An event loop with a manual clock and an in-memory connector, and helpers to run test
/// steps on its thread.
final class EngineHarness: @unchecked Sendable {
    let loop: EventLoop
    let clock: ManualClock
    let connector: InMemoryConnector

    init() {
        loop = EventLoop()
        loop.start()
        clock = ManualClock()
        connector = InMemoryConnector(loop: loop)
    }

    var environment: MQTTEngineEnvironment {
        MQTTEngineEnvironment(connector: connector, clock: clock)
    }

    /// Runs `body` on the loop thread after everything submitted before it.
    @discardableResult
    func onLoop<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await loop.submit(body)
    }

    /// The newest transport attempt (loop thread).
    var transport: InMemoryTransport {
        guard let t = connector.current else { fatalError("no transport attempt yet") }
        return t
    }

    func shutdown() {
        try? loop.shutdown()
    }
}

/// Carries a loop-thread value through `EventLoop.execute` (used on the loop thread only).
struct UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
