public import MQTTProtocol
/// The settings of a client, shared by both API faces (``MQTTClient`` and ``NodeMCUClient``),
/// with documented defaults.
///
/// Everything the CONNECT packet carries (client id, protocol version, keepalive, clean session,
/// will, credentials) plus the limits of the engine: the in-flight window, the bounded queues,
/// the incoming packet limit and the buffer of the async message stream. The broker address and
/// whether to reconnect are given to `connect`, as in NodeMCU.
public struct MQTTClientOptions: Sendable {
    /// The client identifier [MQTT-3.1.3-3]. Never truncated: one that is too long for the
    /// protocol version or not valid UTF-8 makes `connect` fail with a protocol error. May be
    /// empty on 3.1.1 with a clean session [MQTT-3.1.3-7].
    public var clientID: String
    /// Protocol level: 3.1.1 (`MQTT`, level 4, the default) or 3.1 (`MQIsdp`, level 3).
    public var protocolVersion: ProtocolVersion
    /// Keepalive in seconds: a PINGREQ goes out when nothing was sent for this long, and a
    /// broker that does not answer within half of it is considered dead (so a dead broker is
    /// noticed within 1.5 × keepalive). 0 turns keepalive off [MQTT-3.1.2-10]. Default 60.
    public var keepAlive: UInt16
    /// Ask the broker to start a fresh session (true, the default) or to resume the stored one
    /// [MQTT-3.1.2-4], [MQTT-3.1.2-6].
    public var cleanSession: Bool
    /// User name, or nil. Default nil.
    public var username: String?
    /// Password bytes, or nil (requires a user name [MQTT-3.1.2-22]). Default nil.
    public var password: [UInt8]?
    /// Last will: published by the broker if the connection is lost without DISCONNECT
    /// [MQTT-3.1.2-8]. Default none.
    public var will: Will?
    /// Limit for the transport (TCP plus TLS) to come up (reason -1 when exceeded) and,
    /// separately, for the broker's CONNACK (reason -2). Default 10 s.
    public var connectTimeout: Duration
    /// Outgoing QoS 1 and 2 messages awaiting acknowledgement at once (1...65535). Default 32.
    /// A test broker must allow at least as many (mosquitto: `max_inflight_messages`).
    public var inflightWindow: Int
    /// Most messages waiting for the window, or for the connection while offline with
    /// reconnect on. Past it, a publish fails with `MQTTClientError.offlineQueueFull(messages:bytes:)`
    /// or `MQTTClientError.sendQueueFull(messages:bytes:)`. Default 1,000.
    public var maxQueuedMessages: Int
    /// Most topic-plus-payload bytes waiting (same rule as ``maxQueuedMessages``). Default 16 MiB.
    public var maxQueuedBytes: Int
    /// Most SUBSCRIBE / UNSUBSCRIBE requests awaiting their acknowledgement. Default 256.
    public var maxPendingRequests: Int
    /// Back-off between reconnect attempts when `connect` asked for automatic reconnect:
    /// `min(initial × multiplier^n, maximum) × (1 − jitter × r)`. Default: 1 s doubling up to
    /// 60 s with 20 % jitter (see ``ReconnectBackoff``).
    public var reconnectBackoff: ReconnectBackoff
    /// The largest incoming packet (default 1 MiB; at most 268,435,455). A PUBLISH over it fires
    /// the `overflow` event with the prefix that fits, the rest is skipped, and it is still
    /// acknowledged; the connection stays up.
    public var maximumIncomingPacketSize: Int
    /// Messages the async ``MQTTClient/messages`` stream (and each filtered stream) buffers.
    /// When a consumer falls this far behind, the client stops reading the socket until it
    /// catches up, so memory stays bounded and nothing the QoS promised is dropped. Default 256.
    public var messageBufferSize: Int
    /// The largest outgoing packet, in bytes (fixed header included). A publish, subscribe or
    /// unsubscribe whose packet would be larger fails at the call with
    /// `MQTTClientError.packetTooLarge(size:limit:)`: nothing is queued and no in-flight slot
    /// is held. Default and upper bound: MQTT's largest packet (a remaining length of
    /// 268,435,455 bytes plus the 5-byte fixed header).
    public var maximumOutgoingPacketSize: Int
    /// How long ``MQTTClient/disconnect()`` (and `close` with a completion) waits for the
    /// broker to read the DISCONNECT and close its side before the socket is closed anyway.
    /// Default 5 s.
    public var disconnectTimeout: Duration
    /// How long a graceful disconnect waits for the PUBREL of QoS 2 messages the application
    /// already received, so that their PUBCOMP goes out before DISCONNECT. Default 1 s.
    public var disconnectDrainTimeout: Duration
    /// Where the client reports its metrics (swift-metrics), or nil: no metrics (the default).
    /// See ``MQTTMetrics`` for the list; ``MQTTMetrics/global`` uses the process-wide factory.
    public var metrics: MQTTMetrics?

