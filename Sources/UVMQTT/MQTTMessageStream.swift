public import MQTTProtocol
/// How a message stream buffers when its consumer falls behind.
///
/// Each stream has its own buffer, so a stream nobody reads never holds up the others or the
/// client's own acknowledgements.
///
/// - ``backPressure(capacity:)`` (the default, with ``MQTTClientOptions/messageBufferSize``):
///   while the stream is being iterated and its buffer is full, the client stops reading the
///   socket (the broker holds the messages and TCP slows it down) and reads again once the
///   consumer drained half of it: nothing the QoS promised is dropped. A stream that is not
///   being iterated (no live iterator) never pauses the client: once its buffer is full, new
///   messages are dropped and counted (``MQTTMessageStream/droppedMessageCount``).
/// - ``dropOldest(capacity:)`` / ``dropNewest(capacity:)``: never pause; a full buffer drops
///   its oldest message or the new one, and counts it.
public struct MQTTStreamBuffering: Sendable, Hashable {
    enum Policy: Sendable, Hashable {
        case backPressure, dropOldest, dropNewest
    }

    let policy: Policy
    /// The most messages the stream holds.
    public let capacity: Int

    /// Pause reading while an iterated stream is full.
    ///
    /// - Parameter capacity: Messages buffered (at least 1).
    /// - Returns: The policy.
    public static func backPressure(capacity: Int) -> MQTTStreamBuffering {
        MQTTStreamBuffering(policy: .backPressure, capacity: max(1, capacity))
    }

    /// Keep the newest messages: a full buffer drops its oldest.
    ///
    /// - Parameter capacity: Messages buffered (at least 1).
    /// - Returns: The policy.
    public static func dropOldest(capacity: Int) -> MQTTStreamBuffering {
        MQTTStreamBuffering(policy: .dropOldest, capacity: max(1, capacity))
    }

    /// Keep the oldest messages: a full buffer drops the new one.
    ///
    /// - Parameter capacity: Messages buffered (at least 1).
    /// - Returns: The policy.
    public static func dropNewest(capacity: Int) -> MQTTStreamBuffering {
        MQTTStreamBuffering(policy: .dropNewest, capacity: max(1, capacity))
    }
}

/// Received messages as an `AsyncSequence` of owned ``MQTTMessage`` values.
///
/// Get one from ``MQTTClient/messages`` (every message), ``MQTTClient/messages(matching:buffering:)``
/// (those whose topic matches a filter) or as an ``MQTTSubscription``. A stream buffers from the
/// moment it is created, by its ``MQTTStreamBuffering`` policy. A message over the incoming
/// packet limit arrives as an element with ``MQTTMessage/isTruncated`` set (its payload is the
/// prefix that fit).
///
/// A stream is meant for one consumer: several iterators of the same stream share its messages.
/// It ends (returns nil) on ``MQTTClient/disconnect()``, when the client shuts down, or when the
/// consuming task is cancelled. A stream that is no longer referenced unregisters itself.
///
/// While a consumer holds the client back, PINGRESP packets are not read either, so the client
/// does not judge the broker by its silence meanwhile (it keeps sending PINGREQ, so the broker
/// keeps the connection): a slow consumer never costs the connection. After the resume, a
/// broker that died meanwhile is noticed within 1.5 × keepalive.
public struct MQTTMessageStream: AsyncSequence, Sendable {
    /// Owned messages.
    public typealias Element = MQTTMessage
    /// The stream never throws; it ends with nil.
    public typealias Failure = Never

    let registration: MessageStreamRegistration

    /// Messages this stream dropped by its buffering policy (a full buffer of a drop policy, or
    /// of a back-pressure stream nobody iterates).
    public var droppedMessageCount: Int { registration.buffer.droppedCount }

    /// The iterator.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let lease: IterationLease

        /// The next message, or nil once the stream ended or the task was cancelled.
        public mutating func next() async -> MQTTMessage? {
            await lease.registration.buffer.next()
        }

        /// The next message, or nil once the stream ended or the task was cancelled.
        ///
        /// - Parameter actor: The caller's isolation (unused: the buffer is thread-safe).
        public mutating func next(isolation actor: isolated (any Actor)?) async -> MQTTMessage? {
            await lease.registration.buffer.next()
        }
    }

    /// An iterator over the stream's messages (iterators of one stream share them). While it
    /// lives, a back-pressure stream may pause the client.
    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(lease: IterationLease(registration))
    }
}

/// A subscription made with ``MQTTClient/subscribe(to:qos:buffering:)``: the broker's answer and
/// the messages that match its filter, as an `AsyncSequence`.
///
/// When the subscription and every iterator of it are gone (the `for await` loop ended, or the
/// task was cancelled), the client sends UNSUBSCRIBE for its filter, unless another live
/// subscription of the same client has the same filter.
public struct MQTTSubscription: AsyncSequence, Sendable {
    /// Owned messages.
    public typealias Element = MQTTMessage
    /// The sequence never throws; it ends with nil.
    public typealias Failure = Never

    /// The topic filter.
    public let filter: String
    /// The QoS the broker granted.
    public let grantedQoS: QoS
    let stream: MQTTMessageStream

    /// Messages dropped by the buffering policy.
    public var droppedMessageCount: Int { stream.droppedMessageCount }

    /// An iterator over the subscription's messages.
    public func makeAsyncIterator() -> MQTTMessageStream.AsyncIterator {
        stream.makeAsyncIterator()
    }
}

/// Keeps a stream's registration for as long as an iterator lives, and counts the iterators
/// (a back-pressure stream pauses the client only while one lives).
final class IterationLease: Sendable {
    let registration: MessageStreamRegistration

