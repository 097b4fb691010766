import CLibUV
import MQTTTestSupport
import RingBuffers
import Testing
@testable import UVReactor
#if canImport(Glibc)
import Glibc
#endif

/// Result of a client run: the bytes checked, whether they matched, and how the close went.
struct TransferReport: Sendable, Equatable {
    var received = 0
    var mismatchAt: Int? = nil
    var maxRingCapacity = 0
    var closeError: TransportError?? = nil
}

@Suite struct TCPConnectionTests {
    @Test func echoRoundTripAndGracefulClose() async throws {
        try await withLoop { loop in
            let reply = Outcome<[UInt8]>()
            let closed = Outcome<TransportError?>()
            loop.execute {
                do {
                    let listener = try startEchoServer(on: loop)
                    loop.connect(host: "127.0.0.1", port: listener.port) { result in
                        guard case .success(let connection) = result else { return reply.fulfil([]) }
                        #expect(connection.remoteAddress == "127.0.0.1:\(listener.port)")
                        connection.onRead = { connection in
                            guard connection.inbound.readableBytes >= 5 else { return }
                            reply.fulfil(connection.inbound.readBytes(count: 5))
                            connection.inbound.consume(5)
                            connection.close()
                        }
                        connection.onClose = { error in
                            listener.close()
                            closed.fulfil(error)
                        }
                        connection.write(Array("hello".utf8))
                    }
                } catch {
                    reply.fulfil([])
                }
            }
            #expect(await reply.wait() == Array("hello".utf8))
            let closeResult = await closed.wait()
            #expect(closeResult == .some(nil))
        }
    }

    /// 8 MiB through 4 KiB rings on both sides (each wraps about 2,000 times), byte-exact.
    @Test func largeTransferThroughSmallRings() async throws {
        let total = 8 * 1024 * 1024
        let small = smallRingOptions()
        try await withLoop { loop in
            let report = Outcome<TransferReport>()
            loop.execute {
                do {
                    let listener = try startEchoServer(on: loop, options: small)
                    loop.connect(host: "127.0.0.1", port: listener.port, options: small) { result in
                        guard case .success(let connection) = result else { return report.fulfil(TransferReport()) }
                        var state = TransferReport()
                        let checker = StreamChecker(seed: 7, count: total)
                        connection.onRead = { connection in
                            state.maxRingCapacity = max(state.maxRingCapacity, connection.inbound.capacity)
                            checker.consume(connection.inbound)
                            if checker.received >= total || checker.mismatchAt != nil { connection.close() }
                        }
                        connection.onClose = { error in
                            state.received = checker.received
                            state.mismatchAt = checker.mismatchAt
                            state.closeError = .some(error)
                            listener.close()
                            report.fulfil(state)
                        }
                        // Write in 64 KiB pieces: several flushes per iteration coalesce.
                        var written = 0
                        checker.expected.withUnsafeBytes { all in
                            while written < total {
                                let chunk = min(65_536, total - written)
                                connection.outbound.writeBytes(UnsafeRawBufferPointer(rebasing: all[written..<(written + chunk)]))
                                connection.flush()
                                written += chunk
                            }
                        }
                    }
                } catch {
                    report.fulfil(TransferReport())
                }
            }
            let result = try #require(await report.wait(timeout: .seconds(60)))
            #expect(result.received == total)
            #expect(result.mismatchAt == nil)
            #expect(result.maxRingCapacity == 4096)
            #expect(result.closeError == .some(nil))
        }
    }

