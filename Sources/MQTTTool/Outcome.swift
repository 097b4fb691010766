import MQTTProtocol
import UVMQTT
import UVReactor
#if canImport(Glibc)
import Glibc
#endif

/// The end of a command, decided on the loop thread and awaited on the main thread.
///
/// The first ``finish(_:)`` wins; ``wait(timeout:)`` blocks (bounded) until then. Built on a
/// pthread mutex and condition variable (the tool avoids Foundation: it would triple the
/// process's resident memory).
final class Outcome: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var result: Int32?
    private var ended = false

    init() {
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }

    /// Records the exit status (first call wins) and wakes the waiters.
    func finish(_ status: Int32) {
        locked {
            if result == nil { result = status }
            pthread_cond_broadcast(condition)
        }
    }

    /// Whether a result was recorded.
    var isFinished: Bool { locked { result != nil } }

    /// Whether the connection is known to be gone (no DISCONNECT needed at the end).
    var connectionEnded: Bool {
        get { locked { ended } }
        set { locked { ended = newValue } }
    }

    /// Waits until a result is recorded or `timeout` seconds passed (nil: no limit); returns the
    /// result, or nil on timeout.
    func wait(timeout: Double?) -> Int32? {
        let deadline = timeout.map { monotonicSeconds() + $0 }
        return locked {
            while result == nil {
                if let deadline {
                    let left = deadline - monotonicSeconds()
                    if left <= 0 { break }
                    var ts = timespec()
                    clock_gettime(CLOCK_MONOTONIC, &ts)
                    let ns = Int(ts.tv_nsec) + Int(min(left, 3600) * 1e9)
                    ts.tv_sec += ns / 1_000_000_000
                    ts.tv_nsec = ns % 1_000_000_000
                    pthread_cond_timedwait(condition, mutex, &ts)
                } else {
                    pthread_cond_wait(condition, mutex)
                }
            }
            return result
        }
    }
}

/// Seconds on the monotonic clock.
func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// Runs `body` on a new detached thread.
func spawnThread(_ body: @escaping @Sendable () -> Void) {
    final class Box { let body: @Sendable () -> Void; init(_ body: @escaping @Sendable () -> Void) { self.body = body } }
    let context = Unmanaged.passRetained(Box(body)).toOpaque()
    var thread = pthread_t()
    let status = pthread_create(&thread, nil, { raw in
        guard let raw else { return nil }
        Unmanaged<Box>.fromOpaque(raw).takeRetainedValue().body()
        return nil
    }, context)
    if status == 0 {
        pthread_detach(thread)
    } else {
        Unmanaged<Box>.fromOpaque(context).release()
    }
}

/// Reads a whole file (binary-safe).
///
/// - Throws: ``ToolFailure`` with the system's reason.
func readWholeFile(_ path: String, flag: String) throws(ToolFailure) -> [UInt8] {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else {
        throw ToolFailure("cannot read file '\(path)' for \(flag): \(String(cString: strerror(errno)))")
    }
    defer { close(fd) }
    guard let bytes = readAll(fd) else {
        throw ToolFailure("cannot read file '\(path)' for \(flag): \(String(cString: strerror(errno)))")
    }
    return bytes
}

/// Reads a file descriptor to its end; nil on a read error.
func readAll(_ fd: Int32) -> [UInt8]? {
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 * 1024)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            return nil
        }
        if n == 0 { return bytes }
        bytes.append(contentsOf: chunk[0..<n])
    }
}

/// Formats a non-negative number with `digits` decimals (no Foundation `String(format:)`).
func formatFixed(_ value: Double, digits: Int) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = (value * scale).rounded()
    guard scaled.isFinite, scaled >= 0, scaled < 9e18 else { return "0" }
    let whole = Int(scaled)
    let integerPart = whole / Int(scale)
    if digits == 0 { return String(integerPart) }
    var fraction = String(whole % Int(scale))
    while fraction.count < digits { fraction = "0" + fraction }
    return "\(integerPart).\(fraction)"
}

/// Closes the client (DISCONNECT, graceful close) and waits, bounded, until the broker has read
/// everything and closed its side, so that nothing queued is lost when the process ends.
func closeAndWait(_ client: NodeMCUClient, timeout: Double = 12) {
    let closed = Outcome()
    client.close { _ in closed.finish(0) }
    _ = closed.wait(timeout: timeout)
}