    /// Creates options; every parameter but the client id has the documented default.
    ///
    /// - Parameters:
    ///   - clientID: The client identifier.
    ///   - protocolVersion: 3.1.1 (default) or 3.1.
    ///   - keepAlive: Seconds; 0 turns keepalive off.
    ///   - cleanSession: Start a fresh session (default) or resume the stored one.
    ///   - username: User name.
    ///   - password: Password bytes.
    ///   - will: Last will message.
    ///   - connectTimeout: Limit for the transport and, separately, for the CONNACK.
    ///   - inflightWindow: Outgoing QoS 1 / 2 messages in flight at once.
    ///   - maxQueuedMessages: Bound on waiting messages.
    ///   - maxQueuedBytes: Bound on waiting bytes.
    ///   - maxPendingRequests: Bound on unacknowledged SUBSCRIBE / UNSUBSCRIBE.
    ///   - reconnectBackoff: Delays between reconnect attempts.
    ///   - maximumIncomingPacketSize: The largest incoming packet.
    ///   - messageBufferSize: Buffer of the async message streams.
    ///   - maximumOutgoingPacketSize: The largest packet a request may produce.
    ///   - disconnectTimeout: Limit for the graceful close after DISCONNECT.
    ///   - disconnectDrainTimeout: Limit for PUBRELs awaited before DISCONNECT.
    ///   - metrics: Where the client reports metrics; nil (default) for none.
    public init(
        clientID: String,
        protocolVersion: ProtocolVersion = .v3_1_1,
        keepAlive: UInt16 = 60,
        cleanSession: Bool = true,
        username: String? = nil,
        password: [UInt8]? = nil,
        will: Will? = nil,
        connectTimeout: Duration = .seconds(10),
        inflightWindow: Int = 32,
        maxQueuedMessages: Int = 1_000,
        maxQueuedBytes: Int = 16 << 20,
        maxPendingRequests: Int = 256,
        reconnectBackoff: ReconnectBackoff = ReconnectBackoff(),
        maximumIncomingPacketSize: Int = 1 << 20,
        messageBufferSize: Int = 256,
        maximumOutgoingPacketSize: Int = MQTTClientOptions.largestPacketSize,
        disconnectTimeout: Duration = .seconds(5),
        disconnectDrainTimeout: Duration = .seconds(1),
        metrics: MQTTMetrics? = nil
    ) {
        self.clientID = clientID
        self.protocolVersion = protocolVersion
        self.keepAlive = keepAlive
        self.cleanSession = cleanSession
        self.username = username
        self.password = password
        self.will = will
        self.connectTimeout = connectTimeout
        self.inflightWindow = inflightWindow
        self.maxQueuedMessages = maxQueuedMessages
        self.maxQueuedBytes = maxQueuedBytes
        self.maxPendingRequests = maxPendingRequests
        self.reconnectBackoff = reconnectBackoff
        self.maximumIncomingPacketSize = maximumIncomingPacketSize
        self.messageBufferSize = messageBufferSize
        self.maximumOutgoingPacketSize = min(maximumOutgoingPacketSize, MQTTClientOptions.largestPacketSize)
        self.disconnectTimeout = disconnectTimeout
        self.disconnectDrainTimeout = disconnectDrainTimeout
        self.metrics = metrics
    }

    /// MQTT's largest packet: the 5-byte fixed header with a remaining length of 268,435,455.
    public static let largestPacketSize = MQTTEncoder.maximumPacketSize

    /// The CONNECT packet these options describe.
    var connectPacket: ConnectPacket {
        ConnectPacket(version: protocolVersion, clientID: clientID, cleanSession: cleanSession, keepAlive: keepAlive,
                      will: will, username: username, password: password)
    }

    /// The state machine's configuration, reconnect off: each `connect` sets the machine's
    /// policy (``reconnectBackoff`` or none) itself.
    func machineConfiguration(jitterSeed: UInt64) -> MQTTClientConfiguration {
        var configuration = MQTTClientConfiguration(
            connect: connectPacket, connectTimeout: connectTimeout, inflightWindow: inflightWindow,
            maxQueuedMessages: maxQueuedMessages, maxQueuedBytes: maxQueuedBytes,
            maxPendingRequests: maxPendingRequests, reconnect: nil,
            jitterSeed: jitterSeed)
        configuration.maximumOutgoingPacketSize = maximumOutgoingPacketSize
        // The engine paces attempts through its loop's admission queue (`EventLoop.connectGate`).
        configuration.attemptsAwaitAdmission = true
        return configuration
    }
}
