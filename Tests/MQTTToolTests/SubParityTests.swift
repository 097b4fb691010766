import Foundation
import MQTTTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

extension MQTTToolSuites {
    /// `mqtt sub` behaves as mosquitto_sub where issue 10 found it did not: large messages,
    /// refused filters, the order of subscriptions, and the QoS 2 handshake at a count exit.
    @Suite("mqtt sub parity with mosquitto_sub (issue 10)", .serialized)
    struct SubParityTests {
        /// Starts `mqtt sub ... -i id` and waits until the broker sent `subacks` SUBACKs to it.
        func startSubscriber(_ broker: MosquittoBroker, id: String, subacks: Int = 1, _ arguments: [String]) throws -> ToolProcess {
            let sub = try ToolProcess(["sub"] + broker.flags + ["-i", id] + arguments)
            guard broker.waitForSubscription(of: id, count: subacks) else {
                throw HarnessError("subscriber \(id) did not subscribe: \(sub.stderrText)")
            }
            return sub
        }

        /// Pseudo-random bytes (every value, no pattern a short read could fake).
        func payload(_ count: Int) -> [UInt8] {
            var state: UInt64 = 0x9E37_79B9_7F4A_7C15
            return (0..<count).map { _ in
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return UInt8(truncatingIfNeeded: state >> 33)
            }
        }

        @Test("1 MiB + 1 and 8 MiB payloads (over the library's 1 MiB default) print byte-exact with -C 1",
              arguments: [(1 << 20) + 1, 8 << 20])
        func largePayload(size: Int) throws {
            let broker = try MosquittoBroker.start()
            defer { broker.stop() }
            let bytes = payload(size)
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("mqtt-large-\(UUID().uuidString)")
            try Data(bytes).write(to: file)
            defer { try? FileManager.default.removeItem(at: file) }
            let sub = try startSubscriber(broker, id: "large-sub", ["-t", "large", "-C", "1", "-N", "-q", "1"])
            let pub = try runMQTT(["pub"] + broker.flags + ["-t", "large", "-f", file.path, "-q", "1"], timeout: 30)
            #expect(pub.status == 0, "\(pub.stderr)")
            #expect(sub.wait(timeout: 30) == 0, "\(sub.stderrText)")
            let out = sub.stdout
            #expect(out.count == size)
            #expect(out == bytes, "payload differs")
            #expect(sub.stderrText.isEmpty, "\(sub.stderrText)")
        }

        /// A broker that refuses subscriptions to `denied` and `denied2` (SUBACK 0x80): mosquitto's
        /// ACL file filters deliveries but grants every SUBSCRIBE, so this uses the dynamic
        /// security plugin (shipped with Debian's mosquitto package) with an anonymous group.
        func refusingBroker() throws -> MosquittoBroker {
            let candidates = ["/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
                              "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
                              "/usr/lib/mosquitto_dynamic_security.so", "/usr/local/lib/mosquitto_dynamic_security.so"]
            guard let plugin = candidates.first(where: { access($0, R_OK) == 0 }) else {
                throw HarnessError("mosquitto_dynamic_security.so not found (Debian's mosquitto package ships it)")
            }
            let config = FileManager.default.temporaryDirectory.appendingPathComponent("mqtt-dynsec-\(UUID().uuidString).json")
            try Data("""
                {"defaultACLAccess": {"publishClientSend": true, "publishClientReceive": true, "subscribe": true, "unsubscribe": true},
                 "clients": [], "anonymousGroup": "anonymous",
                 "groups": [{"groupname": "anonymous", "roles": [{"rolename": "limited"}]}],
                 "roles": [{"rolename": "limited", "acls": [
                   {"acltype": "subscribeLiteral", "topic": "denied", "priority": 0, "allow": false},
                   {"acltype": "subscribeLiteral", "topic": "denied2", "priority": 0, "allow": false}]}]}
                """.utf8).write(to: config)
            return try MosquittoBroker.start(MosquittoOptions(extraLines: [
                "plugin \(plugin)", "plugin_opt_config_file \(config.path)",
            ]))
        }

