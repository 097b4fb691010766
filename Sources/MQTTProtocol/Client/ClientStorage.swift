/// A FIFO over a power-of-two ring of optional slots; grows by doubling, never shrinks, so a
/// queue that has reached its working size no longer allocates.
struct ClientRing<Element> {
    private var slots: ContiguousArray<Element?>
    private var head = 0
    private(set) var count = 0

    init(initialCapacity: Int) {
        var capacity = 4
        while capacity < initialCapacity { capacity <<= 1 }
        slots = ContiguousArray(repeating: nil, count: capacity)
    }

    var isEmpty: Bool { count == 0 }
    var first: Element? { count == 0 ? nil : slots[head] }

    mutating func append(_ element: Element) {
        if count == slots.count { grow() }
        slots[(head &+ count) & (slots.count &- 1)] = element
        count &+= 1
    }

    mutating func prepend(_ element: Element) {
        if count == slots.count { grow() }
        head = (head &- 1) & (slots.count &- 1)
        slots[head] = element
        count &+= 1
    }

    mutating func popFirst() -> Element? {
        guard count > 0 else { return nil }
        let element = slots[head]
        slots[head] = nil
        head = (head &+ 1) & (slots.count &- 1)
        count &-= 1
        return element
    }

    private mutating func grow() {
        var bigger = ContiguousArray<Element?>(repeating: nil, count: slots.count * 2)
        for i in 0..<count {
            bigger[i] = slots[(head &+ i) & (slots.count &- 1)]
        }
        slots = bigger
        head = 0
    }
}

/// A set of packet identifiers as a 65,536-bit bitmap (8 KiB): insert, remove and lookup in
/// constant time with no allocation after creation.
struct PacketIDSet {
    private var words: [UInt64]
    private(set) var count = 0

    init() {
        words = [UInt64](repeating: 0, count: 1024)
    }

    func contains(_ id: UInt16) -> Bool {
        words[Int(id >> 6)] & (1 << UInt64(id & 63)) != 0
    }

    /// Returns true when `id` was not in the set.
    @discardableResult
    mutating func insert(_ id: UInt16) -> Bool {
        let index = Int(id >> 6)
        let bit: UInt64 = 1 << UInt64(id & 63)
        if words[index] & bit != 0 { return false }
        words[index] |= bit
        count += 1
        return true
    }

    /// Returns true when `id` was in the set.
    @discardableResult
    mutating func remove(_ id: UInt16) -> Bool {
        let index = Int(id >> 6)
        let bit: UInt64 = 1 << UInt64(id & 63)
        if words[index] & bit == 0 { return false }
        words[index] &= ~bit
        count -= 1
        return true
    }

    mutating func removeAll() {
        guard count > 0 else { return }
        for i in words.indices { words[i] = 0 }
        count = 0
    }
}

/// Where an outgoing QoS 1 / 2 message is in its handshake.
enum OutgoingPhase: Sendable, Hashable {
    /// QoS 1 PUBLISH sent, waiting for PUBACK.
    case awaitingPubAck
    /// QoS 2 PUBLISH sent, waiting for PUBREC.
    case awaitingPubRec
    /// QoS 2 PUBREL sent, waiting for PUBCOMP.
    case awaitingPubComp
}

/// An outgoing message between its PUBLISH and its final acknowledgement.
struct OutgoingMessage {
    /// The message as sent (packet id set; DUP as last sent).
    var message: PublishPacket
    var token: MQTTRequestToken?
    var phase: OutgoingPhase
    /// Order of first transmission, for the resend order [MQTT-4.6.0-1].
    var sequence: UInt64
}

/// A message waiting for the in-flight window or for the connection.
struct QueuedMessage {
    var message: PublishPacket
    var token: MQTTRequestToken?
    /// Topic plus payload bytes, counted against the queue's byte bound.
    var size: Int
}

