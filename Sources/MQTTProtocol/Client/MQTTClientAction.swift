/// An opaque value the caller attaches to a request (publish, subscribe, unsubscribe) and gets
/// back with its completion, to find the continuation or callback it belongs to.
///
/// The machine only carries tokens: it stores them with their request and hands them back in
/// ``MQTTClientAction/publishCompleted(_:packetID:qos:)``, ``MQTTClientAction/requestFailed(_:_:)``
/// and the other completions. ``context`` lets the caller put the completion itself in the token
/// (a box holding a continuation or a callback), so it needs no table of its own; carrying it
/// retains the object, it allocates nothing. Equality and hashing use ``rawValue`` only, so
/// ``MQTTClientStateMachine/cancel(_:now:into:)`` finds a request by its number alone.
public struct MQTTRequestToken: Sendable, Hashable, CustomStringConvertible {
    /// The caller's value (for example a slot index or a counter); identifies the request.
    public var rawValue: UInt64
    /// The caller's object riding with the request (for example its completion box); not part
    /// of equality or hashing.
    public let context: (any AnyObject & Sendable)?

    /// Creates a token.
    ///
    /// - Parameters:
    ///   - rawValue: Any value meaningful to the caller; tokens with the same value are equal.
    ///   - context: An object handed back with the token (its completion, say); nil by default.
    public init(_ rawValue: UInt64, context: (any AnyObject & Sendable)? = nil) {
        self.rawValue = rawValue
        self.context = context
    }

    /// Tokens are equal when their ``rawValue``s are; ``context`` is ignored.
    public static func == (lhs: MQTTRequestToken, rhs: MQTTRequestToken) -> Bool {
        lhs.rawValue == rhs.rawValue
    }

    /// Hashes ``rawValue`` only.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(rawValue)
    }

    public var description: String { "#\(rawValue)" }
}

/// Names one transport (one TCP / TLS connection attempt) the machine asked for.
///
/// Each ``MQTTClientAction/openTransport(_:)`` carries a new id (increasing per attempt); the
/// caller reports that transport's events with it (``MQTTClientStateMachine/transportConnected(_:now:into:)``,
/// ``MQTTClientStateMachine/transportFailed(_:_:now:into:)``), and
/// ``MQTTClientAction/closeTransport(_:)`` names the one to close. Events of a transport that is
/// no longer the current one (a late close of an old connection, a stale connect completion)
/// are ignored by the machine, so the caller needs no generation counter of its own.
public struct MQTTTransportID: Sendable, Hashable, CustomStringConvertible {
    /// The id's value, increasing per attempt within one machine.
    public let rawValue: UInt64

    /// Creates an id (the machine makes them; tests may forge stale ones).
    ///
    /// - Parameter rawValue: The value.
    public init(rawValue: UInt64) {
        self.rawValue = rawValue
    }

    public var description: String { "transport \(rawValue)" }
}

/// The one deadline the caller keeps armed for a connection.
///
/// After every call into ``MQTTClientStateMachine``, read its ``MQTTClientStateMachine/deadline``:
/// when the generation differs from the timer the caller armed, re-arm the timer at ``at`` (or
/// stop it when the deadline is nil). When the timer fires, pass the generation it was armed
/// with to ``MQTTClientStateMachine/timerFired(generation:now:into:)``; a timer that was
/// cancelled but fired anyway carries an old generation and is ignored.
public struct MQTTTimerDeadline: Sendable, Hashable {
    /// When the timer should fire.
    public var at: MQTTInstant
    /// Identifies this arming; increases every time the deadline changes.
    public var generation: UInt64
}

