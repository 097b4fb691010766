// Packets from the broker: CONNACK and session resumption, PUBLISH in, acknowledgements out.

extension MQTTClientStateMachine {
    /// A packet decoded from the broker's bytes: the one inbound entry point (the per-packet
    /// methods below do the work).
    ///
    /// Every ``InboundPacket`` case is handled. While waiting for CONNACK, any other packet
    /// fails the attempt with ``MQTTConnectionFailure/notConnAck(_:)`` (reason -4) and closes
    /// the transport [MQTT-3.2.0-1]. A CONNACK on an accepted connection, and the packets only
    /// a client sends (CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT) [MQTT-4.8.0-1], end
    /// the connection with ``MQTTConnectionFailure/protocolError(_:)``
    /// (``MQTTProtocolError/unexpectedPacket(_:)``). An oversize PUBLISH is acknowledged like
    /// any other and its first delivery is ``MQTTClientAction/deliverOversized(_:)``. Packets
    /// arriving when no connection is up (idle, waiting to reconnect) are leftovers and ignored.
    ///
    /// No allocation for PUBLISH and the acknowledgements.
    ///
    /// - Parameters:
    ///   - packet: The decoded packet; views in it must stay valid until the actions are
    ///     carried out.
    ///   - now: The current instant.
    ///   - actions: Receives the actions to carry out.
    @inlinable
    public mutating func receivedPacket(_ packet: InboundPacket, now: MQTTInstant, into actions: inout MQTTClientActions) {
        switch packet {
        case .publish(let view): receivedPublish(view, now: now, into: &actions)
        case .oversizePublish(let view): receivedOversizePublish(view, now: now, into: &actions)
        case .connack(let connack): receivedConnAck(connack, now: now, into: &actions)
        case .puback(let id): receivedPubAck(packetID: id, now: now, into: &actions)
        case .pubrec(let id): receivedPubRec(packetID: id, now: now, into: &actions)
        case .pubrel(let id): receivedPubRel(packetID: id, now: now, into: &actions)
        case .pubcomp(let id): receivedPubComp(packetID: id, now: now, into: &actions)
        case .suback(let suback): receivedSubAck(suback, now: now, into: &actions)
        case .unsuback(let id): receivedUnsubAck(packetID: id, now: now, into: &actions)
        case .pingresp: receivedPingResp(now: now, into: &actions)
        case .pingreq, .disconnect, .connect, .subscribe, .unsubscribe:
            receivedUnexpectedPacket(packet.type, now: now, into: &actions)
        }
    }

    /// A CONNACK arrived.
    ///
    /// Refused (codes 1...5): the transport is closed and the attempt fails with
    /// ``MQTTConnectionFailure/refused(_:)``; only "server unavailable" is retried. Accepted: the
    /// session is resumed (see below), then ``MQTTClientAction/connected(sessionPresent:)`` comes
    /// last, so that whatever the application sends from its connect handler goes out after the
    /// resent messages.
    ///
    /// With a kept session (session present, or MQTT 3.1 without clean session, whose CONNACK
    /// cannot say): unacknowledged PUBLISH packets are resent with DUP and their original id,
    /// and PUBREL for those past PUBREC, all in their original order [MQTT-4.4.0-1],
    /// [MQTT-4.6.0-1], [MQTT-2.3.1-3], [MQTT-3.3.1-1]; received QoS 2 ids awaiting PUBREL are
    /// kept. Without a session: received QoS 2 ids are forgotten, every active subscription is
    /// made again, and every unacknowledged QoS 1 / 2 message (QoS 2 past PUBREC included: the
    /// new session knows nothing of it, and a broker that releases QoS 2 at PUBREL never
    /// delivered it if the PUBREL was lost) goes back to the front of the queue, in order, to
    /// be published again with a new id, so none is lost. Then pending SUBSCRIBE / UNSUBSCRIBE
    /// requests are (re)sent with their ids, and the queue drains into the window.
    ///
    /// A CONNACK while connected breaks the protocol and ends the connection.
    ///
    /// - Parameters:
    ///   - connack: The decoded CONNACK.
    ///   - now: The current instant.
    ///   - actions: Receives the actions to carry out.
    public mutating func receivedConnAck(_ connack: ConnAckPacket, now: MQTTInstant, into actions: inout MQTTClientActions) {
        defer { updateDeadline() }
        switch state {
        case .awaitingConnAck:
            guard connack.returnCode == .accepted else {
                // The server closes the connection after a refusal [MQTT-3.2.2-5]; so do we.
                connectionEnded(.refused(connack.returnCode), closeTransport: true, now: now, into: &actions)
                return
            }
            let sessionPresent: Bool
            if sentConnect.cleanSession {
                sessionPresent = false  // [MQTT-3.2.2-1]
            } else if sentConnect.version == .v3_1 {
                sessionPresent = true
            } else {
                sessionPresent = connack.sessionPresent
            }
            state = .connected
            keepalive.lastReceived = now
            keepalive.pingSentAt = nil
            reconnectAttempt = 0
            servers.connected()
            failFastPending = false  // from now on the reconnect policy applies
            resumeSession(present: sessionPresent, now: now, into: &actions)
            actions.append(.connected(sessionPresent: sessionPresent))
        case .connected, .disconnecting:
            connectionEnded(.protocolError(.unexpectedPacket(.connack)), closeTransport: true, now: now, into: &actions)
        case .idle, .connectingTransport, .waitingToReconnect:
            return
        }
    }

