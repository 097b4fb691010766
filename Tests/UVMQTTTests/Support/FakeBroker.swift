import Foundation
import MQTTTestSupport
import RingBuffers
import MQTTProtocol
@testable import UVMQTT
import UVReactor

/// A scripted MQTT broker on the reactor's TCP listener, for byte-exact tests.
///
/// It records every byte and every decoded packet per accepted connection, answers by default
/// like a well-behaved broker (CONNACK, PUBACK / PUBREC / PUBCOMP, SUBACK, UNSUBACK, PINGRESP)
/// and lets a test change that, send arbitrary bytes and cut connections. State is read from any
/// thread; the I/O runs on the loop thread.
final class FakeBroker: @unchecked Sendable {
    struct Behaviour: Sendable {
        /// Sent in answer to CONNECT; nil = stay silent.
        var connack: [UInt8]? = [0x20, 0x02, 0x00, 0x00]
        var answerPing = true
        /// Acknowledge PUBLISH (PUBACK / PUBREC) and PUBREL (PUBCOMP).
        var ackPublish = true
        var ackSubscribe = true
        /// Read and drop everything (a peer that never answers whatever it is sent, e.g. TLS).
        var discardInput = false
    }

    struct Received: Sendable {
        var packet: Packet
        var at: ContinuousClock.Instant
    }

    let loop: EventLoop
    let port: Int
    let behaviour = Locked(Behaviour())
    private let state = Locked(State())
    private var listener: TCPListener?
    private var connections: [TCPConnection] = []  // loop thread

    private struct State {
        var raw: [[UInt8]] = []
        var packets: [[Received]] = []
        var closed: [Bool] = []
        var errors: [String] = []
    }

    private init(loop: EventLoop, listener: TCPListener) {
        self.loop = loop
        self.listener = listener
        self.port = listener.port
    }

    /// Starts listening on 127.0.0.1 and a free port.
    static func start(on loop: EventLoop) async throws -> FakeBroker {
        let box = Locked<FakeBroker?>(nil)
        try await loop.submit {
            let holder = Locked<FakeBroker?>(nil)
            let listener = try loop.listen(host: "127.0.0.1", port: 0) { connection in
                holder.withLock { $0 }?.accept(connection)
            }
            let broker = FakeBroker(loop: loop, listener: listener)
            holder.withLock { $0 = broker }
            box.withLock { $0 = broker }
        }
        guard let broker = box.withLock({ $0 }) else { throw HarnessError("fake broker did not start") }
        return broker
    }

    // MARK: Inspection (any thread)

    var connectionCount: Int { state.withLock { $0.raw.count } }
    func raw(_ index: Int) -> [UInt8] { state.withLock { index < $0.raw.count ? $0.raw[index] : [] } }
    func packets(_ index: Int) -> [Received] { state.withLock { index < $0.packets.count ? $0.packets[index] : [] } }
    func isClosed(_ index: Int) -> Bool { state.withLock { index < $0.closed.count ? $0.closed[index] : false } }

    /// Waits (bounded) until connection `index` received a packet matching `predicate`; returns
    /// the first such packet.
    func waitForPacket(on index: Int, within seconds: Double = 5, where predicate: (Packet) -> Bool) async -> Received? {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if let found = packets(index).first(where: { predicate($0.packet) }) { return found }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return packets(index).first { predicate($0.packet) }
    }

    /// Waits until connection `index` received `count` packets matching `predicate`.
    func waitForPackets(on index: Int, count: Int, within seconds: Double = 5, where predicate: (Packet) -> Bool) async -> [Received] {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            let found = packets(index).filter { predicate($0.packet) }
            if found.count >= count { return found }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return packets(index).filter { predicate($0.packet) }
    }

