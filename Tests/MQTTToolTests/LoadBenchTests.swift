import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import MQTTTestSupport
import Testing

extension MQTTToolSuites {
    /// `mqtt bench conn|pub|sub -c ...` (the many-client form) against mosquitto: bounded runs
    /// (-L, --duration), figures read back from --json.
    @Suite("mqtt bench with many clients", .serialized)
    struct LoadBenchTests {
        func temporaryFile(_ name: String) -> URL {
            FileManager.default.temporaryDirectory.appendingPathComponent("mqtt-\(name)-\(UUID().uuidString).json")
        }

        /// The --json document's summary.
        func summary(_ url: URL) throws -> [String: Any] {
            let object = try JSONSerialization.jsonObject(with: Data(contentsOf: url))
            guard let document = object as? [String: Any], let summary = document["summary"] as? [String: Any] else {
                throw HarnessError("no summary in \(url.path)")
            }
            return summary
        }

        func number(_ dictionary: [String: Any]?, _ key: String) -> Double {
            (dictionary?[key] as? NSNumber)?.doubleValue ?? -1
        }

        /// p50 <= p90 <= p99 <= p99.9 <= max, with `count` samples.
        func expectOrdered(_ latency: [String: Any]?, count: Int, _ what: String) {
            #expect(number(latency, "count") == Double(count), "\(what): \(String(describing: latency))")
            let values = ["p50", "p90", "p99", "p99_9", "max"].map { number(latency, $0) }
            #expect(values[0] > 0, "\(what): \(values)")
            #expect(zip(values, values.dropFirst()).allSatisfy { $0 <= $1 }, "\(what) not ordered: \(values)")
        }

        /// The --plot file is well-formed SVG with a rate and a latency panel; where rsvg-convert
        /// is installed (Debian's librsvg2-bin) it must also render to a PNG.
        func expectRenderable(_ svg: URL) throws {
            let data = try Data(contentsOf: svg)
            let parser = XMLParser(data: data)
            #expect(parser.parse(), "not well-formed: \(String(describing: parser.parserError))")
            let text = String(decoding: data, as: UTF8.self)
            #expect(text.contains("<svg ") && text.contains("message rate") && text.contains("latency per second"))
            #expect(text.components(separatedBy: "<polyline").count - 1 >= 4, "rate + p50/p99/max lines")
            guard let rsvg = try? executablePath("rsvg-convert") else { return }
            let png = svg.deletingPathExtension().appendingPathExtension("png")
            defer { try? FileManager.default.removeItem(at: png) }
            try runTool(rsvg, [svg.path, "-o", png.path])
            let bytes = try [UInt8](Data(contentsOf: png))
            #expect(bytes.count > 1000 && bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]), "rsvg-convert made no PNG")
        }

        @Test("conn -c 50 connects every client and exits 0 with a summary")
        func connectFifty() throws {
            let broker = try MosquittoBroker.start()
            defer { broker.stop() }
            let json = temporaryFile("conn")
            defer { try? FileManager.default.removeItem(at: json) }
            let result = try runMQTT(["bench", "conn", "-c", "50", "-i", "0", "--prefix", "lbconn", "--json", json.path]
                                     + broker.flags, timeout: 30)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdoutText.contains("50 up, 0 failed, 0 lost"), "\(result.stdoutText)")
            #expect(result.stdoutText.contains(": ok"), "\(result.stdoutText)")
            let s = try summary(json)
            #expect(number(s, "connected") == 50)
            #expect(s["ok"] as? Bool == true)
            expectOrdered(s["connect_latency_us"] as? [String: Any], count: 50, "connect latency")
            // Every client id reached the broker, and all left with a DISCONNECT.
            let log = broker.log()
            for n in [0, 17, 49] { #expect(log.contains("as lbconn_conn_\(n) ("), "client \(n) missing") }
            #expect(eventually { broker.log().components(separatedBy: "Received DISCONNECT from lbconn_conn_").count - 1 == 50 })
        }

