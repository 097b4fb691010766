/// A FIFO over a power-of-two ring of optional slots; grows by doubling, never shrinks, so a
/// queue that has reached its working size no longer allocates. No storage until the first
/// element (an idle client pays nothing for its queues).
struct ClientRing<Element> {
    private var slots: ContiguousArray<Element?> = []
    private var head = 0
    private(set) var count = 0
    /// The slots allocated by the first append.
    private let firstCapacity: Int

    init(initialCapacity: Int) {
        var capacity = 4
        while capacity < initialCapacity { capacity <<= 1 }
        firstCapacity = capacity
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

    /// The element at logical position `index` (0 = first), which must be below `count`.
    subscript(index: Int) -> Element {
        get { slots[(head &+ index) & (slots.count &- 1)]! }
        set { slots[(head &+ index) & (slots.count &- 1)] = newValue }
    }

    /// The logical position of the first element matching `predicate`.
    func firstIndex(where predicate: (Element) -> Bool) -> Int? {
        for i in 0..<count where predicate(self[i]) { return i }
        return nil
    }

    /// Removes the element at logical position `index`, keeping the order of the others
    /// (shifts the later ones: O(count), for the rare cancellation).
    @discardableResult
    mutating func remove(at index: Int) -> Element {
        let element = self[index]
        let mask = slots.count &- 1
        var i = index
        while i < count &- 1 {
            slots[(head &+ i) & mask] = slots[(head &+ i &+ 1) & mask]
            i &+= 1
        }
        slots[(head &+ count &- 1) & mask] = nil
        count &-= 1
        return element
    }

    private mutating func grow() {
        var bigger = ContiguousArray<Element?>(repeating: nil, count: max(firstCapacity, slots.count * 2))
        for i in 0..<count {
            bigger[i] = slots[(head &+ i) & (slots.count &- 1)]
        }
        slots = bigger
        head = 0
    }
}

/// A set of packet identifiers as a 65,536-bit bitmap (8 KiB): insert, remove and lookup in
/// constant time. The bitmap is allocated by the first insert (a client that never receives
/// QoS 2 never pays for it) and kept afterwards, so a QoS 2 stream does not allocate.
struct PacketIDSet {
    private var words: [UInt64] = []
    private(set) var count = 0

    init() {}

    func contains(_ id: UInt16) -> Bool {
        count > 0 && words[Int(id >> 6)] & (1 << UInt64(id & 63)) != 0
    }

