import RingBuffers
import Testing
@testable import UVReactor

/// An actor isolated to the loop that owns a connection and mutates its own state from the
/// connection's callbacks: the shape the MQTT client uses.
actor EchoSession {
    let loop: EventLoop
    nonisolated var unownedExecutor: UnownedSerialExecutor { loop.asUnownedSerialExecutor() }

    private var connection: TCPConnection?
    private var received: [UInt8] = []
    private var waiter: CheckedContinuation<[UInt8], Never>?
    private var expected = 0

    init(loop: EventLoop) { self.loop = loop }

    func connect(port: Int) async -> Bool {
        await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            // A non-Sendable closure formed in the actor's context is isolated to the actor; the
            // connection calls it on the loop thread, which is the actor's executor.
            loop.connect(host: "127.0.0.1", port: port) { result in
                guard case .success(let connection) = result else {
                    continuation.resume(returning: false)
                    return
                }
                self.attach(connection)
                continuation.resume(returning: true)
            }
        }
    }

    private func attach(_ connection: TCPConnection) {
        self.connection = connection
        connection.onRead = { connection in
            self.didRead(connection.inbound)
        }
    }

    private func didRead(_ ring: ByteRing) {
        received += ring.readBytes(count: ring.readableBytes)
        ring.consume(ring.readableBytes)
        if received.count >= expected, let waiter {
            self.waiter = nil
            waiter.resume(returning: received)
        }
    }

    func roundTrip(_ bytes: [UInt8]) async -> [UInt8] {
        expected = received.count + bytes.count
        connection?.write(bytes)
        return await withCheckedContinuation { waiter = $0 }
    }

    func close() {
        connection?.abort()
        connection = nil
    }
}

@Suite struct ActorConnectionTests {
    @Test func actorOnTheLoopDrivesAConnection() async throws {
        try await withLoop { loop in
            let listener = try await loop.submit { try LoopBound(startEchoServer(on: loop), loop: loop) }
            let port = try await loop.submit { listener.value.port }
            let session = EchoSession(loop: loop)
            #expect(await session.connect(port: port))
            #expect(await session.roundTrip([1, 2, 3]) == [1, 2, 3])
            #expect(await session.roundTrip([4, 5]) == [1, 2, 3, 4, 5])
            await session.close()
            try await loop.submit { listener.value.close() }
        }
    }
}
