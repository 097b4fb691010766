public import MQTTProtocol
public import Logging
public import UVReactor

/// The NodeMCU-style face of the client: one handler per event, callbacks on the event loop
/// thread, messages handed over as views into the receive buffer.
///
/// It follows the NodeMCU `mqtt` module (`mqtt.Client`, `lwt`, `on`, `connect`, `publish`,
/// `subscribe`, `unsubscribe`, `close`) with the improvements `docs/usage.md` lists: a
/// completion per call that fires exactly once, real reconnect, precise failure reasons, TLS
/// that verifies. Every method is safe to call from any thread and from inside callbacks
/// (a call made inside a callback runs right after it, on the loop thread).
///
/// ```swift
/// let m = NodeMCUClient(clientID: "clientid", keepAlive: 120)
/// m.lwt("/lwt", "offline")
/// m.on(.message) { client, message in print(message.topic, message.payloadString) }
/// try m.connect("127.0.0.1", port: 1883, connected: { client in
///     try? client.subscribe("/topic", qos: .atMostOnce)
///     try? client.publish("/topic", "hello")
/// }, failed: { client, reason in print("failed:", reason.nodeMCUReasonCode) })
/// ```
public final class NodeMCUClient: Sendable {
    /// The events of ``on(_:_:)-(NodeMCUClient.Event,_)`` whose handler receives the client only.
    public enum Event: Sendable {
        /// A connection was accepted (also after every automatic reconnect).
        case connect
        /// An established connection ended (lost, closed by the broker, or ``close()``).
        case offline
        /// A publish finished its QoS handshake (PUBACK, PUBCOMP, or written for QoS 0).
        case puback
        /// A SUBACK arrived.
        case suback
        /// An UNSUBACK arrived.
        case unsuback
    }

    /// The events whose handler receives the failure reason.
    public enum FailureEvent: Sendable {
        /// A connection attempt failed (also every failed automatic reconnect attempt), at
        /// whatever stage: invalid CONNECT or TLS settings, DNS, TCP, TLS, CONNACK.
        case connfail
        /// An established connection ended; the handler gets why (``MQTTConnectionFailure``,
        /// `MQTTConnectionFailure.closedByUser` after ``close()``). Same slot as
        /// ``Event/offline``: setting one replaces the other.
        case offline
    }

    /// The event whose handler receives whether the broker resumed a session.
    public enum SessionEvent: Sendable {
        /// A connection was accepted; the handler gets the CONNACK's session-present flag.
        /// Same slot as ``Event/connect``: setting one replaces the other.
        case connect
    }

    /// The events whose handler receives a message view.
    public enum MessageEvent: Sendable {
        /// A message arrived.
        case message
        /// A message larger than the incoming packet limit arrived: the view holds the payload
        /// prefix that fit (``MQTTMessageView/totalPayloadLength`` tells the full size); the rest
        /// was skipped; the message was still acknowledged.
        case overflow
    }

    let engine: ClientEngine
    private let ownsLoop: Bool
    /// The handler slots, read by the engine's event stream on the loop thread.
    let handlers: NodeMCUHandlers

    /// The event loop the client runs on (its callbacks run on this loop's thread).
    public var eventLoop: EventLoop { engine.loop }

    /// The send backlog: bytes encoded for the broker and not yet taken by the kernel. A fast
    /// publisher checks it (or ``isWritable``) to follow the broker's pace instead of queueing
    /// in memory.
    ///
    /// - Precondition: Called on the loop thread (in a callback or `eventLoop.execute`): the
    ///   count changes with every write, so a value read elsewhere would be stale at once.
    public var unsentByteCount: Int {
        precondition(engine.loop.inEventLoop, "NodeMCUClient.unsentByteCount is read on the client's loop thread")
        return engine.unsentByteCount
    }

    /// Whether the connection takes more bytes now: false while the unsent bytes are above the
    /// transport's high-water mark (1 MiB) until they drained to the low-water mark (256 KiB).
    /// Meanwhile new publishes wait in the bounded send queue (a full queue fails the publish
    /// with `MQTTClientError.sendQueueFull(messages:bytes:)`), so memory stays bounded
    /// against a slow or stopped broker. The `writable` event reports each change.
    ///
    /// - Precondition: Called on the loop thread.
    public var isWritable: Bool {
        precondition(engine.loop.inEventLoop, "NodeMCUClient.isWritable is read on the client's loop thread")
        return engine.isWritable
    }