        @Test("pub and sub -c 4 -L 2000 at QoS 1: all delivered, latency percentiles present and ordered")
        func publishSubscribeLatency() throws {
            let broker = try MosquittoBroker.start()
            defer { broker.stop() }
            let subJSON = temporaryFile("sub")
            let pubJSON = temporaryFile("pub")
            defer {
                try? FileManager.default.removeItem(at: subJSON)
                try? FileManager.default.removeItem(at: pubJSON)
            }
            let common = ["-c", "4", "-t", "lb/%i", "-q", "1", "-L", "2000", "-s", "64", "--latency", "--duration", "30", "-i", "0"]
            let plot = FileManager.default.temporaryDirectory.appendingPathComponent("mqtt-plot-\(UUID().uuidString).svg")
            defer { try? FileManager.default.removeItem(at: plot) }
            let sub = try ToolProcess(["bench", "sub", "--prefix", "lbsub", "--json", subJSON.path, "--plot", plot.path] + common + broker.flags)
            #expect(broker.waitForSubscription(of: "lbsub_sub_", count: 4), "\(sub.stderrText)")
            let pub = try runMQTT(["bench", "pub", "--prefix", "lbpub", "-I", "0", "--json", pubJSON.path] + common + broker.flags,
                                  timeout: 40)
            #expect(pub.status == 0, "\(pub.stderr)\n\(pub.stdoutText)")
            #expect(sub.wait(timeout: 40) == 0, "\(sub.stderrText)\n\(sub.stdoutText)")

            let p = try summary(pubJSON)
            #expect(number(p, "sent") == 2000)
            #expect(number(p, "acked") == 2000)
            #expect(number(p, "errors") == 0)
            expectOrdered(p["ack_latency_us"] as? [String: Any], count: 2000, "publish→PUBACK")
            let s = try summary(subJSON)
            #expect(number(s, "received") == 2000)
            #expect(number(s, "missing") == 0 && number(s, "late") == 0 && number(s, "unstamped") == 0, "\(s)")
            expectOrdered(s["latency_us"] as? [String: Any], count: 2000, "publish→receive")
            // Per publisher: indices 0...3 (-L is one budget for all, so not 500 each), no gap.
            let publishers = (s["publishers"] as? [[String: Any]]) ?? []
            #expect(publishers.map { Int(number($0, "publisher")) } == [0, 1, 2, 3], "\(publishers)")
            #expect(publishers.map { number($0, "received") }.reduce(0, +) == 2000, "\(publishers)")
            #expect(publishers.allSatisfy { number($0, "missing") == 0 && number($0, "late") == 0 }, "\(publishers)")
            #expect(sub.stdoutText.contains("publish→receive p50 "), "\(sub.stdoutText)")
            try expectRenderable(plot)
            // Each publisher sent on its own topic: lb/0 ... lb/3.
            let log = broker.log()
            for n in 0..<4 { #expect(log.contains("Received PUBLISH from lbpub_pub_\(n) (d0, q1, r0, m1, 'lb/\(n)'")) }
        }

        @Test("progress on a non-terminal: one plain line per second, no carriage returns")
        func plainProgressLines() throws {
            let broker = try MosquittoBroker.start()
            defer { broker.stop() }
            // 2 clients x 10 messages/s, 30 in all: about 1.5 s, so at least one full second.
            let result = try runMQTT(["bench", "pub", "-c", "2", "-t", "pl/%i", "-I", "100", "-L", "30", "-s", "8", "-i", "0",
                                      "--duration", "20"] + broker.flags, timeout: 30)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(!result.stderr.contains("\r"))
            #expect(!result.stderr.contains("\u{1B}"))
            let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
            #expect(result.stderr.hasSuffix("\n"))
            #expect(lines.count >= 2, "\(result.stderr)")
            for line in lines {
                #expect(line.hasPrefix("mqtt bench pub: ") && line.contains("connected 2/2") && line.contains("errors 0"), "\(line)")
            }
            #expect(result.stdoutText.contains("sent 30 "), "\(result.stdoutText)")
        }

        @Test("--csv: a header and one row per second that add up to the totals; -R paces the connections")
        func csvSeriesAndConnectRate() throws {
            let broker = try MosquittoBroker.start()
            defer { broker.stop() }
            let csv = FileManager.default.temporaryDirectory.appendingPathComponent("mqtt-series-\(UUID().uuidString).csv")
            defer { try? FileManager.default.removeItem(at: csv) }
            let started = Date()
            // 2 connections at 2/s (the second starts after 0.5 s), then 40 messages at 20/s per client.
            let result = try runMQTT(["bench", "pub", "-c", "2", "-R", "2", "--prefix", "csvp", "-t", "csv/%c", "-I", "50", "-L", "40", "-s", "8",
                                      "--csv", csv.path, "--duration", "20"] + broker.flags, timeout: 30)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(Date().timeIntervalSince(started) >= 0.5)
            let rows = try String(contentsOf: csv, encoding: .utf8).split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false) }
            #expect(rows.first?.joined(separator: ",") == "second,connected,subscribed,sent,received,acked,sent_per_s,received_per_s,acked_per_s,inflight,errors,latency_p50_us,latency_p99_us,latency_max_us")
            let data = rows.dropFirst()
            #expect(data.count >= 2)
            #expect(data.allSatisfy { $0.count == 14 })
            // The per-second counts add up to the last cumulative one, which is -L.
            #expect(data.compactMap { Int($0[6]) }.reduce(0, +) == 40, "\(rows)")
            #expect(Int(data.last?[3] ?? "") == 40)
            // %c: the topic carries the client id.
            #expect(broker.log().contains("'csv/csvp_pub_1'"))
            let log = broker.log()
            if let first = log.range(of: "as csvp_pub_0 ("), let second = log.range(of: "as csvp_pub_1 (") {
                #expect(first.lowerBound < second.lowerBound)
            }
        }

