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
    /// The events of ``on(_:_:)-(Event,_)`` whose handler receives the client only.
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

    /// The event whose handler receives the failure reason.
    public enum FailureEvent: Sendable {
        /// A connection attempt failed (also every failed automatic reconnect attempt).
        case connfail
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

    /// The event loop the client runs on (its callbacks run on this loop's thread).
    public var eventLoop: EventLoop { engine.loop }

    /// The send backlog: bytes encoded for the broker and not yet taken by the kernel (QoS 0
    /// messages count as sent once they are encoded; they are written at the end of the loop
    /// iteration). A fast publisher checks it to follow the broker's pace instead of queueing
    /// in memory. Read it on the loop thread (in a callback or `eventLoop.execute`); elsewhere,
    /// or when not connected, it is 0.
    public var unsentByteCount: Int { engine.loop.inEventLoop ? engine.unsentByteCount : 0 }

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
    public init(options: MQTTClientOptions, eventLoop: EventLoop? = nil, logger: Logger? = nil) {
        (engine, ownsLoop) = ClientEngine.make(options: options, eventLoop: eventLoop, logger: logger)
    }

    deinit {
        engine.release(ownsLoop: ownsLoop)
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
    public func lwt(_ topic: String, _ message: [UInt8], qos: QoS = .atMostOnce, retain: Bool = false) {
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
    public func lwt(_ topic: String, _ message: String, qos: QoS = .atMostOnce, retain: Bool = false) {
        lwt(topic, Array(message.utf8), qos: qos, retain: retain)
    }

    /// Sets the handler of `connect`, `offline`, `puback`, `suback` or `unsuback` (replacing the
    /// previous one, as NodeMCU does); nil removes it. It runs on the loop thread.
    ///
    /// - Parameters:
    ///   - event: The event.
    ///   - handler: Receives the client.
    public func on(_ event: Event, _ handler: (@Sendable (NodeMCUClient) -> Void)?) {
        let call = ClientCall(self, handler)
        engine.submit { engine in
            switch event {
            case .connect: engine.handlers.connect = call.map { c in { @Sendable _ in c.run() } }
            case .offline: engine.handlers.offline = call.map { c in { @Sendable _ in c.run() } }
            case .puback: engine.handlers.puback = call.map { c in { @Sendable _ in c.run() } }
            case .suback: engine.handlers.suback = call.map { c in { @Sendable _ in c.run() } }
            case .unsuback: engine.handlers.unsuback = call.map { c in { @Sendable _ in c.run() } }
            }
        }
    }

    /// Sets the `connfail` handler; nil removes it. It runs on the loop thread for every failed
    /// attempt, with the reason (``MQTTConnectionFailure/nodeMCUReasonCode`` gives NodeMCU's
    /// number).
    ///
    /// - Parameters:
    ///   - event: `.connfail`.
    ///   - handler: Receives the client and the reason.
    public func on(_ event: FailureEvent, _ handler: (@Sendable (NodeMCUClient, MQTTConnectionFailure) -> Void)?) {
        let call = ClientCall(self, handler)
        engine.submit { engine in engine.handlers.connfail = call.map { c in { @Sendable failure in c.run(failure) } } }
    }

    /// Sets the `message` or `overflow` handler; nil removes it. It runs on the loop thread with
    /// a view whose bytes are read in place from the receive buffer: valid during the call only
    /// (``MQTTMessageView/makeOwned()`` copies it).
    ///
    /// - Parameters:
    ///   - event: `.message` or `.overflow`.
    ///   - handler: Receives the client and the message view.
    public func on(_ event: MessageEvent, _ handler: (@Sendable (NodeMCUClient, MQTTMessageView) -> Void)?) {
        let call = ClientCall(self, handler)
        engine.submit { engine in
            let wrapped = call.map { c in { @Sendable (view: MQTTMessageView) in c.run(view) } }
            switch event {
            case .message: engine.handlers.message = wrapped
            case .overflow: engine.handlers.overflow = wrapped
            }
        }
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
    ///   - host: Host name, IP literal, or an `mqtt://` / `mqtts://` URI.
    ///   - port: Port; nil for the URI's, or 1883 / 8883.
    ///   - secure: `.off`, `.on` (system trust store), or `.tls(configuration)`; `.off` with an
    ///     `mqtts://` URI means `.on`.
    ///   - autoreconnect: Reconnect after a loss.
    ///   - connected: Runs when this attempt is accepted.
    ///   - failed: Runs when this attempt fails, with the reason.
    /// - Throws: ``MQTTClientError/alreadyConnected`` when a connection exists or is being made
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
        try engine.beginConnect()
        let onConnected = ClientCall(self, connected)
        let onFailed = ClientCall(self, failed)
        let completion: ClientEngine.ConnectCompletion = { result in
            switch result {
            case .success: onConnected?.run()
            case .failure(let failure): onFailed?.run(failure)
            }
        }
        engine.submit { $0.connect(to: server, reconnect: autoreconnect, stopRetryingOnFirstFailure: false, completion: completion) }
    }

    /// Closes, as `m:close()`: DISCONNECT is sent at once (the broker drops the will), the
    /// socket closes, then `offline` fires. Requests still waiting fail with
    /// ``MQTTClientError/closed``. Connecting again afterwards works.
    public func close() {
        engine.endActive()
        engine.submit { $0.close() }
    }

    /// Closes as ``close()``, and runs `completion` once the connection is closed for good:
    /// the broker read the DISCONNECT and everything sent before it and closed its side (or the
    /// graceful close gave up after 10 s). A program that exits right after publishing a burst
    /// waits for this, so that no bytes still queued in the kernel are lost with the process.
    ///
    /// - Parameter completion: Runs once on the loop thread (at once when nothing was open).
    public func close(completion: @escaping @Sendable (NodeMCUClient) -> Void) {
        engine.endActive()
        let call = ClientCall(self, completion)
        engine.submit { $0.close(whenClosed: { call?.run() }) }
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
    /// - Throws: ``MQTTProtocolError`` for an invalid topic name (nothing is sent).
    public func publish(
        _ topic: String, _ payload: [UInt8], qos: QoS = .atMostOnce, retain: Bool = false,
        completion: (@Sendable (NodeMCUClient, Result<Void, MQTTClientError>) -> Void)? = nil
    ) throws(MQTTProtocolError) {
        try validateTopicName(topic)
        let packet = PublishPacket(topic: topic, payload: payload, qos: qos, retain: retain)
        guard let completion else {
            // No completion (the per-message path of a fast publisher): nothing to wrap. On the
            // loop thread (outside a callback) the publish runs at once, unboxed.
            if engine.runIfOnLoop({ $0.publish(packet, completion: nil) }) { return }
            engine.submit { $0.publish(packet, completion: nil) }
            return
        }
        let call = ClientCall(self, completion)
        let wrapped: ClientEngine.PublishCompletion? = call.map { c in { @Sendable result in c.run(result) } }
        if engine.runIfOnLoop({ $0.publish(packet, completion: wrapped) }) { return }
        engine.submit { $0.publish(packet, completion: wrapped) }
    }

    /// Publishes a text payload (sent as UTF-8). See ``publish(_:_:qos:retain:completion:)-([UInt8],_,_,_)``.
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
        let wrapped: ClientEngine.SubscribeCompletion? = call.map { c in
            { @Sendable result in c.run(result.map { $0.first ?? .failure }) }
        }
        let subscription = [TopicSubscription(filter: topic, qos: qos)]
        engine.submit { $0.subscribe(subscription, completion: wrapped) }
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
        let subscriptions = topics.sorted { $0.key < $1.key }.map { TopicSubscription(filter: $0.key, qos: $0.value) }
        if subscriptions.isEmpty { throw .noTopicFilters(.subscribe) }
        for s in subscriptions { try validateTopicFilter(s.filter) }
        let call = ClientCall(self, completion)
        let wrapped: ClientEngine.SubscribeCompletion? = call.map { c in
            { @Sendable result in
                c.run(result.map { codes in
                    var granted = [String: SubAckReturnCode]()
                    for (index, s) in subscriptions.enumerated() { granted[s.filter] = index < codes.count ? codes[index] : .failure }
                    return granted
                })
            }
        }
        engine.submit { $0.subscribe(subscriptions, completion: wrapped) }
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
        if topics.isEmpty { throw .noTopicFilters(.unsubscribe) }
        for t in topics { try validateTopicFilter(t) }
        let call = ClientCall(self, completion)
        let wrapped: ClientEngine.PublishCompletion? = call.map { c in { @Sendable result in c.run(result) } }
        engine.submit { $0.unsubscribe(topics, completion: wrapped) }
    }
}

/// Checks a topic name before it is queued (so an invalid one fails the call, not the
/// connection).
func validateTopicName(_ topic: String) throws(MQTTProtocolError) {
    var topic = topic
    let failure: MQTTProtocolError? = topic.withUTF8 { bytes -> MQTTProtocolError? in
        do throws(MQTTProtocolError) { try MQTTValidation.validateTopicName(UnsafeRawBufferPointer(bytes)); return nil } catch { return error }
    }
    if let failure { throw failure }
}

/// Checks a topic filter before it is queued.
func validateTopicFilter(_ filter: String) throws(MQTTProtocolError) {
    var filter = filter
    let failure: MQTTProtocolError? = filter.withUTF8 { bytes -> MQTTProtocolError? in
        do throws(MQTTProtocolError) { try MQTTValidation.validateTopicFilter(UnsafeRawBufferPointer(bytes)); return nil } catch { return error }
    }
    if let failure { throw failure }
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