    /// Creates a client, as `mqtt.Client(clientid, keepalive, username, password, cleansession)`.
    ///
    /// - Parameters:
    ///   - clientID: The client identifier (never truncated).
    ///   - keepAlive: Seconds; 0 turns keepalive off (NodeMCU would use 60 for 0: pass 60).
    ///   - username: User name, or nil.
    ///   - password: Password, or nil.
    ///   - cleanSession: Start a fresh session (default, as NodeMCU documents).
    ///   - maximumMessageLength: Incoming packet limit (NodeMCU's `max_message_length`).
    ///   - protocolVersion: 3.1.1 (default) or 3.1.
    ///   - eventLoop: The loop to run on; nil starts one for this client (stopped on deinit).
    ///   - logger: Where the client logs (nothing is logged without one).
    public convenience init(
        clientID: String,
        keepAlive: UInt16 = 60,
        username: String? = nil,
        password: String? = nil,
        cleanSession: Bool = true,
        maximumMessageLength: Int = 1 << 20,
        protocolVersion: ProtocolVersion = .v3_1_1,
        eventLoop: EventLoop? = nil,
        logger: Logger? = nil
    ) {
        self.init(
            options: MQTTClientOptions(
                clientID: clientID, protocolVersion: protocolVersion, keepAlive: keepAlive, cleanSession: cleanSession,
                username: username, password: password.map { Array($0.utf8) },
                maximumIncomingPacketSize: maximumMessageLength),
            eventLoop: eventLoop, logger: logger)
    }

    /// Creates a client from full options.
    ///
    /// - Parameters:
    ///   - options: Identity, session and limits.
    ///   - eventLoop: The loop to run on; nil starts one for this client (stopped on deinit).
    ///   - logger: Where the client logs (nothing is logged without one).
    public convenience init(options: MQTTClientOptions, eventLoop: EventLoop? = nil, logger: Logger? = nil) {
        self.init(options: options, eventLoop: eventLoop, environment: nil, logger: logger)
    }

    /// Creates a client over a given environment (tests: in-memory transport, manual clock).
    package init(options: MQTTClientOptions, eventLoop: EventLoop?, environment: MQTTEngineEnvironment?, logger: Logger?) {
        (engine, ownsLoop) = ClientEngine.make(options: options, eventLoop: eventLoop, environment: environment, logger: logger)
        handlers = NodeMCUHandlers()
        handlers.client = self
        let handlers = handlers
        // Before any request reaches the loop: no event can be missed.
        engine.onEvent = { event in handlers.handle(event) }
    }

    deinit {
        engine.release(ownsLoop: ownsLoop)
    }

    /// Closes the connection and stops the client's own event loop, waiting for its thread to
    /// end (no thread, fd or buffer stays behind). With an event loop passed in at creation,
    /// only the client is closed. Requests still waiting fail with `MQTTClientError.closed`;
    /// the client takes no more requests. Dropping the last reference does the same without
    /// waiting.
    ///
    /// - Precondition: Not called on the client's loop thread (it would wait for itself); use
    ///   ``shutdownGracefully()`` or drop the client there.
    public func shutdown() {
        precondition(!engine.loop.inEventLoop, "NodeMCUClient.shutdown() waits for the loop thread: call it elsewhere")
        engine.submit { $0.shutdown() }
        if ownsLoop { try? engine.loop.shutdown() }
    }

    /// Closes like ``shutdown()`` and waits, without blocking a thread, until the client's own
    /// loop thread has ended.
    public func shutdownGracefully() async {
        engine.submit { $0.shutdown() }
        if ownsLoop { await engine.loop.shutdownGracefully() }
    }

    // MARK: Will and handlers

    /// Sets the last will, as `m:lwt(topic, message, qos, retain)`. Takes effect at the next
    /// connect.
    ///
    /// - Parameters:
    ///   - topic: Will topic (no wildcards).
    ///   - message: Will payload (binary-safe).
    ///   - qos: Will QoS (honoured, unlike NodeMCU's ESP32 branch).
    ///   - retain: Whether the broker retains the will.
    /// - Throws: ``MQTTProtocolError`` for an invalid will topic (a wildcard, invalid UTF-8) or a
    ///   payload over 65,535 bytes, at the call (nothing changes).
    public func lwt(_ topic: String, _ message: [UInt8], qos: QoS = .atMostOnce, retain: Bool = false) throws(MQTTProtocolError) {
        try validateTopicName(topic)
        if message.count > 65_535 { throw .fieldTooLong(field: .willPayload, length: message.count) }
        let will = Will(topic: topic, payload: message, qos: qos, retain: retain)
        engine.submit { $0.setWill(will) }
    }