    /// A PUBLISH arrived (read in place).
    ///
    /// QoS 0: delivered. QoS 1: delivered, then PUBACK [MQTT-4.3.2-2]. QoS 2: delivered and
    /// its id remembered, then PUBREC; a PUBLISH whose id is remembered (a resend before PUBREL)
    /// gets PUBREC again but is not delivered again [MQTT-4.3.3-2].
    ///
    /// - Parameters:
    ///   - publish: The decoded message; the ``MQTTClientAction/deliver(_:)`` action refers to
    ///     its bytes.
    ///   - now: The current instant.
    ///   - actions: Receives the actions to carry out.
    public mutating func receivedPublish(_ publish: PublishView, now: MQTTInstant, into actions: inout MQTTClientActions) {
        receivedApplicationMessage(qos: publish.qos, packetID: publish.packetID, delivery: .deliver(publish),
                                   now: now, into: &actions)
    }

    /// A PUBLISH larger than the decoder's limit arrived; the decoder kept a prefix and skips
    /// the rest.
    ///
    /// Acknowledged exactly like ``receivedPublish(_:now:into:)``; a first delivery yields
    /// ``MQTTClientAction/deliverOversized(_:)`` with the view, a QoS 2 repeat does not.
    ///
    /// - Parameters:
    ///   - view: The decoded head of the message; the action refers to its bytes.
    ///   - now: The current instant.
    ///   - actions: Receives the actions to carry out.
    public mutating func receivedOversizePublish(_ view: OversizePublishView, now: MQTTInstant, into actions: inout MQTTClientActions) {
        receivedApplicationMessage(qos: view.qos, packetID: view.packetID, delivery: .deliverOversized(view),
                                   now: now, into: &actions)
    }

    /// The acknowledgement rules shared by whole and oversize PUBLISH packets: `delivery` is
    /// appended unless the message is a QoS 2 resend, then PUBACK / PUBREC follows.
    @inline(__always)
    mutating func receivedApplicationMessage(
        qos: QoS, packetID: UInt16, delivery: MQTTClientAction, now: MQTTInstant, into actions: inout MQTTClientActions
    ) {
        if qos != .atMostOnce && packetID == 0 {
            // The decoder rejects this already [MQTT-2.3.1-1]; never acknowledge id 0.
            receivedInvalidData(.zeroPacketID(.publish), now: now, into: &actions)
            return
        }
        guard acceptInbound(.publish, now: now, into: &actions) else { return }
        switch qos {
        case .atMostOnce:
            actions.append(delivery)
        case .atLeastOnce:
            actions.append(delivery)
            send(.puback(packetID: packetID), now: now, into: &actions)  // [MQTT-4.3.2-2]
        case .exactlyOnce:
            if inboundQoS2.insert(packetID) {  // a resend before PUBREL is not delivered again [MQTT-4.3.3-2]
                actions.append(delivery)
            }
            send(.pubrec(packetID: packetID), now: now, into: &actions)
        }
    }

