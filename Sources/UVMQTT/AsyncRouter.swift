import MQTTProtocol

/// The async face's adapter over the engine's event stream (loop thread): routes each message
/// to the streams whose filter matches (``TopicTrie``), applies their back-pressure, feeds the
/// connection event sequences and the `isConnected` flag, and sends the UNSUBSCRIBE of a
/// subscription whose stream ended.
///
/// It holds the engine strongly; the engine holds it through `onEvent` until it shuts down,
/// which breaks the cycle.
final class AsyncRouter: @unchecked Sendable {
    let engine: ClientEngine
    let defaultBuffering: MQTTStreamBuffering
    /// Whether a CONNACK accepted the current connection (read from any thread).
    let connected = Locked(false)

    // Loop thread only.
    private var unfiltered: [MessageBuffer] = []
    private var filtered = TopicTrie<MessageBuffer>()
    /// Every registered buffer, filtered or not.
    private var all: [MessageBuffer] = []
    private var filterTokens: [ObjectIdentifier: TopicTrie<MessageBuffer>.Token] = [:]
    /// Live streams of ``MQTTClient/subscribe(to:qos:buffering:)`` per filter.
    private var subscriptionStreams: [String: Int] = [:]
    private var subscriptionBuffers: Set<ObjectIdentifier> = []
    private var eventBuffers: [ConnectionEventBuffer] = []
    private var shutDown = false

    init(engine: ClientEngine, defaultBuffering: MQTTStreamBuffering) {
        self.engine = engine
        self.defaultBuffering = defaultBuffering
    }

    // MARK: Registration (any thread)

    func makeStream(filter: String?, buffering: MQTTStreamBuffering?, unsubscribesOnEnd: Bool) -> MQTTMessageStream {
        let engine = engine
        let buffer = MessageBuffer(filter: filter, buffering: buffering ?? defaultBuffering) { [weak self] in
            guard let self else { return }
            engine.submit { _ in self.resumeIfPossible() }
        }
        engine.submit { _ in self.add(buffer, subscription: unsubscribesOnEnd) }
        let registration = MessageStreamRegistration(buffer: buffer) { [weak self] buffer in
            guard let self else { return }
            engine.submit { _ in self.remove(buffer) }
        }
        return MQTTMessageStream(registration: registration)
    }

    func makeEventStream() -> MQTTConnectionEvents {
        let buffer = ConnectionEventBuffer()
        engine.submit { _ in
            if self.shutDown { buffer.finish() } else { self.eventBuffers.append(buffer) }
        }
        let registration = ConnectionEventRegistration(buffer: buffer) { [weak self] buffer in
            guard let self else { return }
            engine.submit { _ in self.eventBuffers.removeAll { $0 === buffer } }
        }
        return MQTTConnectionEvents(registration: registration)
    }

    // MARK: Loop thread

    private func add(_ buffer: MessageBuffer, subscription: Bool) {
        if shutDown {
            buffer.finish()
            return
        }
        all.append(buffer)
        if let filter = buffer.filter {
            // Validated by the face.
            guard let token = try? filtered.insert(filter: filter, value: buffer) else {
                buffer.finish()
                return
            }
            filterTokens[ObjectIdentifier(buffer)] = token
            if subscription {
                subscriptionStreams[filter, default: 0] += 1
                subscriptionBuffers.insert(ObjectIdentifier(buffer))
            }
        } else {
            unfiltered.append(buffer)
        }
    }

    private func remove(_ buffer: MessageBuffer) {
        let id = ObjectIdentifier(buffer)
        all.removeAll { $0 === buffer }
        if let token = filterTokens.removeValue(forKey: id) {
            _ = filtered.remove(token)
        } else {
            unfiltered.removeAll { $0 === buffer }
        }
        if subscriptionBuffers.remove(id) != nil, let filter = buffer.filter {
            let remaining = (subscriptionStreams[filter] ?? 1) - 1
            if remaining > 0 {
                subscriptionStreams[filter] = remaining
            } else {
                subscriptionStreams[filter] = nil
                // The last stream of this subscription ended: the broker can stop sending.
                if !shutDown && engine.connectionState != .idle {
                    engine.unsubscribe([filter], completion: nil)
                }
            }
        }
        resumeIfPossible()
    }

    /// Reads again once no iterated back-pressure stream is full.
    private func resumeIfPossible() {
        if !all.contains(where: { $0.holdsProducer }) { engine.resumeReading() }
    }

    /// Ends every message stream (``MQTTClient/disconnect()``); new streams can be made.
    func finishStreams() {
        for buffer in all { buffer.finish() }
        engine.resumeReading()
    }

    func handle(_ event: EngineEvent) {
        switch event {
        case .message(let view):
            deliver(view)
        case .oversize(let view):
            deliver(view)
        case .connected(let sessionPresent):
            connected.withLock { $0 = true }
            publish(.connected(sessionPresent: sessionPresent))
        case .connectFailed(let failure, let retryIn, let attempt):
            publish(.connectFailed(failure))
            if let retryIn { publish(.reconnecting(attempt: attempt, delay: retryIn)) }
        case .offline(let failure, let retryIn, let attempt):
            connected.withLock { $0 = false }
            publish(.offline(failure))
            if let retryIn { publish(.reconnecting(attempt: attempt, delay: retryIn)) }
        case .shutDown:
            shutDown = true
            connected.withLock { $0 = false }
            for buffer in all { buffer.finish() }
            all.removeAll()
            unfiltered.removeAll()
            filtered.removeAll()
            filterTokens.removeAll()
            for buffer in eventBuffers { buffer.finish() }
            eventBuffers.removeAll()
        case .publishCompleted, .subscribeCompleted, .unsubscribeCompleted, .writabilityChanged:
            break
        }
    }

    private func publish(_ event: MQTTConnectionEvent) {
        for buffer in eventBuffers { buffer.push(event) }
    }

    /// Copies the message once for all matching streams (the async face owns its messages).
    private func deliver(_ view: MQTTMessageView) {
        if all.isEmpty { return }
        var owned: MQTTMessage?
        var mustPause = false
        func push(_ buffer: MessageBuffer) {
            if owned == nil { owned = view.makeOwned() }
            if case .mustPause = buffer.push(owned!) { mustPause = true }
        }
        for buffer in unfiltered { push(buffer) }
        filtered.forEachMatch(topic: view.topicBytes) { push($0) }
        if mustPause {
            // An iterated stream is full: stop reading (and decoding) until it drains. The
            // broker's PINGRESP now waits unread too: the machine knows not to take that
            // silence for a dead broker.
            engine.pauseReading()
        }
    }
}