    /// 200 messages flushed one by one in one loop iteration (and from a timer) leave in one
    /// write call each time.
    @Test func flushesInOneIterationCoalesce() async throws {
        try await withLoop { loop in
            let outcome = Outcome<(Int, Int, Int)>()
            loop.execute {
                let received = LoopBound(0, loop: loop)
                guard let listener = try? loop.listen(onAccept: { connection in
                    connection.onRead = { connection in
                        received.value += connection.inbound.readableBytes
                        connection.inbound.consume(connection.inbound.readableBytes)
                    }
                }) else { return outcome.fulfil((-1, -1, -1)) }
                loop.connect(host: "127.0.0.1", port: listener.port) { result in
                    guard case .success(let client) = result else { return outcome.fulfil((-1, -1, -1)) }
                    for index in 0..<200 {
                        client.withOutbound { $0.writeBytes([UInt8(truncatingIfNeeded: index), 0, 1, 2]) }
                    }
                    loop.scheduleTimer(after: .milliseconds(20)) {
                        let afterFirst = client.writeCallCount
                        for _ in 0..<200 { client.write([9, 9]) }
                        loop.scheduleTimer(after: .milliseconds(50)) {
                            outcome.fulfil((afterFirst, client.writeCallCount, received.value))
                            client.abort()
                            listener.close()
                        }
                    }
                }
            }
            let result = try #require(await outcome.wait())
            #expect(result.0 == 1)
            #expect(result.1 == 2)
            #expect(result.2 == 200 * 4 + 200 * 2)
        }
    }

    /// Bytes written through the returned connection before it is established go out once it is.
    @Test func writeBeforeConnected() async throws {
        try await withLoop { loop in
            let reply = Outcome<[UInt8]>()
            loop.execute {
                guard let listener = try? startEchoServer(on: loop) else { return reply.fulfil([]) }
                let connection = loop.connect(host: "127.0.0.1", port: listener.port) { _ in }
                connection.write([4, 2])
                connection.onRead = { connection in
                    guard connection.inbound.readableBytes >= 2 else { return }
                    reply.fulfil(connection.inbound.readBytes(count: 2))
                    connection.abort()
                    listener.close()
                }
            }
            #expect(await reply.wait() == [4, 2])
        }
    }

    @Test func refusedPort() async throws {
        try await withLoop { loop in
            let outcome = Outcome<TransportError?>()
            // A port reserved without a listener (a port that was merely free a moment ago can
            // be taken by a concurrent server under load).
            let refusing = try RefusingPort()
            let port = Int(refusing.port)
            loop.execute {
                loop.connect(host: "127.0.0.1", port: port) { result in
                    if case .failure(let error) = result { outcome.fulfil(error) } else { outcome.fulfil(nil) }
                }
            }
            #expect(await outcome.wait() == .connectionRefused)
            withExtendedLifetime(refusing) {}
        }
    }

    @Test func unresolvableHostName() async throws {
        try await withLoop { loop in
            let outcome = Outcome<TransportError?>()
            loop.execute {
                loop.connect(host: "no-such-host.invalid", port: 1883) { result in
                    if case .failure(let error) = result { outcome.fulfil(error) } else { outcome.fulfil(nil) }
                }
            }
            let error = try #require(await outcome.wait(timeout: .seconds(20)))
            guard case .dnsFailure(let host, _) = error else {
                Issue.record("expected dnsFailure, got \(String(describing: error))")
                return
            }
            #expect(host == "no-such-host.invalid")
        }
    }

