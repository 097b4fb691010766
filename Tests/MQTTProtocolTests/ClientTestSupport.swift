import MQTTProtocol
import Testing

/// An owned, comparable record of an ``MQTTClientAction`` (deliveries copied out of the view;
/// transport ids left out: the harness tracks them, see `Harness.transport`).
enum Recorded: Equatable {
    case openTransport
    case closeTransport
    case send(Packet)
    case connected(sessionPresent: Bool)
    case connectFailed(MQTTConnectionFailure, willRetry: Bool)
    case offline(MQTTConnectionFailure, willReconnect: Bool)
    case deliver(topic: String, payload: [UInt8], qos: QoS, packetID: UInt16, dup: Bool)
    case deliverOversized(topic: String, prefix: [UInt8], total: Int, qos: QoS, packetID: UInt16)
    case published(MQTTRequestToken?, packetID: UInt16, qos: QoS)
    case subscribed(MQTTRequestToken?, filters: [TopicSubscription], codes: [SubAckReturnCode])
    case unsubscribed(MQTTRequestToken?, packetID: UInt16)
    case failed(MQTTRequestToken, MQTTClientError)
    case unexpected(PacketType, packetID: UInt16)
    case disconnected

    init(_ action: MQTTClientAction) {
        switch action {
        case .openTransport: self = .openTransport
        case .closeTransport: self = .closeTransport
        case .send(let packet): self = .send(packet)
        case .connected(let present): self = .connected(sessionPresent: present)
        case .connectFailed(let failure, let retry): self = .connectFailed(failure, willRetry: retry)
        case .offline(let failure, let retry): self = .offline(failure, willReconnect: retry)
        case .deliver(let view):
            self = .deliver(topic: view.topicString, payload: [UInt8](view.payload), qos: view.qos, packetID: view.packetID, dup: view.dup)
        case .deliverOversized(let view):
            self = .deliverOversized(topic: view.topicString, prefix: [UInt8](view.payloadPrefix), total: view.totalPayloadLength,
                                     qos: view.qos, packetID: view.packetID)
        case .publishCompleted(let token, let id, let qos): self = .published(token, packetID: id, qos: qos)
        case .subscribeCompleted(let token, let filters, let codes): self = .subscribed(token, filters: filters, codes: codes)
        case .unsubscribeCompleted(let token, let id): self = .unsubscribed(token, packetID: id)
        case .requestFailed(let token, let error): self = .failed(token, error)
        case .unexpectedAck(let type, let id): self = .unexpected(type, packetID: id)
        case .disconnected: self = .disconnected
        }
    }

    /// The packet of a `.send`, else nil.
    var sentPacket: Packet? {
        if case .send(let packet) = self { return packet }
        return nil
    }
}

/// Drives a state machine with a hand-moved clock and a timer that honours the machine's
/// deadline protocol (re-armed after every call, fired with its generation).
struct Harness {
    var machine: MQTTClientStateMachine
    var actions = MQTTClientActions()
    var now = MQTTInstant(nanoseconds: 1_000_000_000)
    /// Everything recorded since the last `take()`.
    var log: [Recorded] = []
    /// Timer fires carried out (stale or not).
    var fires = 0
    /// The transport of the last `openTransport` (kept after it closed, to report stale events).
    var transport = MQTTTransportID(rawValue: 0)
    /// Every transport opened, and every transport the machine asked to close, in order.
    var opened: [MQTTTransportID] = []
    var closed: [MQTTTransportID] = []

    init(_ configuration: MQTTClientConfiguration) {
        machine = MQTTClientStateMachine(configuration: configuration)
    }

    init(
        keepAlive: UInt16 = 60,
        cleanSession: Bool = true,
        version: ProtocolVersion = .v3_1_1,
        window: Int = 8,
        maxQueued: Int = 100,
        maxQueuedBytes: Int = 1 << 20,
        reconnect: ReconnectBackoff? = nil,
        connectTimeout: Duration = .seconds(10)
    ) {
        let connect = ConnectPacket(version: version, clientID: "c1", cleanSession: cleanSession, keepAlive: keepAlive)
        self.init(MQTTClientConfiguration(
            connect: connect,
            connectTimeout: connectTimeout,
            inflightWindow: window,
            maxQueuedMessages: maxQueued,
            maxQueuedBytes: maxQueuedBytes,
            reconnect: reconnect,
            jitterSeed: 42
        ))
    }

    /// Records and clears the actions of the last call.
    mutating func record() {
        for action in actions {
            switch action {
            case .openTransport(let id):
                transport = id
                opened.append(id)
            case .closeTransport(let id):
                closed.append(id)
            default:
                break
            }
            log.append(Recorded(action))
        }
        actions.removeAll()
    }

    /// Returns and clears the log.
    mutating func take() -> [Recorded] {
        defer { log.removeAll() }
        return log
    }

    /// Packets sent since the last `take()`, without clearing.
    var sent: [Packet] { log.compactMap(\.sentPacket) }

    mutating func at(_ instant: MQTTInstant) {
        now = instant
    }

    /// Moves the clock forward by `duration`, firing the timer each time its deadline is
    /// reached (at most 10,000 fires).
    mutating func advance(by duration: Duration) {
        let target = now + duration
        var fired = 0
        while let deadline = machine.deadline, deadline.at <= target, fired < 10_000 {
            if deadline.at > now { now = deadline.at }
            machine.timerFired(generation: deadline.generation, now: now, into: &actions)
            record()
            fires += 1
            fired += 1
        }
        now = target
    }

