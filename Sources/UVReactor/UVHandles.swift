import CLibUV

// Small helpers for libuv's C "inheritance": every handle type starts with the `uv_handle_t`
// fields and every stream handle with the `uv_stream_t` fields, so a pointer to one may be viewed
// as a pointer to the other.

@inline(__always)
func uvHandle<T>(_ pointer: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<uv_handle_t> {
    UnsafeMutableRawPointer(pointer).assumingMemoryBound(to: uv_handle_t.self)
}

@inline(__always)
func uvStream<T>(_ pointer: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<uv_stream_t> {
    UnsafeMutableRawPointer(pointer).assumingMemoryBound(to: uv_stream_t.self)
}

/// The close callback for handles whose `data` holds a retained Swift object: releases it and
/// frees the handle's memory (libuv allows freeing only here).
let releasingCloseCallback: uv_close_cb = { handle in
    guard let handle else { return }
    if let data = handle.pointee.data {
        Unmanaged<AnyObject>.fromOpaque(data).release()
    }
    UnsafeMutableRawPointer(handle).deallocate()
}

/// Converts a duration to whole milliseconds for libuv timers, rounding up (a timer never fires
/// early) and clamping negative values to zero.
func uvMilliseconds(_ duration: Duration) -> UInt64 {
    let (seconds, attoseconds) = duration.components
    if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return 0 }
    let attosecondsPerMillisecond: Int64 = 1_000_000_000_000_000
    let fraction = (attoseconds + attosecondsPerMillisecond - 1) / attosecondsPerMillisecond
    let (product, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1000)
    if overflow { return UInt64.max / 2 }
    return product + UInt64(max(0, fraction))
}

extension TransportError {
    /// Maps a libuv status from a connect, read or write to the error the client reports.
    static func from(uv status: Int32) -> TransportError {
        switch status {
        case UV_ECONNREFUSED.rawValue: return .connectionRefused
        case UV_ETIMEDOUT.rawValue: return .connectTimeout
        case UV_ECONNRESET.rawValue, UV_EPIPE.rawValue, UV_ECONNABORTED.rawValue: return .connectionReset
        case UV_EOF.rawValue: return .closedByPeer
        default: return .io(UVError(status))
        }
    }
}
