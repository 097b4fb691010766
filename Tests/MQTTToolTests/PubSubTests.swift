import Foundation
import MQTTTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

extension MQTTToolSuites {
    /// `mqtt pub` / `mqtt sub` against a real mosquitto: one test per flag group.
    @Suite("mqtt pub/sub against mosquitto", .serialized)
    struct PubSubTests {
        /// Starts `mqtt sub ... -i id`, waits until the broker answered its SUBSCRIBE.
        func startSubscriber(_ broker: MosquittoBroker, id: String, _ arguments: [String]) throws -> ToolProcess {
            let sub = try ToolProcess(["sub"] + broker.flags + ["-i", id] + arguments)
            guard broker.waitForSubscription(of: id) else {
                throw HarnessError("subscriber \(id) did not subscribe: \(sub.stderrText)")
            }
            return sub
        }

        @Test("round trip -t -m -v -C, QoS 0, 1 and 2")
        func roundTripQoS() throws {
            let broker = try MosquittoBroker.start()
            defer { broker.stop() }
            for qos in 0...2 {
                let sub = try startSubscriber(broker, id: "sub-q\(qos)", ["-t", "rt/#", "-v", "-C", "1", "-q", "\(qos)"])
                let pub = try runMQTT(["pub"] + broker.flags + ["-t", "rt/q\(qos)", "-m", "hello \(qos)", "-q", "\(qos)"])
                #expect(pub.status == 0, "\(pub.stderr)")
                #expect(sub.wait() == 0, "\(sub.stderrText)")
                #expect(sub.stdoutText == "rt/q\(qos) hello \(qos)\n")
            }
        }

        @Test("connection flags -i -k -V -u -P and -L, refused credentials exit with the CONNACK code")
        func connectionFlags() throws {
            let broker = try MosquittoBroker.start(MosquittoOptions(users: ["alice": "secret"]))
            defer { broker.stop() }
            let sub = try startSubscriber(broker, id: "flags-sub", ["-u", "alice", "-P", "secret", "-V", "mqttv31", "-k", "5",
                                                                  "-t", "f/t", "-C", "2"])
            let pub = try runMQTT(["pub"] + broker.flags + ["-i", "flags-pub", "-u", "alice", "-P", "secret", "-t", "f/t", "-m", "one"])
            #expect(pub.status == 0, "\(pub.stderr)")
            let url = try runMQTT(["pub", "-L", "mqtt://alice:secret@127.0.0.1:\(broker.port)/f/t", "-m", "two"])
            #expect(url.status == 0, "\(url.stderr)")
            #expect(sub.wait() == 0)
            #expect(sub.stdoutText == "one\ntwo\n")
            // The broker saw the 3.1 protocol name, the keepalive and the client ids.
            let log = broker.log()
            // mosquitto logs "as ID (pN, cN, kN, u'USER')": p1 = MQTT 3.1, p2 = 3.1.1.
            #expect(log.contains("as flags-sub (p1, c1, k5, u'alice')"), "\(log)")
            #expect(log.contains("as flags-pub (p2, c1, k60, u'alice')"), "\(log)")

            let wrong = try runMQTT(["pub"] + broker.flags + ["-u", "alice", "-P", "nope", "-t", "f/t", "-m", "x"])
            // mosquitto 2.0 answers a wrong password with CONNACK 5 (not authorised).
            #expect(wrong.status == 5)
            #expect(wrong.stderr.contains("refused"), "\(wrong.stderr)")
            #expect(wrong.stderr.split(separator: "\n").count == 1, "one line: \(wrong.stderr)")
            let anonymous = try runMQTT(["sub"] + broker.flags + ["-t", "f/t", "-C", "1"])
            #expect(anonymous.status == 5, "\(anonymous.stderr)")
            #expect(anonymous.stderr.contains("refused"))
        }

        @Test("binary payload via -f arrives byte for byte (-N)")
        func binaryFile() throws {
            let broker = try MosquittoBroker.start()
            defer { broker.stop() }
            var bytes = [UInt8]()
            for i in 0..<4096 { bytes.append(UInt8(truncatingIfNeeded: i &* 7 &+ i >> 8)) }
            bytes += [0, 10, 13, 0, 255]
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("mqtt-bin-\(UUID().uuidString)")
            try Data(bytes).write(to: file)
            defer { try? FileManager.default.removeItem(at: file) }
            let sub = try startSubscriber(broker, id: "bin-sub", ["-t", "bin", "-C", "1", "-N"])
            let pub = try runMQTT(["pub"] + broker.flags + ["-t", "bin", "-f", file.path, "-q", "1"])
            #expect(pub.status == 0, "\(pub.stderr)")
            #expect(sub.wait() == 0)
            #expect(sub.stdout == bytes)
        }

        @Test("message sources -s, -l, -n and --repeat")
        func messageSources() throws {
            let broker = try MosquittoBroker.start()
            defer { broker.stop() }
            let sub = try startSubscriber(broker, id: "src-sub", ["-t", "src", "-C", "7", "-q", "1"])
            #expect(try runMQTT(["pub"] + broker.flags + ["-t", "src", "-q", "1", "-s"], stdin: Array("whole\ninput".utf8)).status == 0)
            #expect(try runMQTT(["pub"] + broker.flags + ["-t", "src", "-q", "1", "-l"], stdin: Array("l1\nl2\n".utf8)).status == 0)
            #expect(try runMQTT(["pub"] + broker.flags + ["-t", "src", "-q", "1", "-n"]).status == 0)
            #expect(try runMQTT(["pub"] + broker.flags + ["-t", "src", "-q", "1", "-m", "r", "--repeat", "3"]).status == 0)
            #expect(sub.wait() == 0)
            #expect(sub.stdoutText == "whole\ninput\nl1\nl2\n\nr\nr\nr\n")
        }

