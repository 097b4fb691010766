import Foundation
import MQTTTestSupport
import Testing

extension MQTTToolSuites {
    /// `mqtt bench` through mosquitto: the driver contract's lines and exit statuses.
    @Suite("mqtt bench driver contract", .serialized)
    struct BenchCommandTests {
        @Test("sub prints READY, pub and sub finish with RESULT ... status=ok", arguments: [0, 1])
        func pubThroughMosquitto(qos: Int) throws {
            let broker = try MosquittoBroker.start()
            defer { broker.stop() }
            let n = 2_000
            let sub = try ToolProcess(["bench", "sub", "-h", "127.0.0.1", "-p", String(broker.port), "-n", String(n), "-s", "16", "-q", String(qos)],
                                      environment: ["BENCH_TIMEOUT": "20"])
            #expect(eventually(within: .seconds(5)) { sub.stdoutText.hasPrefix("READY\n") }, "\(sub.stderrText)")
            let pub = try runMQTT(["bench", "pub", "-h", "127.0.0.1", "-p", String(broker.port), "-n", String(n), "-s", "16",
                                   "-q", String(qos)], timeout: 20, environment: ["BENCH_TIMEOUT": "20"])
            #expect(pub.status == 0, "\(pub.stderr)")
            let pubResult = pub.stdoutText.split(separator: "\n").last.map(String.init) ?? ""
            #expect(pubResult.hasPrefix("RESULT lib=swift-uv-mqtt mode=pub qos=\(qos) payload=16 n=\(n) count=\(n) "), "\(pubResult)")
            #expect(pubResult.hasSuffix(" status=ok"))
            #expect(sub.wait(timeout: 20) == 0, "\(sub.stderrText)")
            let subResult = sub.stdoutText.split(separator: "\n").last.map(String.init) ?? ""
            #expect(subResult.hasPrefix("RESULT lib=swift-uv-mqtt mode=sub qos=\(qos) payload=16 n=\(n) count="), "\(subResult)")
            #expect(subResult.hasSuffix(" status=ok"))
        }

        @Test("a non-loopback host is refused with exit 2; an idle sub stops with status=idle or timeout")
        func limits() throws {
            let refused = try runMQTT(["bench", "pub", "-h", "10.1.2.3", "-p", "1883", "-n", "1"])
            #expect(refused.status == 2)
            #expect(refused.stderr.contains("non-loopback"))
            let broker = try MosquittoBroker.start()
            defer { broker.stop() }
            let started = Date()
            let idle = try runMQTT(["bench", "sub", "-h", "127.0.0.1", "-p", String(broker.port), "-n", "10"], timeout: 10,
                                   environment: ["BENCH_TIMEOUT": "1"])
            #expect(idle.status == 1)
            #expect(idle.stdoutText.contains("status=timeout"), "\(idle.stdoutText)")
            #expect(Date().timeIntervalSince(started) < 6)
        }
    }
}
