/// Why a client request (connect, publish, subscribe, unsubscribe) cannot be carried out.
///
/// Not frozen: later versions may add cases (a new failure reason, a new request error). Switch
/// over it with a `default:` (or `@unknown default:`) branch.
public enum MQTTClientError: Error, Sendable, Hashable {
    /// The client is not connected and not trying to connect (never connected, closed, or the
    /// connection was lost with automatic reconnect off).
    case notConnected
    /// Offline with reconnect on, and the offline queue holds its maximum count or bytes.
    case offlineQueueFull(messages: Int, bytes: Int)
    /// Connected, the in-flight window is full and the queue behind it holds its maximum.
    case sendQueueFull(messages: Int, bytes: Int)
    /// Too many SUBSCRIBE / UNSUBSCRIBE requests wait for their acknowledgement.
    case tooManyPendingRequests(limit: Int)
    /// `connect` while connected.
    case alreadyConnected
    /// `connect` while a connection attempt or a reconnect is under way.
    case alreadyConnecting
    /// A SUBSCRIBE or UNSUBSCRIBE without topic filters [MQTT-3.8.3-3], [MQTT-3.10.3-2].
    case noTopicFilters
    /// The packet would be `size` bytes (fixed header included), above `limit`: the configured
    /// ``MQTTClientConfiguration/maximumOutgoingPacketSize``, or MQTT's own limit
    /// (``MQTTEncoder/maximumPacketSize``, a remaining length of at most 268,435,455
    /// [MQTT-2.2.3]). Nothing was queued.
    case packetTooLarge(size: Int, limit: Int)
    /// The request was outstanding when the user closed the client, or was made while a
    /// graceful disconnect is under way.
    case closed
    /// The caller cancelled the request (``MQTTClientStateMachine/cancel(_:now:into:)``).
    case cancelled
    /// The request was outstanding when the connection ended and no reconnect follows.
    case connectionLost(MQTTConnectionFailure)
}
