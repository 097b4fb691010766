/// The I/O-free state of one MQTT 3.1 / 3.1.1 client connection and its session.
///
/// The machine owns everything the protocol asks a client to remember (connection phase,
/// keepalive, outgoing in-flight window, waiting queue, pending SUBSCRIBE / UNSUBSCRIBE, active
/// subscriptions, received QoS 2 ids awaiting PUBREL) and nothing else: no socket, no timer, no
/// clock. The caller forwards each event (a user request, the transport coming up or going
/// down, a decoded packet, the timer firing) with the current ``MQTTInstant``, then carries out
/// the ``MQTTClientAction``s appended to its ``MQTTClientActions`` in order, then re-arms its one
/// timer if ``deadline`` changed.
///
/// Connection phases: `idle` → (``connect(now:failFast:into:)``) `connectingTransport` →
/// (transport up, CONNECT sent) `awaitingConnAck` → (CONNACK accepted) `connected`. A failure
/// or loss goes to `waitingToReconnect` when reconnect is on and the failure is retryable (and
/// not a fail-fast first attempt), else to `idle`. ``close(now:into:)`` goes to `idle` from
/// anywhere; ``disconnect(drainTimeout:now:into:)`` may pass through `disconnecting` first,
/// while received QoS 2 messages await PUBREL. Each attempt has its own ``MQTTTransportID``;
/// reports about another transport are ignored. `docs/state-machine.md` has the full table.
///
/// Per-message events (publish QoS 0 / 1, PUBACK, PUBLISH QoS 0 / 1 received) do not allocate:
/// the in-flight window is a preallocated slot array with a reserved id index, received QoS 2
/// ids live in a fixed bitmap, and stored messages keep the caller's `PublishPacket` (its topic
/// and payload are retained, not copied).
public struct MQTTClientStateMachine: Sendable {
    /// The connection phase, for inspection.
    public enum ConnectionState: Sendable, Hashable {
        /// Not connected and not trying.
        case idle
        /// Waiting for the transport (TCP, TLS) to come up.
        case connectingTransport
        /// CONNECT sent, waiting for CONNACK.
        case awaitingConnAck
        /// CONNACK accepted.
        case connected
        /// A graceful ``MQTTClientStateMachine/disconnect(drainTimeout:now:into:)`` waits for the
        /// broker's PUBREL of received QoS 2 messages before sending DISCONNECT.
        case disconnecting
        /// Waiting for the back-off delay before the next attempt.
        case waitingToReconnect
    }

    enum State {
        case idle
        case connectingTransport(deadline: MQTTInstant)
        case awaitingConnAck(deadline: MQTTInstant)
        case connected
        /// Graceful disconnect: DISCONNECT goes out once no received QoS 2 message awaits
        /// PUBREL, or at `deadline`.
        case disconnecting(deadline: MQTTInstant)
        case waitingToReconnect(at: MQTTInstant)
    }

    /// Keepalive bookkeeping of the current connection.
    struct KeepaliveClock {
        var lastSent = MQTTInstant.zero
        var lastReceived = MQTTInstant.zero
        /// Set while a PINGREQ awaits an answer.
        var pingSentAt: MQTTInstant?
        /// Set while the caller does not read the transport (its consumer fell behind): the
        /// broker's packets, PINGRESP included, wait unread, so silence proves nothing.
        var readingPaused = false
    }

    /// The CONNECT packet sent at the next attempt (will, credentials, clean session...).
    /// Changing it does not affect the current connection, which keeps the keepalive, clean
    /// session and version of the CONNECT it sent.
    public var connectPacket: ConnectPacket
    /// The reconnect policy applied from the next failure on; nil turns reconnect off.
    public var reconnect: ReconnectBackoff?
    /// Which server of the caller's list each attempt goes to (``ServerRotation``: in order,
    /// the next one at once after a failure, one back-off round per pass over the list). The
    /// caller opens the transport of ``MQTTClientAction/openTransport(_:)`` to
    /// `servers.current`. Set it before ``connect(now:failFast:into:)``; the default is a list
    /// of one.
    public var servers = ServerRotation(count: 1)

    let connectTimeout: Duration
    let maxQueuedMessages: Int
    let maxQueuedBytes: Int
    let maxPendingRequests: Int
    /// Largest whole packet sent (clamped to ``MQTTEncoder/maximumPacketSize``).
    public let maximumOutgoingPacketSize: Int

    var state: State = .idle
    /// The CONNECT of the current attempt or connection.
    var sentConnect: ConnectPacket
    var keepalive = KeepaliveClock()
    /// The transport of the current attempt or connection; nil once it failed or was closed.
    var transport: MQTTTransportID?
    var transportCounter: UInt64 = 0
    var armed: MQTTTimerDeadline?
    var generation: UInt64 = 0

    var inflight: InflightTable
    var queue: ClientRing<QueuedMessage>
    var queuedBytes = 0
    /// Publishers waiting for room in the queue (``MQTTPublishFlowControl/wait``), in order.
    var waiting: ClientRing<QueuedMessage>
    /// False while the executor's outbound bytes are above its high-water mark.
    var writable = true
    var controls: [UInt16: PendingControl] = [:]
    var subscriptions: [TopicSubscription] = []
    var inboundQoS2 = PacketIDSet()
    var nextPacketID: UInt16 = 1
    var sequence: UInt64 = 0
    var reconnectAttempt = 0
    /// Set by `connect(failFast: true)` until the first CONNACK is accepted: a failure then
    /// is final.
    var failFastPending = false
    var jitter: JitterGenerator

    /// Largest number of topic filters the machine puts in one re-SUBSCRIBE.
    static let resubscribeChunk = 64