    /// Sets the last will with a text payload.
    ///
    /// - Parameters:
    ///   - topic: Will topic (no wildcards).
    ///   - message: Will payload, sent as UTF-8.
    ///   - qos: Will QoS.
    ///   - retain: Whether the broker retains the will.
    /// - Throws: As ``lwt(_:_:qos:retain:)-(_,[UInt8],_,_)``.
    public func lwt(_ topic: String, _ message: String, qos: QoS = .atMostOnce, retain: Bool = false) throws(MQTTProtocolError) {
        try lwt(topic, Array(message.utf8), qos: qos, retain: retain)
    }

    /// Sets the handler of `connect`, `offline`, `puback`, `suback` or `unsuback` (replacing the
    /// previous one, as NodeMCU does); nil removes it. It runs on the loop thread.
    ///
    /// The handler receives its client: use that argument instead of capturing the client in
    /// the closure (a handler that captures its own client keeps it, and its loop thread,
    /// alive for as long as the handler is set).
    ///
    /// - Parameters:
    ///   - event: The event.
    ///   - handler: Receives the client.
    public func on(_ event: Event, _ handler: (@Sendable (NodeMCUClient) -> Void)?) {
        let handlers = handlers
        engine.submit { _ in
            switch event {
            case .connect:
                handlers.connect = handler.map { h -> @Sendable (NodeMCUClient, Bool) -> Void in { c, _ in h(c) } }
            case .offline:
                handlers.offline = handler.map { h -> @Sendable (NodeMCUClient, MQTTConnectionFailure) -> Void in { c, _ in h(c) } }
            case .puback: handlers.puback = handler
            case .suback: handlers.suback = handler
            case .unsuback: handlers.unsuback = handler
            }
        }
    }

    /// Sets the `connect` handler that also receives the session-present flag of the CONNACK
    /// (replaces a handler set with ``on(_:_:)-(NodeMCUClient.Event,_)`` for `.connect`); nil removes it.
    ///
    /// Subscribe here rather than in `connect`'s `connected:` completion: that runs for the first
    /// attempt only, while this runs after every accepted connection (the first one included,
    /// and every automatic reconnect), which is where a client without a kept session
    /// (`sessionPresent == false`) must subscribe again.
    ///
    /// - Parameters:
    ///   - event: `.connect`.
    ///   - handler: Receives the client and whether the broker resumed a stored session.
    public func on(_ event: SessionEvent, _ handler: (@Sendable (NodeMCUClient, _ sessionPresent: Bool) -> Void)?) {
        let handlers = handlers
        engine.submit { _ in handlers.connect = handler }
    }

    /// Sets the `connfail` or `offline` handler that receives the reason; nil removes it. It runs
    /// on the loop thread: `connfail` for every failed attempt, `offline` when an accepted
    /// connection ended (`MQTTConnectionFailure.nodeMCUReasonCode` gives NodeMCU's number).
    ///
    /// - Parameters:
    ///   - event: `.connfail` or `.offline`.
    ///   - handler: Receives the client and the reason.
    public func on(_ event: FailureEvent, _ handler: (@Sendable (NodeMCUClient, MQTTConnectionFailure) -> Void)?) {
        let handlers = handlers
        engine.submit { _ in
            switch event {
            case .connfail: handlers.connfail = handler
            case .offline: handlers.offline = handler
            }
        }
    }

    /// Sets the `message` or `overflow` handler; nil removes it. It runs on the loop thread with
    /// a view whose bytes are read in place from the receive buffer: valid during the call only
    /// (``MQTTMessageView/makeOwned()`` copies it).
    ///
    /// - Parameters:
    ///   - event: `.message` or `.overflow`.
    ///   - handler: Receives the client and the message view.
    public func on(_ event: MessageEvent, _ handler: (@Sendable (NodeMCUClient, MQTTMessageView) -> Void)?) {
        let handlers = handlers
        engine.submit { _ in
            switch event {
            case .message: handlers.message = handler
            case .overflow: handlers.overflow = handler
            }
        }
    }

