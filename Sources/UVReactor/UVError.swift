import CLibUV

/// An error code from libuv (a negative errno value), with its symbolic name.
public struct UVError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The libuv status code (negative).
    public let code: Int32

    /// Wraps a libuv status code.
    public init(_ code: Int32) {
        self.code = code
    }

    /// libuv's symbolic name, e.g. `ECONNREFUSED`.
    public var name: String { String(cString: uv_err_name(code)) }

    /// libuv's description, e.g. `connection refused`.
    public var message: String { String(cString: uv_strerror(code)) }

    public var description: String { "\(name): \(message)" }

    /// Throws when `status` is negative; returns it otherwise.
    @discardableResult
    static func check(_ status: Int32) throws(UVError) -> Int32 {
        if status < 0 { throw UVError(status) }
        return status
    }
}
