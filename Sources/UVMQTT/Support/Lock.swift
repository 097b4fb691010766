import UVReactor
/// A value guarded by a pthread mutex (the reactor's ``PThreadMutex``).
///
/// Used where a consumer thread and the loop thread share state (the async message buffers, the
/// engine's "connect requested" flag). Not `Synchronization.Mutex`: ThreadSanitizer on Linux does
/// not see it and reports false races (PLATFORM-NOTES).
final class Locked<Value>: @unchecked Sendable {
    private let mutex = PThreadMutex()
    private var value: Value

    init(_ value: Value) {
        self.value = value
    }

    /// Runs `body` with the lock held.
    @inline(__always)
    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        try mutex.withLock { try body(&value) }
    }
}
