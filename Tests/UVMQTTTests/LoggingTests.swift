import Logging
import MQTTTestSupport
import Testing
import MQTTProtocol
@testable import UVMQTT
import UVReactor

/// A log handler that keeps what it receives.
struct RecordingLogHandler: LogHandler {
    let records: Locked<[(Logger.Level, String, Logger.Metadata)]>
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        for (k, v) in event.metadata ?? [:] { merged[k] = v }
        records.withLock { $0.append((event.level, "\(event.message)", merged)) }
    }
}

@Suite("Logging")
struct LoggingTests {
    @Test("the client logs through the Logger it is given, with its id in the metadata")
    func usesTheGivenLogger() async throws {
        try await withFakeBroker { broker, loop in
            let records = Locked<[(Logger.Level, String, Logger.Metadata)]>([])
            let logger = Logger(label: "test") { _ in RecordingLogHandler(records: records) }
            let client = MQTTClient(options: MQTTClientOptions(clientID: "logged"), eventLoop: loop, logger: logger)
            try await withDeadline(testTimeout) { try await client.connect(to: "127.0.0.1", port: broker.port) }
            await client.disconnect()
            let connected = records.withLock { $0.first { $0.1 == "connected" } }
            #expect(connected != nil)
            #expect(connected?.2["mqtt.client"] == "logged")
        }
    }
}

@Suite("Reasons")
struct ReasonTests {
    @Test("every failure maps to the enum case with its NodeMCU number")
    func reasonsMatchCodes() {
        let failures: [MQTTConnectionFailure] = [
            .serverNotFound, .notConnAck(.publish), .dnsFailure(host: "h"), .connAckTimeout, .sendTimeout,
            .refused(.unacceptableProtocolVersion), .refused(.identifierRejected), .refused(.serverUnavailable),
            .refused(.badUsernameOrPassword), .refused(.notAuthorized), .transport("x"), .closedByPeer,
            .protocolError(.malformedRemainingLength), .keepAliveTimeout, .tlsHandshakeFailed("x"),
            .tlsCertificateUntrusted("x"), .tlsHostnameMismatch("x"), .tlsClientCertificateRejected("x"), .closedByUser,
        ]
        #expect(failures.map(\.reason.rawValue) == failures.map(\.nodeMCUReasonCode))
        #expect(Set(failures.map(\.reason)) == Set(MQTTConnectReason.allCases))
        #expect(MQTTConnectReason.serverNotFound.rawValue == -5 && MQTTConnectReason.refusedNotAuthorized.rawValue == 5)
    }
}
