// Child processes for tests (mosquitto, openssl s_server, openssl and mosquitto_passwd runs),
// shared by every test target through the `MQTTTestSupport` module.
//
// No orphans: every child is started as `setpriv --pdeathsig KILL -- <executable> <arguments>`
// (util-linux; `setpriv` sets PR_SET_PDEATHSIG and then execs the program, so the pid is the
// program's own). The kernel sends SIGKILL to the child when its parent *thread* ends, which
// includes the test process being killed (SIGKILL, a CI timeout). Because the parent is a
// thread, not the process, every spawn runs on one dedicated thread that lives as long as the
// process (`SpawnThread`): Swift concurrency and dispatch worker threads come and go, and a child
// spawned from one would be killed when that worker retires mid-test. A setuid program would
// clear the signal; none of ours is one (mosquitto runs with `user root` as root, so it does not
// change its credentials either). Where `setpriv` is missing the child runs under
// `timeout -s KILL 900` instead: it cannot outlive the test process by more than 15 minutes.
public import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A failure of the test harness itself (not of the code under test).
public struct HarnessError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The absolute path of a command found in PATH or the usual system directories.
///
/// - Throws: ``HarnessError`` when it is not installed.
public func executablePath(_ name: String) throws -> String {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
    let directories = path.split(separator: ":").map(String.init)
        + ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin", "/bin", "/sbin"]
    for directory in directories {
        let candidate = directory + "/" + name
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    throw HarnessError("\(name) not found (install it: make deps)")
}

/// A process started by a test. ``stop()`` ends it (SIGTERM, then SIGKILL, bounded); it is
/// killed when the object goes away, and by the kernel when the test process dies (see the file
/// comment: parent-death signal).
///
/// Spawned with `posix_spawn`, a cleared signal mask and default dispositions: a child inherits
/// the spawning thread's mask, and a server that blocks SIGTERM would not stop. Reaped with
/// `waitpid` (Foundation's `Process` notices an exit only late on Linux).
public final class ChildProcess: @unchecked Sendable {
    /// The process id (the program's own: `setpriv` execs it).
    public let pid: pid_t
    /// Where stdout and stderr go.
    public let logPath: String
    /// The executable's file name, for messages.
    public let name: String
    private let lock = NSLock()
    private var exitStatus: Int32?

    /// Starts `executable` with `arguments`, stdout and stderr into `logPath`, stdin from
    /// /dev/null (the working directory is inherited: pass absolute paths).
    ///
    /// - Parameters:
    ///   - append: Append to `logPath` (a restarted server keeps its earlier log)
    ///     instead of truncating it.
    ///   - errorPath: A file of its own for stderr (truncated or appended like `logPath`);
    ///     nil sends stderr into `logPath` too.
    ///   - inputPath: The file read as stdin.
    ///   - environment: Variables set (or replaced) on top of the test process's environment.
    /// - Throws: ``HarnessError`` when the spawn fails.
    public init(_ executable: String, _ arguments: [String], logPath: String, append: Bool = false,
                errorPath: String? = nil, inputPath: String = "/dev/null", environment: [String: String] = [:]) throws {
        self.logPath = logPath
        self.name = String(executable.split(separator: "/").last ?? Substring(executable))
        let command = Self.guardPrefix + [executable] + arguments
        let result = SpawnThread.shared.run { () -> Result<pid_t, HarnessError> in
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            let outputFlags = O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC)
            posix_spawn_file_actions_addopen(&actions, 0, inputPath, O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, logPath, outputFlags, 0o644)
            if let errorPath {
                posix_spawn_file_actions_addopen(&actions, 2, errorPath, outputFlags, 0o644)
            } else {
                posix_spawn_file_actions_adddup2(&actions, 1, 2)
            }

            var attributes = posix_spawnattr_t()
            posix_spawnattr_init(&attributes)
            defer { posix_spawnattr_destroy(&attributes) }
            var emptyMask = sigset_t()
            sigemptyset(&emptyMask)
            var defaults = sigset_t()
            sigemptyset(&defaults)
            for signal in [SIGTERM, SIGINT, SIGPIPE, SIGHUP] { sigaddset(&defaults, signal) }
            posix_spawnattr_setsigmask(&attributes, &emptyMask)
            posix_spawnattr_setsigdefault(&attributes, &defaults)
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

            let argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
            defer { for pointer in argv { free(pointer) } }
            let envp: [UnsafeMutablePointer<CChar>?] = environment.isEmpty ? [] :
                ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
                    .map { strdup("\($0.key)=\($0.value)") } + [nil]
            defer { for pointer in envp { free(pointer) } }
            var pid: pid_t = 0
            let status = environment.isEmpty
                ? posix_spawn(&pid, command[0], &actions, &attributes, argv, environ)
                : posix_spawn(&pid, command[0], &actions, &attributes, argv, envp)
            guard status == 0 else { return .failure(HarnessError("posix_spawn \(executable): error \(status)")) }
            return .success(pid)
        }
        self.pid = try result.get()
    }

    /// The command prefix that ties a child's life to its parent: `setpriv --pdeathsig KILL --`,
    /// or `timeout -s KILL 900` where setpriv is missing (empty if neither exists).
    public static let guardPrefix: [String] = {
        if let setpriv = try? executablePath("setpriv") { return [setpriv, "--pdeathsig", "KILL", "--"] }
        if let timeout = try? executablePath("timeout") { return [timeout, "-s", "KILL", "900"] }
        return []
    }()

    /// Whether the process still runs (reaps it once it ended).
    public var isRunning: Bool {
        lock.lock()
        defer { lock.unlock() }
        if exitStatus != nil { return false }
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        if result == pid || result < 0 {
            exitStatus = result < 0 ? -1 : status
            return false
        }
        return true
    }

    /// The raw wait status once the process ended (nil while it runs).
    public var terminationStatus: Int32? {
        _ = isRunning
        return lock.withLock { exitStatus }
    }

    /// Whether it ended with exit code 0.
    public var exitedSuccessfully: Bool {
        guard let status = terminationStatus else { return false }
        return status & 0x7F == 0 && (status >> 8) & 0xFF == 0
    }

    /// The exit code once the process ended, as a shell reports it: the code it passed to `exit`,
    /// or 128 + the signal number when a signal ended it; nil while it runs.
    public var exitCode: Int32? {
        terminationStatus.map(Self.exitCode(waitStatus:))
    }

    /// A raw wait status (from ``wait(timeout:)`` or ``terminationStatus``) as a shell's exit
    /// code: `WEXITSTATUS` after an exit, 128 + `WTERMSIG` after a signal; -1 stays -1 (the
    /// process could not be waited for).
    public static func exitCode(waitStatus status: Int32) -> Int32 {
        if status == -1 { return -1 }
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }

    /// What the process printed so far (for failure messages).
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Waits at most `timeout` for the process to end by itself; its raw wait status, or nil
    /// when it was still running (it is killed then).
    public func wait(timeout: Duration) -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while isRunning {
            if ContinuousClock.now >= deadline {
                terminate(signal: SIGKILL)
                return nil
            }
            usleep(2_000)
        }
        return terminationStatus
    }

    /// Sends `signal`, waits up to 3 s for the exit, then SIGKILL and up to 2 s more: returns
    /// within about 5 s whatever the process does.
    public func terminate(signal: Int32) {
        guard isRunning else { return }
        kill(pid, signal)
        let deadline = ContinuousClock.now + .seconds(3)
        while isRunning && ContinuousClock.now < deadline { usleep(2_000) }
        if isRunning {
            kill(pid, SIGKILL)
            let hardDeadline = ContinuousClock.now + .seconds(2)
            while isRunning && ContinuousClock.now < hardDeadline { usleep(2_000) }
        }
    }

    /// Stops the process (SIGTERM first; see ``terminate(signal:)``).
    public func stop() { terminate(signal: SIGTERM) }

    deinit { terminate(signal: SIGKILL) }
}

