public import ServiceLifecycle
public import UVMQTT

/// An ``MQTTClient`` as a swift-service-lifecycle `Service`, for long-lived daemons that run
/// their parts in a `ServiceGroup`.
///
/// ``run()`` connects to ``server`` and keeps the connection until the group shuts down
/// gracefully (a signal in `gracefulShutdownSignals`, `triggerGracefulShutdown()`) or cancels
/// (by default when another service ends or fails); then it disconnects cleanly and returns.
/// The clean disconnect sends DISCONNECT, so the broker discards the will instead of publishing
/// it [MQTT-3.14.4-3].
///
/// With ``reconnect`` on (the default), a daemon that starts before its broker does not fail
/// its group: the first connect is retried with the client's back-off until the broker
/// accepts, or a failure no retry can fix (refused credentials, an untrusted certificate) is
/// thrown, so the group's failure handling applies. With ``reconnect`` off, the first failure
/// is thrown. Watch ``connectionEvents`` (or ``MQTTClient/isConnected``) for readiness.
///
/// While the service runs, keep using ``client`` for publish, subscribe and messages: the
/// service only owns the connection's lifetime. Losses after the first connect are handled by
/// the client's automatic reconnect.
///
/// ```swift
/// let client = MQTTClient(options: MQTTClientOptions(clientID: "daemon-1"), logger: logger)
/// let mqtt = MQTTClientService(client: client, server: MQTTServer(host: "127.0.0.1"))
/// let group = ServiceGroup(services: [mqtt, otherService],
///                          gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
/// try await group.run()   // until SIGTERM or SIGINT
/// ```
///
/// The service is `Sendable`; run it once at a time (a second concurrent ``run()`` fails with
/// ``MQTTClientError/alreadyConnected``).
public struct MQTTClientService: Service, Sendable {
    /// The client whose connection the service runs; use it for publish, subscribe and
    /// messages while the service runs.
    public let client: MQTTClient
    /// The broker ``run()`` connects to.
    public let server: MQTTServer
    /// Whether a connection lost after the first connect is re-established with back-off.
    public let reconnect: Bool

    /// Creates the service.
    ///
    /// - Parameters:
    ///   - client: The client to connect; it must not be connected already.
    ///   - server: Host, port and security of the broker.
    ///   - reconnect: Reconnect automatically after a loss (default on, as a daemon wants).
    public init(client: MQTTClient, server: MQTTServer, reconnect: Bool = true) {
        self.client = client
        self.server = server
        self.reconnect = reconnect
    }

    /// The client's connection events (connected, offline with the reason, reconnecting),
    /// from now on: the daemon's readiness signal.
    public var connectionEvents: MQTTConnectionEvents { client.connectionEvents }

    /// Connects (retrying the first attempt when ``reconnect`` is on), waits for graceful
    /// shutdown or cancellation, then disconnects cleanly.
    ///
    /// Returns normally after the clean disconnect, whether graceful shutdown or task
    /// cancellation ended the wait; `disconnect` returns only once DISCONNECT was written and
    /// the connection closed (bounded by ``MQTTClientOptions/disconnectTimeout``), so a daemon
    /// that exits right after does not make the broker publish its will. Graceful shutdown or
    /// cancellation while the first connect is still retrying ends the attempts and returns.
    ///
    /// - Throws: ``MQTTConnectionFailure`` for a first attempt that failed for good (any
    ///   failure with ``reconnect`` off; a final one such as refused credentials with it on),
    ///   ``MQTTClientError/alreadyConnected`` when the client is already connected or connecting.
    public func run() async throws {
        do {
            _ = try await cancelWhenGracefulShutdown {
                try await client.connect(to: server, reconnect: reconnect, retryFirstAttempt: reconnect)
            }
        } catch is CancellationError {
            await client.disconnect()
            return
        }
        // Returns when graceful shutdown is triggered; throws `CancellationError` when the task
        // is cancelled first. Either way the connection ends the same way: cleanly.
        try? await gracefulShutdown()
        await client.disconnect()
    }
}