    /// A PUBACK arrived: the QoS 1 message with that id completes and frees its window slot,
    /// which the queue may refill. An id with no QoS 1 message in flight is reported as
    /// ``MQTTClientAction/unexpectedAck(_:packetID:)`` and otherwise ignored.
    ///
    /// - Parameters:
    ///   - packetID: The acknowledged id.
    ///   - now: The current instant.
    ///   - actions: Receives the actions to carry out.
    public mutating func receivedPubAck(packetID: UInt16, now: MQTTInstant, into actions: inout MQTTClientActions) {
        completeOutbound(.puback, packetID: packetID, awaiting: .awaitingPubAck, qos: .atLeastOnce, now: now, into: &actions)
    }

    /// A PUBREC arrived: PUBREL is sent and the QoS 2 message waits for PUBCOMP
    /// [MQTT-4.3.3-1]. A repeated PUBREC gets PUBREL again. An unknown id is reported and still
    /// answered with PUBREL, so the broker can release state this client no longer has; a
    /// PUBREC for a QoS 1 message is only reported.
    ///
    /// - Parameters:
    ///   - packetID: The acknowledged id.
    ///   - now: The current instant.
    ///   - actions: Receives the actions to carry out.
    public mutating func receivedPubRec(packetID: UInt16, now: MQTTInstant, into actions: inout MQTTClientActions) {
        guard acceptInbound(.pubrec, now: now, into: &actions) else { return }
        switch inflight.phase(of: packetID) {
        case .awaitingPubRec:
            inflight.markReleased(packetID)
            send(.pubrel(packetID: packetID), now: now, into: &actions)
        case .awaitingPubComp:
            send(.pubrel(packetID: packetID), now: now, into: &actions)
        case .awaitingPubAck:
            actions.append(.unexpectedAck(.pubrec, packetID: packetID))
        case nil:
            actions.append(.unexpectedAck(.pubrec, packetID: packetID))
            send(.pubrel(packetID: packetID), now: now, into: &actions)
        }
    }

    /// A PUBCOMP arrived: the QoS 2 message completes and frees its window slot. Any other id
    /// is reported and ignored.
    ///
    /// - Parameters:
    ///   - packetID: The acknowledged id.
    ///   - now: The current instant.
    ///   - actions: Receives the actions to carry out.
    public mutating func receivedPubComp(packetID: UInt16, now: MQTTInstant, into actions: inout MQTTClientActions) {
        completeOutbound(.pubcomp, packetID: packetID, awaiting: .awaitingPubComp, qos: .exactlyOnce, now: now, into: &actions)
    }

    /// The last acknowledgement of an outgoing message (PUBACK for QoS 1, PUBCOMP for QoS 2):
    /// the message completes and frees its window slot, which the queue may refill. An id not in
    /// `phase` is reported as unexpected and otherwise ignored.
    private mutating func completeOutbound(
        _ type: PacketType, packetID: UInt16, awaiting phase: OutgoingPhase, qos: QoS,
        now: MQTTInstant, into actions: inout MQTTClientActions
    ) {
        guard acceptInbound(type, now: now, into: &actions) else { return }
        guard inflight.phase(of: packetID) == phase, let done = inflight.remove(packetID) else {
            actions.append(.unexpectedAck(type, packetID: packetID))
            return
        }
        actions.append(.publishCompleted(done.token, packetID: packetID, qos: qos))
        drainQueue(now: now, into: &actions)
    }

