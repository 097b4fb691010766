import MQTTProtocol
import Testing

/// A broker model for the client's outgoing messages: QoS 1 delivered on every PUBLISH, QoS 2
/// stored at PUBLISH and delivered at PUBREL (as mosquitto does), with a session that survives
/// a reconnect unless the test makes the broker lose it.
struct BrokerModel {
    var pendingQoS2: [UInt16: UInt64] = [:]  // id → token carried in the payload
    var deliveries: [UInt64: Int] = [:]

    static func token(of payload: [UInt8]) -> UInt64 {
        payload.reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// Processes one packet from the client; returns the answer, if any.
    mutating func receive(_ packet: Packet) -> Packet? {
        switch packet {
        case .publish(let p):
            let token = Self.token(of: p.payload)
            switch p.qos {
            case .atMostOnce:
                deliveries[token, default: 0] += 1
                return nil
            case .atLeastOnce:
                deliveries[token, default: 0] += 1
                return .puback(packetID: p.packetID)
            case .exactlyOnce:
                if pendingQoS2[p.packetID] == nil { pendingQoS2[p.packetID] = token }
                return .pubrec(packetID: p.packetID)
            }
        case .pubrel(let id):
            if let token = pendingQoS2.removeValue(forKey: id) { deliveries[token, default: 0] += 1 }
            return .pubcomp(packetID: id)
        case .pingreq:
            return .pingresp
        default:
            return nil
        }
    }
}

@Suite struct ClientSessionPropertyTests {
    /// Random publishes, partial delivery in both directions, connection cuts and reconnects;
    /// sometimes the broker loses the session. Checks: every accepted publish completes exactly
    /// once; every message reaches the broker at least once; with the session always kept, QoS
    /// 2 messages reach it exactly once; no packet id is ever twice in flight.
    @Test(arguments: [false, true])
    func nothingPromisedIsLostAcrossCutsAndReconnects(brokerLosesSessions: Bool) throws {
        var rng = SplitMix(seed: brokerLosesSessions ? 99 : 11)
        for _ in 0..<40 {
            var h = Harness(keepAlive: 0, cleanSession: false, window: 1 + rng.below(8), maxQueued: 50, reconnect: ReconnectBackoff())
            var broker = BrokerModel()
            var toBroker: [Packet] = []
            var toClient: [Packet] = []
            var issued: [UInt64: QoS] = [:]
            var completed: [UInt64: Int] = [:]
            var inFlightIDs: Set<UInt16> = []
            var nextToken: UInt64 = 1
            var sessionEverLost = false
            try h.establish()

            func collect(_ h: inout Harness) {
                for record in h.take() {
                    switch record {
                    case .send(let packet):
                        if case .connect = packet { continue }
                        if case .publish(let p) = packet, p.qos != .atMostOnce {
                            if !p.dup {
                                #expect(!inFlightIDs.contains(p.packetID), "id \(p.packetID) twice in flight")
                            }
                            inFlightIDs.insert(p.packetID)
                        }
                        toBroker.append(packet)
                    case .published(let token, let id, let qos):
                        completed[token!.rawValue, default: 0] += 1
                        if qos != .atMostOnce { inFlightIDs.remove(id) }
                    case .failed(let token, let error):
                        Issue.record("request \(token) failed: \(error)")
                    default:
                        break
                    }
                }
            }

            func feedClient(_ h: inout Harness, _ packet: Packet) {
                switch packet {
                case .puback(let id): h.puback(id)
                case .pubrec(let id): h.pubrec(id)
                case .pubcomp(let id): h.pubcomp(id)
                case .pingresp: h.pingresp()
                default: break
                }
            }

            func reconnect(_ h: inout Harness, _ broker: inout BrokerModel, lose: Bool) {
                h.advanceToNextAttempt()
                h.transportConnected()
                if lose {
                    broker.pendingQoS2.removeAll()
                    // The new session knows no ids: ids the client had in flight are free.
                    inFlightIDs.removeAll()
                }
                h.connack(sessionPresent: !lose)
            }

            for _ in 0..<300 {
                switch rng.below(10) {
                case 0...3:
                    let token = nextToken
                    nextToken += 1
                    let qos: QoS = [.atMostOnce, .atLeastOnce, .exactlyOnce][rng.below(3)]
                    let payload = [UInt8(token >> 8 & 0xFF), UInt8(token & 0xFF)]
                    do {
                        try h.publish("t", payload, qos: qos, token: token)
                        issued[token] = qos
                    } catch {
                        #expect(error == .offlineQueueFull(messages: 50, bytes: h.machine.queuedByteCount) || error == .sendQueueFull(messages: 50, bytes: h.machine.queuedByteCount))
                    }
                case 4...5:
                    for _ in 0..<rng.below(4) where !toBroker.isEmpty {
                        if let answer = broker.receive(toBroker.removeFirst()) { toClient.append(answer) }
                    }
                case 6...7:
                    for _ in 0..<rng.below(4) where !toClient.isEmpty {
                        feedClient(&h, toClient.removeFirst())
                    }
                case 8:
                    if h.machine.connectionState == .connected && rng.below(3) == 0 {
                        // Cut: whatever is on the wire is lost.
                        toBroker.removeAll()
                        toClient.removeAll()
                        h.transportFailed(.closedByPeer)
                    }
                default:
                    if h.machine.connectionState == .waitingToReconnect {
                        let lose = brokerLosesSessions && rng.below(3) == 0
                        sessionEverLost = sessionEverLost || lose
                        reconnect(&h, &broker, lose: lose)
                    }
                }
                collect(&h)
            }
            // Settle: reconnect if needed and exchange until nothing is outstanding.
            var rounds = 0
            while rounds < 1_000 && (h.machine.connectionState != .connected || !toBroker.isEmpty || !toClient.isEmpty
                                    || h.machine.inflightCount > 0 || h.machine.queuedMessageCount > 0) {
                rounds += 1
                if h.machine.connectionState == .waitingToReconnect { reconnect(&h, &broker, lose: false) }
                while !toBroker.isEmpty { if let answer = broker.receive(toBroker.removeFirst()) { toClient.append(answer) } }
                while !toClient.isEmpty { feedClient(&h, toClient.removeFirst()) }
                collect(&h)
            }
            #expect(rounds < 1_000)
            for (token, qos) in issued {
                #expect(completed[token] == 1, "token \(token) completed \(completed[token] ?? 0) times")
                // QoS 0 sent before a cut may be lost: that is QoS 0.
                if qos == .atMostOnce { continue }
                let delivered = broker.deliveries[token] ?? 0
                #expect(delivered >= 1, "QoS \(qos.rawValue) message \(token) lost")
                if qos == .exactlyOnce && !sessionEverLost {
                    #expect(delivered == 1, "QoS 2 message \(token) delivered \(delivered) times")
                }
            }
        }
    }
}

/// A broker model for messages to the client: QoS 1 and 2 with ids, resent with DUP (and
/// PUBREL resent) after a reconnect with the session kept, as [MQTT-4.4.0-1] asks.
struct SendingBrokerModel {
    enum Phase { case awaitingAck, awaitingPubRec, awaitingPubComp }
    struct Outgoing { var id: UInt16; var qos: QoS; var token: UInt64; var phase: Phase }
    var inFlight: [Outgoing] = []  // in order of first transmission
    var nextID: UInt16 = 1

