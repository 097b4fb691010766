import CoreMetrics
import MQTTProtocol

/// The metrics of one engine (``MQTTMetrics``), all created in `init`; loop thread only.
///
/// The engine holds one of these only when its options ask for metrics, and calls it with
/// `metrics?.…` at its action switch: metrics off cost one branch per call site. Nothing here
/// allocates per message: the counters exist already, the QoS is an index, and the publish
/// send times live in a dictionary reserved to the in-flight window (a removal never shrinks
/// it).
final class ClientMetrics {
    private let clock: any MQTTEngineClock
    private let factory: any MetricsFactory
    private let prefix: String
    private let base: [(String, String)]

    private let messagesSent: [Counter]
    private let bytesSent: [Counter]
    private let messagesReceived: [Counter]
    private let bytesReceived: [Counter]
    private let ackLatency: [Timer]
    private let resends: Counter
    private let dropped: Counter
    private let overflowed: Counter
    private let connects: Counter
    private let connectDuration: Timer
    private let connectedGauge: Gauge
    private let inflightGauge: Gauge
    private let queuedMessagesGauge: Gauge
    private let queuedBytesGauge: Gauge
    /// Per reason, created at the first failure or loss with that reason (not per message).
    private var connectFailures: [MQTTConnectReason: Counter] = [:]
    private var losses: [MQTTConnectReason: Counter] = [:]

    /// When the first PUBLISH of each outstanding QoS 1 / 2 packet id went out.
    private var sentAt: [UInt16: MQTTInstant] = [:]
    private let sentAtLimit: Int
    private var attemptStartedAt: MQTTInstant?
    private var lastInflight = -1
    private var lastQueuedMessages = -1
    private var lastQueuedBytes = -1

    init(_ options: MQTTMetrics, clientID: String, inflightWindow: Int, clock: any MQTTEngineClock) {
        self.clock = clock
        factory = options.factory
        prefix = options.labelPrefix
        let base = [("client_id", clientID)] + options.dimensions
        self.base = base
        func counter(_ name: String, _ extra: [(String, String)] = []) -> Counter {
            Counter(label: "\(options.labelPrefix)_\(name)", dimensions: base + extra, factory: options.factory)
        }
        func timer(_ name: String, _ extra: [(String, String)] = []) -> Timer {
            Timer(label: "\(options.labelPrefix)_\(name)", dimensions: base + extra, factory: options.factory)
        }
        func gauge(_ name: String) -> Gauge {
            Gauge(label: "\(options.labelPrefix)_\(name)", dimensions: base, factory: options.factory)
        }
        let qos = (0...2).map { [("qos", "\($0)")] }
        messagesSent = qos.map { counter("messages_sent_total", $0) }
        bytesSent = qos.map { counter("bytes_sent_total", $0) }
        messagesReceived = qos.map { counter("messages_received_total", $0) }
        bytesReceived = qos.map { counter("bytes_received_total", $0) }
        ackLatency = qos.map { timer("publish_ack_duration_seconds", $0) }
        resends = counter("resends_total")
        dropped = counter("dropped_messages_total")
        overflowed = counter("overflowed_messages_total")
        connects = counter("connects_total")
        connectDuration = timer("connect_duration_seconds")
        connectedGauge = gauge("connected")
        inflightGauge = gauge("inflight_messages")
        queuedMessagesGauge = gauge("queued_messages")
        queuedBytesGauge = gauge("queued_bytes")
        // Ids are reused only after their acknowledgement; an id whose publish failed stays
        // until it is reused, so the table never holds more than 65,536 entries.
        sentAtLimit = min(max(inflightWindow, 1), 65_536)
        sentAt.reserveCapacity(sentAtLimit)
        connectedGauge.record(0)
    }

    // MARK: Hooks (one call each from the engine)

