public import CoreMetrics

/// Where a client reports its metrics (swift-metrics), set in ``MQTTClientOptions/metrics``.
///
/// Metrics are off unless a client is given one of these: the library never reads
/// `MetricsSystem.factory` on its own; ``global`` does, when asked. Every metric is created once,
/// when the client is created, so recording a message costs a few handler calls and no
/// allocation; with metrics off the per-message path pays one branch.
///
/// Every metric carries the dimension `client_id` (``MQTTClientOptions/clientID``) plus
/// ``dimensions``. With the default ``labelPrefix`` the metrics are:
///
/// | label | kind | extra dimension | what |
/// |---|---|---|---|
/// | `mqtt_client_messages_sent_total` | counter | `qos` | PUBLISH packets sent (first send) |
/// | `mqtt_client_bytes_sent_total` | counter | `qos` | their size on the wire, fixed header included |
/// | `mqtt_client_messages_received_total` | counter | `qos` | messages delivered to the application |
/// | `mqtt_client_bytes_received_total` | counter | `qos` | their PUBLISH size on the wire |
/// | `mqtt_client_resends_total` | counter | | PUBLISH packets sent again with DUP after a reconnect |
/// | `mqtt_client_dropped_messages_total` | counter | | publishes refused at the call (queue full, too large) or failed later with a completion waiting (closed, cancelled) |
/// | `mqtt_client_overflowed_messages_total` | counter | | incoming messages over the packet limit (the `overflow` event) |
/// | `mqtt_client_connects_total` | counter | | connections accepted (CONNACK 0) |
/// | `mqtt_client_connect_failures_total` | counter | `reason` | attempts that failed, by ``MQTTConnectReason`` case name |
/// | `mqtt_client_connection_losses_total` | counter | `reason` | accepted connections that ended, by reason (not the application's own close) |
/// | `mqtt_client_connected` | gauge | | 1 while connected, else 0 |
/// | `mqtt_client_inflight_messages` | gauge | | QoS 1 / 2 publishes awaiting their acknowledgement |
/// | `mqtt_client_queued_messages` | gauge | | publishes waiting for the window or the connection |
/// | `mqtt_client_queued_bytes` | gauge | | their topic and payload bytes |
/// | `mqtt_client_connect_duration_seconds` | timer | | transport opened → CONNACK accepted |
/// | `mqtt_client_publish_ack_duration_seconds` | timer | `qos` | first PUBLISH sent → PUBACK (QoS 1) or PUBCOMP (QoS 2) |
///
/// The gauges are updated once per event the client handles (not per change within it).
public struct MQTTMetrics: Sendable {
    /// The factory that creates the client's metrics.
    public var factory: any MetricsFactory
    /// Prefix of every label; default `mqtt_client`.
    public var labelPrefix: String
    /// Dimensions added to every metric after `client_id` (for example the service's name).
    public var dimensions: [(String, String)]

    /// Metrics from `factory`.
    ///
    /// - Parameters:
    ///   - factory: Creates the metrics (a Prometheus registry, `TestMetrics`, ...).
    ///   - labelPrefix: Prefix of every label.
    ///   - dimensions: Dimensions added to every metric.
    public init(factory: any MetricsFactory, labelPrefix: String = "mqtt_client", dimensions: [(String, String)] = []) {
        self.factory = factory
        self.labelPrefix = labelPrefix
        self.dimensions = dimensions
    }

    /// Metrics from the process-wide `MetricsSystem.factory`, read when the client is created
    /// (bootstrap the metrics system first).
    public static var global: MQTTMetrics {
        MQTTMetrics(factory: MetricsSystem.factory)
    }
}