    /// Sets the `writable` handler; nil removes it. It runs on the loop thread with `false` when
    /// the unsent bytes rose above the high-water mark and `true` when they drained again (see
    /// ``isWritable``).
    ///
    /// - Parameters:
    ///   - event: `.writable`.
    ///   - handler: Receives the client and whether it is writable now.
    public func on(_ event: WritabilityEvent, _ handler: (@Sendable (NodeMCUClient, _ writable: Bool) -> Void)?) {
        let handlers = handlers
        engine.submit { _ in handlers.writable = handler }
    }

    /// The event whose handler receives the writability (beyond NodeMCU: back-pressure).
    public enum WritabilityEvent: Sendable {
        /// The connection's writability changed (see ``NodeMCUClient/isWritable``).
        case writable
    }

    // MARK: Connection

    /// Connects, as `m:connect(host, port, secure, autoreconnect, connected, failed)`.
    ///
    /// Exactly one of `connected` and `failed` runs, once, for this call (on the loop thread).
    /// With `autoreconnect`, a lost connection (or a failed first attempt, unless the reason is
    /// final: refused credentials, an untrusted certificate) is retried with exponential
    /// back-off (``MQTTClientOptions/reconnectBackoff``); the `connect`, `connfail` and `offline`
    /// events report every later outcome.
    ///
    /// - Parameters:
    ///   - host: Host name, IP literal, or an `mqtt://`, `mqtts://`, `ws://` or `wss://` URI.
    ///   - port: Port; nil for the URI's, or 1883 / 8883 (80 / 443 for WebSocket).
    ///   - secure: `.off`, `.on` (system trust store), or `.tls(configuration)`; `.off` with an
    ///     `mqtts://` URI means `.on`.
    ///   - autoreconnect: Reconnect after a loss.
    ///   - connected: Runs when this attempt is accepted.
    ///   - failed: Runs when this attempt fails, with the reason.
    /// - Throws: `MQTTClientError.alreadyConnected` when a connection exists or is being made
    ///   (close first); ``MQTTServerAddressError`` for a malformed host or URI.
    public func connect(
        _ host: String,
        port: Int? = nil,
        secure: MQTTSecurity = .off,
        autoreconnect: Bool = false,
        connected: (@Sendable (NodeMCUClient) -> Void)? = nil,
        failed: (@Sendable (NodeMCUClient, MQTTConnectionFailure) -> Void)? = nil
    ) throws {
        let server = try MQTTServer(parsing: host, port: port, security: secure)
        try connect(to: [server], autoreconnect: autoreconnect, connected: connected, failed: failed)
    }

    /// The server of the latest connection attempt (the one a `connfail` or `offline` is
    /// about), or nil before the first attempt.
    public var currentServer: MQTTServer? { engine.currentServer.withLock { $0 } }

    /// Connects to a server given as a value (host, port, security, WebSocket settings), as
    /// ``connect(_:port:secure:autoreconnect:connected:failed:)`` does for a host or URI.
    ///
    /// - Parameters:
    ///   - server: Where to connect.
    ///   - autoreconnect: Reconnect after a loss.
    ///   - connected: Runs when this attempt is accepted.
    ///   - failed: Runs when this attempt fails, with the reason.
    /// - Throws: `MQTTClientError.alreadyConnected` when a connection exists or is being made.
    public func connect(
        to server: MQTTServer,
        autoreconnect: Bool = false,
        connected: (@Sendable (NodeMCUClient) -> Void)? = nil,
        failed: (@Sendable (NodeMCUClient, MQTTConnectionFailure) -> Void)? = nil
    ) throws(MQTTClientError) {
        try connect(to: [server], autoreconnect: autoreconnect, connected: connected, failed: failed)
    }

