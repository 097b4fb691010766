import Logging
import MQTTProtocol
import RingBuffers
import UVReactor
#if canImport(Glibc)
import Glibc
#endif

/// The per-client engine: owns the state machine, the decoder, the connection and the one
/// deadline timer, and runs on the event loop thread only.
///
/// It forwards every event (bytes decoded into packets, the timer, a user request, the socket
/// closing) to ``MQTTClientStateMachine`` and carries out the returned actions in one `switch`
/// (``perform(_:)``). Both API faces (``NodeMCUClient``, ``MQTTClient``) are thin fronts over it.
///
/// Re-entrancy: callbacks run while the engine dispatches actions (a message handler, a
/// completion). A request made from inside one (publish from a message handler, connect from
/// a failure handler) is queued and runs right after the current batch of actions, never in
/// the middle of it, so the action list being walked is never mutated and the order of the
/// machine's actions is kept. Requests from other threads hop to the loop with
/// `EventLoop.execute` (several calls before the loop wakes run in one batch).
///
/// Per received message: no allocation (the packet is decoded in place, the machine's action
/// list is reused, the message callback gets a view into the ring), no lock, no thread hop.
/// Writes are coalesced: packets are encoded into the connection's outbound buffer and flushed
/// once per dispatch; the reactor writes everything flushed in one loop iteration together.
///
/// The loop-thread state is `@exclusivity(unchecked)`: never accessed from two places at once
/// (re-entrant requests are deferred, see above), and the dynamic exclusivity check cost about a
/// third of the CPU per message (perf, `mqtt bench`).
final class ClientEngine: @unchecked Sendable {
    typealias PublishCompletion = @Sendable (Result<Void, MQTTClientError>) -> Void
    typealias SubscribeCompletion = @Sendable (Result<[SubAckReturnCode], MQTTClientError>) -> Void
    typealias ConnectCompletion = @Sendable (Result<Bool, MQTTConnectionFailure>) -> Void

    enum Completion {
        case publish(PublishCompletion)
        case subscribe(SubscribeCompletion)
        case unsubscribe(PublishCompletion)
    }

    /// The NodeMCU `on` events, one handler each. Set and called on the loop thread.
    struct Handlers {
        var connect: (@Sendable (_ sessionPresent: Bool) -> Void)?
        var connfail: (@Sendable (MQTTConnectionFailure) -> Void)?
        var offline: (@Sendable (MQTTConnectionFailure) -> Void)?
        var message: (@Sendable (MQTTMessageView) -> Void)?
        var overflow: (@Sendable (MQTTMessageView) -> Void)?
        var puback: (@Sendable (_ packetID: UInt16) -> Void)?
        var suback: (@Sendable (_ returnCodes: [SubAckReturnCode]) -> Void)?
        var unsuback: (@Sendable (_ packetID: UInt16) -> Void)?
    }

    let loop: EventLoop
    private(set) var options: MQTTClientOptions
    /// The user's logger with the client id in its metadata; nil = no logging (the library
    /// never creates a logger of its own).
    let logger: Logger?
    /// Whether the logger wants the packet trace (`.trace` level), read once at creation.
    let tracing: Bool
    /// Whether a connect was requested and has not finally ended (no further retry): checked and
    /// set by the fronts under the lock so that a second connect is an error at once.
    let active = Locked(false)

    @exclusivity(unchecked) private var machine: MQTTClientStateMachine
    @exclusivity(unchecked) private var actions = MQTTClientActions(capacity: 64)
    @exclusivity(unchecked) private var decoder: MQTTDecoder
    private var server: MQTTServer?
    private var tlsContext: TLSContext?
    @exclusivity(unchecked) private var connection: TCPConnection?
    /// Identifies the current transport; callbacks of an older one are ignored.
    @exclusivity(unchecked) private var transportID: UInt64 = 0
    @exclusivity(unchecked) private var timer: LoopTimer?
    @exclusivity(unchecked) private var armedGeneration: UInt64?
    @exclusivity(unchecked) private var needsFlush = false

    @exclusivity(unchecked) private var dispatching = false
    @exclusivity(unchecked) private var deferred: [(ClientEngine) -> Void] = []
    @exclusivity(unchecked) private var decodePending = false

    @exclusivity(unchecked) var handlers = Handlers()
    private var pendingConnect: ConnectCompletion?
    private var stopRetryingOnFirstFailure = false
    @exclusivity(unchecked) private var completions: [UInt64: Completion] = [:]
    @exclusivity(unchecked) private var nextToken: UInt64 = 1