    mutating func publish(token: UInt64, qos: QoS) -> Packet {
        let id = nextID
        nextID = nextID == 65_535 ? 1 : nextID + 1
        inFlight.append(Outgoing(id: id, qos: qos, token: token, phase: qos == .atLeastOnce ? .awaitingAck : .awaitingPubRec))
        return .publish(PublishPacket(topic: "in", payload: [UInt8(token >> 8 & 0xFF), UInt8(token & 0xFF)], qos: qos, packetID: id))
    }

    mutating func receive(_ packet: Packet) -> Packet? {
        switch packet {
        case .puback(let id):
            inFlight.removeAll { $0.id == id && $0.phase == .awaitingAck }
        case .pubrec(let id):
            if let i = inFlight.firstIndex(where: { $0.id == id }) {
                inFlight[i].phase = .awaitingPubComp
                return .pubrel(packetID: id)
            }
        case .pubcomp(let id):
            inFlight.removeAll { $0.id == id && $0.phase == .awaitingPubComp }
        default:
            break
        }
        return nil
    }

    func resend() -> [Packet] {
        inFlight.map { o in
            switch o.phase {
            case .awaitingAck, .awaitingPubRec:
                .publish(PublishPacket(topic: "in", payload: [UInt8(o.token >> 8 & 0xFF), UInt8(o.token & 0xFF)], qos: o.qos, dup: true, packetID: o.id))
            case .awaitingPubComp:
                .pubrel(packetID: o.id)
            }
        }
    }
}

extension ClientSessionPropertyTests {
    /// The broker sends QoS 1 and 2 messages while the link is cut at random; with the session
    /// kept, every QoS 2 message is delivered to the application exactly once and every QoS 1
    /// message at least once.
    @Test func incomingQoS2IsDeliveredExactlyOnceAcrossCuts() throws {
        var rng = SplitMix(seed: 5)
        for _ in 0..<40 {
            var h = Harness(keepAlive: 0, cleanSession: false, reconnect: ReconnectBackoff())
            var broker = SendingBrokerModel()
            var toBroker: [Packet] = []
            var toClient: [Packet] = []
            var sent: [UInt64: QoS] = [:]
            var delivered: [UInt64: Int] = [:]
            var nextToken: UInt64 = 1
            try h.establish()

            func collect(_ h: inout Harness) {
                for record in h.take() {
                    switch record {
                    case .send(let packet):
                        if case .connect = packet { continue }
                        toBroker.append(packet)
                    case .deliver(_, let payload, _, _, _):
                        delivered[BrokerModel.token(of: payload), default: 0] += 1
                    default:
                        break
                    }
                }
            }

            func feed(_ h: inout Harness, _ packet: Packet) {
                switch packet {
                case .publish(let p): h.receive(topic: p.topic, payload: p.payload, qos: p.qos, packetID: p.packetID, dup: p.dup)
                case .pubrel(let id): h.pubrel(id)
                default: break
                }
            }

            func reconnect(_ h: inout Harness) {
                h.advanceToNextAttempt()
                h.transportConnected()
                h.connack(sessionPresent: true)
                toClient.append(contentsOf: broker.resend())
            }

            for _ in 0..<300 {
                let connected = h.machine.connectionState == .connected
                switch rng.below(10) {
                case 0...2 where connected && broker.inFlight.count < 20:
                    let token = nextToken
                    nextToken += 1
                    let qos: QoS = rng.below(3) == 0 ? .atLeastOnce : .exactlyOnce
                    sent[token] = qos
                    toClient.append(broker.publish(token: token, qos: qos))
                case 3...5 where connected:
                    for _ in 0..<rng.below(4) where !toClient.isEmpty { feed(&h, toClient.removeFirst()) }
                case 6...7 where connected:
                    for _ in 0..<rng.below(4) where !toBroker.isEmpty {
                        if let answer = broker.receive(toBroker.removeFirst()) { toClient.append(answer) }
                    }
                case 8 where connected:
                    if rng.below(3) == 0 {
                        toBroker.removeAll()
                        toClient.removeAll()
                        h.transportFailed(.closedByPeer)
                    }
                default:
                    if h.machine.connectionState == .waitingToReconnect { reconnect(&h) }
                }
                collect(&h)
            }
            var rounds = 0
            while rounds < 1_000 && (h.machine.connectionState != .connected || !broker.inFlight.isEmpty) {
                rounds += 1
                if h.machine.connectionState == .waitingToReconnect { reconnect(&h) }
                while !toClient.isEmpty { feed(&h, toClient.removeFirst()) }
                collect(&h)
                while !toBroker.isEmpty { if let answer = broker.receive(toBroker.removeFirst()) { toClient.append(answer) } }
            }
            #expect(rounds < 1_000)
            #expect(h.machine.awaitingReleaseCount == 0)
            for (token, qos) in sent {
                let count = delivered[token] ?? 0
                if qos == .exactlyOnce {
                    #expect(count == 1, "QoS 2 message \(token) delivered \(count) times")
                } else {
                    #expect(count >= 1, "QoS 1 message \(token) lost")
                }
            }
        }
    }
}