    /// Connects to the first server of a list that accepts.
    ///
    /// The servers are tried in order (or, with `shuffle`, in an order shuffled once per
    /// client): a failed attempt goes on to the next server at once, and `connfail` fires for
    /// each failure (``currentServer`` is the server it is about). When every server failed
    /// once, `failed` runs; with `autoreconnect` the client backs off and starts the next pass
    /// (one back-off round per pass, ``ServerRotation``). After a loss it reconnects to the
    /// next server.
    ///
    /// - Parameters:
    ///   - servers: The servers, at least one.
    ///   - shuffle: Try them in this client's shuffled order.
    ///   - autoreconnect: Reconnect after a loss, and retry passes that failed.
    ///   - connected: Runs when a server accepted.
    ///   - failed: Runs when a pass over the list failed, with the last server's reason.
    /// - Throws: `MQTTClientError.alreadyConnected` when a connection exists or is being made.
    public func connect(
        to servers: [MQTTServer],
        shuffle: Bool = false,
        autoreconnect: Bool = false,
        connected: (@Sendable (NodeMCUClient) -> Void)? = nil,
        failed: (@Sendable (NodeMCUClient, MQTTConnectionFailure) -> Void)? = nil
    ) throws(MQTTClientError) {
        try engine.beginConnect()
        let onConnected = ClientCall(self, connected)
        let onFailed = ClientCall(self, failed)
        let completion: ClientEngine.ConnectCompletion = { result in
            switch result {
            case .success: onConnected?.run()
            case .failure(let failure): onFailed?.run(failure)
            }
        }
        engine.submit {
            $0.connect(to: servers, shuffle: shuffle, reconnect: autoreconnect, failFast: false, completeOnRetry: true,
                       completion: completion)
        }
    }

    /// Closes, as `m:close()`: DISCONNECT is sent at once (the broker drops the will), the
    /// socket closes, then `offline` fires. Requests still waiting fail with
    /// `MQTTClientError.closed`. Connecting again afterwards works.
    public func close() {
        engine.endActive()
        engine.submit { $0.close() }
    }

    /// Closes gracefully and runs `completion` once the connection is closed for good.
    ///
    /// First the acknowledgements of messages the application already received go out: for a
    /// QoS 2 message whose PUBREL is still due, the client waits for it (at most
    /// ``MQTTClientOptions/disconnectDrainTimeout``) and answers PUBCOMP. Then DISCONNECT (the
    /// broker drops the will), then the client waits until the broker read everything and
    /// closed its side (at most ``MQTTClientOptions/disconnectTimeout``). A program that exits
    /// right after publishing a burst waits for this, so that no bytes still queued in the
    /// kernel are lost with the process.
    ///
    /// - Parameter completion: Runs once on the loop thread (at once when nothing was open).
    public func close(completion: @escaping @Sendable (NodeMCUClient) -> Void) {
        engine.endActive()
        let call = ClientCall(self, completion)
        engine.submit { engine in
            engine.disconnect(drainTimeout: engine.options.disconnectDrainTimeout, whenClosed: { call?.run() })
        }
    }

    // MARK: Publish and subscribe

    /// Publishes, as `m:publish(topic, payload, qos, retain, function(client))`.
    ///
    /// The completion runs once: when written (QoS 0), at PUBACK (QoS 1) or PUBCOMP (QoS 2), or
    /// with the error (offline without reconnect, queue full, closed). The `puback` event also
    /// fires. Offline with reconnect on, the message waits (bounded) and goes out after the
    /// reconnect.
    ///
    /// - Parameters:
    ///   - topic: Topic name (no wildcards).
    ///   - payload: Payload bytes.
    ///   - qos: QoS 0, 1 or 2.
    ///   - retain: Ask the broker to retain it.
    ///   - completion: Runs once on the loop thread.
    /// - Throws: ``MQTTProtocolError`` for an invalid topic name or a packet over
    ///   ``MQTTClientOptions/maximumOutgoingPacketSize`` (`packetTooLarge`): nothing is queued.
    public func publish(
        _ topic: String, _ payload: [UInt8], qos: QoS = .atMostOnce, retain: Bool = false,
        completion: (@Sendable (NodeMCUClient, Result<Void, MQTTClientError>) -> Void)? = nil
    ) throws(MQTTProtocolError) {
        try validateTopicName(topic)
        try validatePublishSize(topic: topic, payloadCount: payload.count, qos: qos, limit: engine.options.maximumOutgoingPacketSize)
        let packet = PublishPacket(topic: topic, payload: payload, qos: qos, retain: retain)
        guard let completion else {
            // No completion (the per-message path of a fast publisher): nothing to wrap. On the
            // loop thread (outside a callback) the publish runs at once, unboxed.
            if engine.runIfOnLoop({ $0.publish(packet, whenFull: .fail, completion: nil) }) { return }
            engine.submit { $0.publish(packet, whenFull: .fail, completion: nil) }
            return
        }
        let call = ClientCall(self, completion)
        let box = call.map { c in RequestCompletion(.publish { result in c.run(result) }) }
        if engine.runIfOnLoop({ $0.publish(packet, whenFull: .fail, completion: box) }) { return }
        engine.submit { $0.publish(packet, whenFull: .fail, completion: box) }
    }

