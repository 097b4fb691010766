public import UVReactor
public import MQTTProtocol
public import Logging

/// The async/await face of the client.
///
/// Every request suspends until its outcome: `connect` until the CONNACK, `publish` until the
/// QoS handshake is done (written for QoS 0, PUBACK for 1, PUBCOMP for 2), `subscribe` until the
/// SUBACK (returning the granted QoS per filter). A full send queue makes `publish` wait for
/// room instead of failing; every request can be cancelled (it throws `CancellationError`).
/// Received messages arrive as owned ``MQTTMessage`` values through ``subscribe(to:qos:buffering:)``,
/// ``messages`` or ``messages(matching:buffering:)``, each with its own bounded buffer.
/// ``connectionEvents`` and ``isConnected`` report the connection. The client is `Sendable`:
/// call it from any task or thread.
///
/// It runs on the same engine as ``NodeMCUClient``; the NodeMCU-style events are available
/// through ``NodeMCUClient`` only.
///
/// ```swift
/// let client = MQTTClient(options: MQTTClientOptions(clientID: "sensor-1"), logger: logger)
/// try await client.connect(to: "mqtt://127.0.0.1:1883")
/// let sensors = try await client.subscribe(to: "sensors/#", qos: .atLeastOnce)
/// try await client.publish("sensors/t", payload: Array("21.5".utf8), qos: .atLeastOnce)
/// for await message in sensors { print(message.topic, message.payloadString); break }
/// await client.disconnect()
/// ```
public final class MQTTClient: Sendable {
    let engine: ClientEngine
    private let ownsLoop: Bool
    let router: AsyncRouter

    /// The event loop the client runs on.
    public var eventLoop: EventLoop { engine.loop }

    /// Whether the client is connected now (a CONNACK accepted the current connection).
    public var isConnected: Bool { router.connected.withLock { $0 } }

    /// Creates a client.
    ///
    /// - Parameters:
    ///   - options: Identity, session and limits (see ``MQTTClientOptions`` for the defaults).
    ///   - eventLoop: The loop to run on; nil starts one for this client (stopped on deinit).
    ///   - logger: Where the client logs; the library never creates a logging backend, and
    ///     logs nothing without one.
    public convenience init(options: MQTTClientOptions, eventLoop: EventLoop? = nil, logger: Logger? = nil) {
        self.init(options: options, eventLoop: eventLoop, environment: nil, logger: logger)
    }

    /// Creates a client over a given environment (tests: in-memory transport, manual clock).
    package init(options: MQTTClientOptions, eventLoop: EventLoop?, environment: MQTTEngineEnvironment?, logger: Logger?) {
        (engine, ownsLoop) = ClientEngine.make(options: options, eventLoop: eventLoop, environment: environment, logger: logger)
        router = AsyncRouter(engine: engine, defaultBuffering: .backPressure(capacity: options.messageBufferSize))
        let router = router
        // Before any request reaches the loop: no event can be missed.
        engine.onEvent = { event in router.handle(event) }
    }

    deinit {
        engine.release(ownsLoop: ownsLoop)
    }

    /// Closes the connection (without DISCONNECT drain: use ``disconnect()`` first for a clean
    /// end), ends every stream, and stops the client's own event loop, waiting for its thread
    /// to end. With an event loop passed in at creation, only the client is closed. The client
    /// takes no more requests. Dropping the last reference does the same without waiting.
    public func shutdownGracefully() async {
        engine.submit { $0.shutdown() }
        if ownsLoop { await engine.loop.shutdownGracefully() }
    }

