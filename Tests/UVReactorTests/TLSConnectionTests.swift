// TLS through the reactor: `loop.connect(..., transform: TLSEngine(...))` against real peers
// (openssl s_server, mosquitto) on loopback. The engine's own behaviour is tested over blocking
// sockets in TLSEngineServerTests/TLSMosquittoTests; here the subject is the connection: the
// handshake inside connect, the plaintext ring, back-pressure, alerts written after a failure,
// the reason read after a reset, and the connect timeout covering the handshake.
import Foundation
import MQTTTestSupport
import RingBuffers
import Testing
@testable import UVReactor

#if canImport(Glibc)
import Glibc
#endif

/// What one TLS session through the reactor reported (collected on the loop thread).
private struct SessionReport: Sendable {
    /// The connect completion's failure, or nil when the handshake completed.
    var connectError: TransportError?
    /// The negotiated version, read in the connect completion.
    var protocolVersion: String?
    /// Every plaintext byte delivered to `onRead`.
    var received: [UInt8] = []
    /// Largest plaintext ring capacity seen in `onRead`.
    var maxRingCapacity = 0
    /// `onClose`'s argument: `.some(nil)` for a local close, nil when it never ran.
    var closeError: TransportError?? = nil
}

/// How a session behaves once connected.
private struct SessionPlan: Sendable {
    /// Written right after the connect completion reported success.
    var send: [UInt8] = []
    /// Close (gracefully) once this many plaintext bytes arrived; nil: wait for the peer.
    var closeAfter: Int? = nil
    /// Pause reading for a moment each time this many more bytes arrived (back-pressure).
    var pauseEvery: Int? = nil
}

/// Connects to 127.0.0.1:`port` through a new `TLSEngine` for `host` and runs `plan`; returns
/// the report once the connect failed or the connection closed, nil after `timeout`.
private func runSession(on loop: EventLoop, port: UInt16, host: String = "localhost",
                        context: TLSContext, plan: SessionPlan,
                        connectTimeout: Duration = .seconds(10), options: TCPOptions = TCPOptions(),
                        timeout: Duration = .seconds(20),
                        connected: (@Sendable (TCPConnection) -> Void)? = nil) async -> SessionReport? {
    let outcome = Outcome<SessionReport>()
    loop.execute {
        let engine: TLSEngine
        do {
            engine = try TLSEngine(context: context, host: host)
        } catch let error as TransportError {
            return outcome.fulfil(SessionReport(connectError: error))
        } catch {
            return outcome.fulfil(SessionReport(connectError: .tlsFailure("\(error)")))
        }
        var report = SessionReport()
        loop.connect(host: "127.0.0.1", port: Int(port), timeout: connectTimeout, options: options,
                     transform: engine) { result in
            let connection: TCPConnection
            switch result {
            case .failure(let error):
                report.connectError = error
                return outcome.fulfil(report)
            case .success(let established):
                connection = established
            }
            report.protocolVersion = engine.protocolVersion
            var nextPause = plan.pauseEvery ?? Int.max
            connection.onRead = { connection in
                report.maxRingCapacity = max(report.maxRingCapacity, connection.inbound.capacity)
                let ring = connection.inbound
                while !ring.isEmpty {
                    let region = ring.firstReadableRegion
                    report.received.append(contentsOf: region)
                    ring.consume(region.count)
                }
                if let closeAfter = plan.closeAfter, report.received.count >= closeAfter {
                    connection.close()
                } else if let every = plan.pauseEvery, report.received.count >= nextPause {
                    nextPause = report.received.count + every
                    connection.pauseReading()
                    _ = loop.scheduleTimer(after: .milliseconds(2)) {
                        // While paused, the socket is not read (the engine keeps the rest).
                        #expect(!connection.isReadingFromSocket || !connection.isOpen)
                        connection.resumeReading()
                    }
                }
            }
            connection.onClose = { error in
                report.closeError = .some(error)
                outcome.fulfil(report)
            }
            if !plan.send.isEmpty { connection.write(plan.send) }
            connected?(connection)
        }
    }
    return await outcome.wait(timeout: timeout)
}

/// Lines of pseudo-random lowercase letters, each ending in a newline, and what
/// `openssl s_server -rev` answers to them (each line reversed).
private func reversibleLines(count: Int, length: Int, seed: UInt32) -> (send: [UInt8], reply: [UInt8]) {
    var pattern = Pattern(seed: seed)
    var send: [UInt8] = []
    var reply: [UInt8] = []
    send.reserveCapacity(count * (length + 1))
    reply.reserveCapacity(count * (length + 1))
    for _ in 0..<count {
        let line = (0..<length).map { _ in UInt8(ascii: "a") + pattern.next() % 26 }
        send += line + [UInt8(ascii: "\n")]
        reply += line.reversed() + [UInt8(ascii: "\n")]
    }
    return (send, reply)
}