    /// A packet was encoded for the broker (the action switch, or the direct QoS 0 path).
    @inline(__always)
    func sent(_ packet: Packet) {
        guard case .publish(let p) = packet else { return }
        sentPublish(topicByteCount: p.topic.utf8.count, payloadCount: p.payload.count, qos: p.qos, dup: p.dup,
                    packetID: p.packetID)
    }

    func sentPublish(topicByteCount: Int, payloadCount: Int, qos: QoS, dup: Bool, packetID: UInt16) {
        if dup {
            resends.increment()
            return
        }
        let index = Int(qos.rawValue)
        messagesSent[index].increment()
        bytesSent[index].increment(by: MQTTEncoder.publishPacketSize(topicByteCount: topicByteCount,
                                                                     payloadCount: payloadCount, qos: qos))
        if qos != .atMostOnce {
            if sentAt.count >= sentAtLimit && sentAt[packetID] == nil { sentAt.removeAll(keepingCapacity: true) }
            sentAt[packetID] = clock.now()
        }
    }

    /// A message was delivered to the application.
    func received(_ view: PublishView) {
        let index = Int(view.qos.rawValue)
        messagesReceived[index].increment()
        bytesReceived[index].increment(by: MQTTEncoder.publishPacketSize(topicByteCount: view.topic.count,
                                                                         payloadCount: view.payload.count, qos: view.qos))
    }

    /// An incoming message was over the packet limit.
    func overflowedMessage() { overflowed.increment() }

    /// A publish finished its handshake.
    func publishCompleted(packetID: UInt16, qos: QoS) {
        guard qos != .atMostOnce, let at = sentAt.removeValue(forKey: packetID) else { return }
        let now = clock.now()
        ackLatency[Int(qos.rawValue)].recordNanoseconds(Int64(now.nanoseconds &- at.nanoseconds))
    }

    /// A publish will not complete (failed at the call or later).
    func publishDropped() { dropped.increment() }

    /// A transport is being opened for a connection attempt.
    func attemptStarted() { attemptStartedAt = clock.now() }

    /// A CONNACK accepted the connection.
    func connected() {
        connects.increment()
        connectedGauge.record(1)
        if let at = attemptStartedAt {
            attemptStartedAt = nil
            connectDuration.recordNanoseconds(Int64(clock.now().nanoseconds &- at.nanoseconds))
        }
    }

    /// An attempt failed before its CONNACK accepted it.
    func connectFailed(_ failure: MQTTConnectionFailure) {
        attemptStartedAt = nil
        connectedGauge.record(0)
        reasonCounter(&connectFailures, "connect_failures_total", failure.reason).increment()
    }

    /// An accepted connection ended; the application's own close is not a loss.
    func connectionLost(_ failure: MQTTConnectionFailure) {
        connectedGauge.record(0)
        if case .closedByUser = failure { return }
        reasonCounter(&losses, "connection_losses_total", failure.reason).increment()
    }

    /// The engine shut down.
    func shutDown() { connectedGauge.record(0) }

    /// After each dispatch: the gauges, recorded when they changed.
    @inline(__always)
    func updateGauges(inflight: Int, queuedMessages: Int, queuedBytes: Int) {
        if inflight != lastInflight {
            lastInflight = inflight
            inflightGauge.record(inflight)
        }
        if queuedMessages != lastQueuedMessages {
            lastQueuedMessages = queuedMessages
            queuedMessagesGauge.record(queuedMessages)
        }
        if queuedBytes != lastQueuedBytes {
            lastQueuedBytes = queuedBytes
            queuedBytesGauge.record(queuedBytes)
        }
    }

    private func reasonCounter(_ table: inout [MQTTConnectReason: Counter], _ name: String,
                               _ reason: MQTTConnectReason) -> Counter {
        if let counter = table[reason] { return counter }
        let counter = Counter(label: "\(prefix)_\(name)", dimensions: base + [("reason", "\(reason)")], factory: factory)
        table[reason] = counter
        return counter
    }
}