    /// Creates a machine in the idle state.
    ///
    /// - Parameter configuration: Connect packet, timeouts, window and queue bounds, reconnect.
    public init(configuration: MQTTClientConfiguration) {
        connectPacket = configuration.connect
        sentConnect = configuration.connect
        reconnect = configuration.reconnect
        connectTimeout = configuration.connectTimeout
        maxQueuedMessages = max(0, configuration.maxQueuedMessages)
        maxQueuedBytes = max(0, configuration.maxQueuedBytes)
        maxPendingRequests = max(1, configuration.maxPendingRequests)
        maximumOutgoingPacketSize = min(max(0, configuration.maximumOutgoingPacketSize), MQTTEncoder.maximumPacketSize)
        inflight = InflightTable(capacity: min(max(configuration.inflightWindow, 1), 65_535))
        queue = ClientRing(initialCapacity: min(max(configuration.maxQueuedMessages, 4), 64))
        waiting = ClientRing(initialCapacity: 4)
        jitter = JitterGenerator(seed: configuration.jitterSeed)
        controls.reserveCapacity(16)
    }

    // MARK: Inspection

    /// The connection phase.
    public var connectionState: ConnectionState {
        switch state {
        case .idle: .idle
        case .connectingTransport: .connectingTransport
        case .awaitingConnAck: .awaitingConnAck
        case .connected: .connected
        case .disconnecting: .disconnecting
        case .waitingToReconnect: .waitingToReconnect
        }
    }

    /// The timer the caller must keep armed, or nil when none is needed. See
    /// ``MQTTTimerDeadline`` for the protocol.
    ///
    /// It is the earliest of: the transport or CONNACK timeout, the reconnect instant, the next
    /// PINGREQ, the PINGRESP timeout. It may be earlier than strictly needed (it is moved
    /// forward lazily when traffic postpones a ping, so busy connections do not re-arm the timer
    /// per message); a fire with nothing due just re-arms.
    public var deadline: MQTTTimerDeadline? { armed }

    /// Outgoing QoS 1 / 2 messages awaiting their acknowledgement.
    public var inflightCount: Int { inflight.count }
    /// The in-flight window size.
    public var inflightWindow: Int { inflight.capacity }
    /// Messages waiting for the window or for the connection.
    public var queuedMessageCount: Int { queue.count }
    /// Topic-plus-payload bytes of the waiting messages.
    public var queuedByteCount: Int { queuedBytes }
    /// Publishers waiting for room in the queue (``MQTTPublishFlowControl/wait``); not counted
    /// in ``queuedMessageCount`` / ``queuedByteCount``.
    public var waitingPublishCount: Int { waiting.count }
    /// Whether the transport takes more bytes (see ``transportWritabilityChanged(_:now:into:)``);
    /// true for a new transport.
    public var isTransportWritable: Bool { writable }
    /// SUBSCRIBE / UNSUBSCRIBE requests awaiting their acknowledgement (or the connection).
    public var pendingRequestCount: Int { controls.count }
    /// Received QoS 2 message ids awaiting PUBREL.
    public var awaitingReleaseCount: Int { inboundQoS2.count }
    /// Subscriptions the broker granted and that were not unsubscribed, in the order first
    /// granted, with the QoS requested; made again after a reconnect without session.
    public var activeSubscriptions: [TopicSubscription] { subscriptions }
    /// When the next connection attempt starts, while waiting to reconnect.
    public var nextReconnectAt: MQTTInstant? {
        if case .waitingToReconnect(let at) = state { return at }
        return nil
    }
    /// The next reconnect attempt number (0 after a successful CONNACK).
    public var reconnectAttemptCount: Int { reconnectAttempt }
    /// Whether the caller reported that it stopped reading the transport
    /// (``readingPaused(now:)``) and has not resumed since; cleared when a transport comes up.
    public var isReadingPaused: Bool { keepalive.readingPaused }

    var keepAliveInterval: Duration { .seconds(Int(sentConnect.keepAlive)) }

    /// Connected and taking new requests.
    var isConnected: Bool {
        if case .connected = state { return true }
        return false
    }

    /// An accepted connection is up (connected, or disconnecting gracefully).
    var hasConnection: Bool {
        switch state {
        case .connected, .disconnecting: true
        default: false
        }
    }

    var isDisconnecting: Bool {
        if case .disconnecting = state { return true }
        return false
    }

    // MARK: User requests

    /// Starts connecting: the first action is ``MQTTClientAction/openTransport(_:)``, unless the
    /// CONNECT to send breaks a rule.
    ///
    /// The CONNECT (``connectPacket``) is checked first, as the encoder would
    /// (``validate(_:)``) and against ``maximumOutgoingPacketSize``: if it breaks a rule, no
    /// transport is opened, ``MQTTClientAction/connectFailed(_:willRetry:)`` reports
    /// ``MQTTConnectionFailure/protocolError(_:)`` with `willRetry` false, and the machine stays
    /// idle. The same check runs before every reconnect attempt.
    ///
    /// With `failFast`, a failure of this first attempt, at any stage until its CONNACK is
    /// accepted (transport, TLS, CONNACK timeout, refusal, first packet not a CONNACK), is not
    /// retried even with a ``reconnect`` policy: `connectFailed(failure, willRetry: false)`,
    /// the machine goes idle and every outstanding request fails. Once a CONNACK was accepted
    /// the reconnect policy applies as usual. Without it, a retryable failure of the first
    /// attempt is retried like any other.
    ///
    /// - Parameters:
    ///   - now: The current instant.
    ///   - failFast: Whether a failed first attempt ends the connect instead of retrying.
    ///   - actions: Receives the actions to carry out.
    /// - Throws: ``MQTTClientError/alreadyConnected`` when connected or disconnecting,
    ///   ``MQTTClientError/alreadyConnecting`` during an attempt or a reconnect wait.
    public mutating func connect(now: MQTTInstant, failFast: Bool = false, into actions: inout MQTTClientActions) throws(MQTTClientError) {
        switch state {
        case .idle:
            reconnectAttempt = 0
            failFastPending = failFast
            servers.reset()
            startAttempt(now: now, into: &actions)
            updateDeadline()
        case .connected, .disconnecting:
            throw .alreadyConnected
        case .connectingTransport, .awaitingConnAck, .waitingToReconnect:
            throw .alreadyConnecting
        }
    }

