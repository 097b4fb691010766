import Foundation
import MQTTTestSupport
import Testing

extension MQTTToolSuites {
    /// `mqtt pub/sub` with a server list: repeated `-L`, repeated `-h` with `-p`.
    @Suite("mqtt pub/sub with server lists", .serialized)
    struct ServerListToolTests {
        @Test("sub -L down -L up, pub -h unresolvable -h 127.0.0.1 -p: both reach the running broker")
        func failoverInTheList() throws {
            let down = try MosquittoBroker.start()
            down.stop()
            let up = try MosquittoBroker.start()
            defer { up.stop() }
            let sub = try ToolProcess(["sub", "-L", "mqtt://127.0.0.1:\(down.port)/list/t", "-L", "mqtt://127.0.0.1:\(up.port)/list/t",
                                       "-q", "1", "-c", "-i", "s1", "-C", "1", "-d"])
            guard up.waitForSubscription(of: "s1") else {
                throw HarnessError("subscriber did not subscribe: \(sub.stderrText)")
            }
            let pub = try runMQTT(["pub", "-h", "nowhere.invalid", "-h", "127.0.0.1", "-p", "\(up.port)", "-t", "list/t",
                                   "-m", "listed", "-q", "1", "-i", "p1"])
            #expect(pub.status == 0, "\(pub.stderr)")
            #expect(sub.wait() == 0, "\(sub.stderrText)")
            #expect(sub.stdoutText == "listed\n")
            // The failure of the first server was reported with its address (debug log).
            #expect(sub.stderrText.contains("server=127.0.0.1:\(down.port)"), "\(sub.stderrText)")
        }
    }
}
