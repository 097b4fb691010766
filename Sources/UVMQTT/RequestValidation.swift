import MQTTProtocol

// Checks both faces make at the call, before a request hops to the loop thread: an invalid
// topic or an oversize packet fails the call that made it, never the connection, and nothing
// is queued. The state machine checks the size again (it is the authority); these checks only
// make the error synchronous.

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

/// Checks that a PUBLISH of this topic and payload fits MQTT's remaining-length limit and
/// `limit` (whole packet bytes; remaining length: MQTT 3.1.1 section 2.2.3).
func validatePublishSize(topic: String, payloadCount: Int, qos: QoS, limit: Int) throws(MQTTProtocolError) {
    try checkPacketSize(remaining: 2 + topic.utf8.count + (qos == .atMostOnce ? 0 : 2) + payloadCount, limit: limit)
}

/// Checks the filters and the size of a SUBSCRIBE.
func validateSubscriptions(_ subscriptions: [TopicSubscription], limit: Int) throws(MQTTProtocolError) {
    if subscriptions.isEmpty { throw .noTopicFilters(.subscribe) }
    var remaining = 2
    for s in subscriptions {
        try validateTopicFilter(s.filter)
        remaining += 2 + s.filter.utf8.count + 1
    }
    try checkPacketSize(remaining: remaining, limit: limit)
}

/// Checks the filters and the size of an UNSUBSCRIBE.
func validateUnsubscribe(_ filters: [String], limit: Int) throws(MQTTProtocolError) {
    if filters.isEmpty { throw .noTopicFilters(.unsubscribe) }
    var remaining = 2
    for f in filters {
        try validateTopicFilter(f)
        remaining += 2 + f.utf8.count
    }
    try checkPacketSize(remaining: remaining, limit: limit)
}

private func checkPacketSize(remaining: Int, limit: Int) throws(MQTTProtocolError) {
    let header = remaining < 128 ? 2 : remaining < 16_384 ? 3 : remaining < 2_097_152 ? 4 : 5
    let size = header + remaining
    let bound = min(limit, MQTTClientOptions.largestPacketSize)
    if size > bound || remaining > 268_435_455 { throw .packetTooLarge(size: size, limit: bound) }
}
