import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

/// `mqtt`: publish, subscribe and benchmark from the command line, with mosquitto_pub /
/// mosquitto_sub's flags and exit statuses.
struct MQTTTool: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mqtt",
        abstract: "MQTT 3.1 / 3.1.1 client: publish, subscribe, benchmark.",
        discussion: """
            Exit status: 0 on success; 1 for bad input (reported before connecting) and for \
            connection, TLS and transport failures; the CONNACK return code (1-5) when the \
            broker refuses the connection; 27 when `sub -W` timed out.
            """,
        subcommands: [PubCommand.self, SubCommand.self, BenchCommand.self, ScaleCommand.self],
        // `-h` is the host, as in mosquitto_pub / mosquitto_sub.
        helpNames: [.long]
    )
}

/// The entry point: parses, runs, and maps every error to one line on stderr and an exit status
/// (bad usage is 1, as with mosquitto's tools, not ArgumentParser's 64).
@main
enum Main {
    static func main() async {
        do {
            var command = try MQTTTool.parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let failure as ToolFailure {
            failure.exitProcess()
        } catch {
            let code = MQTTTool.exitCode(for: error)
            let message = MQTTTool.fullMessage(for: error)
            if code == .success {
                // --help and friends.
                writeStdoutLine(message)
                exit(0)
            }
            if !message.isEmpty {
                writeStderr(message.hasPrefix("Error:") ? message : "Error: \(message)")
            }
            exit(code == .validationFailure ? 1 : code.rawValue)
        }
        exit(0)
    }
}

/// Writes one line to stderr (unbuffered, one `write`).
func writeStderr(_ line: String) {
    var text = line
    if !text.hasSuffix("\n") { text += "\n" }
    text.withUTF8 { writeAll(2, UnsafeRawBufferPointer($0)) }
}

/// Writes one line to stdout (unbuffered: nothing is held back when the process exits).
func writeStdoutLine(_ line: String) {
    var text = line + "\n"
    text.withUTF8 { writeAll(1, UnsafeRawBufferPointer($0)) }
}

/// Writes all of `bytes` to a file descriptor (retrying short writes and EINTR).
func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) {
    guard var base = bytes.baseAddress else { return }
    var left = bytes.count
    while left > 0 {
        let n = write(fd, base, left)
        if n < 0 {
            if errno == EINTR { continue }
            return
        }
        base += n
        left -= n
    }
}

/// A failure the tool reports with one line on stderr and its exit status.
struct ToolFailure: Error, CustomStringConvertible {
    var message: String
    var status: Int32

    init(_ message: String, status: Int32 = 1) {
        self.message = message
        self.status = status
    }

    var description: String { message }
}

extension ToolFailure {
    /// Prints the message and ends the process with the status.
    func exitProcess() -> Never {
        writeStderr("Error: \(message)")
        exit(status)
    }
}
