import Logging
import MQTTProtocol
import RingBuffers
import UVReactor

/// What the engine reports to the face that owns it (loop thread, one event stream).
///
/// Both faces are adapters over this one stream: ``NodeMCUClient`` turns it into its `on(...)`
/// handlers, ``MQTTClient`` into message streams, subscriptions and connection events.
enum EngineEvent {
    /// A CONNACK accepted the connection.
    case connected(sessionPresent: Bool)
    /// A connection attempt failed; `retryIn` is the back-off delay when a retry follows.
    case connectFailed(MQTTConnectionFailure, retryIn: Duration?, attempt: Int)
    /// An accepted connection ended; `retryIn` is the back-off delay when a reconnect follows.
    case offline(MQTTConnectionFailure, retryIn: Duration?, attempt: Int)
    /// A message arrived (first delivery). The view is valid during the call only.
    case message(MQTTMessageView)
    /// A message over the incoming packet limit arrived: the view holds the prefix that fit.
    case oversize(MQTTMessageView)
    /// A publish finished its QoS handshake.
    case publishCompleted(packetID: UInt16)
    /// A SUBACK arrived.
    case subscribeCompleted([SubAckReturnCode])
    /// An UNSUBACK arrived.
    case unsubscribeCompleted(packetID: UInt16)
    /// The transport's writability changed (high / low water mark).
    case writabilityChanged(Bool)
    /// The engine shut down for good: no event follows.
    case shutDown
}

/// A request's completion, carried by the state machine inside the request's
/// ``MQTTRequestToken`` (the machine's table is the only request table).
final class RequestCompletion: Sendable {
    enum Kind: Sendable {
        case publish(@Sendable (Result<Void, MQTTClientError>) -> Void)
        case subscribe(@Sendable (Result<[SubAckReturnCode], MQTTClientError>) -> Void)
        case unsubscribe(@Sendable (Result<Void, MQTTClientError>) -> Void)
    }

    let kind: Kind

    init(_ kind: Kind) {
        self.kind = kind
    }

    /// The token the machine carries for this request.
    var token: MQTTRequestToken {
        MQTTRequestToken(UInt64(UInt(bitPattern: ObjectIdentifier(self).hashValue)), context: self)
    }

    func fail(_ error: MQTTClientError) {
        switch kind {
        case .publish(let body): body(.failure(error))
        case .subscribe(let body): body(.failure(error))
        case .unsubscribe(let body): body(.failure(error))
        }
    }

    static func from(_ token: MQTTRequestToken?) -> RequestCompletion? {
        token?.context as? RequestCompletion
    }
}

/// The per-client engine: a plain executor of ``MQTTClientStateMachine`` on the event loop
/// thread.
///
/// It forwards every input (transport events, decoded packets, the timer, user requests) to
/// the machine with the clock's time and carries out the actions the machine returns, in
/// order, in one `switch` (``perform(_:)``): open or close a transport, encode a packet, report
/// an event to the face, complete a request. Policy (retry, fail-fast, timeouts, which
/// transport is current, what a client-only packet means, writability, size limits) lives in
/// the machine; the engine keeps only what executing needs: the current transport, the decoder,
/// the timer, and the re-entrancy queue. Transports and time come from an
/// ``MQTTEngineEnvironment``, so the whole engine runs over an in-memory transport with a manual
/// clock in tests.
///
/// Re-entrancy: callbacks run while the engine dispatches actions (a message handler, a
/// completion). A request made from inside one (publish from a message handler, connect from a
/// failure handler) is queued and runs right after the current batch of actions, never in the
/// middle of it, so the action list being walked is never mutated and the order of the
/// machine's actions is kept. Requests from other threads hop to the loop with
/// `EventLoop.execute` (several calls before the loop wakes run in one batch).
///
/// Per received message: no allocation (the packet is decoded in place, the machine's action
/// list is reused, the message event carries a view into the ring), no lock, no thread hop.
/// Writes are coalesced: packets are encoded into the transport's outbound buffer and flushed
/// once per dispatch.
///
/// The loop-thread state is `@exclusivity(unchecked)`: never accessed from two places at once
/// (re-entrant requests are deferred, see above), and the dynamic exclusivity check cost about a
/// third of the CPU per message (perf, `mqtt bench`).
final class ClientEngine: @unchecked Sendable {
    typealias ConnectCompletion = @Sendable (Result<Bool, MQTTConnectionFailure>) -> Void