/// Runs a short command to completion (at most `timeout`), throwing with its output on failure;
/// its output goes to a file in `directory` (the temporary directory by default), removed after.
///
/// - Throws: ``HarnessError`` on a non-zero exit or a timeout.
public func runTool(_ executable: String, _ arguments: [String], logIn directory: String = NSTemporaryDirectory(),
                    timeout: Duration = .seconds(30)) throws {
    let logPath = directory + "/tool-\(UUID().uuidString).log"
    let child = try ChildProcess(executable, arguments, logPath: logPath)
    defer { try? FileManager.default.removeItem(atPath: logPath) }
    guard let status = child.wait(timeout: timeout) else {
        throw HarnessError("\(executable) \(arguments.prefix(2).joined(separator: " ")) timed out after \(timeout)")
    }
    guard status & 0x7F == 0 && (status >> 8) & 0xFF == 0 else {
        throw HarnessError("\(executable) \(arguments.joined(separator: " ")) failed (status \(status)): \(child.log)")
    }
}

/// One thread, alive as long as the process, on which every child is spawned: the parent-death
/// signal fires when the spawning thread ends, so it must be this one (see the file comment).
final class SpawnThread: @unchecked Sendable {
    static let shared = SpawnThread()

    private let condition = NSCondition()
    private var jobs: [() -> Void] = []

    private init() {
        let thread = Thread { [self] in
            while true {
                condition.lock()
                while jobs.isEmpty { condition.wait() }
                let job = jobs.removeFirst()
                condition.unlock()
                job()
            }
        }
        thread.name = "MQTTTestSupport.spawn"
        thread.start()
    }

    /// Runs `body` on the spawn thread and returns its result (blocks the caller meanwhile;
    /// a spawn takes well under a millisecond).
    func run<T>(_ body: @escaping () -> T) -> T {
        let done = NSCondition()
        var result: T?
        let job = {
            let value = body()
            done.lock()
            result = value
            done.signal()
            done.unlock()
        }
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
        done.lock()
        while result == nil { done.wait() }
        let value = result!
        done.unlock()
        return value
    }
}

/// Runs blocking harness work (starting or stopping a server, `openssl` runs) on a thread of its
/// own and awaits the result, so that it does not hold one of Swift concurrency's cooperative
/// threads: on a 2-core machine there are two, and a test that blocks both for seconds stalls
/// every other test's timers and waits (seen as flaky timeouts under load).
///
/// - Throws: What `body` throws.
public func blockingCall<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        let thread = Thread {
            continuation.resume(with: Result { try body() })
        }
        thread.name = "MQTTTestSupport.blocking"
        thread.start()
    }
}
