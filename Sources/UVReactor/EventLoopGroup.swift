import Synchronization

/// A fixed set of event loops, each on its own thread, handed out round robin.
///
/// Like swift-nio's `MultiThreadedEventLoopGroup`: create one per process (one loop per core by
/// default), give each connection ``next()``, and shut the group down at the end. Work on one
/// connection stays on its loop's thread; the group only spreads connections over the loops.
///
/// ```swift
/// let group = EventLoopGroup(threads: 2)
/// let loop = group.next()
/// loop.execute { /* on one of the group's threads */ }
/// await group.shutdownGracefully()
/// ```
///
/// The loops end like any ``EventLoop``: dropping the group (and every loop taken from it)
/// stops them, and no thread is left behind however they end.
public final class EventLoopGroup: Sendable {
    /// The group's loops, started, in the order ``next()`` hands them out.
    public let loops: [EventLoop]
    /// The index of the next loop to hand out, modulo `loops.count`. Wrapping on overflow only
    /// shifts the order once every 2^64 calls.
    private let counter = Atomic<UInt>(0)

    /// Creates the group and starts its loops, each on a new thread.
    ///
    /// - Parameters:
    ///   - threads: The number of loops (threads), at least 1. Default: one per core
    ///     (``System/coreCount``).
    ///   - maximumConcurrentConnectionAttempts: Connection attempts each loop runs at once (see
    ///     ``EventLoop/init(maximumConcurrentConnectionAttempts:)``).
    public init(threads: Int = System.coreCount, maximumConcurrentConnectionAttempts: Int = 64) {
        precondition(threads >= 1, "an EventLoopGroup needs at least one thread, got \(threads)")
        loops = (0..<threads).map { _ in EventLoop(maximumConcurrentConnectionAttempts: maximumConcurrentConnectionAttempts) }
        for loop in loops { loop.start() }
    }

    /// The next loop, round robin: the loops in ``loops`` order, then again from the first.
    /// Thread-safe and lock-free.
    public func next() -> EventLoop {
        let index = counter.wrappingAdd(1, ordering: .relaxed).oldValue
        return loops[Int(index % UInt(loops.count))]
    }

    /// Whether the caller runs on one of the group's loops.
    public var inEventLoop: Bool {
        loops.contains { $0.inEventLoop }
    }

    /// Shuts every loop down (closing what is open on it) and waits for their threads.
    ///
    /// Blocks the caller until all threads have ended: call it from a thread of your own (or the
    /// main thread at exit), never from one of the group's loops (that thread would wait for
    /// itself), and prefer ``shutdownGracefully()`` in async code.
    ///
    /// - Throws: The first loop's `UVError` when a loop did not close cleanly (`EBUSY`: a handle
    ///   or request was leaked); every loop is shut down even then.
    public func shutdown() throws(UVError) {
        precondition(!inEventLoop,
                     "EventLoopGroup.shutdown() called on one of the group's loops: it would wait for its own thread; use shutdownGracefully() from a task off the group, or stop() the loops")
        // Ask all at once, so the loops close in parallel, then wait for each.
        for loop in loops { loop.stop() }
        var firstError: UVError?
        for loop in loops {
            do throws(UVError) {
                try loop.shutdown()
            } catch {
                if firstError == nil { firstError = error }
            }
        }
        if let firstError { throw firstError }
    }

    /// Shuts every loop down and suspends until all their threads have finished, without
    /// blocking a thread (each loop resumes its waiter from its thread's exit).
    ///
    /// Must not be called from code running on one of the group's loops (an actor on it).
    public func shutdownGracefully() async {
        precondition(!inEventLoop,
                     "EventLoopGroup.shutdownGracefully() called on one of the group's loops, which would have to resume it after ending")
        for loop in loops { loop.stop() }
        for loop in loops { await loop.shutdownGracefully() }
    }
}