    let loop: EventLoop
    let environment: MQTTEngineEnvironment
    private(set) var options: MQTTClientOptions
    /// The user's logger with the client id in its metadata; nil = no logging (the library
    /// never creates a logger of its own).
    let logger: Logger?
    /// Whether the logger wants the packet trace (`.trace` level), read once at creation.
    let tracing: Bool
    /// Whether a connect was requested and has not finally ended: set by the faces under the
    /// lock so that a second `connect` call fails at once, synchronously (the machine's own
    /// guard answers only on the loop thread).
    let active = Locked(false)

    /// The face's handler of the engine's events (loop thread).
    @exclusivity(unchecked) var onEvent: ((EngineEvent) -> Void)?
    /// The client's metrics (``MQTTClientOptions/metrics``), nil when off: see ClientEngine+Metrics.swift.
    let metrics: ClientMetrics?

    @exclusivity(unchecked) private var machine: MQTTClientStateMachine
    /// The machine's action list during a batch: the loop's shared one (``EngineLoopScratch``)
    /// when free, else (a batch nested in another client's) one of this engine's own, kept
    /// when small; an idle client that never ran nested holds no list.
    @exclusivity(unchecked) private var actions = MQTTClientActions(capacity: 0)
    @exclusivity(unchecked) private var scratch: EngineLoopScratch?
    @exclusivity(unchecked) private var borrowsScratch = false
    @exclusivity(unchecked) private var decoder: MQTTDecoder
    /// The servers of the current `connect`, in the caller's order; the machine's
    /// ``ServerRotation`` picks the one for each attempt.
    private var servers: [MQTTServer] = []
    private var server: MQTTServer? { servers.isEmpty ? nil : servers[machine.servers.current] }
    /// The seed of a shuffled server list: fixed per client, so a client keeps its order.
    let serverShuffleSeed: UInt64
    /// The server of the latest attempt (any thread): the one a `connfail` or `offline` is about.
    let currentServer = Locked<MQTTServer?>(nil)
    private var tlsContext: TLSContext?
    /// The transport the machine's current generation runs on.
    @exclusivity(unchecked) private var transport: (any MQTTTransport)?
    @exclusivity(unchecked) private var transportID: MQTTTransportID?
    @exclusivity(unchecked) private var timer: (any MQTTEngineTimer)?
    /// The attempt waiting in the loop's admission queue (``EventLoop/connectGate``).
    private var attemptAwaitingAdmission: MQTTTransportID?
    /// The admitted attempt holding a place in the queue (released at its CONNACK or failure).
    private var attemptAdmitted: MQTTTransportID?
    @exclusivity(unchecked) private var armedGeneration: UInt64?
    @exclusivity(unchecked) private var needsFlush = false

    @exclusivity(unchecked) private var dispatching = false
    @exclusivity(unchecked) private var deferred: [(ClientEngine) -> Void] = []
    @exclusivity(unchecked) private var decodePending = false
    /// QoS 0 publishes with a completion whose bytes the kernel has not taken yet: they complete
    /// at the transport's `.drained`, in order (QoS 0 is done when written to the socket).
    @exclusivity(unchecked) private var unwrittenQoS0: [RequestCompletion] = []

    private var pendingConnect: ConnectCompletion?
    private var completePendingConnectOnRetry = true
    @exclusivity(unchecked) private(set) var isShutDown = false
    /// Transports closing gracefully, and who waits for them (``disconnect(whenClosed:)``).
    private var closingTransports = 0
    private var closeWaiters: [() -> Void] = []

    init(options: MQTTClientOptions, loop: EventLoop, environment: MQTTEngineEnvironment? = nil, logger: Logger?) {
        self.options = options
        self.loop = loop
        self.environment = environment ?? .system(loop: loop)
        var logger = logger
        logger?[metadataKey: "mqtt.client"] = "\(options.clientID)"
        self.logger = logger
        self.tracing = logger.map { $0.logLevel <= .trace } ?? false
        // Jitter must differ between clients (so they do not reconnect in lock step).
        let seed = UInt64.random(in: .min ... .max)
        self.serverShuffleSeed = seed ^ 0x5EED_5EED_5EED_5EED
        self.machine = MQTTClientStateMachine(configuration: options.machineConfiguration(jitterSeed: seed))
        self.decoder = MQTTDecoder(maximumPacketSize: options.maximumIncomingPacketSize, version: options.protocolVersion)
        self.metrics = options.metrics.map { [clock = self.environment.clock, options] in ClientMetrics($0, clientID: options.clientID, inflightWindow: options.inflightWindow, clock: clock) }
    }