    /// Connects and waits for the broker's CONNACK.
    ///
    /// With `reconnect`, a connection lost later is re-established with back-off (messages
    /// published meanwhile wait in the bounded queue). A failure of this first attempt is
    /// thrown and no retry follows, unless `retryFirstAttempt`: then the call keeps trying with
    /// the back-off until a CONNACK accepts (a daemon that starts before its broker), and throws
    /// only a failure that no retry can fix (refused credentials, an untrusted certificate).
    ///
    /// Cancelling the calling task stops the attempt (and its retries) and throws
    /// `CancellationError`.
    ///
    /// - Parameters:
    ///   - server: Host, port and security.
    ///   - reconnect: Reconnect automatically after a loss.
    ///   - retryFirstAttempt: Retry a failed first attempt too (requires `reconnect`).
    /// - Returns: Whether the broker resumed a stored session (session present).
    /// - Throws: ``MQTTConnectionFailure`` (with its NodeMCU reason code),
    ///   `MQTTClientError.alreadyConnected` when connected or connecting, `CancellationError`.
    @discardableResult
    public func connect(to server: MQTTServer, reconnect: Bool = false, retryFirstAttempt: Bool = false) async throws -> Bool {
        try await connect(to: [server], reconnect: reconnect, retryFirstAttempt: retryFirstAttempt)
    }

    /// The server of the latest connection attempt (the one a failure or loss is about), or
    /// nil before the first attempt.
    public var currentServer: MQTTServer? { engine.currentServer.withLock { $0 } }