    /// Advances through timer fires until the waiting machine starts its next attempt; returns
    /// the time waited.
    @discardableResult
    mutating func advanceToNextAttempt() -> Duration {
        let start = now
        var rounds = 0
        while machine.connectionState == .waitingToReconnect, let deadline = machine.deadline, rounds < 100 {
            rounds += 1
            advance(by: deadline.at - now)
        }
        return now - start
    }

    mutating func connect() throws(MQTTClientError) {
        try machine.connect(now: now, into: &actions)
        record()
    }

    /// The last opened transport came up.
    mutating func transportConnected() {
        machine.transportConnected(transport, now: now, into: &actions)
        record()
    }

    /// The last opened transport failed.
    mutating func transportFailed(_ failure: MQTTConnectionFailure) {
        machine.transportFailed(transport, failure, now: now, into: &actions)
        record()
    }

    /// Feeds a packet through the one inbound entry point.
    mutating func received(_ packet: InboundPacket) {
        machine.receivedPacket(packet, now: now, into: &actions)
        record()
    }

    mutating func connack(_ code: ConnectReturnCode = .accepted, sessionPresent: Bool = false) {
        machine.receivedConnAck(ConnAckPacket(sessionPresent: sessionPresent, returnCode: code), now: now, into: &actions)
        record()
    }

    /// connect → transport up → CONNACK accepted; clears the log.
    mutating func establish(sessionPresent: Bool = false) throws(MQTTClientError) {
        try connect()
        transportConnected()
        connack(sessionPresent: sessionPresent)
        log.removeAll()
    }

    mutating func close() {
        machine.close(now: now, into: &actions)
        record()
    }

    mutating func disconnect(drainTimeout: Duration) {
        machine.disconnect(drainTimeout: drainTimeout, now: now, into: &actions)
        record()
    }

    mutating func publish(
        _ topic: String, _ payload: [UInt8] = [1, 2, 3], qos: QoS, token: UInt64? = nil, retain: Bool = false,
        whenFull: MQTTPublishFlowControl = .fail
    ) throws(MQTTClientError) {
        let message = PublishPacket(topic: topic, payload: payload, qos: qos, retain: retain)
        defer { record() }
        try machine.publish(message, token: token.map { MQTTRequestToken($0) }, whenFull: whenFull, now: now, into: &actions)
    }

    mutating func cancel(_ token: UInt64) {
        machine.cancel(MQTTRequestToken(token), now: now, into: &actions)
        record()
    }

    mutating func writable(_ writable: Bool) {
        machine.transportWritabilityChanged(writable, now: now, into: &actions)
        record()
    }

    @discardableResult
    mutating func subscribe(_ subscriptions: [TopicSubscription], token: UInt64? = nil) throws(MQTTClientError) -> UInt16 {
        defer { record() }
        return try machine.subscribe(subscriptions, token: token.map { MQTTRequestToken($0) }, now: now, into: &actions)
    }

    @discardableResult
    mutating func unsubscribe(_ filters: [String], token: UInt64? = nil) throws(MQTTClientError) -> UInt16 {
        defer { record() }
        return try machine.unsubscribe(filters, token: token.map { MQTTRequestToken($0) }, now: now, into: &actions)
    }

    mutating func receive(topic: String, payload: [UInt8], qos: QoS, packetID: UInt16 = 0, dup: Bool = false, retain: Bool = false) {
        let topicBytes = Array(topic.utf8)
        topicBytes.withUnsafeBytes { topicBuffer in
            payload.withUnsafeBytes { payloadBuffer in
                let view = PublishView(topic: topicBuffer, payload: payloadBuffer, qos: qos, retain: retain, dup: dup, packetID: packetID)
                machine.receivedPublish(view, now: now, into: &actions)
                // Deliveries refer to the buffers: record (copy) them before they go away.
                record()
            }
        }
    }

    mutating func puback(_ id: UInt16) { machine.receivedPubAck(packetID: id, now: now, into: &actions); record() }
    mutating func pubrec(_ id: UInt16) { machine.receivedPubRec(packetID: id, now: now, into: &actions); record() }
    mutating func pubrel(_ id: UInt16) { machine.receivedPubRel(packetID: id, now: now, into: &actions); record() }
    mutating func pubcomp(_ id: UInt16) { machine.receivedPubComp(packetID: id, now: now, into: &actions); record() }
    mutating func pingresp() { machine.receivedPingResp(now: now, into: &actions); record() }
    mutating func unsuback(_ id: UInt16) { machine.receivedUnsubAck(packetID: id, now: now, into: &actions); record() }
    mutating func suback(_ id: UInt16, _ codes: [SubAckReturnCode]) {
        machine.receivedSubAck(SubAckPacket(packetID: id, returnCodes: codes), now: now, into: &actions)
        record()
    }

    /// An oversize PUBLISH on topic "big" with the prefix [1, 2] of 1,000 bytes.
    mutating func oversize(qos: QoS, packetID: UInt16) {
        let topic: [UInt8] = Array("big".utf8)
        let prefix: [UInt8] = [1, 2]
        topic.withUnsafeBytes { t in
            prefix.withUnsafeBytes { p in
                let view = OversizePublishView(topic: t, payloadPrefix: p, totalPayloadLength: 1_000, qos: qos, retain: false,
                                               dup: false, packetID: packetID)
                machine.receivedPacket(.oversizePublish(view), now: now, into: &actions)
                record()
            }
        }
    }
}

extension Packet {
    /// The PUBLISH inside, else nil.
    var publish: PublishPacket? {
        if case .publish(let p) = self { return p }
        return nil
    }
}

extension Duration {
    /// `seconds` as a Duration from a floating value (test convenience).
    static func s(_ seconds: Double) -> Duration { .nanoseconds(Int64(seconds * 1e9)) }
}