    /// The engine of a client face: on `eventLoop`, or on a loop of its own, started here
    /// (`ownsLoop`: the face stops it in ``release(ownsLoop:)``).
    static func make(
        options: MQTTClientOptions, eventLoop: EventLoop?, environment: MQTTEngineEnvironment? = nil, logger: Logger?
    ) -> (engine: ClientEngine, ownsLoop: Bool) {
        if let eventLoop {
            return (ClientEngine(options: options, loop: eventLoop, environment: environment, logger: logger), false)
        }
        let loop = EventLoop()
        loop.start()
        return (ClientEngine(options: options, loop: loop, environment: environment, logger: logger), true)
    }

    /// A face's deinit: shuts the engine down (on the loop) and stops the loop it owns. From the
    /// loop's own thread (the last reference dropped in a callback) the loop stops after this
    /// iteration and its thread ends by itself.
    func release(ownsLoop: Bool) {
        submit { $0.shutdown() }
        if ownsLoop {
            if loop.inEventLoop { loop.stop() } else { try? loop.shutdown() }
        }
    }

    // MARK: Entry points

    /// Runs `work` on the loop thread: inline when already there, else through `execute`.
    func submit(_ work: @escaping @Sendable (ClientEngine) -> Void) {
        if loop.inEventLoop {
            event(work)
        } else {
            loop.execute { [self] in event(work) }
        }
    }

    /// Runs one event on the loop thread, then carries out the actions it produced. Called
    /// during a dispatch (from a callback), the event waits until the current batch is done.
    func event(_ body: @escaping (ClientEngine) -> Void) {
        if dispatching {
            deferred.append(body)
            return
        }
        dispatch(body)
    }

    /// Runs `body` as one event right away when called on the loop thread outside a dispatch
    /// (a publish from a loop turn of the application's own), without boxing it into an
    /// escaping closure: no allocation per call. Returns false otherwise; then use ``submit(_:)``.
    @inline(__always)
    func runIfOnLoop(_ body: (ClientEngine) -> Void) -> Bool {
        guard loop.inEventLoop, !dispatching else { return false }
        dispatch(body)
        return true
    }

    /// One dispatch: the event, its actions, the requests its callbacks made, then the flush and
    /// the timer. Not re-entrant (callers check `dispatching`).
    @inline(__always)
    private func dispatch(_ body: (ClientEngine) -> Void) {
        dispatching = true
        beginBatch()
        body(self)
        performActions()
        runDeferred()
        endBatch()
        dispatching = false
        finishDispatch()
    }

    /// Takes the loop's shared action list for this batch (when no other batch holds it).
    @inline(__always)
    private func beginBatch() {
        let scratch = self.scratch ?? EngineLoopScratch.of(loop)
        self.scratch = scratch
        // Actions queued outside a batch stay in this engine's own list.
        if !scratch.inUse && actions.isEmpty {
            scratch.inUse = true
            borrowsScratch = true
            swap(&actions, &scratch.actions)
        }
    }

    /// Gives the shared list back, or frees this engine's own.
    @inline(__always)
    private func endBatch() {
        if borrowsScratch {
            borrowsScratch = false
            // performActions emptied it (keeping the storage); never hand actions on.
            if !actions.isEmpty { actions.removeAll() }
            swap(&actions, &scratch.unsafelyUnwrapped.actions)
            scratch.unsafelyUnwrapped.inUse = false
        } else if actions.storageCapacity > 8 {
            // A list grown by a large nested batch is freed; a small one is kept, so that a
            // client driven from another client's callbacks (a bridge publishing from a
            // message handler) does not allocate per message.
            actions = MQTTClientActions(capacity: 0)
        }
    }

    private func runDeferred() {
        if deferred.isEmpty { return }
        var index = 0
        while index < deferred.count {
            let work = deferred[index]
            index += 1
            work(self)
            performActions()
        }
        deferred.removeAll(keepingCapacity: true)
    }

    /// After a dispatch: flush the coalesced writes, re-arm the timer, decode what a resumed
    /// read left.
    private func finishDispatch() {
        if needsFlush {
            needsFlush = false
            transport?.flush()
        }
        updateTimer()
        metrics?.updateGauges(inflight: machine.inflightCount, queuedMessages: machine.queuedMessageCount, queuedBytes: machine.queuedByteCount)
        if decodePending {
            decodePending = false
            decodeAvailable()
        }
    }

    private var now: MQTTInstant { environment.clock.now() }

    // MARK: Requests (loop thread, inside `event`)