    /// Checks a CONNECT as the encoder will before it is sent: client id 1-23 bytes for
    /// MQTT 3.1, an empty id only with a clean session [MQTT-3.1.3-7], a will topic that is a
    /// valid topic name without wildcards [MQTT-3.3.2-2], a password only with a user name
    /// [MQTT-3.1.2-22], fields of at most 65,535 bytes, no U+0000 [MQTT-1.5.3-2].
    ///
    /// Lets a face reject a will or options early, on its own thread. ``connect(now:failFast:into:)``
    /// runs the same check (plus the packet size against ``maximumOutgoingPacketSize``).
    ///
    /// - Parameter connect: The packet.
    /// - Throws: ``MQTTProtocolError`` naming the rule broken.
    public static func validate(_ connect: ConnectPacket) throws(MQTTProtocolError) {
        try MQTTEncoder.validateConnect(connect)
    }

    /// Closes the connection at the user's request.
    ///
    /// When connected, DISCONNECT is sent at once (so the broker discards the will
    /// [MQTT-3.1.2-10]), the transport is closed [MQTT-3.14.4-1] and
    /// ``MQTTClientAction/offline(_:willReconnect:)`` reports ``MQTTConnectionFailure/closedByUser``.
    /// During an attempt the attempt fails with that reason. Every outstanding request fails with
    /// ``MQTTClientError/closed``. A closed machine can connect again. Closing an idle machine
    /// does nothing. During a graceful disconnect it sends DISCONNECT at once (the wait for
    /// PUBREL ends) and ``MQTTClientAction/disconnected`` follows last.
    ///
    /// - Parameters:
    ///   - now: The current instant.
    ///   - actions: Receives the actions to carry out.
    public mutating func close(now: MQTTInstant, into actions: inout MQTTClientActions) {
        defer { updateDeadline() }
        let wasDisconnecting = isDisconnecting
        switch state {
        case .idle:
            return
        case .connected, .disconnecting:
            send(.disconnect, now: now, into: &actions)
            appendCloseTransport(into: &actions)
            state = .idle
            actions.append(.offline(.closedByUser, willReconnect: false))
        case .connectingTransport, .awaitingConnAck:
            appendCloseTransport(into: &actions)
            state = .idle
            actions.append(.connectFailed(.closedByUser, willRetry: false))
        case .waitingToReconnect:
            state = .idle
        }
        failFastPending = false
        failOutstanding(.closed, into: &actions)
        if wasDisconnecting { actions.append(.disconnected) }
    }

    /// Disconnects gracefully: like ``close(now:into:)``, but when connected and received
    /// QoS 2 messages await the broker's PUBREL (``awaitingReleaseCount`` > 0: the application
    /// has them, and the broker's PUBREL is due), DISCONNECT waits for those PUBRELs first, at
    /// most `drainTimeout`.
    ///
    /// While disconnecting (``ConnectionState/disconnecting``): new publishes, subscribes and
    /// unsubscribes throw ``MQTTClientError/closed``; no reconnect follows whatever happens;
    /// PUBRELs are answered with PUBCOMP [MQTT-4.3.3-2] and the rest of the protocol runs as
    /// when connected (acks complete requests, keepalive), but the queue is not drained. As
    /// soon as no received QoS 2 message awaits PUBREL, or at the deadline (through the
    /// ordinary timer), DISCONNECT is sent, the transport closed,
    /// ``MQTTClientAction/offline(_:willReconnect:)`` reports
    /// ``MQTTConnectionFailure/closedByUser`` and every outstanding request fails with
    /// ``MQTTClientError/closed``, exactly as ``close(now:into:)`` does; a loss meanwhile reports
    /// `offline(failure, willReconnect: false)` and fails them the same way.
    ///
    /// When nothing awaits PUBREL, or not connected, or `drainTimeout` is not positive, this
    /// is ``close(now:into:)`` at once. In every case ``MQTTClientAction/disconnected`` comes
    /// last, once DISCONNECT was sent and the transport close requested (at once when there
    /// was no connection): the caller may then wait for the transport's graceful close and
    /// resume whoever asked. A second call while disconnecting can only bring the deadline
    /// closer; one ``MQTTClientAction/disconnected`` answers both.
    ///
    /// - Parameters:
    ///   - drainTimeout: The longest wait for the PUBRELs.
    ///   - now: The current instant.
    ///   - actions: Receives the actions to carry out.
    public mutating func disconnect(drainTimeout: Duration, now: MQTTInstant, into actions: inout MQTTClientActions) {
        switch state {
        case .connected where inboundQoS2.count > 0 && drainTimeout > .zero:
            state = .disconnecting(deadline: now + drainTimeout)
            updateDeadline()
        case .disconnecting(let deadline):
            let sooner = drainTimeout > .zero ? min(deadline, now + drainTimeout) : now
            if sooner <= now {
                close(now: now, into: &actions)
            } else {
                state = .disconnecting(deadline: sooner)
                updateDeadline()
            }
        default:
            close(now: now, into: &actions)
            actions.append(.disconnected)
        }
    }

    /// Ends a graceful disconnect when nothing awaits PUBREL any more.
    mutating func finishDisconnectIfReleased(now: MQTTInstant, into actions: inout MQTTClientActions) {
        if isDisconnecting && inboundQoS2.count == 0 {
            close(now: now, into: &actions)
        }
    }