/// Waits (bounded) until `process`'s log contains `text`.
private func logEventuallyContains(_ log: () -> String, _ text: String, timeout: Duration = .seconds(10)) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if log().contains(text) { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return log().contains(text)
}

@Suite("TLS through the reactor's TCP connection", .serialized)
struct TLSConnectionTests {
    let fixtures: TLSFixtures

    init() throws {
        fixtures = try TLSFixtures.shared()
    }

    private var verifying: TLSContext {
        get throws { try TLSContext(configuration: .trusting(caFile: fixtures.caFile)) }
    }

    private func mutualContext() throws -> TLSContext {
        var configuration = TLSConfiguration.trusting(caFile: fixtures.caFile)
        configuration.clientCertificate = .pemFiles(certificate: fixtures.clientCertificate, privateKey: fixtures.clientKey)
        return try TLSContext(configuration: configuration)
    }

    // MARK: openssl s_server

    /// 400 KB each way (40 lines of 10,000 bytes, all written at once), byte-exact.
    @Test func rightCAConnectsAndRoundTripsData() async throws {
        let server = try ReversingServer(fixtures)
        defer { server.stop() }
        let context = try verifying
        let lines = reversibleLines(count: 40, length: 10_000, seed: 11)
        try await withLoop { loop in
            let report = await runSession(on: loop, port: server.port, context: context,
                                          plan: SessionPlan(send: lines.send, closeAfter: lines.reply.count))
            #expect(report?.connectError == nil)
            #expect(report?.protocolVersion == "TLSv1.3")
            #expect(report?.received.count == lines.reply.count)
            #expect(report?.received == lines.reply)
            #expect(report?.closeError == .some(nil))
        }
    }

    /// The same transfer into a plaintext ring of at most 1 KiB, with the consumer pausing reads
    /// every 32 KiB: decrypted bytes wait inside the engine (`plaintextPending`) and are pulled
    /// as the ring drains; nothing is lost or reordered and the ring never grows past its limit.
    @Test func smallPlaintextRingAndPausesKeepEveryByte() async throws {
        let server = try ReversingServer(fixtures)
        defer { server.stop() }
        let context = try verifying
        let lines = reversibleLines(count: 40, length: 10_000, seed: 12)
        var options = TCPOptions()
        options.receiveBufferInitialCapacity = 256
        options.receiveBufferMaximumCapacity = 1024
        try await withLoop { loop in
            let report = await runSession(on: loop, port: server.port, context: context,
                                          plan: SessionPlan(send: lines.send, closeAfter: lines.reply.count,
                                                            pauseEvery: 32 * 1024),
                                          options: options)
            #expect(report?.connectError == nil)
            #expect(report?.received.count == lines.reply.count)
            #expect(report?.received == lines.reply)
            #expect((report?.maxRingCapacity ?? .max) <= 1024)
            #expect(report?.closeError == .some(nil))
        }
    }

    /// Untrusted chain: the connect fails with OpenSSL's verdict, and our `unknown_ca` alert
    /// reached the server (the connection writes the engine's output after the failure).
    @Test func wrongCAFailsAsUntrustedAndTellsTheServer() async throws {
        let server = try ReversingServer(fixtures)
        defer { server.stop() }
        let context = try TLSContext(configuration: .trusting(caFile: fixtures.wrongCAFile))
        try await withLoop { loop in
            let report = await runSession(on: loop, port: server.port, context: context, plan: SessionPlan())
            #expect(report?.connectError == .tlsCertificateUntrusted("unable to get local issuer certificate"))
            #expect(report?.closeError == nil)
        }
        #expect(await logEventuallyContains({ server.process.log }, "alert unknown ca"), "s_server log: \(server.process.log)")
    }

    @Test func wrongHostNameFails() async throws {
        let server = try ReversingServer(fixtures)
        defer { server.stop() }
        let context = try verifying
        try await withLoop { loop in
            let report = await runSession(on: loop, port: server.port, host: "broker.example.com",
                                          context: context, plan: SessionPlan())
            #expect(report?.connectError == .tlsHostnameMismatch("broker.example.com"))
        }
    }

