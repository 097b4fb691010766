/// The settings of one client connection's state machine, with documented defaults.
public struct MQTTClientConfiguration: Sendable {
    /// The CONNECT packet: protocol version, client id, clean session, keepalive, will and
    /// credentials. Sent as is at every connection attempt.
    public var connect: ConnectPacket
    /// How long the transport may take to come up (TCP connect plus TLS handshake; reason -1
    /// when exceeded) and, separately, how long the broker may take to answer CONNECT with a
    /// CONNACK (reason -2). Default 10 s.
    public var connectTimeout: Duration
    /// Outgoing QoS 1 / 2 messages that may await their acknowledgement at once, 1...65535.
    /// The window is preallocated. Default 32.
    public var inflightWindow: Int
    /// Most messages waiting for the window or, offline, for the connection. Default 1,000.
    public var maxQueuedMessages: Int
    /// Most topic-plus-payload bytes waiting for the window or for the connection.
    /// Default 16 MiB.
    public var maxQueuedBytes: Int
    /// Most SUBSCRIBE / UNSUBSCRIBE requests awaiting their acknowledgement. Default 256.
    public var maxPendingRequests: Int
    /// Largest whole packet (fixed header included) the client sends: a PUBLISH, SUBSCRIBE or
    /// UNSUBSCRIBE above it is refused at the call with
    /// ``MQTTClientError/packetTooLarge(size:limit:)``, a CONNECT above it fails the attempt.
    /// Default and cap ``MQTTEncoder/maximumPacketSize`` (268,435,455 + 5, MQTT's largest
    /// remaining length plus the fixed header); larger values are clamped to it.
    public var maximumOutgoingPacketSize: Int
    /// Automatic reconnect policy; nil turns reconnect off. Default off.
    public var reconnect: ReconnectBackoff?
    /// Seed of the generator that draws the back-off jitter (give a random seed in production,
    /// a fixed one in tests). Default 0.
    public var jitterSeed: UInt64
    /// Whether each attempt waits for admission before its transport is opened (an executor
    /// that paces connection attempts, such as an event loop's admission queue): the attempt
    /// then has no deadline until ``MQTTClientStateMachine/transportAttemptAdmitted(_:now:into:)``,
    /// and its transport timeout starts there. Default false: the timeout starts with the
    /// attempt.
    public var attemptsAwaitAdmission: Bool = false

    /// Creates a configuration.
    ///
    /// - Parameters:
    ///   - connect: The CONNECT packet sent at every attempt.
    ///   - connectTimeout: Limit for the transport to come up and, separately, for the CONNACK.
    ///   - inflightWindow: Outgoing QoS 1 / 2 messages in flight at once (clamped to 1...65535).
    ///   - maxQueuedMessages: Bound on waiting messages (count).
    ///   - maxQueuedBytes: Bound on waiting messages (topic plus payload bytes).
    ///   - maxPendingRequests: Bound on unacknowledged SUBSCRIBE / UNSUBSCRIBE requests.
    ///   - maximumOutgoingPacketSize: Largest packet sent, in bytes (clamped to
    ///     ``MQTTEncoder/maximumPacketSize``).
    ///   - reconnect: Back-off policy, or nil for no automatic reconnect.
    ///   - jitterSeed: Seed for the back-off jitter.
    public init(
        connect: ConnectPacket,
        connectTimeout: Duration = .seconds(10),
        inflightWindow: Int = 32,
        maxQueuedMessages: Int = 1_000,
        maxQueuedBytes: Int = 16 << 20,
        maxPendingRequests: Int = 256,
        maximumOutgoingPacketSize: Int = MQTTEncoder.maximumPacketSize,
        reconnect: ReconnectBackoff? = nil,
        jitterSeed: UInt64 = 0
    ) {
        self.connect = connect
        self.connectTimeout = connectTimeout
        self.inflightWindow = inflightWindow
        self.maxQueuedMessages = maxQueuedMessages
        self.maxQueuedBytes = maxQueuedBytes
        self.maxPendingRequests = maxPendingRequests
        self.maximumOutgoingPacketSize = min(maximumOutgoingPacketSize, MQTTEncoder.maximumPacketSize)
        self.reconnect = reconnect
        self.jitterSeed = jitterSeed
    }
}

/// What ``MQTTClientStateMachine/publish(_:token:whenFull:now:into:)`` does when the send
/// queue is at its bound (``MQTTClientConfiguration/maxQueuedMessages`` or
/// ``MQTTClientConfiguration/maxQueuedBytes``).
public enum MQTTPublishFlowControl: Sendable, Hashable {
    /// Throw ``MQTTClientError/sendQueueFull(messages:bytes:)`` (connected) or
    /// ``MQTTClientError/offlineQueueFull(messages:bytes:)`` (connecting, waiting to reconnect).
    case fail
    /// Keep the message in a FIFO of waiting publishers (each entry is a caller suspended on
    /// its token, not counted toward the queue's bounds), moved into the queue in order as
    /// soon as room appears. ``MQTTClientStateMachine/cancel(_:now:into:)`` withdraws one; a
    /// close or a final loss fails them with the other requests.
    case wait
}
