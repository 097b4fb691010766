import Foundation
import MQTTTestSupport
import Testing

extension MQTTToolSuites {
    /// `mqtt sub` / `mqtt pub` over mosquitto's WebSocket listener.
    @Suite("mqtt pub/sub over WebSocket", .serialized)
    struct WebSocketToolTests {
        @Test("mqtt sub -L ws://host:port/topic and --ws with -h -p, QoS 1")
        func subscribeOverWebSocket() throws {
            let broker = try MosquittoBroker.start(MosquittoOptions(webSockets: true))
            defer { broker.stop() }
            let wsPort = try #require(broker.webSocketPort)
            let sub = try ToolProcess(["sub", "-L", "ws://127.0.0.1:\(wsPort)/ws/t", "-i", "ws-sub", "-q", "1", "-C", "2", "-v"])
            guard broker.waitForSubscription(of: "ws-sub") else {
                throw HarnessError("subscriber did not subscribe: \(sub.stderrText)")
            }
            let pub = try runMQTT(["pub", "--ws", "-h", "127.0.0.1", "-p", "\(wsPort)", "-t", "ws/t", "-m", "one", "-q", "1"])
            #expect(pub.status == 0, "\(pub.stderr)")
            let custom = try runMQTT(["pub", "--ws", "--ws-path", "/anything", "-h", "127.0.0.1", "-p", "\(wsPort)",
                                      "-t", "ws/t", "-m", "two", "-q", "1", "-V", "mqttv31"])
            #expect(custom.status == 0, "\(custom.stderr)")
            #expect(sub.wait() == 0, "\(sub.stderrText)")
            #expect(sub.stdoutText == "ws/t one\nws/t two\n")

            let bad = try runMQTT(["pub", "--ws-path", "/x", "-h", "127.0.0.1", "-p", "\(broker.port)", "-t", "t", "-m", "x"])
            #expect(bad.status != 0)
            #expect(bad.stderr.contains("--ws-path needs --ws"), "\(bad.stderr)")
        }
    }
}
