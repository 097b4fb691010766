/// Received messages as an `AsyncSequence` of owned ``MQTTMessage`` values.
///
/// Get one from ``MQTTClient/messages`` (every message) or
/// ``MQTTClient/messages(matching:)`` (those whose topic matches a filter). A stream buffers
/// from the moment it is created, up to ``MQTTClientOptions/messageBufferSize`` messages; when a
/// consumer falls that far behind, the client stops reading from the socket (the broker then
/// holds the messages, and TCP flow control slows it down) and resumes once the consumer has
/// drained half of its buffer. Nothing is dropped, so memory stays bounded and every message the
/// QoS promised is delivered. A stream that is no longer referenced unregisters itself.
///
/// A stream is meant for one consumer: several iterators of the same stream share its messages.
/// It ends (returns nil) when the client shuts down or the consuming task is cancelled.
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

    /// The iterator.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let registration: MessageStreamRegistration

        /// The next message, or nil once the stream ended or the task was cancelled.
        public mutating func next() async -> MQTTMessage? {
            await registration.buffer.next()
        }

        /// The next message, or nil once the stream ended or the task was cancelled.
        ///
        /// - Parameter actor: The caller's isolation (unused: the buffer is thread-safe).
        public mutating func next(isolation actor: isolated (any Actor)?) async -> MQTTMessage? {
            await registration.buffer.next()
        }
    }

    /// An iterator over the stream's messages (iterators of one stream share them).
    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(registration: registration)
    }
}

/// Ties a buffer's registration with the engine to the life of the streams and iterators using
/// it: when the last one goes, the buffer is finished and unregistered.
final class MessageStreamRegistration: Sendable {
    let buffer: MessageBuffer
    let unregister: @Sendable (MessageBuffer) -> Void

    init(buffer: MessageBuffer, unregister: @escaping @Sendable (MessageBuffer) -> Void) {
        self.buffer = buffer
        self.unregister = unregister
    }

    deinit {
        buffer.finish()
        unregister(buffer)
    }
}

/// A bounded single-consumer message buffer between the engine (producer, loop thread) and one
/// consuming task.
final class MessageBuffer: Sendable {
    /// Topic filter bytes, or nil for every message. Read on the loop thread only.
    let filter: [UInt8]?
    let capacity: Int
    /// Called (on the consumer's thread) once the consumer drained a buffer that had made the
    /// producer pause; the engine resumes reading.
    let resume: @Sendable () -> Void

    private struct State {
        var items: [MQTTMessage] = []
        var head = 0
        var waiter: CheckedContinuation<MQTTMessage?, Never>?
        var finished = false
        var producerPaused = false
        var count: Int { items.count - head }
    }

    private let state = Locked(State())

    init(filter: String?, capacity: Int, resume: @escaping @Sendable () -> Void) {
        self.filter = filter.map { Array($0.utf8) }
        self.capacity = max(1, capacity)
        self.resume = resume
    }

    /// Whether the topic bytes match this buffer's filter.
    func matches(topic: UnsafeRawBufferPointer) -> Bool {
        guard let filter else { return true }
        return filter.withUnsafeBytes { TopicMatcher.matches(filter: $0, topic: topic) }
    }

    /// Appends a message (producer). Returns false when the buffer is now full: the producer
    /// must stop reading until ``resume`` is called.
    func push(_ message: MQTTMessage) -> Bool {
        let (waiter, full) = state.withLock { s -> (CheckedContinuation<MQTTMessage?, Never>?, Bool) in
            if s.finished { return (nil, false) }
            if let waiter = s.waiter {
                s.waiter = nil
                return (waiter, false)
            }
            s.items.append(message)
            if s.count >= capacity {
                s.producerPaused = true
                return (nil, true)
            }
            return (nil, false)
        }
        waiter?.resume(returning: message)
        return !full
    }

    /// Whether the buffer is at its bound (producer: do not read more).
    var isFull: Bool { state.withLock { $0.count >= capacity && !$0.finished } }

    /// Ends the stream: a waiting consumer gets nil, buffered messages are dropped.
    func finish() {
        let waiter = state.withLock { s -> CheckedContinuation<MQTTMessage?, Never>? in
            s.finished = true
            s.items.removeAll()
            s.head = 0
            let w = s.waiter
            s.waiter = nil
            return w
        }
        waiter?.resume(returning: nil)
    }

    /// The next message (consumer).
    func next() async -> MQTTMessage? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<MQTTMessage?, Never>) in
                let (message, wake, immediate) = state.withLock { s -> (MQTTMessage?, Bool, Bool) in
                    if s.count > 0 {
                        let m = s.items[s.head]
                        s.head += 1
                        if s.head == s.items.count {
                            s.items.removeAll(keepingCapacity: true)
                            s.head = 0
                        } else if s.head >= 64 && s.head * 2 >= s.items.count {
                            s.items.removeFirst(s.head)
                            s.head = 0
                        }
                        var wake = false
                        if s.producerPaused && s.count <= capacity / 2 {
                            s.producerPaused = false
                            wake = true
                        }
                        return (m, wake, true)
                    }
                    if s.finished || Task.isCancelled { return (nil, false, true) }
                    s.waiter = continuation
                    return (nil, false, false)
                }
                if immediate { continuation.resume(returning: message) }
                if wake { resume() }
            }
        } onCancel: {
            let waiter = state.withLock { s -> CheckedContinuation<MQTTMessage?, Never>? in
                let w = s.waiter
                s.waiter = nil
                return w
            }
            waiter?.resume(returning: nil)
        }
    }
}
