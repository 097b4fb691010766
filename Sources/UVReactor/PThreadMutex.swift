#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A plain pthread mutex.
///
/// Used instead of `Synchronization.Mutex` because ThreadSanitizer on Linux does not see the
/// latter and reports false races (see PLATFORM-NOTES); a pthread mutex is seen correctly at the
/// same speed. `package`: UVMQTT's `Locked` is built on it (one mutex wrapper in the package).
package final class PThreadMutex: @unchecked Sendable {
    fileprivate let mutex: UnsafeMutablePointer<pthread_mutex_t>

    package init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        let status = pthread_mutex_init(mutex, nil)
        precondition(status == 0, "pthread_mutex_init failed: \(status)")
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with the mutex held.
    @inline(__always)
    package func withLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Blocks until `condition` is signalled, releasing the mutex while it waits. Call it only
    /// inside ``withLock(_:)``, in a loop that re-checks the awaited state (wake-ups may be
    /// spurious).
    package func wait(for condition: PThreadCondition) {
        pthread_cond_wait(condition.condition, mutex)
    }
}

/// A pthread condition variable, used with ``PThreadMutex/wait(for:)``.
package final class PThreadCondition: @unchecked Sendable {
    fileprivate let condition: UnsafeMutablePointer<pthread_cond_t>

    package init() {
        condition = .allocate(capacity: 1)
        condition.initialize(to: pthread_cond_t())
        let status = pthread_cond_init(condition, nil)
        precondition(status == 0, "pthread_cond_init failed: \(status)")
    }

    deinit {
        pthread_cond_destroy(condition)
        condition.deallocate()
    }

    /// Wakes every thread waiting on the condition.
    package func broadcast() {
        pthread_cond_broadcast(condition)
    }
}