/// One thing the caller must do, produced by ``MQTTClientStateMachine``.
///
/// Actions come in the order they must be carried out (for example a message is delivered
/// before its PUBACK is written). ``deliver(_:)`` refers to bytes of the receive buffer: carry
/// it out before consuming the decoded bytes.
public enum MQTTClientAction {
    /// Open a transport (TCP, then TLS if configured) to the broker, then report its outcome
    /// with this id: ``MQTTClientStateMachine/transportConnected(_:now:into:)`` or
    /// ``MQTTClientStateMachine/transportFailed(_:_:now:into:)`` (also when the transport cannot
    /// even be created).
    case openTransport(MQTTTransportID)
    /// Encode and write this packet.
    case send(Packet)
    /// Flush what was written and close this transport. The machine has already moved on; a
    /// later report about it is ignored.
    case closeTransport(MQTTTransportID)
    /// A CONNACK accepted the connection. NodeMCU: the connect callback / "connect" event.
    case connected(sessionPresent: Bool)
    /// A connection attempt failed before it was accepted. NodeMCU: the "connfail" callback
    /// with ``MQTTConnectionFailure/nodeMCUReasonCode``. `willRetry` tells whether a reconnect is
    /// scheduled.
    case connectFailed(MQTTConnectionFailure, willRetry: Bool)
    /// An accepted connection ended. NodeMCU: the "offline" event. `willReconnect` tells whether
    /// a reconnect is scheduled.
    case offline(MQTTConnectionFailure, willReconnect: Bool)
    /// Deliver this message to the application (first delivery; never repeated for a QoS 2
    /// duplicate). NodeMCU: the "message" event.
    case deliver(PublishView)
    /// A PUBLISH larger than the decoder's limit, as a first delivery: fire the "overflow"
    /// event with its topic and payload prefix. The view refers to receive-buffer bytes, like
    /// ``deliver(_:)``. Not emitted for a QoS 2 duplicate.
    case deliverOversized(OversizePublishView)
    /// A publish finished its QoS handshake: written (QoS 0), PUBACK (QoS 1) or PUBCOMP (QoS 2).
    /// NodeMCU: the per-call callback and the "puback" event.
    case publishCompleted(MQTTRequestToken?, packetID: UInt16, qos: QoS)
    /// A SUBACK answered a SUBSCRIBE: the return codes are in the order of `filters`. A nil
    /// token marks the machine's own re-subscription after a reconnect without session.
    case subscribeCompleted(MQTTRequestToken?, filters: [TopicSubscription], returnCodes: [SubAckReturnCode])
    /// An UNSUBACK answered an UNSUBSCRIBE.
    case unsubscribeCompleted(MQTTRequestToken?, packetID: UInt16)
    /// A request will not complete; its completion gets this error.
    case requestFailed(MQTTRequestToken, MQTTClientError)
    /// ``MQTTClientStateMachine/disconnect(drainTimeout:now:into:)`` is done: DISCONNECT was
    /// sent and the transport close requested (or there was no connection). The caller may
    /// wait for the transport's graceful close, then resume whoever asked for the disconnect.
    case disconnected
    /// The broker acknowledged a packet id that has nothing outstanding of that kind. Reported
    /// for logging; the connection is kept.
    case unexpectedAck(PacketType, packetID: UInt16)
}

/// A reusable list of actions the state machine appends to.
///
/// The caller keeps one (or two, when actions it carries out may call into the machine again)
/// for the life of the connection, carries out its actions after each call, then calls
/// ``removeAll()``, which keeps the storage: once it has grown to the largest batch (a reconnect
/// that resends the window), no call allocates.
public struct MQTTClientActions: RandomAccessCollection {
    @usableFromInline
    var storage: [MQTTClientAction]

    /// Creates an empty list.
    ///
    /// - Parameter capacity: Storage reserved up front.
    public init(capacity: Int = 16) {
        storage = []
        storage.reserveCapacity(capacity)
    }

    /// The first action's index (0).
    public var startIndex: Int { storage.startIndex }
    /// One past the last action's index.
    public var endIndex: Int { storage.endIndex }

    /// The action at `position`, in the order it must be carried out.
    public subscript(position: Int) -> MQTTClientAction { storage[position] }

    /// The actions the storage holds without growing.
    public var storageCapacity: Int { storage.capacity }

    /// Removes every action and keeps the storage.
    @inlinable
    public mutating func removeAll() {
        storage.removeAll(keepingCapacity: true)
    }

    @inlinable
    mutating func append(_ action: MQTTClientAction) {
        storage.append(action)
    }
}