    /// Starts connecting to `server`. `failFast`: a failure before the first CONNACK ends the
    /// attempt without retry (the async face throws it); the reconnect policy applies after.
    /// `completeOnRetry`: the completion runs at the first failure even when a retry follows
    /// (NodeMCU's `failed:`); otherwise only at the CONNACK or a failure with no retry.
    func connect(to server: MQTTServer, reconnect: Bool, failFast: Bool, completeOnRetry: Bool, completion: ConnectCompletion?) {
        connect(to: [server], shuffle: false, reconnect: reconnect, failFast: failFast, completeOnRetry: completeOnRetry,
                completion: completion)
    }

    /// Starts connecting to the first of `servers` (in order, or in this client's shuffled
    /// order); see ``ServerRotation`` for the order of attempts and the back-off.
    func connect(to servers: [MQTTServer], shuffle: Bool, reconnect: Bool, failFast: Bool, completeOnRetry: Bool,
                 completion: ConnectCompletion?) {
        if isShutDown {
            endActive()
            completion?(.failure(.closedByUser))
            return
        }
        guard !servers.isEmpty else {
            endActive()
            completion?(.failure(.serverNotFound))
            return
        }
        if machine.connectionState == .idle {  // otherwise the machine refuses the connect below
            self.servers = servers
            machine.servers = ServerRotation(count: servers.count, shuffleSeed: shuffle ? serverShuffleSeed : nil)
        }
        machine.connectPacket = options.connectPacket
        machine.reconnect = reconnect ? options.reconnectBackoff : nil
        do {
            try machine.connect(now: now, failFast: failFast, into: &actions)
        } catch {
            // The faces check `active` first; this is the machine's own guard.
            logger?.warning("connect refused by the client state", metadata: ["error": "\(error)"])
            completion?(.failure(.transport("\(error)")))
            return
        }
        pendingConnect = completion
        completePendingConnectOnRetry = completeOnRetry
    }

    /// Publishes; the completion fires once with the handshake's outcome.
    func publish(_ message: PublishPacket, whenFull: MQTTPublishFlowControl, completion: RequestCompletion?) {
        let now = environment.clock.coarseNow()
        if completion == nil && message.qos == .atMostOnce, let transport, machine.beginDirectQoS0Publish(now: now) {
            // The machine allows it (connected, writable, nothing queued before it): encode
            // straight from the caller's bytes, no action, no packet copy.
            var topic = message.topic
            let failure: MQTTProtocolError? = topic.withUTF8 { t in
                message.payload.withUnsafeBytes { p -> MQTTProtocolError? in
                    do throws(MQTTProtocolError) {
                        try MQTTEncoder.encodePublish(topic: UnsafeRawBufferPointer(t), payload: p, qos: .atMostOnce,
                                                      retain: message.retain, dup: false, packetID: 0,
                                                      into: transport.outbound)
                        return nil
                    } catch {
                        return error
                    }
                }
            }
            if let failure {
                // The faces validated topic and size: this is a bug, not input.
                logger?.error("PUBLISH not encoded", metadata: ["error": "\(failure)"])
            } else {
                needsFlush = true
                metrics?.sentPublish(topicByteCount: message.topic.utf8.count, payloadCount: message.payload.count, qos: .atMostOnce, dup: false, packetID: 0)
                if tracing { traceSentPublish(topic: message.topic, payloadCount: message.payload.count, retain: message.retain) }
            }
            return
        }
        do {
            try machine.publish(message, token: completion?.token, whenFull: whenFull, now: now, into: &actions)
        } catch {
            metrics?.publishDropped()
            if let completion {
                completion.fail(error)
            } else {
                // Nobody to tell but the log: a publisher without completion that outruns the
                // queue should follow `isWritable` / the `writable` event.
                logger?.warning("publish dropped", metadata: ["topic": "\(message.topic)", "error": "\(error)"])
            }
        }
    }

    /// Subscribes to several filters in one SUBSCRIBE.
    func subscribe(_ subscriptions: [TopicSubscription], completion: RequestCompletion?) {
        do {
            try machine.subscribe(subscriptions, token: completion?.token, now: now, into: &actions)
        } catch {
            completion?.fail(error)
        }
    }

    /// Unsubscribes from several filters in one UNSUBSCRIBE.
    func unsubscribe(_ filters: [String], completion: RequestCompletion?) {
        do {
            try machine.unsubscribe(filters, token: completion?.token, now: now, into: &actions)
        } catch {
            completion?.fail(error)
        }
    }

    /// Withdraws a request whose caller gave up (task cancelled): see
    /// ``MQTTClientStateMachine/cancel(_:now:into:)``.
    func cancel(_ completion: RequestCompletion) {
        machine.cancel(completion.token, now: now, into: &actions)
    }

    /// DISCONNECT at once, close, "offline"; outstanding requests fail with `closed`.
    func close() {
        endActive()
        machine.close(now: now, into: &actions)
        failPendingConnectIfIdle()
    }

