import Logging
import MQTTProtocol

/// The packet trace (`mqtt -d`): one `trace`-level log line per packet sent or received, in
/// mosquitto's `-d` style (`sending PUBLISH (d0, q1, r0, m3, 'a/b', ... (5 bytes))`).
///
/// Emitted only when the client's logger is at `.trace`; the engine reads that once, at
/// creation (``ClientEngine/tracing``), so the per-packet cost without tracing is one branch.
extension ClientEngine {
    func traceSent(_ packet: Packet) {
        logger?.trace("sending \(Self.describe(packet))")
    }

    func traceSentPublish(topic: String, payloadCount: Int, retain: Bool) {
        logger?.trace("sending PUBLISH (d0, q0, r\(retain ? 1 : 0), m0, '\(topic)', ... (\(payloadCount) bytes))")
    }

    func traceReceived(_ packet: InboundPacket) {
        logger?.trace("received \(Self.describe(packet))")
    }

    static func describe(_ packet: Packet) -> String {
        switch packet {
        case .connect(let c):
            var text = "CONNECT (p\(c.version.rawValue), c\(c.cleanSession ? 1 : 0), k\(c.keepAlive), id '\(c.clientID)'"
            if let user = c.username { text += ", u '\(user)'" }
            if let will = c.will { text += ", will '\(will.topic)' q\(will.qos.rawValue) r\(will.retain ? 1 : 0)" }
            return text + ")"
        case .connack(let c):
            return "CONNACK (s\(c.sessionPresent ? 1 : 0), rc\(c.returnCode.rawValue))"
        case .publish(let p):
            return "PUBLISH (d\(p.dup ? 1 : 0), q\(p.qos.rawValue), r\(p.retain ? 1 : 0), m\(p.packetID), '\(p.topic)', ... (\(p.payload.count) bytes))"
        case .puback(let id): return "PUBACK (m\(id))"
        case .pubrec(let id): return "PUBREC (m\(id))"
        case .pubrel(let id): return "PUBREL (m\(id))"
        case .pubcomp(let id): return "PUBCOMP (m\(id))"
        case .subscribe(let s):
            return "SUBSCRIBE (m\(s.packetID), " + s.subscriptions.map { "'\($0.filter)' q\($0.qos.rawValue)" }.joined(separator: ", ") + ")"
        case .suback(let s):
            return "SUBACK (m\(s.packetID), " + s.returnCodes.map { String($0.rawValue) }.joined(separator: ", ") + ")"
        case .unsubscribe(let u):
            return "UNSUBSCRIBE (m\(u.packetID), " + u.filters.map { "'\($0)'" }.joined(separator: ", ") + ")"
        case .unsuback(let id): return "UNSUBACK (m\(id))"
        case .pingreq: return "PINGREQ"
        case .pingresp: return "PINGRESP"
        case .disconnect: return "DISCONNECT"
        }
    }

    static func describe(_ packet: InboundPacket) -> String {
        switch packet {
        case .publish(let p):
            return "PUBLISH (d\(p.dup ? 1 : 0), q\(p.qos.rawValue), r\(p.retain ? 1 : 0), m\(p.packetID), '\(String(decoding: p.topic, as: UTF8.self))', ... (\(p.payload.count) bytes))"
        case .oversizePublish(let p):
            return "PUBLISH (d\(p.dup ? 1 : 0), q\(p.qos.rawValue), r\(p.retain ? 1 : 0), m\(p.packetID), '\(String(decoding: p.topic, as: UTF8.self))', ... (\(p.totalPayloadLength) bytes, over the limit))"
        case .connack(let c): return describe(Packet.connack(c))
        case .puback(let id): return describe(Packet.puback(packetID: id))
        case .pubrec(let id): return describe(Packet.pubrec(packetID: id))
        case .pubrel(let id): return describe(Packet.pubrel(packetID: id))
        case .pubcomp(let id): return describe(Packet.pubcomp(packetID: id))
        case .suback(let s): return describe(Packet.suback(s))
        case .unsuback(let id): return describe(Packet.unsuback(packetID: id))
        case .pingreq: return "PINGREQ"
        case .pingresp: return "PINGRESP"
        case .disconnect: return "DISCONNECT"
        case .connect(let c): return describe(Packet.connect(c))
        case .subscribe(let s): return describe(Packet.subscribe(s))
        case .unsubscribe(let u): return describe(Packet.unsubscribe(u))
        }
    }
}