        @Test("-h a,b spreads the clients round-robin over two brokers; -n numbers them from its value; --hold keeps them")
        func hostsAndFirstIndex() throws {
            let first = try MosquittoBroker.start()
            defer { first.stop() }
            // The second broker also listens on the first one's port, on another loopback address.
            let second = try MosquittoBroker.start(MosquittoOptions(extraLines: ["listener \(first.port) 127.0.0.2"]))
            defer { second.stop() }
            let started = Date()
            let result = try runMQTT(["bench", "conn", "-c", "4", "-n", "100", "-i", "0", "--hold", "1", "--prefix", "mh",
                                      "-h", "127.0.0.1,127.0.0.2", "-p", String(first.port)], timeout: 30)
            #expect(result.status == 0, "\(result.stderr)\n\(result.stdoutText)")
            #expect(Date().timeIntervalSince(started) >= 1, "--hold 1")
            let a = first.log(), b = second.log()
            for n in [100, 102] { #expect(a.contains("as mh_conn_\(n) (") && !b.contains("as mh_conn_\(n) ("), "\(n)") }
            for n in [101, 103] { #expect(b.contains("as mh_conn_\(n) (") && !a.contains("as mh_conn_\(n) ("), "\(n)") }
            #expect(!a.contains("mh_conn_0") && !b.contains("mh_conn_0"))
        }

        @Test("TLS: conn with --cafile against a TLS mosquitto")
        func tlsConnections() throws {
            let certs = try TLSFixtures.shared()
            let broker = try MosquittoBroker.start(MosquittoOptions(tls: certs))
            defer { broker.stop() }
            let result = try runMQTT(["bench", "conn", "-c", "5", "-i", "0", "--cafile", certs.caFile, "--prefix", "tlsb"] + broker.flags,
                                     timeout: 30)
            #expect(result.status == 0, "\(result.stderr)\n\(result.stdoutText)")
            #expect(result.stdoutText.contains("5 up, 0 failed"), "\(result.stdoutText)")
            // The wrong CA: every connection fails, with the reason.
            let wrong = try runMQTT(["bench", "conn", "-c", "2", "-i", "0", "--cafile", certs.wrongCAFile] + broker.flags, timeout: 30)
            #expect(wrong.status == 1)
            #expect(wrong.stdoutText.contains("2 × connect failed"), "\(wrong.stdoutText)")
        }

        @Test("bad input for the many-client form: one line, exit 1, before connecting", arguments: [
            (["conn", "-c", "0"], "-c must be at least 1"),
            (["pub", "-c", "2"], "needs a topic"),
            (["pub", "-c", "2", "-t", "a/#"], "invalid topic 'a/#'"),
            (["sub", "-c", "2", "-t", "a/#/b"], "invalid topic filter 'a/#/b'"),
            (["pub", "-c", "2", "-t", "a/%x"], "unknown placeholder '%x'"),
            (["pub", "-c", "2", "-t", "a/%i", "--latency", "-s", "10"], "too small for the --latency stamp"),
            (["conn", "-c", "2", "-V", "5"], "-V 5"),
            (["conn", "-c", "2", "-q", "3"], "QoS 3 out of range"),
            (["conn", "-c", "100000000"], "file descriptors"),
            (["sub", "-c", "1", "-t", "x", "--clock", "sundial"], "--clock sundial"),
            (["conn", "-c", "1", "-i", "5", "-R", "100"], "give -i or -R, not both"),
            (["conn", "-c", "1", "--connect-window=-1"], "--connect-window must not be negative"),
            (["conn", "-c", "1", "--cert", "/nonexistent.pem"], "--cert and --key go together"),
        ] as [([String], String)])
        func badInput(arguments: [String], expected: String) throws {
            let port = try RefusingPort()
            let result = try withExtendedLifetime(port) {
                try runMQTT(["bench"] + arguments + ["-h", "127.0.0.1", "-p", String(port.port)])
            }
            #expect(result.status == 1, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains(expected), "\(arguments): \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(arguments): \(result.stderr)")
        }

        @Test("a broker that goes away: the run reports what it had and exits non-zero")
        func brokerLost() throws {
            let broker = try MosquittoBroker.start()
            defer { broker.stop() }
            let sub = try ToolProcess(["bench", "sub", "-c", "3", "-t", "gone/%i", "-i", "0", "--prefix", "lost", "--duration", "20"]
                                      + broker.flags)
            #expect(broker.waitForSubscription(of: "lost_sub_", count: 3), "\(sub.stderrText)")
            broker.kill()
            #expect(sub.wait(timeout: 15) == 1, "\(sub.stderrText)")
            #expect(sub.stdoutText.contains("ended (no connection left)"), "\(sub.stdoutText)")
            #expect(sub.stdoutText.contains("3 × connection lost"), "\(sub.stdoutText)")
            #expect(sub.stderrText.contains("errors 3 (lost 3)"), "\(sub.stderrText)")
        }
    }
}