    /// Connects to the first server of a list that accepts (a cluster, a bridged pair).
    ///
    /// The servers are tried in order (or, with `shuffle`, in an order shuffled once per
    /// client, to spread a fleet): a failed attempt goes on to the next server at once; when
    /// every server failed once, the call throws the last failure, or, with `reconnect` and
    /// `retryFirstAttempt`, backs off and starts the next pass (one back-off round per pass,
    /// ``ServerRotation``). After a loss the client reconnects to the next server. Each failure
    /// is reported by ``connectionEvents`` (``MQTTConnectionEvent/connectFailed(_:)``), and
    /// ``currentServer`` names the server it is about. The session rule stays the spec's: with
    /// `cleanSession: false`, a CONNACK with session present resends what is in flight with DUP
    /// [MQTT-4.4.0-1]; without it, the client re-subscribes and publishes again what was not
    /// acknowledged.
    ///
    /// - Parameters:
    ///   - servers: The servers, at least one.
    ///   - shuffle: Try them in this client's shuffled order instead of the list's.
    ///   - reconnect: Reconnect after a loss.
    ///   - retryFirstAttempt: With `reconnect`, keep retrying until a server accepts.
    /// - Returns: The CONNACK's session-present flag.
    /// - Throws: ``MQTTConnectionFailure`` (the last server's), ``MQTTClientError``.
    public func connect(to servers: [MQTTServer], shuffle: Bool = false, reconnect: Bool = false,
                        retryFirstAttempt: Bool = false) async throws -> Bool {
        try Task.checkCancellation()
        try engine.beginConnect()
        let cell = ResultCell<Bool>()
        let retry = reconnect && retryFirstAttempt
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Bool, any Error>) in
                cell.install(continuation)
                engine.submit { engine in
                    if cell.isCancelled {
                        engine.endActive()
                        cell.resume(.failure(CancellationError()))
                        return
                    }
                    engine.connect(to: servers, shuffle: shuffle, reconnect: reconnect, failFast: !retry,
                                   completeOnRetry: !retry) { result in
                        // A cancelled attempt ends with `closedByUser`: the caller asked for
                        // cancellation, so that is what it gets.
                        if case .failure = result, cell.isCancelled {
                            cell.resume(.failure(CancellationError()))
                        } else {
                            cell.resume(result.mapError { $0 as any Error })
                        }
                    }
                }
            }
        } onCancel: {
            cell.cancel()
            engine.submit { engine in
                guard engine.connectionState != .connected else { return }
                engine.close()
            }
        }
    }

    /// Connects to a host or an `mqtt://` / `mqtts://` URI and waits for the CONNACK.
    ///
    /// - Parameters:
    ///   - hostOrURI: Host name, IP literal or URI.
    ///   - port: Port; nil for the URI's, or 1883 / 8883.
    ///   - security: `.off` (or the URI's scheme), `.on`, or `.tls(configuration)`.
    ///   - reconnect: Reconnect automatically after a loss.
    /// - Returns: Whether the broker resumed a stored session.
    /// - Throws: ``MQTTServerAddressError``, ``MQTTConnectionFailure``, ``MQTTClientError``.
    @discardableResult
    public func connect(to hostOrURI: String, port: Int? = nil, security: MQTTSecurity = .off, reconnect: Bool = false) async throws -> Bool {
        try await connect(to: MQTTServer(parsing: hostOrURI, port: port, security: security), reconnect: reconnect)
    }

    /// Publishes and waits until the QoS handshake is done.
    ///
    /// When the in-flight window and the send queue are full (or the connection is above its
    /// high-water mark), the call waits for room rather than failing; offline with reconnect
    /// on, the message waits in the bounded queue and this call returns once it was delivered
    /// after the reconnect.
    ///
    /// Cancellation: a message not yet written is withdrawn (never sent later) and the call
    /// throws `CancellationError`. A QoS 1 / 2 message already written stays in the session
    /// (the broker may have it; it is completed or resent as the protocol requires), and the
    /// call throws `CancellationError` at once.
    ///
    /// - Parameters:
    ///   - topic: Topic name (no wildcards).
    ///   - payload: Payload bytes.
    ///   - qos: QoS 0, 1 or 2.
    ///   - retain: Ask the broker to retain it.
    /// - Throws: ``MQTTProtocolError`` (invalid topic, `packetTooLarge`), ``MQTTClientError``
    ///   (not connected, closed, connection lost), `CancellationError`.
    public func publish(_ topic: String, payload: [UInt8], qos: QoS = .atMostOnce, retain: Bool = false) async throws {
        try validateTopicName(topic)
        try validatePublishSize(topic: topic, payloadCount: payload.count, qos: qos, limit: engine.options.maximumOutgoingPacketSize)
        let packet = PublishPacket(topic: topic, payload: payload, qos: qos, retain: retain)
        let _: Void = try await request { cell in
            RequestCompletion(.publish { cell.resume($0) })
        } start: { engine, box in
            engine.publish(packet, whenFull: .wait, completion: box)
        }
    }

    /// Publishes a text payload (UTF-8) and waits until the QoS handshake is done.
    ///
    /// - Parameters:
    ///   - topic: Topic name.
    ///   - string: Payload text.
    ///   - qos: QoS 0, 1 or 2.
    ///   - retain: Ask the broker to retain it.
    /// - Throws: As ``publish(_:payload:qos:retain:)``.
    public func publish(_ topic: String, string: String, qos: QoS = .atMostOnce, retain: Bool = false) async throws {
        try await publish(topic, payload: Array(string.utf8), qos: qos, retain: retain)
    }

    /// Subscribes to several filters in one SUBSCRIBE and waits for the SUBACK.
    ///
    /// Messages are delivered to the streams whose filter matches (``messages(matching:buffering:)``);
    /// ``subscribe(to:qos:buffering:)`` makes the subscription and its stream in one call.
    ///
    /// - Parameter subscriptions: Filters with their requested QoS.
    /// - Returns: The broker's answer per filter, in order: the granted QoS, or `.failure`.
    /// - Throws: ``MQTTProtocolError`` (invalid filter), ``MQTTClientError``, `CancellationError`.
    public func subscribe(_ subscriptions: [TopicSubscription]) async throws -> [SubAckReturnCode] {
        try validateSubscriptions(subscriptions, limit: engine.options.maximumOutgoingPacketSize)
        return try await request { cell in
            RequestCompletion(.subscribe { cell.resume($0) })
        } start: { engine, box in
            engine.subscribe(subscriptions, completion: box)
        }
    }

    /// Subscribes to one filter and waits for the SUBACK.
    ///
    /// - Parameters:
    ///   - filter: Topic filter.
    ///   - qos: Requested QoS.
    /// - Returns: The granted QoS, or `.failure`.
    /// - Throws: As ``subscribe(_:)-([TopicSubscription])``.
    @discardableResult
    public func subscribe(_ filter: String, qos: QoS = .atMostOnce) async throws -> SubAckReturnCode {
        try await subscribe([TopicSubscription(filter: filter, qos: qos)]).first ?? .failure
    }

    /// Subscribes to `filter` and returns the subscription: the granted QoS and an
    /// `AsyncSequence` of the messages that match it.
    ///
    /// Its stream exists before the SUBSCRIBE goes out, so retained messages sent right after
    /// the SUBACK are not missed. When the subscription and its iterators are gone (the
    /// `for await` loop ended), UNSUBSCRIBE is sent (unless another live subscription of this
    /// client has the same filter).
    ///
    /// ```swift
    /// for await alarm in try await client.subscribe(to: "alarms/#", qos: .atLeastOnce) {
    ///     handle(alarm)
    /// }
    /// ```
    ///
    /// - Parameters:
    ///   - filter: Topic filter (`+` and `#` allowed).
    ///   - qos: Requested QoS.
    ///   - buffering: The stream's buffering; nil for back-pressure with
    ///     ``MQTTClientOptions/messageBufferSize``.
    /// - Returns: The subscription.
    /// - Throws: ``MQTTProtocolError`` (invalid filter), ``MQTTSubscriptionRefused`` (SUBACK
    ///   0x80), ``MQTTClientError``, `CancellationError`.
    public func subscribe(to filter: String, qos: QoS = .atMostOnce, buffering: MQTTStreamBuffering? = nil) async throws -> MQTTSubscription {
        try validateTopicFilter(filter)
        let stream = router.makeStream(filter: filter, buffering: buffering, unsubscribesOnEnd: true)
        let codes = try await subscribe([TopicSubscription(filter: filter, qos: qos)])
        guard case .granted(let granted)? = codes.first else { throw MQTTSubscriptionRefused(filter: filter) }
        return MQTTSubscription(filter: filter, grantedQoS: granted, stream: stream)
    }

    /// Unsubscribes from filters in one UNSUBSCRIBE and waits for the UNSUBACK.
    ///
    /// - Parameter filters: The filters.
    /// - Throws: ``MQTTProtocolError`` (invalid filter), ``MQTTClientError``, `CancellationError`.
    public func unsubscribe(_ filters: [String]) async throws {
        try validateUnsubscribe(filters, limit: engine.options.maximumOutgoingPacketSize)
        let _: Void = try await request { cell in
            RequestCompletion(.unsubscribe { cell.resume($0) })
        } start: { engine, box in
            engine.unsubscribe(filters, completion: box)
        }
    }

    /// Unsubscribes from one filter and waits for the UNSUBACK.
    ///
    /// - Parameter filter: The filter.
    /// - Throws: As ``unsubscribe(_:)-([String])``.
    public func unsubscribe(_ filter: String) async throws {
        try await unsubscribe([filter])
    }

    /// Disconnects cleanly and returns once the connection is closed.
    ///
    /// In order: the acknowledgements of messages already handed to the application go out
    /// (for a QoS 2 message whose PUBREL is due, the client waits for it, at most
    /// ``MQTTClientOptions/disconnectDrainTimeout``, and answers PUBCOMP); then DISCONNECT (the
    /// broker discards the will [MQTT-3.14.4-3]); then the client waits until the broker read
    /// everything and closed its side (at most ``MQTTClientOptions/disconnectTimeout``).
    /// Automatic reconnect stops; requests still waiting fail with `MQTTClientError.closed`;
    /// every message stream and subscription ends. The client can connect again afterwards.
    public func disconnect() async {
        engine.endActive()
        let router = router
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            engine.submit { engine in
                engine.disconnect(drainTimeout: engine.options.disconnectDrainTimeout) {
                    router.finishStreams()
                    continuation.resume()
                }
            }
        }
    }

    /// Every received message, from now on, as an `AsyncSequence` (see ``MQTTMessageStream``),
    /// with back-pressure and ``MQTTClientOptions/messageBufferSize``.
    public var messages: MQTTMessageStream { router.makeStream(filter: nil, buffering: nil, unsubscribesOnEnd: false) }

    /// The received messages whose topic matches `filter` (`+` and `#` wildcards), from now on.
    ///
    /// This only filters what arrives; subscribe separately (or use
    /// ``subscribe(to:qos:buffering:)``).
    ///
    /// - Parameters:
    ///   - filter: A topic filter.
    ///   - buffering: The stream's buffering; nil for back-pressure with
    ///     ``MQTTClientOptions/messageBufferSize``.
    /// - Returns: The stream.
    /// - Throws: ``MQTTProtocolError`` for an invalid filter (`a/#/b`).
    public func messages(matching filter: String, buffering: MQTTStreamBuffering? = nil) throws(MQTTProtocolError) -> MQTTMessageStream {
        try validateTopicFilter(filter)
        return router.makeStream(filter: filter, buffering: buffering, unsubscribesOnEnd: false)
    }

    /// Every received message, from now on, with the given buffering.
    ///
    /// - Parameter buffering: The stream's buffering.
    /// - Returns: The stream.
    public func messages(buffering: MQTTStreamBuffering) -> MQTTMessageStream {
        router.makeStream(filter: nil, buffering: buffering, unsubscribesOnEnd: false)
    }

    /// The connection's events from now on: connected (with session present), connect
    /// failures, offline (with the reason), reconnect attempts with their delay.
    public var connectionEvents: MQTTConnectionEvents { router.makeEventStream() }

    /// Runs one request on the loop: the completion resumes the caller; cancellation withdraws
    /// the request through the state machine and throws `CancellationError`.
    private func request<T: Sendable>(
        _ makeCompletion: (ResultCell<T>) -> RequestCompletion,
        start: @escaping @Sendable (ClientEngine, RequestCompletion) -> Void
    ) async throws -> T {
        try Task.checkCancellation()
        let cell = ResultCell<T>()
        let box = makeCompletion(cell)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                cell.install(continuation)
                engine.submit { engine in
                    // Cancelled before the request reached the loop: it is never handed over.
                    if cell.isCancelled {
                        box.fail(.cancelled)
                        return
                    }
                    start(engine, box)
                }
            }
        } onCancel: {
            cell.cancel()
            engine.submit { $0.cancel(box) }
        }
    }
}

