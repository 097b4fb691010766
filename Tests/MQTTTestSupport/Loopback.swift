// Loopback sockets for tests: a free port, "is something listening", a blocking client socket
// with bounded waits, and a listener that never accepts.
//
// CLibUV is imported too: `SOCK_STREAM` was sometimes "not in scope" with only Glibc imported
// (a fresh sanitizer build); uv.h includes <sys/socket.h>.
import CLibUV
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A loopback TCP port that was free a moment ago (bound to port 0, then closed). Servers that
/// take it should retry with another port when the bind fails (the harness's servers do).
///
/// - Throws: ``HarnessError`` when no socket can be bound.
public func freeLoopbackPort() throws -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw HarnessError("socket: errno \(errno)") }
    defer { close(fd) }
    var address = loopbackAddress(port: 0)
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard bound == 0 else { throw HarnessError("bind: errno \(errno)") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    guard named == 0 else { throw HarnessError("getsockname: errno \(errno)") }
    return UInt16(bigEndian: address.sin_port)
}

func loopbackAddress(port: UInt16) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    return address
}

/// Whether something accepts TCP connections on 127.0.0.1:`port` right now.
public func canConnect(port: UInt16) -> Bool {
    (try? LoopbackSocket(port: port)) != nil
}

/// Waits (bounded) until something accepts connections on 127.0.0.1:`port`.
///
/// - Throws: ``HarnessError`` when `process` exits first or `timeout` passes.
public func waitUntilListening(port: UInt16, process: ChildProcess, timeout: Duration = .seconds(20)) throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        guard process.isRunning else {
            throw HarnessError("\(process.name) exited before listening on \(port): \(process.log)")
        }
        if canConnect(port: port) { return }
        usleep(10_000)
    }
    throw HarnessError("\(process.name) did not listen on \(port) within \(timeout): \(process.log)")
}

/// The peer reset or closed the connection while we were sending.
public enum SocketError: Error {
    case peerGone(Int32)
}

/// A blocking TCP client socket to 127.0.0.1 whose sends and receives time out after 100 ms, so
/// every loop around it can check a deadline.
public final class LoopbackSocket {
    public let fd: Int32

    /// Connects to 127.0.0.1:`port`.
    ///
    /// - Throws: ``HarnessError`` when the connect fails.
    public init(port: UInt16) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket: errno \(errno)") }
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = loopbackAddress(port: port)
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard status == 0 else {
            let code = errno
            close(fd)
            throw HarnessError("connect to 127.0.0.1:\(port): errno \(code)")
        }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Sends every byte before `deadline`.
    ///
    /// - Throws: ``SocketError`` when the peer reset or closed, ``HarnessError`` on a timeout.
    public func sendAll(_ bytes: UnsafeRawBufferPointer, deadline: ContinuousClock.Instant) throws {
        var offset = 0
        while offset < bytes.count {
            guard ContinuousClock.now < deadline else { throw HarnessError("send timed out") }
            let sent = send(fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            if sent > 0 {
                offset += sent
            } else if sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                continue
            } else if errno == ECONNRESET || errno == EPIPE {
                throw SocketError.peerGone(errno)
            } else {
                throw HarnessError("send: errno \(errno)")
            }
        }
    }

    /// Receives into `buffer`: the count, 0 at end of stream, nil when nothing came within 100 ms.
    public func receive(into buffer: UnsafeMutableRawBufferPointer) throws -> Int? {
        let count = recv(fd, buffer.baseAddress, buffer.count, 0)
        if count >= 0 { return count }
        if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return nil }
        throw HarnessError("recv: errno \(errno)")
    }
}

/// A loopback TCP socket that listens but is never accepted from: the kernel completes TCP
/// connects into its backlog, so a TLS client connects and its ClientHello is never answered.
public final class SilentListener {
    public let fd: Int32
    public let port: UInt16

    /// Listens on a free loopback port.
    ///
    /// - Throws: ``HarnessError`` when the socket cannot listen.
    public init() throws {
        (fd, port) = try bindFreeLoopbackSocket(listenBacklog: 8)
    }

    /// Accepts the pending connection (non-blocking) and returns what the client sent.
    public func acceptAndReadAll() -> [UInt8]? {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        let client = accept(fd, nil, nil)
        guard client >= 0 else { return nil }
        defer { close(client) }
        _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK)
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        for _ in 0..<64 {
            let count = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { break }
            bytes += buffer[0..<count]
        }
        return bytes
    }

    deinit { close(fd) }
}

/// A loopback port where nothing listens, reserved while this object lives: a socket is bound to
/// it but never listens, so a connect is refused (ECONNREFUSED) and no other socket (another
/// test's server, another process) can take the port meanwhile. `freeLoopbackPort()` for a
/// "nothing listening" test was seen to race with a concurrent server under load.
public final class RefusingPort: @unchecked Sendable {
    public let port: UInt16
    private let fd: Int32

    /// Binds a socket to a free 127.0.0.1 port without listening.
    ///
    /// - Throws: ``HarnessError`` when the socket cannot be bound.
    public init() throws {
        (fd, port) = try bindFreeLoopbackSocket(listenBacklog: nil)
    }

    deinit { close(fd) }
}

/// A TCP socket bound to a free 127.0.0.1 port, listening with `listenBacklog` when given.
///
/// - Returns: The socket and the port the kernel chose.
/// - Throws: ``HarnessError`` when the socket cannot be bound (or listen).
func bindFreeLoopbackSocket(listenBacklog: Int32?) throws -> (fd: Int32, port: UInt16) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw HarnessError("socket: errno \(errno)") }
    var address = loopbackAddress(port: 0)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, length) == 0
                && (listenBacklog.map { listen(fd, $0) == 0 } ?? true)
                && getsockname(fd, $0, &length) == 0
        }
    }
    guard ok else {
        let error = errno
        close(fd)
        throw HarnessError("bind/listen: errno \(error)")
    }
    return (fd, UInt16(bigEndian: address.sin_port))
}