    /// Waits until `count` connections were accepted.
    func waitForConnections(_ count: Int, within seconds: Double = testTimeout) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if connectionCount >= count { return true }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return connectionCount >= count
    }

    /// Waits until connection `index` was closed (by the client or by `cut`).
    func waitForClose(_ index: Int, within seconds: Double = testTimeout) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if isClosed(index) { return true }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return isClosed(index)
    }

    // MARK: Actions (any thread)

    /// Sends raw bytes on connection `index` (the latest when nil).
    func send(_ bytes: [UInt8], on index: Int? = nil) {
        loop.execute { [self] in
            let i = index ?? connections.count - 1
            guard i >= 0, i < connections.count, connections[i].isOpen else { return }
            connections[i].write(bytes)
        }
    }

    /// Encodes and sends a packet.
    func send(_ packet: Packet, on index: Int? = nil) {
        let buffer = OutboundBuffer()
        try? MQTTEncoder.encode(packet, version: .v3_1_1, into: buffer)
        send(buffer.bytes(), on: index)
    }

    /// Cuts connection `index` at once (no flush), as a network failure would.
    func cut(_ index: Int) {
        loop.execute { [self] in
            if index < connections.count { connections[index].abort() }
        }
    }

    /// Closes the listener and every connection.
    func stop() async {
        try? await loop.submit { [self] in
            listener?.close()
            listener = nil
            for c in connections { c.abort() }
            connections.removeAll()
        }
    }

    // MARK: Loop thread

    private func accept(_ connection: TCPConnection) {
        let index = connections.count
        connections.append(connection)
        state.withLock {
            $0.raw.append([])
            $0.packets.append([])
            $0.closed.append(false)
        }
        var decoder = MQTTDecoder(maximumPacketSize: 1 << 20)
        var captured = 0
        connection.onRead = { [self] c in
            let ring = c.inbound
            if behaviour.withLock({ $0.discardInput }) {
                ring.consume(ring.readableBytes)
                return
            }
            let fresh = ring.readableBytes - captured
            if fresh > 0 {
                let bytes = ring.readBytes(offset: captured, count: fresh)
                state.withLock { $0.raw[index].append(contentsOf: bytes) }
            }
            while true {
                let packet: InboundPacket?
                do {
                    packet = try decoder.next(in: ring)
                } catch {
                    state.withLock { $0.errors.append("\(error)") }
                    c.abort()
                    return
                }
                guard let packet else { break }
                let owned = packet.makeOwned()
                state.withLock { $0.packets[index].append(Received(packet: owned, at: .now)) }
                respond(to: owned, on: c)
            }
            decoder.releaseLastFrame(in: ring)
            captured = ring.readableBytes
        }
        connection.onClose = { [self] _ in
            state.withLock { $0.closed[index] = true }
        }
    }

    private func respond(to packet: Packet, on connection: TCPConnection) {
        let b = behaviour.withLock { $0 }
        var reply: Packet?
        switch packet {
        case .connect:
            if let connack = b.connack { connection.write(connack) }
        case .publish(let p):
            if b.ackPublish {
                if p.qos == .atLeastOnce { reply = .puback(packetID: p.packetID) }
                if p.qos == .exactlyOnce { reply = .pubrec(packetID: p.packetID) }
            }
        case .pubrel(let id):
            if b.ackPublish { reply = .pubcomp(packetID: id) }
        case .subscribe(let s):
            if b.ackSubscribe {
                reply = .suback(SubAckPacket(packetID: s.packetID, returnCodes: s.subscriptions.map { .granted($0.qos) }))
            }
        case .unsubscribe(let u):
            if b.ackSubscribe { reply = .unsuback(packetID: u.packetID) }
        case .pingreq:
            if b.answerPing { reply = .pingresp }
        default:
            break
        }
        if let reply {
            let buffer = OutboundBuffer()
            try? MQTTEncoder.encode(reply, version: .v3_1_1, into: buffer)
            connection.write(buffer.bytes())
        }
    }
}

extension Packet {
    var publish: PublishPacket? { if case .publish(let p) = self { p } else { nil } }
    var isPingReq: Bool { if case .pingreq = self { true } else { false } }
    var isConnect: Bool { if case .connect = self { true } else { false } }
    var isDisconnect: Bool { if case .disconnect = self { true } else { false } }
    var pubrelID: UInt16? { if case .pubrel(let id) = self { id } else { nil } }
    var pubackID: UInt16? { if case .puback(let id) = self { id } else { nil } }
}