    /// A PUBREL arrived: the id is forgotten (a later PUBLISH with it is a new message) and
    /// PUBCOMP is sent, also for an id not remembered (a PUBREL resent after a reconnect)
    /// [MQTT-4.3.3-2], [MQTT-3.6.4-1].
    ///
    /// - Parameters:
    ///   - packetID: The released id.
    ///   - now: The current instant.
    ///   - actions: Receives the actions to carry out.
    public mutating func receivedPubRel(packetID: UInt16, now: MQTTInstant, into actions: inout MQTTClientActions) {
        guard acceptInbound(.pubrel, now: now, into: &actions) else { return }
        inboundQoS2.remove(packetID)
        send(.pubcomp(packetID: packetID), now: now, into: &actions)
        if isDisconnecting { finishDisconnectIfReleased(now: now, into: &actions) }
    }

    /// A SUBACK arrived: the SUBSCRIBE with that id completes with the broker's return codes,
    /// granted filters become active subscriptions and refused ones (0x80) are dropped. An id
    /// with no SUBSCRIBE pending is reported and ignored.
    ///
    /// - Parameters:
    ///   - suback: The decoded SUBACK.
    ///   - now: The current instant.
    ///   - actions: Receives the actions to carry out.
    public mutating func receivedSubAck(_ suback: SubAckPacket, now: MQTTInstant, into actions: inout MQTTClientActions) {
        guard acceptInbound(.suback, now: now, into: &actions) else { return }
        guard let control = controls[suback.packetID], case .subscribe(let requested) = control.kind else {
            actions.append(.unexpectedAck(.suback, packetID: suback.packetID))
            return
        }
        controls[suback.packetID] = nil
        for (index, subscription) in requested.enumerated() {
            let code = index < suback.returnCodes.count ? suback.returnCodes[index] : .failure
            if let existing = subscriptions.firstIndex(where: { $0.filter == subscription.filter }) {
                if case .failure = code {
                    subscriptions.remove(at: existing)
                } else {
                    subscriptions[existing].qos = subscription.qos
                }
            } else if case .granted = code {
                subscriptions.append(subscription)
            }
        }
        actions.append(.subscribeCompleted(control.token, filters: requested, returnCodes: suback.returnCodes))
    }

    /// An UNSUBACK arrived: the UNSUBSCRIBE with that id completes and its filters stop being
    /// active subscriptions. An id with no UNSUBSCRIBE pending is reported and ignored.
    ///
    /// - Parameters:
    ///   - packetID: The acknowledged id.
    ///   - now: The current instant.
    ///   - actions: Receives the actions to carry out.
    public mutating func receivedUnsubAck(packetID: UInt16, now: MQTTInstant, into actions: inout MQTTClientActions) {
        guard acceptInbound(.unsuback, now: now, into: &actions) else { return }
        guard let control = controls[packetID], case .unsubscribe(let filters) = control.kind else {
            actions.append(.unexpectedAck(.unsuback, packetID: packetID))
            return
        }
        controls[packetID] = nil
        subscriptions.removeAll { filters.contains($0.filter) }
        actions.append(.unsubscribeCompleted(control.token, packetID: packetID))
    }

    /// A PINGRESP arrived: the outstanding PINGREQ is answered.
    ///
    /// - Parameters:
    ///   - now: The current instant.
    ///   - actions: Receives the actions to carry out.
    public mutating func receivedPingResp(now: MQTTInstant, into actions: inout MQTTClientActions) {
        _ = acceptInbound(.pingresp, now: now, into: &actions)
    }

    /// A packet only a client sends (CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT)
    /// arrived from the broker [MQTT-4.8.0-1].
    ///
    /// As the first packet, the attempt fails with ``MQTTConnectionFailure/notConnAck(_:)``
    /// (reason -4) [MQTT-3.2.0-1]; later, the connection ends with
    /// ``MQTTConnectionFailure/protocolError(_:)``. The transport is closed either way.
    ///
    /// - Parameters:
    ///   - type: The packet's type.
    ///   - now: The current instant.
    ///   - actions: Receives the actions to carry out.
    public mutating func receivedUnexpectedPacket(_ type: PacketType, now: MQTTInstant, into actions: inout MQTTClientActions) {
        switch state {
        case .awaitingConnAck:
            connectionEnded(.notConnAck(type), closeTransport: true, now: now, into: &actions)
            updateDeadline()
        case .connected, .disconnecting:
            connectionEnded(.protocolError(.unexpectedPacket(type)), closeTransport: true, now: now, into: &actions)
            updateDeadline()
        case .idle, .connectingTransport, .waitingToReconnect:
            return
        }
    }

