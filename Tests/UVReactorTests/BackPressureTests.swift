import CLibUV
import RingBuffers
import Testing
@testable import UVReactor

@Suite struct BackPressureTests {
    /// The client leaves received bytes in its 4 KiB ring: the ring fills, the connection stops
    /// reading, memory stays at 4 KiB. The sender's unsent bytes cross the high-water mark
    /// (reported), then drain below the low-water mark once the client consumes (reported).
    @Test func fullRingStopsReadingAndHighWaterMarkReports() async throws {
        let total = 4 * 1024 * 1024
        var serverOptions = TCPOptions()
        serverOptions.highWaterMark = 256 * 1024
        serverOptions.lowWaterMark = 64 * 1024
        let server = serverOptions
        try await withLoop { loop in
            let stalled = Outcome<(Int, Int, Bool)>()
            let finished = Outcome<(Int, Int?, [Bool])>()
            loop.execute {
                let writability = LoopBound([Bool](), loop: loop)
                guard let listener = try? loop.listen(options: server, onAccept: { connection in
                    connection.onWritabilityChanged = { writable in writability.value.append(writable) }
                    connection.onClose = { _ in }
                    connection.write(Pattern.bytes(seed: 3, count: total))
                }) else { return stalled.fulfil((-1, -1, true)) }
                loop.connect(host: "127.0.0.1", port: listener.port, options: smallRingOptions()) { result in
                    guard case .success(let client) = result else { return stalled.fulfil((-1, -1, true)) }
                    client.onRead = { _ in }   // consume nothing: back-pressure
                    loop.scheduleTimer(after: .milliseconds(200)) {
                        stalled.fulfil((client.inbound.readableBytes, client.inbound.capacity, client.isReadingFromSocket))
                        let checker = StreamChecker(seed: 3, count: total)
                        client.onRead = { client in
                            checker.consume(client.inbound)
                            if checker.received >= total { client.close() }
                        }
                        client.onClose = { _ in
                            // Let the server's last write callbacks run before reading the marks.
                            loop.scheduleTimer(after: .milliseconds(20)) {
                                listener.close()
                                finished.fulfil((checker.received, checker.mismatchAt, writability.value))
                            }
                        }
                        client.onRead?(client)   // what is in the full ring
                        client.resumeReading()
                    }
                }
            }
            let stall = try #require(await stalled.wait())
            #expect(stall.0 == 4096, "the ring holds exactly its capacity")
            #expect(stall.1 == 4096, "the ring did not grow")
            #expect(stall.2 == false, "reading stopped while the ring is full")
            let result = try #require(await finished.wait(timeout: .seconds(60)))
            #expect(result.0 == total)
            #expect(result.1 == nil)
            #expect(result.2 == [false, true])
        }
    }

    /// `pauseReading()` keeps bytes in the kernel (the ring stays empty) until `resumeReading()`.
    @Test func pauseAndResumeReading() async throws {
        let total = 256 * 1024
        try await withLoop { loop in
            let paused = Outcome<(Int, Bool)>()
            let done = Outcome<Int>()
            loop.execute {
                guard let listener = try? loop.listen(onAccept: { connection in
                    connection.write(Pattern.bytes(seed: 9, count: total))
                }) else { return done.fulfil(-1) }
                loop.connect(host: "127.0.0.1", port: listener.port) { result in
                    guard case .success(let client) = result else { return done.fulfil(-1) }
                    client.pauseReading()
                    var received = 0
                    client.onRead = { client in
                        received += client.inbound.readableBytes
                        client.inbound.consume(client.inbound.readableBytes)
                        if received == total {
                            client.abort()
                            listener.close()
                            done.fulfil(received)
                        }
                    }
                    loop.scheduleTimer(after: .milliseconds(150)) {
                        paused.fulfil((client.inbound.readableBytes, client.isReadingFromSocket))
                        client.resumeReading()
                    }
                }
            }
            let state = try #require(await paused.wait())
            #expect(state.0 == 0)
            #expect(state.1 == false)
            #expect(await done.wait() == total)
        }
    }