    /// Publishes a message.
    ///
    /// Connected and writable: QoS 0 is sent at once (never held behind the window) and
    /// completes when handed to the transport; QoS 1 / 2 gets the next unused packet id and is
    /// sent when the window has room and nothing waits before it, otherwise it waits in the
    /// queue [MQTT-4.3.2-1], [MQTT-4.3.3-1]. Connected but not writable
    /// (``transportWritabilityChanged(_:now:into:)``): any QoS waits in the queue, drained in
    /// order when writable again. Connecting or waiting to reconnect: the message waits in the
    /// same queue and goes out after the next CONNACK. The message's `dup` and `packetID` are
    /// ignored (the machine sets them).
    ///
    /// When the queue is at its bound, `whenFull` decides: ``MQTTPublishFlowControl/fail``
    /// throws, ``MQTTPublishFlowControl/wait`` keeps the message among the waiting publishers
    /// (``waitingPublishCount``), which move into the queue in order as room appears. A `.wait`
    /// publish also waits behind earlier waiting publishers; a `.fail` one that fits is queued
    /// even while others wait.
    ///
    /// - Parameters:
    ///   - message: The message; its topic and payload are retained, not copied.
    ///   - token: Returned with the completion or failure; nil when nobody waits for it.
    ///   - whenFull: What to do when the queue is full; default ``MQTTPublishFlowControl/fail``.
    ///   - now: The current instant.
    ///   - actions: Receives the actions to carry out.
    /// - Throws: ``MQTTClientError/packetTooLarge(size:limit:)`` when the encoded PUBLISH
    ///   (``MQTTEncoder/publishPacketSize(topicByteCount:payloadCount:qos:)``) is above
    ///   ``maximumOutgoingPacketSize`` or cannot be framed (nothing is queued, no packet id is
    ///   taken); ``MQTTClientError/notConnected`` when idle (never connected, closed, or lost
    ///   with reconnect off); ``MQTTClientError/closed`` during a graceful disconnect;
    ///   ``MQTTClientError/offlineQueueFull(messages:bytes:)`` /
    ///   ``MQTTClientError/sendQueueFull(messages:bytes:)`` when the queue is at its bound and
    ///   `whenFull` is ``MQTTPublishFlowControl/fail``.
    public mutating func publish(
        _ message: PublishPacket,
        token: MQTTRequestToken?,
        whenFull: MQTTPublishFlowControl = .fail,
        now: MQTTInstant,
        into actions: inout MQTTClientActions
    ) throws(MQTTClientError) {
        let size = MQTTEncoder.publishPacketSize(
            topicByteCount: message.topic.utf8.count, payloadCount: message.payload.count, qos: message.qos)
        if size > maximumOutgoingPacketSize { throw .packetTooLarge(size: size, limit: maximumOutgoingPacketSize) }
        switch state {
        case .idle:
            throw .notConnected
        case .disconnecting:
            throw .closed
        case .connected:
            if writable {
                if message.qos == .atMostOnce {
                    sendQoS0(message, token: token, now: now, into: &actions)
                    return
                }
                if queue.isEmpty && !inflight.isFull, let id = allocatePacketID() {
                    startOutgoing(message, token: token, id: id, now: now, into: &actions)
                    return
                }
            }
            try enqueue(message, token: token, offline: false, whenFull: whenFull)
        case .connectingTransport, .awaitingConnAck, .waitingToReconnect:
            try enqueue(message, token: token, offline: true, whenFull: whenFull)
        }
    }

    /// Withdraws a request, or stops waiting for it.
    ///
    /// - A publish still waiting (in the queue, never written on any connection, or among the
    ///   waiting publishers) is removed, its bytes leave the queue's count, and it is never
    ///   sent.
    /// - A QoS 1 / 2 publish written at least once stays in the session: the broker may have
    ///   it, so it is resent and completed as the protocol requires [MQTT-4.4.0-1], but its
    ///   token is detached: its later ``MQTTClientAction/publishCompleted(_:packetID:qos:)``
    ///   carries nil.
    /// - A SUBSCRIBE / UNSUBSCRIBE not yet sent is withdrawn; one already sent keeps its packet
    ///   id until its acknowledgement (so ``activeSubscriptions`` stays right), which then
    ///   completes with a nil token.
    ///
    /// In every case ``MQTTClientAction/requestFailed(_:_:)`` with ``MQTTClientError/cancelled``
    /// follows at once. Room freed in the queue lets waiting publishers in. An unknown token
    /// (completed, failed or cancelled already) does nothing.
    ///
    /// - Parameters:
    ///   - token: The request's token (compared by ``MQTTRequestToken/rawValue``).
    ///   - now: The current instant.
    ///   - actions: Receives the actions to carry out.
    public mutating func cancel(_ token: MQTTRequestToken, now: MQTTInstant, into actions: inout MQTTClientActions) {
        if let index = waiting.firstIndex(where: { $0.token == token }) {
            waiting.remove(at: index)
        } else if let index = queue.firstIndex(where: { $0.token == token }) {
            if queue[index].wasSent {
                queue[index].token = nil
            } else {
                queuedBytes -= queue.remove(at: index).size
                drainQueue(now: now, into: &actions)
            }
        } else if inflight.detachToken(token) {
            // Stays in the session; completes with no token.
        } else if let (id, control) = controls.first(where: { $0.value.token == token }) {
            if control.everSent {
                controls[id]?.token = nil
            } else {
                controls[id] = nil
            }
        } else {
            return
        }
        actions.append(.requestFailed(token, .cancelled))
        updateDeadline()
    }