    @exclusivity(unchecked) private var streams: [MessageBuffer] = []
    @exclusivity(unchecked) private var pausedByConsumer = false
    @exclusivity(unchecked) private var shutDown = false
    /// Transports closing gracefully, and who waits for them (``close(whenClosed:)``).
    private var closingTransports = 0
    private var closeWaiters: [() -> Void] = []

    init(options: MQTTClientOptions, loop: EventLoop, logger: Logger?) {
        self.options = options
        self.loop = loop
        var logger = logger
        logger?[metadataKey: "mqtt.client"] = "\(options.clientID)"
        self.logger = logger
        self.tracing = logger.map { $0.logLevel <= .trace } ?? false
        // Jitter must differ between clients (so they do not reconnect in lock step).
        let seed = UInt64.random(in: .min ... .max)
        self.machine = MQTTClientStateMachine(configuration: options.machineConfiguration(jitterSeed: seed))
        self.decoder = MQTTDecoder(maximumPacketSize: options.maximumIncomingPacketSize, version: options.protocolVersion)
        completions.reserveCapacity(64)
    }

    /// The engine of a client front: on `eventLoop`, or on a loop of its own, started here
    /// (`ownsLoop`: the front stops it in ``release(ownsLoop:)``).
    static func make(options: MQTTClientOptions, eventLoop: EventLoop?, logger: Logger?) -> (engine: ClientEngine, ownsLoop: Bool) {
        if let eventLoop {
            return (ClientEngine(options: options, loop: eventLoop, logger: logger), false)
        }
        let loop = EventLoop()
        loop.start()
        return (ClientEngine(options: options, loop: loop, logger: logger), true)
    }

    /// A front's deinit: shuts the engine down (on the loop) and stops the loop it owns.
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

