import Foundation
import MQTTTestSupport
import Testing

/// The harness itself: a broker starts on a free port, accepts, and is gone after stop.
@Suite("Mosquitto harness")
struct MosquittoHarnessTests {
    @Test("starts on a free loopback port and always stops")
    func startStop() throws {
        let broker = try MosquittoBroker.start()
        let port = broker.port
        #expect(broker.isRunning)
        #expect(canConnect(port: port))
        let config = try String(contentsOf: broker.configURL, encoding: .utf8)
        #expect(config.contains("listener \(port) 127.0.0.1"))
        #expect(config.contains("max_inflight_messages 0"))
        broker.stop()
        #expect(!broker.isRunning)
        #expect(!canConnect(port: port))
        #expect(!FileManager.default.fileExists(atPath: broker.directory.path))
    }

    @Test("restart keeps the port")
    func restart() throws {
        let broker = try MosquittoBroker.start()
        defer { broker.stop() }
        try broker.restart()
        #expect(broker.isRunning)
        #expect(canConnect(port: broker.port))
    }

    @Test("password file and TLS listener variants start")
    func variants() throws {
        let certs = try TLSFixtures.shared()
        #expect(FileManager.default.fileExists(atPath: certs.serverCertificate))
        let secured = try MosquittoBroker.start(MosquittoOptions(users: ["alice": "secret"], tls: certs))
        defer { secured.stop() }
        #expect(canConnect(port: secured.port))
        let config = try String(contentsOf: secured.configURL, encoding: .utf8)
        #expect(config.contains("password_file"))
        #expect(config.contains("certfile \(certs.serverCertificate)"))
    }
}