/// The broker refused a subscription (SUBACK return code 0x80).
public struct MQTTSubscriptionRefused: Error, Sendable, Hashable, CustomStringConvertible {
    /// The refused topic filter.
    public let filter: String

    /// Creates the error.
    ///
    /// - Parameter filter: The refused filter.
    public init(filter: String) {
        self.filter = filter
    }

    public var description: String { "the broker refused the subscription to '\(filter)' (SUBACK 0x80)" }
}

/// One request's outcome, resumed exactly once: by the completion, or with
/// `CancellationError` when the request was cancelled (`MQTTClientError.cancelled`).
final class ResultCell<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var pending: Result<T, any Error>?
        var cancelled = false
        var done = false
    }

    private let state = Locked(State())

    var isCancelled: Bool { state.withLock { $0.cancelled } }

    func cancel() {
        state.withLock { $0.cancelled = true }
    }

    func install(_ continuation: CheckedContinuation<T, any Error>) {
        let pending = state.withLock { s -> Result<T, any Error>? in
            if let p = s.pending {
                s.pending = nil
                return p
            }
            s.continuation = continuation
            return nil
        }
        if let pending { continuation.resume(with: pending) }
    }

    func resume(_ result: Result<T, MQTTClientError>) {
        resume(result.mapError { error -> any Error in
            if case .cancelled = error { return CancellationError() }
            return error
        })
    }

    func resume(_ result: Result<T, any Error>) {
        let continuation = state.withLock { s -> CheckedContinuation<T, any Error>? in
            if s.done { return nil }
            s.done = true
            guard let c = s.continuation else {
                s.pending = result
                return nil
            }
            s.continuation = nil
            return c
        }
        continuation?.resume(with: result)
    }
}