    /// One dispatch: the event, its actions, the requests its callbacks made, then the flush and
    /// the timer. Not re-entrant (callers check `dispatching`).
    @inline(__always)
    private func dispatch(_ body: (ClientEngine) -> Void) {
        dispatching = true
        body(self)
        performActions()
        runDeferred()
        dispatching = false
        finishDispatch()
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
            connection?.flush()
        }
        updateTimer()
        if decodePending {
            decodePending = false
            decodeAvailable()
        }
    }

    /// The monotonic clock at its kernel tick (a few ms coarse, same base as ``now()``, several
    /// times cheaper): for the per-publish keepalive bookkeeping, where "sent at" may be a few
    /// milliseconds early.
    static func coarseNow() -> MQTTInstant {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts)
        return MQTTInstant(nanoseconds: UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec))
    }

    static func now() -> MQTTInstant {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return MQTTInstant(nanoseconds: UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec))
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

    // MARK: Requests (loop thread, inside `event`)

    /// Starts connecting to `server`.
    func connect(to server: MQTTServer, reconnect: Bool, stopRetryingOnFirstFailure: Bool, completion: ConnectCompletion?) {
        if shutDown {
            endActive()
            completion?(.failure(.closedByUser))
            return
        }
        // A CONNECT the encoder would reject fails now, with the rule it breaks.
        let probe = OutboundBuffer(initialCapacity: 256)
        do {
            try MQTTEncoder.encode(.connect(options.connectPacket), version: options.protocolVersion, into: probe)
        } catch {
            endActive()
            completion?(.failure(.protocolError(error)))
            return
        }
        if let tls = server.security.tlsConfiguration {
            if tlsContext == nil || tlsContext?.configuration != tls {
                do throws(TransportError) {
                    tlsContext = try TLSContext(configuration: tls)
                } catch {
                    endActive()
                    completion?(.failure(ClientEngine.failure(for: error)))
                    return
                }
            }
        } else {
            tlsContext = nil
        }
        self.server = server
        machine.connectPacket = options.connectPacket
        machine.reconnect = reconnect ? options.reconnectBackoff : nil
        do {
            try machine.connect(now: ClientEngine.now(), into: &actions)
        } catch {
            // The fronts check `active` first; this is the machine's own guard.
            logger?.warning("connect refused by the client state", metadata: ["error": "\(error)"])
            completion?(.failure(.transport("\(error)")))
            return
        }
        pendingConnect = completion
        self.stopRetryingOnFirstFailure = stopRetryingOnFirstFailure
    }

    /// Publishes; the completion fires once with the handshake's outcome.
    func publish(_ message: PublishPacket, completion: PublishCompletion?) {
        let now = ClientEngine.coarseNow()
        if completion == nil && message.qos == .atMostOnce, let connection, machine.beginDirectQoS0Publish(now: now) {
            // Fast path: encode straight from the caller's bytes, no action, no packet copy.
            var topic = message.topic
            let failure: MQTTProtocolError? = topic.withUTF8 { t in
                message.payload.withUnsafeBytes { p -> MQTTProtocolError? in
                    do throws(MQTTProtocolError) {
                        try MQTTEncoder.encodePublish(topic: UnsafeRawBufferPointer(t), payload: p, qos: .atMostOnce,
                                                      retain: message.retain, dup: false, packetID: 0,
                                                      into: connection.outbound)
                        return nil
                    } catch {
                        return error
                    }
                }
            }
            if let failure {
                logger?.error("PUBLISH not encoded", metadata: ["error": "\(failure)"])
            } else {
                needsFlush = true
                if tracing { traceSentPublish(topic: message.topic, payloadCount: message.payload.count, retain: message.retain) }
            }
            return
        }
        let token = completion.map { register(.publish($0)) }
        do {
            try machine.publish(message, token: token, now: now, into: &actions)
        } catch {
            if let token { completions.removeValue(forKey: token.rawValue) }
            completion?(.failure(error))
        }
    }

    /// Subscribes to several filters in one SUBSCRIBE.
    func subscribe(_ subscriptions: [TopicSubscription], completion: SubscribeCompletion?) {
        let token = completion.map { register(.subscribe($0)) }
        do {
            try machine.subscribe(subscriptions, token: token, now: ClientEngine.now(), into: &actions)
        } catch {
            if let token { completions.removeValue(forKey: token.rawValue) }
            completion?(.failure(error))
        }
    }

    /// Unsubscribes from several filters in one UNSUBSCRIBE.
    func unsubscribe(_ filters: [String], completion: PublishCompletion?) {
        let token = completion.map { register(.unsubscribe($0)) }
        do {
            try machine.unsubscribe(filters, token: token, now: ClientEngine.now(), into: &actions)
        } catch {
            if let token { completions.removeValue(forKey: token.rawValue) }
            completion?(.failure(error))
        }
    }

    /// DISCONNECT at once, close, "offline"; outstanding requests fail with `closed`.
    func close() {
        machine.close(now: ClientEngine.now(), into: &actions)
        endActive()
    }

    /// Closes like ``close()``, then runs `done` once no transport is still closing (the
    /// DISCONNECT and everything before it reached the broker and the broker closed its side,
    /// or the reactor's graceful-close limit passed); at once when nothing was open.
    func close(whenClosed done: @escaping () -> Void) {
        close()
        // After this event's actions (the close of the transport among them).
        deferred.append { engine in
            engine.closeWaiters.append(done)
            engine.runCloseWaitersIfClosed()
        }
    }

    private func runCloseWaitersIfClosed() {
        guard closingTransports == 0, !closeWaiters.isEmpty else { return }
        let waiters = closeWaiters
        closeWaiters.removeAll()
        for waiter in waiters { waiter() }
    }

    /// Closes and ends every message stream; the engine takes no more requests.
    func shutdown() {
        close()
        shutDown = true
        for stream in streams { stream.finish() }
        streams.removeAll()
        timer?.close()
        timer = nil
    }

    // MARK: Message streams

    func addStream(_ buffer: MessageBuffer) {
        if shutDown {
            buffer.finish()
            return
        }
        streams.append(buffer)
    }

    func removeStream(_ buffer: MessageBuffer) {
        streams.removeAll { $0 === buffer }
        resumeIfDrained()
    }

    /// A consumer drained its buffer: read again if no stream is still full. The machine
    /// restarts its dead-broker clock from now (what the broker sent meanwhile is read next).
    func resumeIfDrained() {
        guard pausedByConsumer, !streams.contains(where: { $0.isFull }) else { return }
        pausedByConsumer = false
        connection?.resumeReading()
        machine.readingResumed(now: ClientEngine.now(), into: &actions)
        decodePending = true
    }

    /// Cuts the transport without DISCONNECT, as a network failure would (tests: will
    /// delivery, resend after a loss).
    func simulateConnectionLoss() {
        connection?.abort()
    }

    // MARK: Inspection (loop thread)

    var connectionState: MQTTClientStateMachine.ConnectionState { machine.connectionState }
    /// Bytes encoded for the broker and not yet taken by the kernel.
    var unsentByteCount: Int { connection?.unsentByteCount ?? 0 }
    var inflightCount: Int { machine.inflightCount }
    var queuedMessageCount: Int { machine.queuedMessageCount }

    // MARK: Reading

    private func didRead(_ c: TCPConnection) {
        guard c === connection else { return }
        if dispatching {
            decodePending = true
            return
        }
        decodeAvailable()
    }

    /// Decodes every complete packet in the ring, feeding each to the machine and carrying out
    /// its actions before the packet's bytes are released.
    private func decodeAvailable() {
        guard let c = connection, !pausedByConsumer, !dispatching else { return }
        let ring = c.inbound
        dispatching = true
        let now = ClientEngine.now()
        while connection === c && !pausedByConsumer {
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
            receive(packet, now: now)
            performActions()
            if connection === c { decoder.releaseLastFrame(in: ring) }
            runDeferred()
        }
        runDeferred()
        dispatching = false
        finishDispatch()
    }

    private func receive(_ packet: InboundPacket, now: MQTTInstant) {
        machine.receivedPacket(packet, now: now, into: &actions)
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
            openTransport(id)
        case .send(let packet):
            guard let connection else { return }
            if tracing { traceSent(packet) }
            do {
                try MQTTEncoder.encode(packet, version: options.protocolVersion, into: connection.outbound)
                needsFlush = true
            } catch {
                // Requests are validated by the fronts; this would be a bug, not network input.
                logger?.error("packet not encoded", metadata: ["packet": "\(packet.type)", "error": "\(error)"])
            }
        case .closeTransport:
            closeTransport()
        case .connected(let sessionPresent):
            logger?.debug("connected", metadata: ["sessionPresent": "\(sessionPresent)"])
            if let pending = pendingConnect {
                pendingConnect = nil
                pending(.success(sessionPresent))
            }
            handlers.connect?(sessionPresent)
        case .connectFailed(let failure, let willRetry):
            logger?.debug("connect failed", metadata: ["reason": "\(failure)", "willRetry": "\(willRetry)"])
            if let pending = pendingConnect {
                pendingConnect = nil
                if willRetry && stopRetryingOnFirstFailure {
                    deferred.append { $0.close() }
                }
                if !willRetry || stopRetryingOnFirstFailure { endActive() }
                pending(.failure(failure))
            } else if !willRetry {
                endActive()
            }
            handlers.connfail?(failure)
        case .offline(let failure, let willReconnect):
            logger?.debug("offline", metadata: ["reason": "\(failure)", "willReconnect": "\(willReconnect)"])
            if !willReconnect { endActive() }
            handlers.offline?(failure)
        case .deliver(let view):
            deliver(view)
        case .deliverOversized(let oversize):
            if let handler = handlers.overflow {
                handler(MQTTMessageView(topicBytes: oversize.topic, payload: oversize.payloadPrefix, qos: oversize.qos,
                                        retain: oversize.retain, dup: oversize.dup,
                                        totalPayloadLength: oversize.totalPayloadLength))
            }
        case .publishCompleted(let token, let packetID, _):
            if let token, case .publish(let completion)? = completions.removeValue(forKey: token.rawValue) {
                completion(.success(()))
            }
            handlers.puback?(packetID)
        case .subscribeCompleted(let token, _, let returnCodes):
            if let token, case .subscribe(let completion)? = completions.removeValue(forKey: token.rawValue) {
                completion(.success(returnCodes))
            }
            handlers.suback?(returnCodes)
        case .unsubscribeCompleted(let token, let packetID):
            if let token, case .unsubscribe(let completion)? = completions.removeValue(forKey: token.rawValue) {
                completion(.success(()))
            }
            handlers.unsuback?(packetID)
        case .requestFailed(let token, let error):
            switch completions.removeValue(forKey: token.rawValue) {
            case .publish(let completion)?: completion(.failure(error))
            case .subscribe(let completion)?: completion(.failure(error))
            case .unsubscribe(let completion)?: completion(.failure(error))
            case nil: break
            }
        case .disconnected:
            // Only `disconnect(drainTimeout:)` emits it; the engine still closes with `close()`.
            break
        case .unexpectedAck(let type, let packetID):
            logger?.debug("acknowledgement for nothing outstanding", metadata: ["type": "\(type)", "packetID": "\(packetID)"])
        }
    }

    private func deliver(_ view: PublishView) {
        if let handler = handlers.message {
            handler(MQTTMessageView(view))
        }
        guard !streams.isEmpty else { return }
        var owned: MQTTMessage?
        for stream in streams where stream.matches(topic: view.topic) {
            if owned == nil {
                owned = MQTTMessage(topic: view.topicString, payload: [UInt8](view.payload), qos: view.qos,
                                    retain: view.retain, dup: view.dup)
            }
            if !stream.push(owned!) && !pausedByConsumer {
                // The consumer fell behind: stop reading (and decoding) until it drains. The
                // broker's PINGRESP now waits unread too: the machine must not take that
                // silence for a dead broker.
                pausedByConsumer = true
                connection?.pauseReading()
                machine.readingPaused(now: ClientEngine.coarseNow())
            }
        }
    }

    private func register(_ completion: Completion) -> MQTTRequestToken {
        let token = nextToken
        nextToken &+= 1
        completions[token] = completion
        return MQTTRequestToken(token)
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

    /// Marks the connect as finally ended (any thread): by `close` (so that a connect right after
    /// it is accepted; the close itself follows on the loop, before that connect), or on the
    /// loop when an attempt or connection ended with no retry to follow.
    func endActive() {
        active.withLock { $0 = false }
    }

    /// Replaces the will sent with the next CONNECT.
    func setWill(_ will: Will?) {
        options.will = will
    }

    // MARK: Transport

    private func openTransport(_ machineID: MQTTTransportID) {
        guard let server else { return }
        transportID &+= 1
        let id = transportID
        decoder = MQTTDecoder(maximumPacketSize: options.maximumIncomingPacketSize, version: options.protocolVersion)
        pausedByConsumer = false
        var transform: TLSEngine?
        if let tlsContext {
            do throws(TransportError) {
                transform = try TLSEngine(context: tlsContext, host: server.host)
            } catch {
                let failure = ClientEngine.failure(for: error)
                deferred.append { $0.machine.transportFailed(machineID, failure, now: ClientEngine.now(), into: &$0.actions) }
                return
            }
        }
        var tcp = TCPOptions()
        // The ring must hold the largest packet decoded in full.
        tcp.receiveBufferMaximumCapacity = max(tcp.receiveBufferMaximumCapacity,
                                               ByteRing.roundUpToPowerOfTwo(options.maximumIncomingPacketSize + 8))
        // Reads of up to 128 KiB (about 4,800 small PUBLISH packets per read system call) instead of
        // the reactor's 16 KiB default: a subscriber under a stream of small messages made one
        // read per ~300 packets with 16 KiB (strace, `mqtt bench sub`).
        tcp.receiveBufferInitialCapacity = max(tcp.receiveBufferInitialCapacity, 128 * 1024)
        connection = loop.connect(host: server.host, port: server.port, timeout: options.connectTimeout,
                                  options: tcp, transform: transform) { [self] result in
            guard id == transportID else {
                if case .success(let stale) = result { stale.abort() }
                return
            }
            switch result {
            case .success(let c):
                connection = c
                c.onRead = { [self] c in didRead(c) }
                c.onClose = { [self] error in transportClosed(id: id, machineID: machineID, error: error) }
                event { $0.machine.transportConnected(machineID, now: ClientEngine.now(), into: &$0.actions) }
            case .failure(let error):
                connection = nil
                let failure = ClientEngine.failure(for: error)
                event { $0.machine.transportFailed(machineID, failure, now: ClientEngine.now(), into: &$0.actions) }
            }
        }
    }

    private func closeTransport() {
        transportID &+= 1
        if let connection {
            connection.onRead = nil
            // The graceful close ends later (the broker read everything and closed its side, or
            // the reactor's close timeout): then the close waiters run. The closure is released
            // by the connection once it fired.
            if connection.isOpen {
                closingTransports += 1
                connection.onClose = { [self] _ in
                    closingTransports -= 1
                    runCloseWaitersIfClosed()
                }
            } else {
                // Not established yet: closing cancels the connect; no close callback follows.
                connection.onClose = nil
            }
            if needsFlush {
                needsFlush = false
                connection.flush()
            }
            // Graceful: whatever was encoded (DISCONNECT) goes out first.
            connection.close()
        }
        connection = nil
    }

    private func transportClosed(id: UInt64, machineID: MQTTTransportID, error: TransportError?) {
        guard id == transportID else { return }
        connection?.onRead = nil
        connection?.onClose = nil
        connection = nil
        let failure = ClientEngine.failure(for: error ?? .closedByPeer)
        event { $0.machine.transportFailed(machineID, failure, now: ClientEngine.now(), into: &$0.actions) }
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
        guard deadline.generation != armedGeneration else { return }
        armedGeneration = deadline.generation
        if timer == nil {
            timer = loop.makeTimer { [self] in timerFired() }
        }
        let now = ClientEngine.now()
        let delay = deadline.at > now ? deadline.at - now : .zero
        timer?.schedule(after: delay)
    }

    private func timerFired() {
        guard let generation = armedGeneration else { return }
        armedGeneration = nil
        event { $0.machine.timerFired(generation: generation, now: ClientEngine.now(), into: &$0.actions) }
    }
}