    /// Publishes a text payload (sent as UTF-8). See ``publish(_:_:qos:retain:completion:)-(_,[UInt8],_,_,_)``.
    ///
    /// - Parameters:
    ///   - topic: Topic name (no wildcards).
    ///   - payload: Payload text.
    ///   - qos: QoS 0, 1 or 2.
    ///   - retain: Ask the broker to retain it.
    ///   - completion: Runs once on the loop thread.
    /// - Throws: ``MQTTProtocolError`` for an invalid topic name.
    public func publish(
        _ topic: String, _ payload: String, qos: QoS = .atMostOnce, retain: Bool = false,
        completion: (@Sendable (NodeMCUClient, Result<Void, MQTTClientError>) -> Void)? = nil
    ) throws(MQTTProtocolError) {
        try publish(topic, Array(payload.utf8), qos: qos, retain: retain, completion: completion)
    }

    /// Subscribes to one filter, as `m:subscribe(topic, qos, function(client))`.
    ///
    /// - Parameters:
    ///   - topic: Topic filter (`+` and `#` allowed).
    ///   - qos: Requested QoS.
    ///   - completion: Runs once with the broker's answer (granted QoS or failure 0x80) or the
    ///     error.
    /// - Throws: ``MQTTProtocolError`` for an invalid filter.
    public func subscribe(
        _ topic: String, qos: QoS = .atMostOnce,
        completion: (@Sendable (NodeMCUClient, Result<SubAckReturnCode, MQTTClientError>) -> Void)? = nil
    ) throws(MQTTProtocolError) {
        try validateTopicFilter(topic)
        let call = ClientCall(self, completion)
        let box = call.map { c in RequestCompletion(.subscribe { result in c.run(result.map { $0.first ?? .failure }) }) }
        let subscription = [TopicSubscription(filter: topic, qos: qos)]
        engine.submit { $0.subscribe(subscription, completion: box) }
    }

    /// Subscribes to several filters in one SUBSCRIBE, in the order given.
    ///
    /// - Parameters:
    ///   - subscriptions: Filters with their requested QoS, at least one.
    ///   - completion: Runs once with the broker's answer per filter, in the same order, or the
    ///     error.
    /// - Throws: ``MQTTProtocolError`` for an invalid filter, an empty list or a packet over
    ///   the outgoing limit.
    public func subscribe(
        _ subscriptions: [TopicSubscription],
        completion: (@Sendable (NodeMCUClient, Result<[SubAckReturnCode], MQTTClientError>) -> Void)? = nil
    ) throws(MQTTProtocolError) {
        try validateSubscriptions(subscriptions, limit: engine.options.maximumOutgoingPacketSize)
        let call = ClientCall(self, completion)
        let box = call.map { c in RequestCompletion(.subscribe { result in c.run(result) }) }
        engine.submit { $0.subscribe(subscriptions, completion: box) }
    }

    /// Subscribes to several filters in one SUBSCRIBE, as `m:subscribe({["a/b"]=0, ["c/#"]=1})`.
    ///
    /// - Parameters:
    ///   - topics: Filters with their requested QoS.
    ///   - completion: Runs once with the broker's answer per filter, or the error.
    /// - Throws: ``MQTTProtocolError`` for an invalid filter or an empty table.
    public func subscribe(
        _ topics: [String: QoS],
        completion: (@Sendable (NodeMCUClient, Result<[String: SubAckReturnCode], MQTTClientError>) -> Void)? = nil
    ) throws(MQTTProtocolError) {
        // A table has no order (as in Lua): sorted, so that the SUBSCRIBE is reproducible. Use
        // the `[TopicSubscription]` overload for a given order.
        let subscriptions = topics.sorted { $0.key < $1.key }.map { TopicSubscription(filter: $0.key, qos: $0.value) }
        try validateSubscriptions(subscriptions, limit: engine.options.maximumOutgoingPacketSize)
        let call = ClientCall(self, completion)
        let box = call.map { c in
            RequestCompletion(.subscribe { result in
                c.run(result.map { codes in
                    var granted = [String: SubAckReturnCode]()
                    for (index, s) in subscriptions.enumerated() { granted[s.filter] = index < codes.count ? codes[index] : .failure }
                    return granted
                })
            })
        }
        engine.submit { $0.subscribe(subscriptions, completion: box) }
    }