    /// Connect timeout on loopback: a listening socket with backlog 0 whose one accept-queue slot
    /// is taken by a connection nobody accepts. Linux then drops further SYNs (the accept queue is
    /// full), so the next connect neither succeeds nor is refused: it waits for the timeout.
    @Test func connectTimeoutAgainstAFullBacklog() async throws {
        let listenFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(listenFD >= 0)
        var fillers: [Int32] = []
        defer {
            for fd in fillers { Glibc.close(fd) }
            Glibc.close(listenFD)
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Bool in
                Glibc.bind(listenFD, pointer, length) == 0 && Glibc.listen(listenFD, 0) == 0
                    && getsockname(listenFD, pointer, &length) == 0
            }
        }
        #expect(bound)
        let port = Int(UInt16(bigEndian: address.sin_port))
        // Fill the accept queue (one slot with backlog 0) with a connection that completes.
        let filler = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        fillers.append(filler)
        let filled = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(filler, $0, length) == 0 }
        }
        #expect(filled)

        try await withLoop { loop in
            let outcome = Outcome<(TransportError?, Double)>()
            loop.execute {
                let start = ContinuousClock.now
                loop.connect(host: "127.0.0.1", port: port, timeout: .milliseconds(300)) { result in
                    if case .failure(let error) = result {
                        outcome.fulfil((error, millisecondsSince(start)))
                    } else {
                        outcome.fulfil((nil, millisecondsSince(start)))
                    }
                }
            }
            let result = try #require(await outcome.wait())
            #expect(result.0 == .connectTimeout)
            #expect(result.1 >= 299)
            #expect(result.1 < 3_000)
        }
    }

    @Test(arguments: ["::1", "[::1]"])
    func ipv6Loopback(literal: String) async throws {
        try await withLoop { loop in
            let reply = Outcome<(String, [UInt8])>()
            loop.execute {
                do {
                    let listener = try startEchoServer(on: loop, host: "::1")
                    loop.connect(host: literal, port: listener.port) { result in
                        guard case .success(let connection) = result else {
                            listener.close()
                            return reply.fulfil(("", []))
                        }
                        connection.onRead = { connection in
                            guard connection.inbound.readableBytes >= 3 else { return }
                            reply.fulfil((connection.remoteAddress, connection.inbound.readBytes(count: 3)))
                            connection.abort()
                            listener.close()
                        }
                        connection.write([1, 2, 3])
                    }
                } catch {
                    reply.fulfil(("", []))
                }
            }
            let result = try #require(await reply.wait())
            #expect(result.1 == [1, 2, 3])
            #expect(result.0.hasPrefix("[::1]:"))
        }
    }

    /// A host name resolved with uv_getaddrinfo (`localhost`).
    @Test func connectByHostName() async throws {
        try await withLoop { loop in
            let outcome = Outcome<String>()
            let expected = Outcome<Int>()
            loop.execute {
                guard let listener = try? startEchoServer(on: loop) else { return outcome.fulfil("") }
                expected.fulfil(listener.port)
                loop.connect(host: "localhost", port: listener.port) { result in
                    listener.close()
                    guard case .success(let connection) = result else { return outcome.fulfil("failed: \(result)") }
                    outcome.fulfil(connection.remoteAddress)
                    connection.abort()
                }
            }
            let port = try #require(await expected.wait())
            #expect(await outcome.wait() == "127.0.0.1:\(port)")
        }
    }

    /// With several addresses, the first refuses and the next one is tried.
    @Test func fallsBackToTheNextAddress() async throws {
        try await withLoop { loop in
            let outcome = Outcome<String>()
            let expected = Outcome<Int>()
            loop.execute {
                guard let listener = try? startEchoServer(on: loop) else { return outcome.fulfil("") }
                expected.fulfil(listener.port)
                loop.connect(addresses: ["::1", "127.0.0.1"], port: listener.port) { result in
                    listener.close()
                    guard case .success(let connection) = result else { return outcome.fulfil("failed: \(result)") }
                    outcome.fulfil(connection.remoteAddress)
                    connection.abort()
                }
            }
            let port = try #require(await expected.wait())
            #expect(await outcome.wait() == "127.0.0.1:\(port)")
        }
    }

    @Test func invalidPortAndCancelledConnect() async throws {
        try await withLoop { loop in
            let invalid = Outcome<TransportError?>()
            let cancelled = Outcome<TransportError?>()
            loop.execute {
                loop.connect(host: "127.0.0.1", port: 70_000) { result in
                    if case .failure(let error) = result { invalid.fulfil(error) } else { invalid.fulfil(nil) }
                }
                let connection = loop.connect(host: "127.0.0.1", port: 1) { result in
                    if case .failure(let error) = result { cancelled.fulfil(error) } else { cancelled.fulfil(nil) }
                }
                connection.close()
            }
            #expect(await invalid.wait() == .io(UVError(UV_EINVAL.rawValue)))
            #expect(await cancelled.wait() == .io(UVError(UV_ECANCELED.rawValue)))
        }
    }
}

/// Options with a 4 KiB receive ring that may not grow.
func smallRingOptions() -> TCPOptions {
    var options = TCPOptions()
    options.receiveBufferInitialCapacity = 4096
    options.receiveBufferMaximumCapacity = 4096
    return options
}