    /// The transport's outbound side filled above the executor's high-water mark (`false`) or
    /// drained below its low-water mark (`true`).
    ///
    /// While not writable, new publishes of any QoS are queued instead of sent (same queue,
    /// same bounds and ``MQTTPublishFlowControl`` rule), the in-flight window is not refilled
    /// from the queue, and ``beginDirectQoS0Publish(now:)`` answers false. Acknowledgements,
    /// PINGREQ, SUBSCRIBE / UNSUBSCRIBE and DISCONNECT still go out (they are small). When
    /// writable again, the queue drains in order, QoS 0 included, into the window. A new
    /// transport starts writable. Ignored when no transport is up (idle, waiting to reconnect).
    ///
    /// - Parameters:
    ///   - writable: Whether the transport takes more bytes.
    ///   - now: The current instant.
    ///   - actions: Receives the actions to carry out (the drained messages).
    public mutating func transportWritabilityChanged(_ writable: Bool, now: MQTTInstant, into actions: inout MQTTClientActions) {
        switch state {
        case .idle, .waitingToReconnect:
            return
        case .connectingTransport, .awaitingConnAck, .connected, .disconnecting:
            break
        }
        guard writable != self.writable else { return }
        self.writable = writable
        if writable { drainQueue(now: now, into: &actions) }
    }

    /// Asks whether the caller may encode and write a QoS 0 PUBLISH itself, straight from its
    /// own topic and payload bytes, without building a ``PublishPacket``.
    ///
    /// Returns true when connected and writable; the machine then counts the write for the
    /// keepalive. When false, call ``publish(_:token:whenFull:now:into:)`` instead (it queues
    /// or throws). The caller checks the size itself
    /// (``MQTTEncoder/publishPacketSize(topicByteCount:payloadCount:qos:)`` against
    /// ``maximumOutgoingPacketSize``).
    ///
    /// - Parameter now: The current instant.
    /// - Returns: Whether to write the PUBLISH now.
    public mutating func beginDirectQoS0Publish(now: MQTTInstant) -> Bool {
        guard isConnected && writable else { return false }
        keepalive.lastSent = now
        return true
    }

    /// Subscribes to one or more topic filters in one SUBSCRIBE.
    ///
    /// Sent at once when connected, otherwise after the next CONNACK. Completes with
    /// ``MQTTClientAction/subscribeCompleted(_:filters:returnCodes:)``.
    ///
    /// - Parameters:
    ///   - subscriptions: Filters with their requested QoS, at least one.
    ///   - token: Returned with the completion.
    ///   - now: The current instant.
    ///   - actions: Receives the actions to carry out.
    /// - Returns: The packet id used.
    /// - Throws: ``MQTTClientError/noTopicFilters``,
    ///   ``MQTTClientError/packetTooLarge(size:limit:)`` (see
    ///   ``MQTTEncoder/subscribePacketSize(_:)``), ``MQTTClientError/notConnected``,
    ///   ``MQTTClientError/tooManyPendingRequests(limit:)``.
    @discardableResult
    public mutating func subscribe(
        _ subscriptions: [TopicSubscription],
        token: MQTTRequestToken?,
        now: MQTTInstant,
        into actions: inout MQTTClientActions
    ) throws(MQTTClientError) -> UInt16 {
        guard !subscriptions.isEmpty else { throw .noTopicFilters }
        let size = MQTTEncoder.subscribePacketSize(subscriptions)
        if size > maximumOutgoingPacketSize { throw .packetTooLarge(size: size, limit: maximumOutgoingPacketSize) }
        return try addControl(.subscribe(subscriptions), token: token, now: now, into: &actions)
    }

    /// Unsubscribes from one or more topic filters in one UNSUBSCRIBE.
    ///
    /// Sent at once when connected, otherwise after the next CONNACK. Completes with
    /// ``MQTTClientAction/unsubscribeCompleted(_:packetID:)``.
    ///
    /// - Parameters:
    ///   - filters: The filters, at least one.
    ///   - token: Returned with the completion.
    ///   - now: The current instant.
    ///   - actions: Receives the actions to carry out.
    /// - Returns: The packet id used.
    /// - Throws: ``MQTTClientError/noTopicFilters``,
    ///   ``MQTTClientError/packetTooLarge(size:limit:)`` (see
    ///   ``MQTTEncoder/unsubscribePacketSize(_:)``), ``MQTTClientError/notConnected``,
    ///   ``MQTTClientError/tooManyPendingRequests(limit:)``.
    @discardableResult
    public mutating func unsubscribe(
        _ filters: [String],
        token: MQTTRequestToken?,
        now: MQTTInstant,
        into actions: inout MQTTClientActions
    ) throws(MQTTClientError) -> UInt16 {
        guard !filters.isEmpty else { throw .noTopicFilters }
        let size = MQTTEncoder.unsubscribePacketSize(filters)
        if size > maximumOutgoingPacketSize { throw .packetTooLarge(size: size, limit: maximumOutgoingPacketSize) }
        return try addControl(.unsubscribe(filters), token: token, now: now, into: &actions)
    }

    // MARK: Transport and timer events

    /// The transport `id` came up: CONNECT is sent and the CONNACK timeout starts.
    ///
    /// Ignored unless `id` is the current transport and the attempt waits for it (a stale
    /// connect completion, a late report after a close).
    ///
    /// - Parameters:
    ///   - id: The transport, from ``MQTTClientAction/openTransport(_:)``.
    ///   - now: The current instant.
    ///   - actions: Receives the actions to carry out.
    public mutating func transportConnected(_ id: MQTTTransportID, now: MQTTInstant, into actions: inout MQTTClientActions) {
        guard id == transport, case .connectingTransport = state else { return }
        keepalive = KeepaliveClock(lastSent: now, lastReceived: now, pingSentAt: nil)
        state = .awaitingConnAck(deadline: now + connectTimeout)
        send(.connect(sentConnect), now: now, into: &actions)
        updateDeadline()
    }