    /// `insecure`: an untrusted CA and the wrong name, and the session still works (encrypted).
    @Test func insecureConnectsDespiteWrongCAAndName() async throws {
        let server = try ReversingServer(fixtures)
        defer { server.stop() }
        var configuration = TLSConfiguration.trusting(caFile: fixtures.wrongCAFile)
        configuration.insecure = true
        let context = try TLSContext(configuration: configuration)
        let lines = reversibleLines(count: 1, length: 100, seed: 13)
        try await withLoop { loop in
            let report = await runSession(on: loop, port: server.port, host: "broker.example.com", context: context,
                                          plan: SessionPlan(send: lines.send, closeAfter: lines.reply.count))
            #expect(report?.connectError == nil)
            #expect(report?.received == lines.reply)
            #expect(report?.closeError == .some(nil))
        }
    }

    @Test func mutualTLSWorksWithClientCertificate() async throws {
        let server = try ReversingServer(fixtures, ["-Verify", "1", "-CAfile", fixtures.caFile])
        defer { server.stop() }
        let context = try mutualContext()
        let lines = reversibleLines(count: 3, length: 5_000, seed: 14)
        try await withLoop { loop in
            let report = await runSession(on: loop, port: server.port, context: context,
                                          plan: SessionPlan(send: lines.send, closeAfter: lines.reply.count))
            #expect(report?.connectError == nil)
            #expect(report?.received == lines.reply)
            #expect(report?.closeError == .some(nil))
        }
    }

    /// The TLS 1.3 trap through the connection: the connect succeeds (the client's handshake
    /// completes) and the refusal arrives as the connection's close reason at the first read.
    @Test func mutualTLSWithoutCertificateReportsPeerRequiredCertificate() async throws {
        let server = try ReversingServer(fixtures, ["-Verify", "1", "-CAfile", fixtures.caFile])
        defer { server.stop() }
        let context = try verifying
        try await withLoop { loop in
            let report = await runSession(on: loop, port: server.port, context: context,
                                          plan: SessionPlan(send: Array("hello\n".utf8)))
            #expect(report?.connectError == nil)
            #expect(report?.protocolVersion == "TLSv1.3")
            #expect(report?.received == [])
            #expect(report?.closeError == .some(.tlsPeerRequiredCertificate))
        }
    }

    // MARK: Endings

    /// The server ends the session with `close_notify` (s_server -rev on the line "CLOSE"): the
    /// reply before it is delivered, then `.closedByPeer`; bytes we sent after it (which the
    /// server never reads, so its close may be a reset) do not hide the reason.
    @Test func serverCloseNotifyMidStreamIsClosedByPeer() async throws {
        let server = try ReversingServer(fixtures)
        defer { server.stop() }
        let context = try verifying
        let lines = reversibleLines(count: 1, length: 2_000, seed: 15)
        try await withLoop { loop in
            let report = await runSession(on: loop, port: server.port, context: context,
                                          plan: SessionPlan(send: lines.send)) { connection in
                let previous = connection.onRead
                var closeSent = false
                connection.onRead = { connection in
                    previous?(connection)
                    guard !closeSent, connection.isOpen else { return }
                    closeSent = true
                    // Its own record (s_server -rev checks one line per record), then more data.
                    connection.write(Array("CLOSE\n".utf8))
                    _ = loop.scheduleTimer(after: .milliseconds(20)) {
                        connection.write(Array(String(repeating: "late line\n", count: 100).utf8))
                    }
                }
            }
            #expect(report?.connectError == nil)
            #expect(report?.received == lines.reply)
            #expect(report?.closeError == .some(.closedByPeer))
        }
    }

    /// The server process dies mid-session (SIGKILL: no close_notify, the kernel closes the
    /// socket): the data before is intact and the connection reports the end exactly once.
    @Test func serverKilledMidStreamEndsTheConnection() async throws {
        let server = try ReversingServer(fixtures)
        defer { server.stop() }
        let context = try verifying
        let lines = reversibleLines(count: 2, length: 3_000, seed: 16)
        let port = server.port
        let pid = server.process.pid
        try await withLoop { loop in
            let gotReply = Outcome<Bool>()
            async let report = runSession(on: loop, port: port, context: context,
                                          plan: SessionPlan(send: lines.send)) { connection in
                let previous = connection.onRead
                var total = 0
                connection.onRead = { connection in
                    total += connection.inbound.readableBytes
                    previous?(connection)
                    if total >= lines.reply.count { gotReply.fulfil(true) }
                }
            }
            #expect(await gotReply.wait() == true)
            kill(pid, SIGKILL)
            let finished = await report
            #expect(finished?.received == lines.reply)
            let endedAsExpected = finished?.closeError == .some(.closedByPeer)
                || finished?.closeError == .some(.connectionReset)
            #expect(endedAsExpected, "close reason: \(String(describing: finished?.closeError))")
        }
    }

