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
/// `limit` (whole packet bytes).
func validatePublishSize(topic: String, payloadCount: Int, qos: QoS, limit: Int) throws(MQTTProtocolError) {
    try checkPacketSize(MQTTEncoder.publishPacketSize(topicByteCount: topic.utf8.count, payloadCount: payloadCount, qos: qos),
                        limit: limit)
}

/// Checks the filters and the size of a SUBSCRIBE.
func validateSubscriptions(_ subscriptions: [TopicSubscription], limit: Int) throws(MQTTProtocolError) {
    if subscriptions.isEmpty { throw .noTopicFilters(.subscribe) }
    for s in subscriptions { try validateTopicFilter(s.filter) }
    try checkPacketSize(MQTTEncoder.subscribePacketSize(subscriptions), limit: limit)
}

/// Checks the filters and the size of an UNSUBSCRIBE.
func validateUnsubscribe(_ filters: [String], limit: Int) throws(MQTTProtocolError) {
    if filters.isEmpty { throw .noTopicFilters(.unsubscribe) }
    for f in filters { try validateTopicFilter(f) }
    try checkPacketSize(MQTTEncoder.unsubscribePacketSize(filters), limit: limit)
}

/// A packet of `size` bytes against `limit` and MQTT's largest packet.
private func checkPacketSize(_ size: Int, limit: Int) throws(MQTTProtocolError) {
    let bound = min(limit, MQTTEncoder.maximumPacketSize)
    if size > bound { throw .packetTooLarge(size: size, limit: bound) }
}