    /// A connect call still waiting when the machine went idle without an attempt to fail (it
    /// was waiting to retry): it ends with `closedByUser`.
    private func failPendingConnectIfIdle() {
        guard machine.connectionState == .idle, let pending = pendingConnect else { return }
        pendingConnect = nil
        pending(.failure(.closedByUser))
    }

    /// Disconnects gracefully, then runs `done` once no transport is still closing: the
    /// acknowledgements of messages the application already has go out first (a PUBREL due
    /// within `drainTimeout` is answered), then DISCONNECT, then the broker read everything and
    /// closed its side (or ``MQTTClientOptions/disconnectTimeout`` passed). At once when
    /// nothing was open.
    func disconnect(drainTimeout: Duration, whenClosed done: @escaping () -> Void) {
        endActive()
        closeWaiters.append(done)
        machine.disconnect(drainTimeout: drainTimeout, now: now, into: &actions)
        failPendingConnectIfIdle()
    }

    private func runCloseWaitersIfClosed() {
        guard closingTransports == 0, !closeWaiters.isEmpty, machine.connectionState != .disconnecting else { return }
        let waiters = closeWaiters
        closeWaiters.removeAll()
        for waiter in waiters { waiter() }
    }

    /// Closes, ends the face's streams (`.shutDown`); the engine takes no more requests.
    func shutdown() {
        guard !isShutDown else { return }
        let outside = !dispatching
        if outside { beginBatch() }
        close()
        performActions()
        if outside { endBatch() }
        isShutDown = true
        releaseAdmission()
        timer?.close()
        timer = nil
        metrics?.shutDown()
        onEvent?(.shutDown)
        onEvent = nil
        // Waiters of a disconnect still closing are released: nothing else will.
        let waiters = closeWaiters
        closeWaiters.removeAll()
        for waiter in waiters { waiter() }
    }

    /// Cuts the transport without DISCONNECT, as a network failure would (tests: will
    /// delivery, resend after a loss).
    func simulateConnectionLoss() {
        transport?.abort()
    }

    /// Stops reading the transport (an async consumer fell behind); one fact, the machine's.
    func pauseReading() {
        guard !machine.isReadingPaused else { return }
        machine.readingPaused(now: environment.clock.coarseNow())
        transport?.pauseReading()
    }

    /// Reads again after ``pauseReading()``: the machine restarts its dead-broker clock, and
    /// what arrived meanwhile is decoded after this event.
    func resumeReading() {
        guard machine.isReadingPaused else { return }
        machine.readingResumed(now: now, into: &actions)
        transport?.resumeReading()
        decodePending = true
    }

    /// Replaces the will sent with the next CONNECT.
    func setWill(_ will: Will?) {
        options.will = will
    }

    /// Marks a connect as requested (any thread); throws when one is already active.
    func beginConnect() throws(MQTTClientError) {
        let wasActive = active.withLock { value -> Bool in
            let was = value
            value = true
            return was
        }
        if wasActive { throw .alreadyConnected }
    }

    /// Marks the connect as finally ended (any thread).
    func endActive() {
        active.withLock { $0 = false }
    }

    // MARK: Inspection (loop thread)

    var connectionState: MQTTClientStateMachine.ConnectionState { machine.connectionState }
    /// Bytes encoded for the broker and not yet taken by the kernel.
    var unsentByteCount: Int { transport?.unsentByteCount ?? 0 }
    var inflightCount: Int { machine.inflightCount }
    var queuedMessageCount: Int { machine.queuedMessageCount }
    var isWritable: Bool { machine.isTransportWritable }

    // MARK: Reading

    private func transportEvent(_ event: MQTTTransportEvent, id: MQTTTransportID, from source: any MQTTTransport) {
        guard source === transport else {
            if case .closed = event { closingTransportEnded(source) }
            return
        }
        switch event {
        case .bytesRead:
            if dispatching {
                decodePending = true
                return
            }
            decodeAvailable()
        case .writabilityChanged(let writable):
            self.event { engine in
                engine.machine.transportWritabilityChanged(writable, now: engine.now, into: &engine.actions)
                engine.onEvent?(.writabilityChanged(writable))
            }
        case .drained:
            self.event { $0.completeUnwrittenQoS0(with: nil) }
        case .closed(let error):
            transport?.setEventHandler(nil)
            transport = nil
            let failure = ClientEngine.failure(for: error ?? .closedByPeer)
            // The connection broke with these bytes unsent: at most once means they are lost.
            completeUnwrittenQoS0(with: .connectionLost(failure))
            self.event { $0.machine.transportFailed(id, failure, now: $0.now, into: &$0.actions) }
        }
    }

