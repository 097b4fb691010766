import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import MQTTProtocol
import UVMQTT
import UVReactor

/// `mqtt pub`: publishes one message (or one per stdin line, or the same one `--repeat` times),
/// as mosquitto_pub does.
struct PubCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pub",
        abstract: "Publish a message (mosquitto_pub's flags).",
        helpNames: [.long]
    )

    @OptionGroup var connection: ConnectionOptions

    @Option(name: .customShort("t"), help: ArgumentHelp("Topic to publish to.", valueName: "topic"))
    var topic: String?

    @Option(name: .customShort("m"), help: ArgumentHelp("Message text.", valueName: "message"))
    var message: String?

    @Option(name: .customShort("f"), help: ArgumentHelp("Send the contents of a file as the message (binary-safe).", valueName: "file"))
    var file: String?

    @Flag(name: .customShort("n"), help: "Send an empty (null) message.")
    var nullMessage = false

    @Flag(name: .customShort("s"), help: "Read stdin and send it as one message.")
    var stdinMessage = false

    @Flag(name: .customShort("l"), help: "Read stdin and send one message per line.")
    var stdinLines = false

    @Flag(name: .customShort("r"), help: "Ask the broker to retain the message.")
    var retain = false

    @Option(name: .customLong("repeat"), help: ArgumentHelp("Publish the message this many times.", valueName: "count"))
    var repeatCount: Int = 1

    func run() async throws {
        // Everything is checked before connecting.
        let plan = try connection.plan(command: "pub")
        guard let topic = topic ?? plan.urlTopic else {
            throw ToolFailure("no topic: give -t TOPIC (or a topic in the -L URL)")
        }
        try ConnectionOptions.checkTopicName(topic, flag: "-t")
        let sources = [message != nil, file != nil, nullMessage, stdinMessage, stdinLines].filter { $0 }.count
        if sources == 0 { throw ToolFailure("no message: give one of -m, -f, -n, -s, -l") }
        if sources > 1 { throw ToolFailure("only one of -m, -f, -n, -s, -l may be given") }
        guard repeatCount >= 1 else { throw ToolFailure("--repeat must be at least 1") }

        var payload: [UInt8] = []
        if let message { payload = Array(message.utf8) }
        if let file {
            payload = try readWholeFile(file, flag: "-f")
        }
        if stdinMessage {
            guard let bytes = readAll(0) else { throw ToolFailure("cannot read stdin for -s") }
            payload = bytes
        }

        let message = payload
        let client = NodeMCUClient(options: plan.options, logger: plan.logger)
        let outcome = Outcome()
        let sender = Sender(client: client, topic: topic, qos: plan.qos, retain: retain, outcome: outcome)
        let lines = stdinLines
        let count = repeatCount
        client.on(.offline) { _ in
            outcome.finishWithError("connection lost", status: 1)
        }
        try client.connect(to: plan.servers, connected: { _ in
            if lines {
                // Lines are read on their own thread; publishing hops to the loop.
                spawnThread { sender.sendLines() }
            } else {
                sender.send(message, times: count)
            }
        }, failed: { _, reason in
            outcome.finishWithError(reason.description, status: exitStatus(for: reason))
        })
        let status = outcome.wait(timeout: nil) ?? 1
        if status == 0 || !outcome.connectionEnded {
            closeAndWait(client)
        }
        Glibc.exit(status)
    }
}

extension Outcome {
    /// Prints `Error: message` once (for the first finish only) and records the status.
    func finishWithError(_ message: String, status: Int32) {
        guard !isFinished else { return }
        writeStderr("Error: \(message)")
        connectionEnded = true
        finish(status)
    }
}

/// Publishes and counts completions; finishes the outcome when all are done.
final class Sender: @unchecked Sendable {
    let client: NodeMCUClient
    let topic: String
    let qos: QoS
    let retain: Bool
    let outcome: Outcome
    private let lock = Mutex<(outstanding: Int, inputDone: Bool)>((0, false))
    /// Most publishes in flight while reading lines (keeps memory bounded for large inputs).
    private let window = 1_000

    init(client: NodeMCUClient, topic: String, qos: QoS, retain: Bool, outcome: Outcome) {
        self.client = client
        self.topic = topic
        self.qos = qos
        self.retain = retain
        self.outcome = outcome
    }

    /// Publishes `payload` `times` times, then finishes.
    func send(_ payload: [UInt8], times: Int) {
        for _ in 0..<times { publish(payload) }
        endOfInput()
    }

    /// Publishes each stdin line (without its newline), then finishes.
    func sendLines() {
        while let line = readLine(strippingNewline: true) {
            // Bounded polling keeps this simple: the reader only waits when 1,000 are in flight.
            while lock.withLock({ $0.outstanding }) >= window && !outcome.isFinished {
                usleep(1_000)
            }
            if outcome.isFinished { return }
            publish(Array(line.utf8))
        }
        endOfInput()
    }

    private func publish(_ payload: [UInt8]) {
        lock.withLock { $0.outstanding += 1 }
        do {
            try client.publish(topic, payload, qos: qos, retain: retain) { [self] _, result in
                switch result {
                case .success: completed()
                case .failure(let error): outcome.finishWithError("publish failed: \(error)", status: 1)
                }
            }
        } catch {
            outcome.finishWithError("publish failed: \(error)", status: 1)
        }
    }

    private func completed() {
        let done = lock.withLock { state -> Bool in
            state.outstanding -= 1
            return state.inputDone && state.outstanding == 0
        }
        if done { outcome.finish(0) }
    }

    private func endOfInput() {
        let done = lock.withLock { state -> Bool in
            state.inputDone = true
            return state.outstanding == 0
        }
        if done { outcome.finish(0) }
    }
}
