import COpenSSL

/// The calling thread's OpenSSL error queue.
///
/// OpenSSL records failures in a per-thread queue. `SSL_get_error` is reliable only when the
/// queue was empty before the I/O call, and an entry left behind would be reported by the next,
/// unrelated connection on the same thread (the loop thread serves many). So every operation
/// clears the queue first, and every failure drains it into its message.
enum OpenSSLErrorQueue {
    /// Empties the queue.
    @inline(__always)
    static func clear() {
        ERR_clear_error()
    }

    /// The oldest entry, without removing it (0 when empty).
    static func peekFirst() -> UInt {
        ERR_peek_error()
    }

    /// Empties the queue and returns its entries as text, oldest first, joined by "; ".
    ///
    /// - Parameter fallback: The text when the queue holds nothing.
    static func drain(fallback: String = "unknown OpenSSL error") -> String {
        var messages: [String] = []
        // Bounded: the queue holds at most ERR_NUM_ERRORS (16) entries.
        for _ in 0..<64 {
            let code = ERR_get_error()
            if code == 0 { break }
            messages.append(describe(code))
        }
        ERR_clear_error()
        return messages.isEmpty ? fallback : messages.joined(separator: "; ")
    }

    /// OpenSSL's text for one packed error code ("error:0A000086:SSL routines::certificate verify failed").
    static func describe(_ code: UInt) -> String {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 256) { buffer in
            guard let base = buffer.baseAddress else { return "OpenSSL error \(code)" }
            ERR_error_string_n(code, base, buffer.count)
            return String(cString: base)
        }
    }
}