    /// `close()` right after queueing 2 MiB still delivers every byte, then the peer sees the end
    /// of the stream (`closedByPeer`) and the closing side reports nil.
    @Test func gracefulCloseFlushesFirst() async throws {
        let total = 2 * 1024 * 1024
        try await withLoop { loop in
            let serverSide = Outcome<(Int, TransportError?)>()
            let clientSide = Outcome<TransportError?>()
            loop.execute {
                var received = 0
                guard let listener = try? loop.listen(onAccept: { connection in
                    connection.onRead = { connection in
                        received += connection.inbound.readableBytes
                        connection.inbound.consume(connection.inbound.readableBytes)
                    }
                    connection.onClose = { error in serverSide.fulfil((received, error)) }
                }) else { return clientSide.fulfil(.connectTimeout) }
                loop.connect(host: "127.0.0.1", port: listener.port) { result in
                    listener.close()
                    guard case .success(let client) = result else { return clientSide.fulfil(.connectTimeout) }
                    client.onClose = { error in clientSide.fulfil(error) }
                    client.write(Pattern.bytes(seed: 1, count: total))
                    client.close()
                    client.write([1, 2, 3])   // ignored after close
                }
            }
            let client = await clientSide.wait()
            #expect(client == .some(nil), "client closed with \(String(describing: client))")
            let server = try #require(await serverSide.wait())
            #expect(server.0 == total)
            #expect(server.1 == .closedByPeer)
        }
    }

    /// `close()` while the peer is still sending: the closing side keeps reading (and drops the
    /// bytes) until the peer's end of stream, so the peer sees an orderly end, not a reset.
    @Test func gracefulCloseWhilePeerSends() async throws {
        try await withLoop { loop in
            let serverSide = Outcome<TransportError?>()
            let clientSide = Outcome<TransportError?>()
            loop.execute {
                guard let listener = try? loop.listen(onAccept: { connection in
                    connection.write(Pattern.bytes(seed: 5, count: 1024 * 1024))
                    connection.onClose = { error in serverSide.fulfil(error) }
                }) else { return clientSide.fulfil(.connectTimeout) }
                loop.connect(host: "127.0.0.1", port: listener.port) { result in
                    listener.close()
                    guard case .success(let client) = result else { return clientSide.fulfil(.connectTimeout) }
                    client.onClose = { error in clientSide.fulfil(error) }
                    client.onRead = { client in
                        // Close after the first bytes, with most of the megabyte still coming.
                        client.inbound.consume(client.inbound.readableBytes)
                        client.close()
                    }
                }
            }
            #expect(await clientSide.wait() == .some(nil))
            #expect(await serverSide.wait() == .some(.closedByPeer))
        }
    }

    /// A peer that closes with unread bytes sends a reset: reported as `connectionReset`. The
    /// side that aborts reports nil.
    @Test func resetByPeerAndLocalAbort() async throws {
        try await withLoop { loop in
            let clientSide = Outcome<TransportError?>()
            let serverSide = Outcome<TransportError?>()
            loop.execute {
                guard let listener = try? loop.listen(onAccept: { connection in
                    connection.pauseReading()   // leave the client's bytes unread
                    connection.onClose = { error in serverSide.fulfil(error) }
                    loop.scheduleTimer(after: .milliseconds(50)) { connection.abort() }
                }) else { return clientSide.fulfil(.connectTimeout) }
                loop.connect(host: "127.0.0.1", port: listener.port) { result in
                    listener.close()
                    guard case .success(let client) = result else { return clientSide.fulfil(.connectTimeout) }
                    client.onClose = { error in clientSide.fulfil(error) }
                    client.write([UInt8](repeating: 7, count: 1000))
                }
            }
            #expect(await serverSide.wait() == .some(nil))
            #expect(await clientSide.wait() == .some(.connectionReset))
        }
    }

    /// A peer that closes is reported as `closedByPeer`, exactly once.
    @Test func peerCloseIsReportedOnce() async throws {
        try await withLoop { loop in
            let closes = Outcome<[TransportError?]>()
            loop.execute {
                guard let listener = try? loop.listen(onAccept: { connection in connection.abort() }) else {
                    return closes.fulfil([])
                }
                loop.connect(host: "127.0.0.1", port: listener.port) { result in
                    listener.close()
                    guard case .success(let client) = result else { return closes.fulfil([]) }
                    var seen: [TransportError?] = []
                    client.onClose = { error in
                        seen.append(error)
                        client.abort()   // no second report
                        client.close()
                        loop.scheduleTimer(after: .milliseconds(30)) { closes.fulfil(seen) }
                    }
                }
            }
            #expect(await closes.wait() == [.closedByPeer])
        }
    }
}