    /// The transport `id` failed to come up (including when it could not even be created, for
    /// example no TLS engine) or went down.
    ///
    /// During an attempt this fails the attempt with `failure`
    /// (``MQTTClientAction/connectFailed(_:willRetry:)``); when connected it ends the connection
    /// (``MQTTClientAction/offline(_:willReconnect:)``). Ignored when `id` is not the current
    /// transport (the close that follows ``MQTTClientAction/closeTransport(_:)``, a late report
    /// of an older transport) or the machine is idle or waiting to reconnect.
    ///
    /// - Parameters:
    ///   - id: The transport, from ``MQTTClientAction/openTransport(_:)``.
    ///   - failure: What happened, mapped by the transport layer.
    ///   - now: The current instant.
    ///   - actions: Receives the actions to carry out.
    public mutating func transportFailed(
        _ id: MQTTTransportID, _ failure: MQTTConnectionFailure, now: MQTTInstant, into actions: inout MQTTClientActions
    ) {
        guard id == transport else { return }
        switch state {
        case .connectingTransport, .awaitingConnAck, .connected, .disconnecting:
            transport = nil  // gone by itself: nothing to close
            connectionEnded(failure, closeTransport: false, now: now, into: &actions)
            updateDeadline()
        case .idle, .waitingToReconnect:
            return
        }
    }

    /// The caller's timer fired.
    ///
    /// A fire whose generation is not the current ``deadline``'s is stale and ignored. Otherwise
    /// whatever is due happens: transport timeout (reason -1), CONNACK timeout (-2), the
    /// reconnect attempt, a PINGREQ, or the keepalive verdict.
    ///
    /// Keepalive rule (K = keepalive, K > 0): when no PINGREQ is outstanding, a PINGREQ is sent
    /// at `min(lastSent, lastReceived) + K`, so the client never stays silent for K
    /// [MQTT-3.1.2-23] and never goes K without hearing from the broker without asking. A
    /// PINGREQ outstanding for K / 2 with nothing at all received ends the connection with
    /// ``MQTTConnectionFailure/keepAliveTimeout``; any packet received counts as an answer. So a
    /// broker that falls silent after its last packet at `t` is declared dead at the latest at
    /// `t + K + K/2 = t + 1.5 K`. While the caller has paused reading
    /// (``readingPaused(now:)``) there is no verdict, and a PINGREQ goes out at `lastSent + K`.
    ///
    /// - Parameters:
    ///   - generation: The generation of the deadline the timer was armed for.
    ///   - now: The current instant.
    ///   - actions: Receives the actions to carry out.
    public mutating func timerFired(generation: UInt64, now: MQTTInstant, into actions: inout MQTTClientActions) {
        guard let current = armed, current.generation == generation else { return }
        armed = nil
        defer { updateDeadline() }
        switch state {
        case .idle:
            return
        case .connectingTransport(let deadline):
            if now >= deadline {
                connectionEnded(.sendTimeout, closeTransport: true, now: now, into: &actions)
            }
        case .awaitingConnAck(let deadline):
            if now >= deadline {
                connectionEnded(.connAckTimeout, closeTransport: true, now: now, into: &actions)
            }
        case .waitingToReconnect(let at):
            if now >= at {
                startAttempt(now: now, into: &actions)
            }
        case .connected:
            keepaliveDue(now: now, into: &actions)
        case .disconnecting(let deadline):
            if now >= deadline {
                close(now: now, into: &actions)  // the PUBRELs did not all come in time
            } else {
                keepaliveDue(now: now, into: &actions)
            }
        }
    }

    /// The caller stopped reading the transport (read back-pressure: a consumer fell behind).
    ///
    /// What the broker sends from now on, its PINGRESP included, waits unread in the transport,
    /// so its silence proves nothing: until ``readingResumed(now:into:)`` the keepalive verdict
    /// is suspended and the broker is never declared dead. PINGREQs still go out whenever the
    /// client has sent nothing for a keepalive, so the broker keeps seeing the client alive
    /// [MQTT-3.1.2-23], [MQTT-3.1.2-24]. A transport failure the caller reports (the broker
    /// closing or resetting the connection) still ends the connection. Pausing twice is the
    /// same as pausing once; a transport coming up clears the pause (a new transport is read
    /// from the start). No actions follow; the deadline only moves later, so the armed timer
    /// stays valid (it fires, finds nothing due and re-arms).
    ///
    /// - Parameter now: The current instant.
    public mutating func readingPaused(now: MQTTInstant) {
        guard !keepalive.readingPaused else { return }
        keepalive.readingPaused = true
        updateDeadline()
    }

    /// The caller reads the transport again after ``readingPaused(now:)``.
    ///
    /// When connected, the resume counts like a packet received at `now`: the broker's packets
    /// held back are about to be read, and the dead-broker clock starts afresh. So a broker
    /// that died while reading was paused is declared dead at the latest 1.5 × keepalive after
    /// the resume (the bound from the last packet read does not hold across a pause: nothing
    /// was read meanwhile). A PINGREQ already due is sent at once. Ignored when reading was not
    /// paused.
    ///
    /// - Parameters:
    ///   - now: The current instant.
    ///   - actions: Receives the actions to carry out (at most a PINGREQ).
    public mutating func readingResumed(now: MQTTInstant, into actions: inout MQTTClientActions) {
        guard keepalive.readingPaused else { return }
        keepalive.readingPaused = false
        guard hasConnection else { return }
        keepalive.lastReceived = now
        keepalive.pingSentAt = nil
        keepaliveDue(now: now, into: &actions)
        updateDeadline()
    }

    /// The decoder failed on the broker's bytes: the connection is closed and ends with
    /// ``MQTTConnectionFailure/protocolError(_:)``.
    ///
    /// - Parameters:
    ///   - error: The decoder's error.
    ///   - now: The current instant.
    ///   - actions: Receives the actions to carry out.
    public mutating func receivedInvalidData(_ error: MQTTProtocolError, now: MQTTInstant, into actions: inout MQTTClientActions) {
        switch state {
        case .connectingTransport, .awaitingConnAck, .connected, .disconnecting:
            connectionEnded(.protocolError(error), closeTransport: true, now: now, into: &actions)
            updateDeadline()
        case .idle, .waitingToReconnect:
            return
        }
    }

