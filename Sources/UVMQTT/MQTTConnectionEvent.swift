public import MQTTProtocol
/// A change of an ``MQTTClient``'s connection, as delivered by ``MQTTClient/connectionEvents``.
///
/// A daemon watches these for readiness (``connected(sessionPresent:)``), for alerts
/// (``offline(_:)`` with the reason) and to see automatic reconnects at work
/// (``reconnecting(attempt:delay:)``).
public enum MQTTConnectionEvent: Sendable, Hashable {
    /// A CONNACK accepted a connection (the first one or a reconnect). Without a kept session
    /// (`sessionPresent == false`) the client has re-subscribed the active subscriptions itself.
    case connected(sessionPresent: Bool)
    /// A connection attempt failed, with the reason. With a server list, one per failed
    /// server; ``MQTTClient/currentServer`` names the server it is about.
    case connectFailed(MQTTConnectionFailure)
    /// An accepted connection ended, with the reason (`MQTTConnectionFailure.closedByUser`
    /// after ``MQTTClient/disconnect()``).
    case offline(MQTTConnectionFailure)
    /// The client waits `delay` before its reconnect attempt number `attempt` (1 for the first
    /// retry). Inside a pass over a server list the next server is tried at once: `delay` is
    /// zero and `attempt` is not counted up (the back-off counts passes).
    case reconnecting(attempt: Int, delay: Duration)
}

/// Connection events as an `AsyncSequence`, from the moment it was made.
///
/// Each sequence buffers up to 64 events; a consumer further behind loses the oldest ones
/// (the newest state is what matters). It ends when the client shuts down.
public struct MQTTConnectionEvents: AsyncSequence, Sendable {
    /// Connection events.
    public typealias Element = MQTTConnectionEvent
    /// The sequence never throws; it ends with nil.
    public typealias Failure = Never

    let registration: ConnectionEventRegistration

    /// The iterator.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let registration: ConnectionEventRegistration

        /// The next event, or nil once the client shut down or the task was cancelled.
        public mutating func next() async -> MQTTConnectionEvent? {
            await registration.buffer.next()
        }

        /// The next event, or nil once the client shut down or the task was cancelled.
        ///
        /// - Parameter actor: The caller's isolation (unused: the buffer is thread-safe).
        public mutating func next(isolation actor: isolated (any Actor)?) async -> MQTTConnectionEvent? {
            await registration.buffer.next()
        }
    }

    /// An iterator over the events (iterators of one sequence share them).
    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(registration: registration)
    }
}

/// The registration of a connection-event sequence.
typealias ConnectionEventRegistration = StreamRegistration<MQTTConnectionEvent>

/// Connection events buffered for one sequence: the newest 64 (drop-oldest).
typealias ConnectionEventBuffer = StreamBuffer<MQTTConnectionEvent>

extension StreamBuffer where Element == MQTTConnectionEvent {
    /// An event buffer: no filter, drop-oldest.
    convenience init() {
        self.init(filter: nil, buffering: .dropOldest(capacity: 64))
    }
}