    /// The connect timeout covers the handshake: TCP connects (the kernel accepts into the
    /// backlog) and the ClientHello is sent, but no answer ever comes.
    @Test func handshakeTimeoutIsConnectTimeout() async throws {
        let silent = try SilentListener()
        let context = try verifying
        try await withLoop { loop in
            let started = ContinuousClock.now
            let report = await runSession(on: loop, port: silent.port, context: context, plan: SessionPlan(),
                                          connectTimeout: .milliseconds(300))
            let elapsed = millisecondsSince(started)
            #expect(report?.connectError == .connectTimeout)
            #expect(elapsed >= 280 && elapsed < 3_000, "elapsed \(elapsed) ms")
        }
        // The TCP connect had succeeded and the ClientHello went out: a TLS handshake record.
        let sent = silent.acceptAndReadAll() ?? []
        #expect(sent.first == 0x16, "first byte sent: \(String(describing: sent.first))")
    }

    // MARK: mosquitto

    @Test func mosquittoConnectGetsConnack() async throws {
        let broker = try MosquittoBroker.start(MosquittoOptions(tls: fixtures, requireClientCertificate: false, persistence: false))
        defer { broker.stop() }
        let context = try verifying
        try await withLoop { loop in
            let report = await runSession(on: loop, port: broker.port, context: context,
                                          plan: SessionPlan(send: connectPacket(clientID: "tls-connection-test"), closeAfter: 4))
            #expect(report?.connectError == nil)
            #expect(report?.received == connackAccepted)
            #expect(report?.closeError == .some(nil))
        }
        #expect(await logEventuallyContains({ broker.log() }, "tls-connection-test"))
    }

    @Test func mosquittoMutualTLSWithCertificateGetsConnack() async throws {
        let broker = try MosquittoBroker.start(MosquittoOptions(tls: fixtures, requireClientCertificate: true, persistence: false))
        defer { broker.stop() }
        let context = try mutualContext()
        try await withLoop { loop in
            let report = await runSession(on: loop, port: broker.port, context: context,
                                          plan: SessionPlan(send: connectPacket(clientID: "tls-connection-mutual"), closeAfter: 4))
            #expect(report?.connectError == nil)
            #expect(report?.received == connackAccepted)
        }
    }

    /// Without a client certificate, CONNECT written as soon as the connect completes (as the
    /// client does). Ten runs, every one must report the reason. (Measured: through the reactor
    /// the CONNECT leaves in the iteration that completed the handshake, before the broker
    /// refused, so these runs read the alert normally; the reset path is forced by
    /// `mosquittoRefusalAfterResetReportsReason`.)
    @Test func mosquittoMutualTLSWithoutCertificateReportsReason() async throws {
        let broker = try MosquittoBroker.start(MosquittoOptions(tls: fixtures, requireClientCertificate: true, persistence: false))
        defer { broker.stop() }
        let context = try verifying
        try await withLoop { loop in
            for run in 0..<10 {
                let report = await runSession(on: loop, port: broker.port, context: context,
                                              plan: SessionPlan(send: connectPacket(clientID: "tls-refused-\(run)")))
                #expect(report?.connectError == nil, "run \(run)")
                #expect(report?.received == [], "run \(run)")
                #expect(report?.closeError == .some(.tlsPeerRequiredCertificate), "run \(run)")
            }
        }
    }

    /// The reset race made deterministic: reads are paused right after the handshake, so the
    /// broker's alert and close sit unread; the first write after that draws the broker's reset,
    /// the next one fails with EPIPE/ECONNRESET. The connection must read what arrived before
    /// the reset and report the alert's reason, not `.connectionReset` (and must not die of
    /// SIGPIPE). (s_server cannot play this part: it drains the socket until the client closes.)
    @Test func mosquittoRefusalAfterResetReportsReason() async throws {
        let broker = try MosquittoBroker.start(MosquittoOptions(tls: fixtures, requireClientCertificate: true, persistence: false))
        defer { broker.stop() }
        let context = try verifying
        try await withLoop { loop in
            let report = await runSession(on: loop, port: broker.port, context: context, plan: SessionPlan()) { connection in
                writeLateWhilePaused(connection, on: loop)
            }
            #expect(report?.connectError == nil)
            #expect(report?.closeError == .some(.tlsPeerRequiredCertificate))
        }
    }
}

/// Pauses reading, then writes twice with pauses between (200 ms: the server refused and
/// closed; the first write draws its reset; 100 ms later the second write fails).
private func writeLateWhilePaused(_ connection: TCPConnection, on loop: EventLoop) {
    connection.pauseReading()
    _ = loop.scheduleTimer(after: .milliseconds(200)) {
        connection.write(connectPacket(clientID: "late-1"))
        _ = loop.scheduleTimer(after: .milliseconds(100)) {
            connection.write(connectPacket(clientID: "late-2"))
        }
    }
}