    // MARK: Private helpers

    /// Sends the PINGREQ or ends the connection when the keepalive rule says so (connected).
    mutating func keepaliveDue(now: MQTTInstant, into actions: inout MQTTClientActions) {
        guard sentConnect.keepAlive > 0 else { return }
        let interval = keepAliveInterval
        if keepalive.readingPaused {
            // Our own pause hides the broker's answers: no verdict, but never silent for K, so
            // the broker does not drop us meanwhile [MQTT-3.1.2-24].
            if now >= keepalive.lastSent + interval {
                send(.pingreq, now: now, into: &actions)
            }
        } else if let pingSentAt = keepalive.pingSentAt {
            if now >= pingSentAt + interval / 2 {
                // No PINGRESP "within a reasonable amount of time": close (3.1.2.10).
                connectionEnded(.keepAliveTimeout, closeTransport: true, now: now, into: &actions)
            }
        } else if now >= min(keepalive.lastSent, keepalive.lastReceived) + interval {
            send(.pingreq, now: now, into: &actions)
            keepalive.pingSentAt = now
        }
    }

    /// Starts one attempt: checks the CONNECT it will send (a broken one fails the attempt at
    /// once, never retried: it would fail the same way), then asks for a transport.
    mutating func startAttempt(now: MQTTInstant, into actions: inout MQTTClientActions) {
        let packet = connectPacket
        do throws(MQTTProtocolError) {
            let size = try MQTTEncoder.validateConnect(packet)
            if size > maximumOutgoingPacketSize {
                throw .packetTooLarge(size: size, limit: maximumOutgoingPacketSize)
            }
        } catch {
            state = .idle
            failFastPending = false
            let failure = MQTTConnectionFailure.protocolError(error)
            actions.append(.connectFailed(failure, willRetry: false))
            failOutstanding(.connectionLost(failure), into: &actions)
            return
        }
        sentConnect = packet
        state = .connectingTransport(deadline: now + connectTimeout)
        transportCounter &+= 1
        let id = MQTTTransportID(rawValue: transportCounter)
        transport = id
        writable = true  // a new transport starts writable
        actions.append(.openTransport(id))
    }

    /// Ends an attempt or a connection; schedules a reconnect or fails what is outstanding.
    mutating func connectionEnded(
        _ failure: MQTTConnectionFailure,
        closeTransport: Bool,
        now: MQTTInstant,
        into actions: inout MQTTClientActions
    ) {
        let wasConnected = hasConnection
        let wasDisconnecting = isDisconnecting
        if closeTransport { appendCloseTransport(into: &actions) }
        keepalive.pingSentAt = nil
        // Requests sent on this connection go out again on the next one.
        for id in controls.keys { controls[id]?.sent = false }
        let retry: Bool
        // With several servers, a failed attempt moves on to the next one at once, whatever
        // the reconnect policy (the attempt is "try the list"); the back-off applies once the
        // pass over the list is over. A lost connection moves on too.
        var passOver = true
        if wasConnected {
            servers.connectionLost()
            passOver = servers.count == 1
        } else if !wasDisconnecting {
            passOver = servers.attemptFailed()
        }
        if !passOver && failure.isRetryable && !wasDisconnecting {
            state = .waitingToReconnect(at: now)
            retry = true
        } else if let policy = reconnect, failure.isRetryable, !failFastPending, !wasDisconnecting {
            let delay = policy.delay(attempt: reconnectAttempt, random: jitter.nextUnit())
            reconnectAttempt += 1
            state = .waitingToReconnect(at: now + delay)
            retry = true
        } else {
            state = .idle
            failFastPending = false
            retry = false
        }
        if wasConnected {
            actions.append(.offline(failure, willReconnect: retry))
        } else {
            actions.append(.connectFailed(failure, willRetry: retry))
        }
        if wasDisconnecting {
            // The user asked to close: requests fail as a close fails them.
            failOutstanding(.closed, into: &actions)
            actions.append(.disconnected)
        } else if !retry {
            failOutstanding(.connectionLost(failure), into: &actions)
        }
    }

    /// Asks to close the current transport, which is forgotten: its later reports are ignored.
    mutating func appendCloseTransport(into actions: inout MQTTClientActions) {
        guard let id = transport else { return }
        transport = nil
        actions.append(.closeTransport(id))
    }

    /// Fails every outstanding request, in the order they were made, and forgets the session's
    /// outgoing side. Received QoS 2 ids are kept: the next CONNACK decides about them.
    mutating func failOutstanding(_ error: MQTTClientError, into actions: inout MQTTClientActions) {
        for message in inflight.removeAll() {
            if let token = message.token { actions.append(.requestFailed(token, error)) }
        }
        let pending = controls.values.sorted { $0.sequence < $1.sequence }
        controls.removeAll(keepingCapacity: true)
        for control in pending {
            if let token = control.token { actions.append(.requestFailed(token, error)) }
        }
        while let queued = queue.popFirst() {
            if let token = queued.token { actions.append(.requestFailed(token, error)) }
        }
        queuedBytes = 0
        while let waiter = waiting.popFirst() {
            if let token = waiter.token { actions.append(.requestFailed(token, error)) }
        }
        subscriptions.removeAll()
    }