    init(_ registration: MessageStreamRegistration) {
        self.registration = registration
        registration.buffer.iterationBegan()
    }

    deinit {
        registration.buffer.iterationEnded()
    }
}

/// Ties a buffer's registration with the client to the life of the sequences and iterators
/// using it: when the last one goes, the buffer is finished and unregistered.
final class StreamRegistration<Element: Sendable>: Sendable {
    let buffer: StreamBuffer<Element>
    let unregister: @Sendable (StreamBuffer<Element>) -> Void

    init(buffer: StreamBuffer<Element>, unregister: @escaping @Sendable (StreamBuffer<Element>) -> Void) {
        self.buffer = buffer
        self.unregister = unregister
    }

    deinit {
        buffer.finish()
        unregister(buffer)
    }
}

/// The registration of a message stream.
typealias MessageStreamRegistration = StreamRegistration<MQTTMessage>

/// A stream of received messages.
typealias MessageBuffer = StreamBuffer<MQTTMessage>

/// A bounded single-consumer buffer between the client's loop thread (producer) and one
/// consuming task: the messages of a stream, or the events of a connection-event sequence.
final class StreamBuffer<Element: Sendable>: Sendable {
    /// The topic filter, or nil for every message.
    let filter: String?
    let buffering: MQTTStreamBuffering
    /// Called (on the consumer's thread) when this buffer may let the client read again: it was
    /// drained to half after pausing the client, or its last iterator went away.
    let mayResume: @Sendable () -> Void

    /// What ``push(_:)`` did.
    enum PushResult {
        case buffered
        /// The buffer is full and iterated with back-pressure: stop reading.
        case mustPause
        case dropped
    }

    private struct State {
        var items: [Element] = []
        var head = 0
        var waiter: CheckedContinuation<Element?, Never>?
        var finished = false
        var holdsProducer = false
        var iterators = 0
        var dropped = 0
        var count: Int { items.count - head }

        mutating func popFirst() -> Element {
            let m = items[head]
            head += 1
            if head == items.count {
                items.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= 64 && head * 2 >= items.count {
                items.removeFirst(head)
                head = 0
            }
            return m
        }
    }

    private let state = Locked(State())

    init(filter: String?, buffering: MQTTStreamBuffering, mayResume: @escaping @Sendable () -> Void = {}) {
        self.filter = filter
        self.buffering = buffering
        self.mayResume = mayResume
    }

    var droppedCount: Int { state.withLock { $0.dropped } }

    /// Whether this buffer holds the producer back now (full, iterated, back-pressure).
    var holdsProducer: Bool { state.withLock { $0.holdsProducer && !$0.finished && $0.iterators > 0 } }

    /// Appends a message (producer, loop thread).
    @discardableResult
    func push(_ message: Element) -> PushResult {
        let capacity = buffering.capacity
        let policy = buffering.policy
        let (waiter, result) = state.withLock { s -> (CheckedContinuation<Element?, Never>?, PushResult) in
            if s.finished { return (nil, .dropped) }
            if let waiter = s.waiter {
                s.waiter = nil
                return (waiter, .buffered)
            }
            if s.count >= capacity {
                switch policy {
                case .dropOldest:
                    _ = s.popFirst()
                    s.dropped += 1
                    s.items.append(message)
                    return (nil, .dropped)
                case .dropNewest:
                    s.dropped += 1
                    return (nil, .dropped)
                case .backPressure:
                    if s.iterators == 0 {
                        s.dropped += 1
                        return (nil, .dropped)
                    }
                    // Only reached when the producer ignored an earlier `.mustPause`
                    // (messages already decoded in the same batch): keep it.
                    s.items.append(message)
                    s.holdsProducer = true
                    return (nil, .mustPause)
                }
            }
            s.items.append(message)
            if policy == .backPressure && s.count >= capacity && s.iterators > 0 {
                s.holdsProducer = true
                return (nil, .mustPause)
            }
            return (nil, .buffered)
        }
        waiter?.resume(returning: message)
        return result
    }

    func iterationBegan() {
        state.withLock { $0.iterators += 1 }
    }

    func iterationEnded() {
        let wake = state.withLock { s -> Bool in
            s.iterators -= 1
            if s.iterators == 0 && s.holdsProducer {
                s.holdsProducer = false
                return true
            }
            return false
        }
        if wake { mayResume() }
    }

    /// Ends the stream: a waiting consumer gets nil, buffered messages are dropped.
    func finish() {
        let (waiter, wake) = state.withLock { s -> (CheckedContinuation<Element?, Never>?, Bool) in
            s.finished = true
            s.items.removeAll()
            s.head = 0
            let w = s.waiter
            s.waiter = nil
            let wake = s.holdsProducer
            s.holdsProducer = false
            return (w, wake)
        }
        waiter?.resume(returning: nil)
        if wake { mayResume() }
    }

    /// The next element (consumer).
    func next() async -> Element? {
        let capacity = buffering.capacity
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Element?, Never>) in
                let (message, wake, immediate) = state.withLock { s -> (Element?, Bool, Bool) in
                    if s.count > 0 {
                        let m = s.popFirst()
                        var wake = false
                        if s.holdsProducer && s.count <= capacity / 2 {
                            s.holdsProducer = false
                            wake = true
                        }
                        return (m, wake, true)
                    }
                    if s.finished || Task.isCancelled { return (nil, false, true) }
                    s.waiter = continuation
                    return (nil, false, false)
                }
                if immediate { continuation.resume(returning: message) }
                if wake { mayResume() }
            }
        } onCancel: {
            let waiter = state.withLock { s -> CheckedContinuation<Element?, Never>? in
                let w = s.waiter
                s.waiter = nil
                return w
            }
            waiter?.resume(returning: nil)
        }
    }
}