        @Test("-t allowed -t denied: a warning for the refused filter, messages on the granted one, exit 0")
        func oneFilterRefused() throws {
            let broker = try refusingBroker()
            defer { broker.stop() }
            let sub = try startSubscriber(broker, id: "acl-sub", subacks: 2, ["-t", "allowed", "-t", "denied", "-C", "1", "-v"])
            #expect(eventually { sub.stderrText.contains("'denied' refused") }, "\(sub.stderrText)")
            #expect(sub.child.isRunning, "it must keep going: \(sub.stderrText)")
            #expect(try runMQTT(["pub"] + broker.flags + ["-t", "allowed", "-m", "through"]).status == 0)
            #expect(sub.wait() == 0, "\(sub.stderrText)")
            #expect(sub.stdoutText == "allowed through\n")
            #expect(sub.stderrText == "Warning: subscription to 'denied' refused by the broker (SUBACK 0x80)\n")
        }

        @Test("every filter refused: mosquitto_sub's 'All subscription requests were denied.' and its exit status 0")
        func allFiltersRefused() throws {
            let broker = try refusingBroker()
            defer { broker.stop() }
            let started = Date()
            let result = try runMQTT(["sub"] + broker.flags + ["-i", "acl-none", "-t", "denied", "-t", "denied2", "-C", "1"])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stderr.contains("'denied' refused") && result.stderr.contains("'denied2' refused"), "\(result.stderr)")
            #expect(result.stderr.hasSuffix("All subscription requests were denied.\n"), "\(result.stderr)")
            #expect(Date().timeIntervalSince(started) < 5)
            // It ended with a DISCONNECT, as mosquitto_sub does.
            #expect(eventually { broker.log().contains("Received DISCONNECT from acl-none") }, "\(broker.log())")
        }

        @Test("filters are subscribed in the order of the -t flags (broker log)")
        func subscriptionOrder() throws {
            let broker = try MosquittoBroker.start()
            defer { broker.stop() }
            let filters = ["zz/last", "aa/first", "mm/#", "bb/+/x"]
            let sub = try startSubscriber(broker, id: "order-sub", subacks: filters.count, filters.flatMap { ["-t", $0] } + ["-W", "5"])
            defer { sub.kill() }
            // mosquitto logs "Received SUBSCRIBE from ID" and then "\tFILTER (QoS n)" per filter.
            var seen: [String] = []
            var inSubscribe = false
            for line in broker.log().split(separator: "\n") {
                if line.contains("Received SUBSCRIBE from order-sub") {
                    inSubscribe = true
                } else if inSubscribe, let tab = line.firstIndex(of: "\t") {
                    let entry = line[line.index(after: tab)...]
                    seen.append(String(entry.split(separator: " ").first ?? ""))
                } else if line.contains("Received ") || line.contains("Sending ") {
                    inSubscribe = false
                }
            }
            #expect(seen == filters, "\(broker.log())")
        }

        /// Before `close(completion:)` drained acknowledgements, the DISCONNECT went out right
        /// after the message was printed and the PUBCOMP never did (broker log on 2026-12-04:
        /// `Received PUBREC from q2-sub`, `Sending PUBREL to q2-sub`, `Received DISCONNECT from
        /// q2-sub`).
        @Test("-q 2 -C 1 completes the QoS 2 handshake (PUBCOMP) before DISCONNECT")
        func qos2HandshakeBeforeDisconnect() throws {
            let broker = try MosquittoBroker.start()
            defer { broker.stop() }
            let sub = try startSubscriber(broker, id: "q2-sub", ["-t", "q2", "-q", "2", "-C", "1"])
            #expect(try runMQTT(["pub"] + broker.flags + ["-t", "q2", "-m", "exactly once", "-q", "2"]).status == 0)
            #expect(sub.wait() == 0, "\(sub.stderrText)")
            #expect(sub.stdoutText == "exactly once\n")
            #expect(eventually { broker.log().contains("Received DISCONNECT from q2-sub") }, "\(broker.log())")
            let log = broker.log()
            let pubcomp = log.range(of: "Received PUBCOMP from q2-sub")
            let disconnect = log.range(of: "Received DISCONNECT from q2-sub")
            #expect(pubcomp != nil, "no PUBCOMP from the subscriber: \(log)")
            if let pubcomp, let disconnect { #expect(pubcomp.lowerBound < disconnect.lowerBound, "\(log)") }
        }
    }
}