    /// Decodes every complete packet in the ring, feeding each to the machine and carrying out
    /// its actions before the packet's bytes are released.
    private func decodeAvailable() {
        guard let current = transport, !machine.isReadingPaused, !dispatching else { return }
        let ring = current.inbound
        dispatching = true
        beginBatch()
        let now = self.now
        while transport === current && !machine.isReadingPaused {
            let packet: InboundPacket?
            do {
                packet = try decoder.next(in: ring)
            } catch {
                logger?.warning("invalid data from the broker", metadata: ["error": "\(error)"])
                machine.receivedInvalidData(error, now: now, into: &actions)
                performActions()
                break
            }
            guard let packet else { break }
            if tracing { traceReceived(packet) }
            machine.receivedPacket(packet, now: now, into: &actions)
            performActions()
            if transport === current { decoder.releaseLastFrame(in: ring) }
            runDeferred()
        }
        runDeferred()
        endBatch()
        dispatching = false
        finishDispatch()
    }

    // MARK: Actions

    private func performActions() {
        if actions.isEmpty { return }
        var index = 0
        while index < actions.count {
            perform(actions[index])
            index += 1
        }
        actions.removeAll()
    }

    private func perform(_ action: MQTTClientAction) {
        switch action {
        case .openTransport(let id):
            requestAdmission(id)
        case .send(let packet):
            guard let transport else { return }
            if tracing { traceSent(packet) }
            do {
                try MQTTEncoder.encode(packet, version: options.protocolVersion, into: transport.outbound)
                needsFlush = true
                metrics?.sent(packet)
            } catch {
                // The machine checked every request's size and the faces its topic: a bug.
                logger?.error("packet not encoded", metadata: ["packet": "\(packet.type)", "error": "\(error)"])
            }
        case .closeTransport(let id):
            closeTransport(id)
        case .connected(let sessionPresent):
            logger?.debug("connected", metadata: ["sessionPresent": "\(sessionPresent)"])
            releaseAdmission()
            metrics?.connected()
            if let pending = pendingConnect {
                pendingConnect = nil
                pending(.success(sessionPresent))
            }
            onEvent?(.connected(sessionPresent: sessionPresent))
        case .connectFailed(let failure, let willRetry):
            let failedServer = currentServer.withLock { $0 }
            logger?.debug("connect failed", metadata: [
                "reason": "\(failure)", "willRetry": "\(willRetry)",
                "server": "\(failedServer.map { "\($0.host):\($0.port)" } ?? "-")",
            ])
            releaseAdmission()
            if !willRetry { endActive() }
            metrics?.connectFailed(failure)
            // Within a pass over a server list the attempt goes on with the next server: the
            // pending connect completes only when the pass is over.
            let midPass = willRetry && machine.servers.isMidPass
            if let pending = pendingConnect, !midPass, !willRetry || completePendingConnectOnRetry {
                pendingConnect = nil
                pending(.failure(failure))
            }
            onEvent?(.connectFailed(failure, retryIn: willRetry ? retryDelay : nil, attempt: machine.reconnectAttemptCount))
        case .offline(let failure, let willReconnect):
            logger?.debug("offline", metadata: ["reason": "\(failure)", "willReconnect": "\(willReconnect)"])
            if !willReconnect { endActive() }
            metrics?.connectionLost(failure)
            onEvent?(.offline(failure, retryIn: willReconnect ? retryDelay : nil, attempt: machine.reconnectAttemptCount))
        case .deliver(let view):
            metrics?.received(view)
            onEvent?(.message(MQTTMessageView(view)))
        case .deliverOversized(let view):
            metrics?.overflowedMessage()
            onEvent?(.oversize(MQTTMessageView(topicBytes: view.topic, payload: view.payloadPrefix, qos: view.qos,
                                               retain: view.retain, dup: view.dup,
                                               totalPayloadLength: view.totalPayloadLength)))
        case .publishCompleted(let token, let packetID, let qos):
            metrics?.publishCompleted(packetID: packetID, qos: qos)
            if let box = RequestCompletion.from(token) {
                if qos == .atMostOnce, let transport {
                    // Encoded, not yet written: done once the kernel took the bytes.
                    unwrittenQoS0.append(box)
                    transport.notifyWhenDrained()
                } else if case .publish(let body) = box.kind {
                    body(.success(()))
                }
            }
            onEvent?(.publishCompleted(packetID: packetID))
        case .subscribeCompleted(let token, _, let returnCodes):
            if case .subscribe(let body)? = RequestCompletion.from(token)?.kind { body(.success(returnCodes)) }
            onEvent?(.subscribeCompleted(returnCodes))
        case .unsubscribeCompleted(let token, let packetID):
            if case .unsubscribe(let body)? = RequestCompletion.from(token)?.kind { body(.success(())) }
            onEvent?(.unsubscribeCompleted(packetID: packetID))
        case .requestFailed(let token, let error):
            if let metrics, case .publish? = RequestCompletion.from(token)?.kind { metrics.publishDropped() }
            RequestCompletion.from(token)?.fail(error)
        case .unexpectedAck(let type, let packetID):
            logger?.debug("acknowledgement for nothing outstanding", metadata: ["type": "\(type)", "packetID": "\(packetID)"])
        case .disconnected:
            // DISCONNECT written and the close requested: the waiters run once the transport
            // finished closing gracefully (or at once when nothing was open).
            runCloseWaitersIfClosed()
        }
    }

