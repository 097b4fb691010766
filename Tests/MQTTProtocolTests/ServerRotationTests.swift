import MQTTProtocol
import Testing

@Suite struct ServerRotationTests {
    @Test func passesInOrderAndShuffledOnce() {
        var rotation = ServerRotation(count: 3)
        #expect(rotation.order == [0, 1, 2] && rotation.current == 0 && !rotation.isMidPass)
        #expect(rotation.attemptFailed() == false && rotation.current == 1 && rotation.isMidPass)
        #expect(rotation.attemptFailed() == false && rotation.current == 2)
        #expect(rotation.attemptFailed() == true && rotation.current == 0 && !rotation.isMidPass)
        // A loss moves on and starts a new pass there.
        rotation.connected()
        rotation.connectionLost()
        #expect(rotation.current == 1 && !rotation.isMidPass)
        #expect(rotation.attemptFailed() == false && rotation.current == 2)
        #expect(rotation.attemptFailed() == false && rotation.current == 0)
        #expect(rotation.attemptFailed() == true)
        // Shuffled: a permutation, the same for the same seed, different seeds differ somewhere.
        let orders = (0..<20).map { ServerRotation(count: 5, shuffleSeed: UInt64($0)).order }
        #expect(orders.allSatisfy { $0.sorted() == [0, 1, 2, 3, 4] })
        #expect(ServerRotation(count: 5, shuffleSeed: 7).order == ServerRotation(count: 5, shuffleSeed: 7).order)
        #expect(Set(orders).count > 1)
        #expect(ServerRotation(count: 0).order == [0])
    }

    /// Three servers, reconnect on: the first two fail at once (no wait), the third too: then one
    /// back-off round; the second pass connects on server 1; after a loss, the next server at once.
    @Test func machineTriesTheListAndBacksOffPerPass() throws {
        var h = Harness(reconnect: ReconnectBackoff(initialDelay: .seconds(1), maximumDelay: .seconds(8), multiplier: 2, jitter: 0))
        h.machine.servers = ServerRotation(count: 3)
        try h.connect()
        _ = h.take()
        var tried: [Int] = [h.machine.servers.current]
        var waits: [Duration] = []
        for _ in 0..<4 {
            h.transportFailed(.serverNotFound)
            #expect(h.take().contains(.connectFailed(.serverNotFound, willRetry: true)))
            waits.append(h.advanceToNextAttempt())
            _ = h.take()
            tried.append(h.machine.servers.current)
        }
        #expect(tried == [0, 1, 2, 0, 1])
        #expect(waits == [.zero, .zero, .seconds(1), .zero])
        h.transportConnected()
        h.connack()
        _ = h.take()
        #expect(h.machine.connectionState == .connected && h.machine.servers.current == 1)
        h.transportFailed(.closedByPeer)
        #expect(h.take().contains(.offline(.closedByPeer, willReconnect: true)))
        #expect(h.advanceToNextAttempt() == .zero)
        #expect(h.machine.servers.current == 2)
    }

    /// Without reconnect, a connect still tries every server once, then fails with the last reason.
    @Test func withoutReconnectOnePassThenFail() throws {
        var h = Harness()
        h.machine.servers = ServerRotation(count: 2)
        try h.connect()
        _ = h.take()
        h.transportFailed(.serverNotFound)
        #expect(h.take().contains(.connectFailed(.serverNotFound, willRetry: true)))
        #expect(h.advanceToNextAttempt() == .zero)
        _ = h.take()
        #expect(h.machine.servers.current == 1)
        h.transportFailed(.sendTimeout)
        #expect(h.take() == [.connectFailed(.sendTimeout, willRetry: false)])
        #expect(h.machine.connectionState == .idle)
        // A final failure (an untrusted certificate) stops at once, list or not.
        try h.connect()
        _ = h.take()
        h.transportFailed(.tlsCertificateUntrusted("x"))
        #expect(h.take() == [.connectFailed(.tlsCertificateUntrusted("x"), willRetry: false)])
    }
}