/// The in-flight window: a preallocated slot array plus a packet-id index reserved up front,
/// so that adding and acknowledging a message does not allocate.
///
/// The index is a direct table over the 16-bit packet id space (`slotByID[id]` = slot + 1, 0 for
/// none: 128 KiB, its pages touched only as ids are used) rather than a dictionary: a lookup is
/// one load instead of a SipHash, and a QoS 1 message takes several (allocate, insert, PUBACK).
struct InflightTable {
    private var slots: [OutgoingMessage?]
    private var freeSlots: [Int]
    private var slotByID: [UInt16]
    private var used = 0

    init(capacity: Int) {
        slots = [OutgoingMessage?](repeating: nil, count: capacity)
        freeSlots = Array((0..<capacity).reversed())
        slotByID = [UInt16](repeating: 0, count: 65_536)
    }

    var capacity: Int { slots.count }
    var count: Int { used }
    var isFull: Bool { freeSlots.isEmpty }

    @inline(__always)
    private func slot(of id: UInt16) -> Int? {
        let entry = slotByID[Int(id)]
        return entry == 0 ? nil : Int(entry) - 1
    }

    func contains(_ id: UInt16) -> Bool { slotByID[Int(id)] != 0 }

    func phase(of id: UInt16) -> OutgoingPhase? {
        guard let slot = slot(of: id) else { return nil }
        return slots[slot]?.phase
    }

    /// Adds a message; the caller checked `isFull` and that the id is free.
    mutating func insert(_ message: OutgoingMessage) {
        guard let slot = freeSlots.popLast() else { return }
        slots[slot] = message
        slotByID[Int(message.message.packetID)] = UInt16(slot + 1)
        used += 1
    }

    /// Moves a QoS 2 message past PUBREC. The payload is kept: if the session is lost before
    /// PUBCOMP, the message is published again.
    mutating func markReleased(_ id: UInt16) {
        guard let slot = slot(of: id) else { return }
        slots[slot]?.phase = .awaitingPubComp
    }

    mutating func markDuplicate(_ id: UInt16) {
        guard let slot = slot(of: id) else { return }
        slots[slot]?.message.dup = true
    }

    func message(_ id: UInt16) -> OutgoingMessage? {
        guard let slot = slot(of: id) else { return nil }
        return slots[slot]
    }

    mutating func remove(_ id: UInt16) -> OutgoingMessage? {
        guard let slot = slot(of: id) else { return nil }
        slotByID[Int(id)] = 0
        used -= 1
        let message = slots[slot]
        slots[slot] = nil
        freeSlots.append(slot)
        return message
    }

    /// The messages in order of first transmission (allocates; used on reconnect and close).
    func ordered() -> [OutgoingMessage] {
        slots.compactMap { $0 }.sorted { $0.sequence < $1.sequence }
    }

    /// Removes everything and returns it in order of first transmission.
    mutating func removeAll() -> [OutgoingMessage] {
        let all = ordered()
        for message in all { _ = remove(message.message.packetID) }
        return all
    }
}

/// A SUBSCRIBE or UNSUBSCRIBE waiting for its acknowledgement.
struct PendingControl {
    enum Kind {
        case subscribe([TopicSubscription])
        case unsubscribe([String])
    }

    var kind: Kind
    /// The caller's token (nil when nobody waits; always nil for re-subscriptions).
    var token: MQTTRequestToken?
    /// The machine's own re-subscription after a reconnect without session.
    var isResubscription: Bool = false
    var sequence: UInt64
    /// Whether the packet went out on the current connection.
    var sent: Bool

    init(kind: Kind, token: MQTTRequestToken?, isResubscription: Bool = false, sequence: UInt64, sent: Bool) {
        self.kind = kind
        self.token = token
        self.isResubscription = isResubscription
        self.sequence = sequence
        self.sent = sent
    }

    func packet(id: UInt16) -> Packet {
        switch kind {
        case .subscribe(let subscriptions): .subscribe(SubscribePacket(packetID: id, subscriptions: subscriptions))
        case .unsubscribe(let filters): .unsubscribe(UnsubscribePacket(packetID: id, filters: filters))
        }
    }
}

extension ClientRing: Sendable where Element: Sendable {}