    /// The back-off delay the machine scheduled, while it waits to reconnect.
    private var retryDelay: Duration? {
        guard let at = machine.nextReconnectAt else { return nil }
        let now = self.now
        return at > now ? at - now : .zero
    }

    // MARK: Transport

    /// Queues attempt `id` in the loop's admission queue: at most
    /// ``EventLoop/maximumConcurrentConnectionAttempts`` attempts run at once per loop, from the
    /// transport's connect to the CONNACK (or failure); the machine starts the attempt's
    /// timeout at admission. Reconnects queue the same way.
    private func requestAdmission(_ id: MQTTTransportID) {
        releaseAdmission()
        attemptAwaitingAdmission = id
        let gate = loop.connectGate
        gate.acquire { [weak self] in
            guard let self, !self.isShutDown, self.attemptAwaitingAdmission == id else {
                gate.release()
                return
            }
            self.attemptAwaitingAdmission = nil
            self.attemptAdmitted = id
            // Admission may run inside this engine's dispatch (a free place at once) or inside
            // another client's (a place freed): `event` defers it in the first case.
            self.event { engine in
                guard engine.attemptAdmitted == id,
                      engine.machine.transportAttemptAdmitted(id, now: engine.now, into: &engine.actions) else {
                    if engine.attemptAdmitted == id { engine.releaseAdmission() }
                    return
                }
                engine.openTransport(id)
            }
        }
    }

    /// Gives the admitted attempt's place back (its CONNACK came, or it ended), and forgets a
    /// waiting one (it releases its place at once when admitted).
    private func releaseAdmission() {
        attemptAwaitingAdmission = nil
        if attemptAdmitted != nil {
            attemptAdmitted = nil
            loop.connectGate.release()
        }
    }

    private func openTransport(_ id: MQTTTransportID) {
        guard let server else { return }
        currentServer.withLock { $0 = server }
        transportID = id
        metrics?.attemptStarted()
        decoder = MQTTDecoder(maximumPacketSize: options.maximumIncomingPacketSize, version: options.protocolVersion)
        do throws(TransportError) {
            if let tls = server.security.tlsConfiguration {
                if tlsContext == nil || tlsContext?.configuration != tls {
                    tlsContext = try TLSContext(configuration: tls)
                }
            } else {
                tlsContext = nil
            }
            var opened: (any MQTTTransport)?
            opened = try environment.connector.open(
                server: server.resolvingSubprotocol(for: options.protocolVersion), tls: tlsContext, timeout: options.connectTimeout,
                receiveBufferMaximum: options.maximumIncomingPacketSize
            ) { [self] result in
                guard let pending = opened else { return }
                opened = nil
                guard pending === transport else {
                    // A stale attempt (the machine moved on): drop what it made.
                    if case .success(let stale) = result { stale.abort() }
                    return
                }
                switch result {
                case .success(let t):
                    t.setEventHandler { [self, weak t] event in
                        if let t { transportEvent(event, id: id, from: t) }
                    }
                    event { $0.machine.transportConnected(id, now: $0.now, into: &$0.actions) }
                case .failure(let error):
                    transport = nil
                    let failure = ClientEngine.failure(for: error)
                    event { $0.machine.transportFailed(id, failure, now: $0.now, into: &$0.actions) }
                }
            }
            transport = opened
        } catch {
            // Known before any I/O (TLS configuration): the attempt fails through the machine,
            // so the failure reaches `connfail` like any other.
            let failure = ClientEngine.failure(for: error)
            deferred.append { $0.machine.transportFailed(id, failure, now: $0.now, into: &$0.actions) }
        }
    }

