public import Logging

/// The async/await face of the client.
///
/// Every request suspends until its outcome: `connect` until the CONNACK, `publish` until the
/// QoS handshake is done (written for QoS 0, PUBACK for 1, PUBCOMP for 2), `subscribe` until the
/// SUBACK (returning the granted QoS per filter). Received messages arrive as owned
/// ``MQTTMessage`` values through ``messages`` or ``messages(matching:)``, with a bounded buffer
/// and back-pressure. The client is `Sendable`: call it from any task or thread.
///
/// It runs on the same engine as ``NodeMCUClient``; the NodeMCU-style events are available
/// through ``NodeMCUClient`` only.
///
/// ```swift
/// let client = MQTTClient(options: MQTTClientOptions(clientID: "sensor-1"), logger: logger)
/// try await client.connect(to: "mqtt://127.0.0.1:1883")
/// let stream = client.messages(matching: "sensors/#")
/// _ = try await client.subscribe("sensors/#", qos: .atLeastOnce)
/// try await client.publish("sensors/t", payload: Array("21.5".utf8), qos: .atLeastOnce)
/// for await message in stream { print(message.topic, message.payloadString); break }
/// await client.disconnect()
/// ```
public final class MQTTClient: Sendable {
    let engine: ClientEngine
    private let ownsLoop: Bool
    private let messageBufferSize: Int

    /// The event loop the client runs on.
    public var eventLoop: EventLoop { engine.loop }

    /// Creates a client.
    ///
    /// - Parameters:
    ///   - options: Identity, session and limits (see ``MQTTClientOptions`` for the defaults).
    ///   - eventLoop: The loop to run on; nil starts one for this client (stopped on deinit).
    ///   - logger: Where the client logs; the library never creates a logging backend, and
    ///     logs nothing without one.
    public init(options: MQTTClientOptions, eventLoop: EventLoop? = nil, logger: Logger? = nil) {
        messageBufferSize = options.messageBufferSize
        (engine, ownsLoop) = ClientEngine.make(options: options, eventLoop: eventLoop, logger: logger)
    }

    deinit {
        engine.release(ownsLoop: ownsLoop)
    }

    /// Connects and waits for the broker's CONNACK.
    ///
    /// With `reconnect`, a connection lost later is re-established with back-off (messages
    /// published meanwhile wait in the bounded queue). A failure of this first attempt is
    /// thrown and no retry follows.
    ///
    /// - Parameters:
    ///   - server: Host, port and security.
    ///   - reconnect: Reconnect automatically after a loss.
    /// - Returns: Whether the broker resumed a stored session (session present).
    /// - Throws: ``MQTTConnectionFailure`` (with its NodeMCU reason code), or
    ///   ``MQTTClientError/alreadyConnected`` when connected or connecting.
    @discardableResult
    public func connect(to server: MQTTServer, reconnect: Bool = false) async throws -> Bool {
        try engine.beginConnect()
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Bool, any Error>) in
            engine.submit { engine in
                engine.connect(to: server, reconnect: reconnect, stopRetryingOnFirstFailure: true) { result in
                    continuation.resume(with: result.mapError { $0 as any Error })
                }
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
    /// Offline with reconnect on, the message waits in the bounded queue and this call returns
    /// once it was delivered after the reconnect.
    ///
    /// - Parameters:
    ///   - topic: Topic name (no wildcards).
    ///   - payload: Payload bytes.
    ///   - qos: QoS 0, 1 or 2.
    ///   - retain: Ask the broker to retain it.
    /// - Throws: ``MQTTProtocolError`` (invalid topic), ``MQTTClientError`` (not connected,
    ///   queue full, closed, connection lost).
    public func publish(_ topic: String, payload: [UInt8], qos: QoS = .atMostOnce, retain: Bool = false) async throws {
        try validateTopicName(topic)
        let packet = PublishPacket(topic: topic, payload: payload, qos: qos, retain: retain)
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            engine.submit { engine in
                engine.publish(packet) { result in continuation.resume(with: result.mapError { $0 as any Error }) }
            }
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
    /// - Parameter subscriptions: Filters with their requested QoS.
    /// - Returns: The broker's answer per filter, in order: the granted QoS, or `.failure`.
    /// - Throws: ``MQTTProtocolError`` (invalid filter), ``MQTTClientError``.
    public func subscribe(_ subscriptions: [TopicSubscription]) async throws -> [SubAckReturnCode] {
        if subscriptions.isEmpty { throw MQTTProtocolError.noTopicFilters(.subscribe) }
        for s in subscriptions { try validateTopicFilter(s.filter) }
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[SubAckReturnCode], any Error>) in
            engine.submit { engine in
                engine.subscribe(subscriptions) { result in continuation.resume(with: result.mapError { $0 as any Error }) }
            }
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

    /// Unsubscribes from filters in one UNSUBSCRIBE and waits for the UNSUBACK.
    ///
    /// - Parameter filters: The filters.
    /// - Throws: ``MQTTProtocolError`` (invalid filter), ``MQTTClientError``.
    public func unsubscribe(_ filters: [String]) async throws {
        if filters.isEmpty { throw MQTTProtocolError.noTopicFilters(.unsubscribe) }
        for f in filters { try validateTopicFilter(f) }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            engine.submit { engine in
                engine.unsubscribe(filters) { result in continuation.resume(with: result.mapError { $0 as any Error }) }
            }
        }
    }

    /// Unsubscribes from one filter and waits for the UNSUBACK.
    ///
    /// - Parameter filter: The filter.
    /// - Throws: As ``unsubscribe(_:)-([String])``.
    public func unsubscribe(_ filter: String) async throws {
        try await unsubscribe([filter])
    }

    /// Sends DISCONNECT, closes the connection and stops reconnecting. Requests still waiting
    /// fail with ``MQTTClientError/closed``. The client can connect again afterwards.
    public func disconnect() async {
        engine.endActive()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            engine.submit { engine in
                engine.close()
                continuation.resume()
            }
        }
    }

    /// Every received message, from now on, as an `AsyncSequence` (see ``MQTTMessageStream``).
    public var messages: MQTTMessageStream { makeStream(filter: nil) }

    /// The received messages whose topic matches `filter` (`+` and `#` wildcards), from now on.
    ///
    /// This only filters what arrives; subscribe separately.
    ///
    /// - Parameter filter: A topic filter.
    /// - Returns: The stream.
    public func messages(matching filter: String) -> MQTTMessageStream {
        makeStream(filter: filter)
    }

    private func makeStream(filter: String?) -> MQTTMessageStream {
        let engine = engine
        let buffer = MessageBuffer(filter: filter, capacity: messageBufferSize) { [weak engine] in
            engine?.submit { $0.resumeIfDrained() }
        }
        engine.submit { $0.addStream(buffer) }
        let registration = MessageStreamRegistration(buffer: buffer) { [weak engine] buffer in
            engine?.submit { $0.removeStream(buffer) }
        }
        return MQTTMessageStream(registration: registration)
    }
}