    // MARK: Helpers

    /// Checks that a packet other than CONNACK may arrive now and records the sign of life.
    ///
    /// While waiting for CONNACK, any other packet fails the attempt with reason -4
    /// [MQTT-3.2.0-1]. When idle or waiting to reconnect, the packet is a leftover of a closed
    /// connection and is ignored.
    mutating func acceptInbound(_ type: PacketType, now: MQTTInstant, into actions: inout MQTTClientActions) -> Bool {
        switch state {
        case .connected, .disconnecting:
            keepalive.lastReceived = now
            keepalive.pingSentAt = nil
            return true
        case .awaitingConnAck:
            connectionEnded(.notConnAck(type), closeTransport: true, now: now, into: &actions)
            updateDeadline()
            return false
        case .idle, .connectingTransport, .waitingToReconnect:
            return false
        }
    }

    /// Restores the session after an accepted CONNACK; see ``receivedConnAck(_:now:into:)``.
    mutating func resumeSession(present: Bool, now: MQTTInstant, into actions: inout MQTTClientActions) {
        if present {
            for outgoing in inflight.ordered() {
                let id = outgoing.message.packetID
                switch outgoing.phase {
                case .awaitingPubAck, .awaitingPubRec:
                    inflight.markDuplicate(id)
                    var packet = outgoing.message
                    packet.dup = true  // [MQTT-3.3.1-1]
                    send(.publish(packet), now: now, into: &actions)
                case .awaitingPubComp:
                    send(.pubrel(packetID: id), now: now, into: &actions)
                }
            }
        } else {
            inboundQoS2.removeAll()
            // Re-subscriptions of an earlier connection that never got their SUBACK are
            // replaced by this round.
            for (id, control) in controls where control.isResubscription {
                controls[id] = nil
            }
            var start = 0
            while start < subscriptions.count {
                // At most 64 filters, and within the outgoing size limit (each filter alone fit
                // in the SUBSCRIBE that made it).
                var end = start + 1
                var remaining = 2 + 2 + subscriptions[start].filter.utf8.count + 1
                while end < subscriptions.count && end - start < Self.resubscribeChunk {
                    let next = remaining + 2 + subscriptions[end].filter.utf8.count + 1
                    if 1 + RemainingLength.size(of: next) + next > maximumOutgoingPacketSize { break }
                    remaining = next
                    end += 1
                }
                let chunk = Array(subscriptions[start..<end])
                start = end
                guard let id = allocatePacketID() else { break }
                sequence &+= 1
                controls[id] = PendingControl(kind: .subscribe(chunk), token: nil, isResubscription: true, sequence: sequence, sent: true)
                send(.subscribe(SubscribePacket(packetID: id, subscriptions: chunk)), now: now, into: &actions)
            }
            // Every message without its final ack is published again, QoS 2 past PUBREC too:
            // a broker that releases QoS 2 at PUBREL (mosquitto does) never delivered it if the
            // PUBREL did not reach it before the session was lost. (A duplicate is possible
            // only if the broker delivered it and its PUBCOMP was lost; without the session,
            // exactly-once cannot be told apart, and losing it would break the QoS promise.)
            for outgoing in inflight.removeAll().reversed() {
                var packet = outgoing.message
                packet.dup = false
                packet.packetID = 0
                let size = packet.topic.utf8.count + packet.payload.count
                // Already accepted once: put back in front, past the queue's bound if need be.
                queue.prepend(QueuedMessage(message: packet, token: outgoing.token, size: size, wasSent: true))
                queuedBytes += size
            }
        }
        let unsent = controls.filter { !$0.value.sent }.sorted { $0.value.sequence < $1.value.sequence }
        for (id, control) in unsent {
            controls[id]?.sent = true
            send(control.packet(id: id), now: now, into: &actions)
        }
        drainQueue(now: now, into: &actions)
    }
}
