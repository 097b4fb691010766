import CLibUV
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A listening TCP socket on an event loop; accepted connections are ``TCPConnection``s with the
/// same API as outgoing ones. Loop thread only.
///
/// Made with ``EventLoop/listen(host:port:backlog:options:onAccept:)``; port 0 picks a free port,
/// which ``port`` reports (what tests and fake brokers use).
public final class TCPListener {
    /// The loop the listener runs on.
    public let loop: EventLoop
    /// The address it listens on (an IP literal).
    public let host: String
    /// The bound port (the one picked by the system when 0 was asked for).
    public private(set) var port: Int = 0
    /// Options applied to accepted connections.
    public let options: TCPOptions
    /// The number of connections accepted so far.
    public private(set) var acceptedCount = 0

    private var handle: UnsafeMutablePointer<uv_tcp_t>?
    private var onAccept: ((TCPConnection) -> Void)?

    init(loop: EventLoop, host: String, port: Int, backlog: Int, options: TCPOptions,
         onAccept: @escaping (TCPConnection) -> Void) throws(TransportError) {
        self.loop = loop
        self.host = host
        self.options = options
        self.onAccept = onAccept
        guard (0...65535).contains(port), var address = SocketAddress.ipLiteral(host, port: port) else {
            throw .io(UVError(UV_EINVAL.rawValue))
        }
        let handle = UnsafeMutablePointer<uv_tcp_t>.allocate(capacity: 1)
        let initStatus = uv_tcp_init(loop.uvLoop, handle)
        guard initStatus == 0 else {
            handle.deallocate()
            throw .io(UVError(initStatus))
        }
        handle.pointee.data = Unmanaged.passRetained(self as AnyObject).toOpaque()
        self.handle = handle
        var status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { uv_tcp_bind(handle, $0, 0) }
        }
        if status == 0 {
            status = uv_listen(uvStream(handle), Int32(clamping: backlog)) { server, status in
                guard let server, let data = server.pointee.data else { return }
                (Unmanaged<AnyObject>.fromOpaque(data).takeUnretainedValue() as? TCPListener)?
                    .acceptPending(server, status: status)
            }
        }
        if status == 0 {
            var bound = sockaddr_storage()
            var length = Int32(MemoryLayout<sockaddr_storage>.size)
            status = withUnsafeMutablePointer(to: &bound) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { uv_tcp_getsockname(handle, $0, &length) }
            }
            self.port = SocketAddress.port(bound)
        }
        guard status == 0 else {
            self.handle = nil
            self.onAccept = nil
            uv_close(uvHandle(handle), releasingCloseCallback)
            throw .from(uv: status)
        }
        loop.register(self)
    }

    private func acceptPending(_ server: UnsafeMutablePointer<uv_stream_t>, status: Int32) {
        guard status == 0, handle != nil else { return }
        guard let connection = TCPConnection.accept(from: server, loop: loop, options: options) else { return }
        acceptedCount += 1
        onAccept?(connection)
        connection.acceptReported()
    }

    /// Stops listening and releases the socket. Connections already accepted stay open.
    /// Idempotent.
    public func close() {
        loop.assertInLoop()
        guard let handle else { return }
        self.handle = nil
        onAccept = nil
        loop.unregister(self)
        uv_close(uvHandle(handle), releasingCloseCallback)
    }
}

extension TCPListener: LoopResource {
    func closeForShutdown() { close() }
}

extension EventLoop {
    /// Listens for TCP connections. Loop thread only.
    ///
    /// - Parameters:
    ///   - host: The IP literal to bind (`127.0.0.1`, `::1`, `0.0.0.0`); no name resolution.
    ///   - port: The port, or 0 for one the system picks (read it from ``TCPListener/port``).
    ///   - backlog: The `listen(2)` backlog.
    ///   - options: Applied to accepted connections.
    ///   - onAccept: Runs on the loop thread with each accepted connection; install its callbacks
    ///     here: reading starts when it returns.
    /// - Returns: The listener.
    /// - Throws: ``TransportError/io(_:)`` when the address is not an IP literal or cannot be bound
    ///   (`EADDRINUSE`, ...).
    public func listen(host: String = "127.0.0.1", port: Int = 0, backlog: Int = 128,
                       options: TCPOptions = TCPOptions(),
                       onAccept: @escaping (TCPConnection) -> Void) throws(TransportError) -> TCPListener {
        assertInLoop()
        return try TCPListener(loop: self, host: host, port: port, backlog: backlog, options: options,
                               onAccept: onAccept)
    }
}