        @Test("retained message with -r is printed, and skipped with -R")
        func retained() throws {
            let broker = try MosquittoBroker.start()
            defer { broker.stop() }
            #expect(try runMQTT(["pub"] + broker.flags + ["-t", "ret/a", "-m", "kept", "-r", "-q", "1"]).status == 0)
            let first = try runMQTT(["sub"] + broker.flags + ["-t", "ret/#", "-C", "1", "-v"])
            #expect(first.status == 0)
            #expect(first.stdoutText == "ret/a kept\n")
            // -R: the stale retained message is skipped; a live one is printed.
            let sub = try startSubscriber(broker, id: "ret-sub", ["-t", "ret/#", "-C", "1", "-R", "-v"])
            #expect(try runMQTT(["pub"] + broker.flags + ["-t", "ret/b", "-m", "live"]).status == 0)
            #expect(sub.wait() == 0)
            #expect(sub.stdoutText == "ret/b live\n")
        }

        @Test("-W exits with status 27 after the timeout; -C exits 0 after the count")
        func countAndTimeout() throws {
            let broker = try MosquittoBroker.start()
            defer { broker.stop() }
            let started = Date()
            let timedOut = try runMQTT(["sub"] + broker.flags + ["-t", "none", "-W", "1"])
            let elapsed = Date().timeIntervalSince(started)
            #expect(timedOut.status == 27)
            #expect(timedOut.stderr.contains("Timed out"))
            #expect(elapsed >= 1 && elapsed < 5)
            let sub = try startSubscriber(broker, id: "count-sub", ["-t", "c", "-C", "2", "-W", "10"])
            #expect(try runMQTT(["pub"] + broker.flags + ["-t", "c", "-m", "x", "--repeat", "3", "-q", "1"]).status == 0)
            #expect(sub.wait() == 0)
            #expect(sub.stdoutText == "x\nx\n")
        }

        @Test("will via --will-* is published when the client is killed")
        func willOnAbruptKill() throws {
            let broker = try MosquittoBroker.start()
            defer { broker.stop() }
            let watcher = try startSubscriber(broker, id: "will-watcher", ["-t", "wills/#", "-v", "-C", "1"])
            let victim = try startSubscriber(broker, id: "will-victim", ["-t", "x", "--will-topic", "wills/victim",
                                                                        "--will-payload", "gone", "--will-qos", "1"])
            victim.kill()
            #expect(watcher.wait() == 0, "\(watcher.stderrText)")
            #expect(watcher.stdoutText == "wills/victim gone\n")
            // A clean exit (DISCONNECT) drops the will.
            let second = try startSubscriber(broker, id: "will-watcher-2", ["-t", "wills/q", "-W", "2"])
            let quiet = try runMQTT(["sub"] + broker.flags + ["-i", "will-quiet", "-t", "x", "--will-topic", "wills/q",
                                                              "--will-payload", "no", "-W", "1"])
            #expect(quiet.status == 27)
            #expect(second.wait() == 27)
            #expect(second.stdoutText == "", "will of a clean exit must not be sent")
        }

        @Test("-c keeps the session, -U unsubscribes")
        func persistentSessionAndUnsubscribe() throws {
            let broker = try MosquittoBroker.start()
            defer { broker.stop() }
            let first = try runMQTT(["sub"] + broker.flags + ["-i", "keep", "-c", "-q", "1", "-t", "p/t", "-W", "1"])
            #expect(first.status == 27)
            #expect(try runMQTT(["pub"] + broker.flags + ["-t", "p/t", "-m", "queued", "-q", "1"]).status == 0)
            let second = try runMQTT(["sub"] + broker.flags + ["-i", "keep", "-c", "-q", "1", "-t", "p/t", "-C", "1", "-W", "5"])
            #expect(second.status == 0)
            #expect(second.stdoutText == "queued\n")
            let unsubscribe = try runMQTT(["sub"] + broker.flags + ["-i", "keep", "-c", "-U", "p/t"])
            #expect(unsubscribe.status == 0, "\(unsubscribe.stderr)")
            #expect(try runMQTT(["pub"] + broker.flags + ["-t", "p/t", "-m", "after", "-q", "1"]).status == 0)
            let third = try runMQTT(["sub"] + broker.flags + ["-i", "keep", "-c", "-q", "1", "-t", "other", "-W", "1"])
            #expect(third.status == 27)
            #expect(third.stdoutText == "")
        }

        @Test("-d prints a packet trace on stderr")
        func debugTrace() throws {
            let broker = try MosquittoBroker.start()
            defer { broker.stop() }
            let pub = try runMQTT(["pub"] + broker.flags + ["-d", "-t", "d/t", "-m", "x", "-q", "1"])
            #expect(pub.status == 0)
            for line in ["sending CONNECT", "received CONNACK", "sending PUBLISH", "received PUBACK", "sending DISCONNECT"] {
                #expect(pub.stderr.contains(line), "missing '\(line)' in \(pub.stderr)")
            }
        }
    }
}