    /// Returns true when `id` was not in the set.
    @discardableResult
    mutating func insert(_ id: UInt16) -> Bool {
        if words.isEmpty { words = [UInt64](repeating: 0, count: 1024) }
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
        guard count > 0 else { return false }
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

/// A message waiting for the in-flight window or for the connection (or, with
/// ``MQTTPublishFlowControl/wait``, for room in the queue).
struct QueuedMessage {
    var message: PublishPacket
    var token: MQTTRequestToken?
    /// Topic plus payload bytes, counted against the queue's byte bound.
    var size: Int
    /// Whether it was written on an earlier connection (put back after a session was lost):
    /// the broker may have it, so a cancel detaches its token instead of withdrawing it.
    var wasSent: Bool = false
}

/// Packet id → slot, as open addressing over a power-of-two table at most half full, with the
/// id itself as the hash (ids are handed out in sequence, so they spread evenly) and
/// backward-shift deletion (no tombstones). Sized once, by the first insert; never allocates
/// afterwards.
struct PacketIDIndex {
    /// 0 marks an empty cell: packet id 0 is never used [MQTT-2.3.1-1].
    private var keys: [UInt16] = []
    private var values: [Int32] = []
    private let mask: Int
    private(set) var count = 0

    init(capacity: Int) {
        var size = 4
        while size < capacity * 2 { size <<= 1 }
        mask = size - 1
    }

    func find(_ id: UInt16) -> Int? {
        if count == 0 { return nil }
        var i = Int(id) & mask
        while true {
            let key = keys[i]
            if key == id { return Int(values[i]) }
            if key == 0 { return nil }
            i = (i &+ 1) & mask
        }
    }

    /// Adds `id`, which must be absent and non-zero, with fewer than `capacity` entries.
    mutating func insert(_ id: UInt16, value: Int) {
        if keys.isEmpty {
            keys = [UInt16](repeating: 0, count: mask + 1)
            values = [Int32](repeating: 0, count: mask + 1)
        }
        var i = Int(id) & mask
        while keys[i] != 0 { i = (i &+ 1) & mask }
        keys[i] = id
        values[i] = Int32(truncatingIfNeeded: value)
        count += 1
    }

    mutating func remove(_ id: UInt16) -> Int? {
        if count == 0 { return nil }
        var i = Int(id) & mask
        while true {
            let key = keys[i]
            if key == 0 { return nil }
            if key == id { break }
            i = (i &+ 1) & mask
        }
        let value = Int(values[i])
        // Backward shift: pull later entries of the probe run into the hole when their home
        // cell lies cyclically at or before the hole, so lookups never meet a false gap.
        var hole = i
        var j = (i &+ 1) & mask
        while keys[j] != 0 {
            let home = Int(keys[j]) & mask
            if (j &- home) & mask >= (j &- hole) & mask {
                keys[hole] = keys[j]
                values[hole] = values[j]
                hole = j
            }
            j = (j &+ 1) & mask
        }
        keys[hole] = 0
        count -= 1
        return value
    }
}

/// The in-flight window: a slot array plus a packet-id index, both sized for the whole window
/// by the first insert (an idle client, or one that only publishes at QoS 0, pays nothing), so
/// that adding and acknowledging a message does not allocate afterwards.
struct InflightTable {
    private var slots: [OutgoingMessage?] = []
    private var freeSlots: [Int] = []
    private var slotByID: PacketIDIndex
    /// The window size.
    let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
        slotByID = PacketIDIndex(capacity: capacity)
    }

    var count: Int { slotByID.count }
    var isFull: Bool { count >= capacity }

    func contains(_ id: UInt16) -> Bool { slotByID.find(id) != nil }

    func phase(of id: UInt16) -> OutgoingPhase? {
        guard let slot = slotByID.find(id) else { return nil }
        return slots[slot]?.phase
    }

    /// Adds a message; the caller checked `isFull` and that the id is free.
    mutating func insert(_ message: OutgoingMessage) {
        if slots.isEmpty {
            slots = [OutgoingMessage?](repeating: nil, count: capacity)
            freeSlots = Array((0..<capacity).reversed())
        }
        guard let slot = freeSlots.popLast() else { return }
        slots[slot] = message
        slotByID.insert(message.message.packetID, value: slot)
    }

    /// Moves a QoS 2 message past PUBREC. The payload is kept: if the session is lost before
    /// PUBCOMP, the message is published again.
    mutating func markReleased(_ id: UInt16) {
        guard let slot = slotByID.find(id) else { return }
        slots[slot]?.phase = .awaitingPubComp
    }

    mutating func markDuplicate(_ id: UInt16) {
        guard let slot = slotByID.find(id) else { return }
        slots[slot]?.message.dup = true
    }

    mutating func remove(_ id: UInt16) -> OutgoingMessage? {
        guard let slot = slotByID.remove(id) else { return nil }
        let message = slots[slot]
        slots[slot] = nil
        freeSlots.append(slot)
        return message
    }

    /// The messages in order of first transmission (allocates; used on reconnect and close).
    func ordered() -> [OutgoingMessage] {
        slots.compactMap { $0 }.sorted { $0.sequence < $1.sequence }
    }

    /// Drops the token of the message that carries `token` (its completion will carry nil);
    /// returns whether one did. Scans the window: for the rare cancellation.
    mutating func detachToken(_ token: MQTTRequestToken) -> Bool {
        for slot in slots.indices where slots[slot]?.token == token {
            slots[slot]?.token = nil
            return true
        }
        return false
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
    var sent: Bool {
        didSet { if sent { everSent = true } }
    }
    /// Whether the packet went out on any connection (a cancel then keeps it until its ack).
    private(set) var everSent: Bool

    init(kind: Kind, token: MQTTRequestToken?, isResubscription: Bool = false, sequence: UInt64, sent: Bool) {
        self.kind = kind
        self.token = token
        self.isResubscription = isResubscription
        self.sequence = sequence
        self.sent = sent
        self.everSent = sent
    }

    func packet(id: UInt16) -> Packet {
        switch kind {
        case .subscribe(let subscriptions): .subscribe(SubscribePacket(packetID: id, subscriptions: subscriptions))
        case .unsubscribe(let filters): .unsubscribe(UnsubscribePacket(packetID: id, filters: filters))
        }
    }
}

extension ClientRing: Sendable where Element: Sendable {}