    private func closeTransport(_ id: MQTTTransportID) {
        if attemptAwaitingAdmission == id { attemptAwaitingAdmission = nil }
        guard id == transportID, let transport else { return }
        self.transport = nil
        if attemptAdmitted == id {
            // An attempt that ends before its CONNACK (timeout, refusal, close): nothing to
            // drain, and a broker that never answered would hold the socket for the whole
            // disconnect timeout; the socket goes at once.
            transport.setEventHandler(nil)
            transport.abort()
            return
        }
        if transport.isOpen {
            // The graceful close ends later (the broker read everything and closed its side, or
            // the disconnect timeout): then the close waiters run.
            closingTransports += 1
            // Strong: the handler is removed when the close event came (no cycle remains).
            transport.setEventHandler { [self] event in
                if case .closed = event { closingTransportEnded(transport) }
            }
            if needsFlush {
                needsFlush = false
                transport.flush()
            }
            // Graceful: whatever was encoded (the QoS 0 messages, DISCONNECT) goes out first.
            completeUnwrittenQoS0(with: nil)
            transport.close(timeout: options.disconnectTimeout)
        } else {
            // Not established yet: closing cancels the connect; no event follows.
            transport.setEventHandler(nil)
            transport.close(timeout: options.disconnectTimeout)
        }
    }

    /// Completes the QoS 0 publishes waiting for their bytes to be written: with success, or
    /// with `failure` when the connection broke first.
    private func completeUnwrittenQoS0(with failure: MQTTClientError?) {
        if unwrittenQoS0.isEmpty { return }
        let boxes = unwrittenQoS0
        unwrittenQoS0.removeAll()
        for box in boxes {
            guard case .publish(let body) = box.kind else { continue }
            body(failure.map { .failure($0) } ?? .success(()))
        }
    }

    private func closingTransportEnded(_ transport: any MQTTTransport) {
        transport.setEventHandler(nil)
        closingTransports -= 1
        runCloseWaitersIfClosed()
    }

    /// Maps the reactor's errors to the NodeMCU-style reasons.
    static func failure(for error: TransportError) -> MQTTConnectionFailure {
        switch error {
        case .dnsFailure(let host, _): .dnsFailure(host: host)
        case .connectionRefused: .serverNotFound
        case .connectTimeout: .sendTimeout
        case .connectionReset: .transport("connection reset by peer")
        case .closedByPeer: .closedByPeer
        case .io(let e):
            switch e.name {
            case "EHOSTUNREACH", "ENETUNREACH", "EADDRNOTAVAIL": .serverNotFound
            default: .transport(e.description)
            }
        case .tlsConfiguration(let detail): .tlsHandshakeFailed("configuration: \(detail)")
        case .tlsCertificateUntrusted(let detail): .tlsCertificateUntrusted(detail)
        case .tlsHostnameMismatch(let detail): .tlsHostnameMismatch(detail)
        case .tlsPeerRequiredCertificate: .tlsClientCertificateRejected("the server requires a client certificate")
        case .tlsFailure(let detail): .tlsHandshakeFailed(detail)
        case .webSocket(let detail): .transport("WebSocket: \(detail)")
        }
    }

    // MARK: Timer

    private func updateTimer() {
        guard let deadline = machine.deadline else {
            if armedGeneration != nil {
                armedGeneration = nil
                timer?.cancel()
            }
            return
        }
        guard deadline.generation != armedGeneration, !isShutDown else { return }
        armedGeneration = deadline.generation
        if timer == nil {
            timer = environment.clock.makeTimer(on: loop) { [self] in timerFired() }
        }
        timer?.schedule(at: deadline.at)
    }

    private func timerFired() {
        guard let generation = armedGeneration else { return }
        armedGeneration = nil
        event { $0.machine.timerFired(generation: generation, now: $0.now, into: &$0.actions) }
    }
}

/// What the engines on one event loop share (``EventLoop/loopLocalObject``): the machine's
/// action list, borrowed for each batch, so that 20,000 idle clients do not hold 20,000 lists.
///
/// Loop thread only; `@exclusivity(unchecked)` like the engine's own state (touched twice per
/// dispatch, the per-message path of a publisher on the loop thread).
final class EngineLoopScratch {
    @exclusivity(unchecked) var actions = MQTTClientActions(capacity: 16)
    @exclusivity(unchecked) var inUse = false

    /// The loop's scratch, made on first use (loop thread).
    static func of(_ loop: EventLoop) -> EngineLoopScratch {
        if let existing = loop.loopLocalObject { return unsafeDowncast(existing, to: EngineLoopScratch.self) }
        let made = EngineLoopScratch()
        loop.loopLocalObject = made
        return made
    }
}
