#if canImport(Glibc)
import Glibc
#endif

/// A pthread mutex around a value.
///
/// Used where a consumer thread and the loop thread share state (the async message buffers, the
/// request table of the async face). Not `Synchronization.Mutex`: ThreadSanitizer on Linux does
/// not see it and reports false races (PLATFORM-NOTES).
final class Locked<Value>: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var value: Value

    init(_ value: Value) {
        self.value = value
        pthread_mutex_init(&mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(&mutex)
    }

    /// Runs `body` with the lock held.
    @inline(__always)
    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return try body(&value)
    }
}
