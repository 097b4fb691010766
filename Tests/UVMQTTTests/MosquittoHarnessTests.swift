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

    /// No orphans: the harness starts every child behind `ChildProcess.guardPrefix` (setpriv's
    /// parent-death signal). Killing the test process itself cannot be a test, so an intermediate
    /// shell plays the parent: it starts a grandchild behind the same prefix and is then killed
    /// with SIGKILL, like a CI timeout kills the test process; the grandchild must die with it.
    @Test("a child started behind the guard dies when its parent is killed (SIGKILL)")
    func parentDeathKillsChild() throws {
        let prefix = ChildProcess.guardPrefix
        try #require(prefix.first?.hasSuffix("setpriv") == true, "setpriv missing: children are only bounded by timeout")
        let directory = NSTemporaryDirectory() + "uvmqtt-pdeathsig-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pidFile = directory + "/grandchild.pid"
        let script = (prefix + ["/bin/sleep", "60"]).joined(separator: " ") + " & echo $! > \(pidFile); exec /bin/sleep 60"
        let parent = try ChildProcess("/bin/sh", ["-c", script], logPath: directory + "/sh.log")
        defer { parent.stop() }
        var grandchild: pid_t?
        let deadline = ContinuousClock.now + .seconds(testTimeout)
        while grandchild == nil && ContinuousClock.now < deadline {
            let text = (try? String(contentsOfFile: pidFile, encoding: .utf8)) ?? ""
            if text.hasSuffix("\n") { grandchild = pid_t(text.dropLast()) }
            if grandchild == nil { usleep(10_000) }
        }
        let pid = try #require(grandchild, "the shell did not start the grandchild: \(parent.log)")
        // The pid is known at fork; setpriv sets the signal and then execs sleep: wait for the
        // exec, or the parent could die before the signal is set (a race of this test only).
        while command(of: pid) != "sleep" && isAlive(pid) && ContinuousClock.now < deadline { usleep(10_000) }
        #expect(command(of: pid) == "sleep")
        #expect(isAlive(pid))
        parent.terminate(signal: SIGKILL)
        let gone = ContinuousClock.now + .seconds(testTimeout)
        while isAlive(pid) && ContinuousClock.now < gone { usleep(10_000) }
        #expect(!isAlive(pid), "the grandchild \(pid) outlived its killed parent")
        if isAlive(pid) { kill(pid, SIGKILL) }
    }

    /// The process's command name (`/proc/<pid>/comm`).
    private func command(of pid: pid_t) -> String? {
        (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Whether `pid` runs (a zombie, dead but not reaped yet, does not count).
    private func isAlive(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let end = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(end, offsetBy: 2)...].first
        return state != "Z" && state != "X"
    }
}