    /// Unsubscribes from one filter, as `m:unsubscribe(topic, function(client))`.
    ///
    /// - Parameters:
    ///   - topic: The filter.
    ///   - completion: Runs once at UNSUBACK or with the error.
    /// - Throws: ``MQTTProtocolError`` for an invalid filter.
    public func unsubscribe(
        _ topic: String, completion: (@Sendable (NodeMCUClient, Result<Void, MQTTClientError>) -> Void)? = nil
    ) throws(MQTTProtocolError) {
        try unsubscribe([topic], completion: completion)
    }

    /// Unsubscribes from several filters in one UNSUBSCRIBE.
    ///
    /// - Parameters:
    ///   - topics: The filters.
    ///   - completion: Runs once at UNSUBACK or with the error.
    /// - Throws: ``MQTTProtocolError`` for an invalid filter or an empty list.
    public func unsubscribe(
        _ topics: [String], completion: (@Sendable (NodeMCUClient, Result<Void, MQTTClientError>) -> Void)? = nil
    ) throws(MQTTProtocolError) {
        try validateUnsubscribe(topics, limit: engine.options.maximumOutgoingPacketSize)
        let call = ClientCall(self, completion)
        let box = call.map { c in RequestCompletion(.unsubscribe { result in c.run(result) }) }
        engine.submit { $0.unsubscribe(topics, completion: box) }
    }
}

/// A user callback bound to its client without keeping the client alive (the engine stores the
/// callback; a strong reference would be a cycle).
struct ClientCall<Argument>: Sendable {
    weak var client: NodeMCUClient?
    let body: @Sendable (NodeMCUClient, Argument) -> Void

    init?(_ client: NodeMCUClient, _ body: (@Sendable (NodeMCUClient, Argument) -> Void)?) {
        guard let body else { return nil }
        self.client = client
        self.body = body
    }

    func run(_ argument: Argument) {
        if let client { body(client, argument) }
    }
}

extension ClientCall where Argument == Void {
    init?(_ client: NodeMCUClient, _ body: (@Sendable (NodeMCUClient) -> Void)?) {
        guard let body else { return nil }
        self.client = client
        self.body = { client, _ in body(client) }
    }

    func run() { run(()) }
}

/// The NodeMCU handler slots, one per event (loop thread only), and the adapter from the
/// engine's event stream to them.
final class NodeMCUHandlers: @unchecked Sendable {
    /// The client the handlers receive (weak: the engine holds the handlers, the client holds
    /// the engine).
    weak var client: NodeMCUClient?
    var connect: (@Sendable (NodeMCUClient, Bool) -> Void)?
    var connfail: (@Sendable (NodeMCUClient, MQTTConnectionFailure) -> Void)?
    var offline: (@Sendable (NodeMCUClient, MQTTConnectionFailure) -> Void)?
    var message: (@Sendable (NodeMCUClient, MQTTMessageView) -> Void)?
    var overflow: (@Sendable (NodeMCUClient, MQTTMessageView) -> Void)?
    var puback: (@Sendable (NodeMCUClient) -> Void)?
    var suback: (@Sendable (NodeMCUClient) -> Void)?
    var unsuback: (@Sendable (NodeMCUClient) -> Void)?
    var writable: (@Sendable (NodeMCUClient, Bool) -> Void)?

    func handle(_ event: EngineEvent) {
        guard let client else { return }
        switch event {
        case .connected(let sessionPresent): connect?(client, sessionPresent)
        case .connectFailed(let failure, _, _): connfail?(client, failure)
        case .offline(let failure, _, _): offline?(client, failure)
        case .message(let view): message?(client, view)
        case .oversize(let view): overflow?(client, view)
        case .publishCompleted: puback?(client)
        case .subscribeCompleted: suback?(client)
        case .unsubscribeCompleted: unsuback?(client)
        case .writabilityChanged(let isWritable): writable?(client, isWritable)
        case .shutDown: break
        }
    }
}