    /// Re-arms the deadline if it must move earlier, clears it if nothing is due; a later
    /// desired instant keeps the armed one (it fires, finds nothing due, and re-arms).
    mutating func updateDeadline() {
        let desired: MQTTInstant?
        switch state {
        case .idle:
            desired = nil
        case .connectingTransport(let deadline), .awaitingConnAck(let deadline):
            desired = deadline
        case .waitingToReconnect(let at):
            desired = at
        case .connected, .disconnecting:
            var next: MQTTInstant?
            if sentConnect.keepAlive == 0 {
                next = nil
            } else if keepalive.readingPaused {
                next = keepalive.lastSent + keepAliveInterval
            } else if let pingSentAt = keepalive.pingSentAt {
                next = pingSentAt + keepAliveInterval / 2
            } else {
                next = min(keepalive.lastSent, keepalive.lastReceived) + keepAliveInterval
            }
            if case .disconnecting(let deadline) = state {
                next = min(next ?? deadline, deadline)
            }
            desired = next
        }
        guard let desired else {
            if armed != nil {
                armed = nil
                generation &+= 1
            }
            return
        }
        if let armed, armed.at <= desired { return }
        generation &+= 1
        armed = MQTTTimerDeadline(at: desired, generation: generation)
    }

    @inline(__always)
    mutating func send(_ packet: Packet, now: MQTTInstant, into actions: inout MQTTClientActions) {
        actions.append(.send(packet))
        keepalive.lastSent = now
    }

    /// The next packet id not used by an in-flight message or a pending request, cycling
    /// 1...65535 [MQTT-2.3.1-1], [MQTT-2.3.1-2]. Nil only when all 65,535 are in use.
    mutating func allocatePacketID() -> UInt16? {
        for _ in 0..<65_535 {
            let id = nextPacketID
            nextPacketID = id == 65_535 ? 1 : id &+ 1
            if !inflight.contains(id) && (controls.isEmpty || controls[id] == nil) { return id }
        }
        return nil
    }

    mutating func sendQoS0(_ message: PublishPacket, token: MQTTRequestToken?, now: MQTTInstant, into actions: inout MQTTClientActions) {
        var packet = message
        packet.dup = false  // [MQTT-3.3.1-2]
        packet.packetID = 0
        send(.publish(packet), now: now, into: &actions)
        actions.append(.publishCompleted(token, packetID: 0, qos: .atMostOnce))
    }

    mutating func startOutgoing(
        _ message: PublishPacket,
        token: MQTTRequestToken?,
        id: UInt16,
        now: MQTTInstant,
        into actions: inout MQTTClientActions
    ) {
        var packet = message
        packet.packetID = id
        packet.dup = false
        sequence &+= 1
        inflight.insert(OutgoingMessage(
            message: packet,
            token: token,
            phase: packet.qos == .atLeastOnce ? .awaitingPubAck : .awaitingPubRec,
            sequence: sequence
        ))
        send(.publish(packet), now: now, into: &actions)
    }

    mutating func enqueue(
        _ message: PublishPacket, token: MQTTRequestToken?, offline: Bool, whenFull: MQTTPublishFlowControl
    ) throws(MQTTClientError) {
        let size = message.topic.utf8.count + message.payload.count
        var packet = message
        packet.dup = false
        packet.packetID = 0
        let fits = queue.count < maxQueuedMessages && queuedBytes + size <= maxQueuedBytes
        if whenFull == .wait && (!fits || !waiting.isEmpty) {
            waiting.append(QueuedMessage(message: packet, token: token, size: size))
            return
        }
        guard fits else {
            if offline { throw .offlineQueueFull(messages: queue.count, bytes: queuedBytes) }
            throw .sendQueueFull(messages: queue.count, bytes: queuedBytes)
        }
        queue.append(QueuedMessage(message: packet, token: token, size: size))
        queuedBytes += size
    }

    /// Sends waiting messages, in queue order, while connected, writable and the window has
    /// room (QoS 0 needs no room); then the waiting publishers the same way once the queue is
    /// empty; then moves waiting publishers into the queue while it has room.
    mutating func drainQueue(now: MQTTInstant, into actions: inout MQTTClientActions) {
        if isConnected && writable {
            while let first = queue.first {
                if first.message.qos == .atMostOnce {
                    _ = queue.popFirst()
                    queuedBytes -= first.size
                    sendQoS0(first.message, token: first.token, now: now, into: &actions)
                    continue
                }
                guard !inflight.isFull, let id = allocatePacketID() else { break }
                _ = queue.popFirst()
                queuedBytes -= first.size
                startOutgoing(first.message, token: first.token, id: id, now: now, into: &actions)
            }
            if queue.isEmpty {
                while let first = waiting.first {
                    if first.message.qos == .atMostOnce {
                        _ = waiting.popFirst()
                        sendQoS0(first.message, token: first.token, now: now, into: &actions)
                        continue
                    }
                    guard !inflight.isFull, let id = allocatePacketID() else { break }
                    _ = waiting.popFirst()
                    startOutgoing(first.message, token: first.token, id: id, now: now, into: &actions)
                }
            }
        }
        while let first = waiting.first, queue.count < maxQueuedMessages, queuedBytes + first.size <= maxQueuedBytes {
            _ = waiting.popFirst()
            queue.append(first)
            queuedBytes += first.size
        }
    }

    mutating func addControl(
        _ kind: PendingControl.Kind,
        token: MQTTRequestToken?,
        now: MQTTInstant,
        into actions: inout MQTTClientActions
    ) throws(MQTTClientError) -> UInt16 {
        switch state {
        case .idle: throw .notConnected
        case .disconnecting: throw .closed
        default: break
        }
        guard controls.count < maxPendingRequests, let id = allocatePacketID() else {
            throw .tooManyPendingRequests(limit: maxPendingRequests)
        }
        sequence &+= 1
        var control = PendingControl(kind: kind, token: token, sequence: sequence, sent: false)
        if isConnected {
            send(control.packet(id: id), now: now, into: &actions)
            control.sent = true
        }
        controls[id] = control
        return id
    }
}
