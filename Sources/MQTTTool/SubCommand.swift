import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import MQTTProtocol
import UVMQTT
import UVReactor

/// `mqtt sub`: subscribes and prints messages, as mosquitto_sub does.
struct SubCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sub",
        abstract: "Subscribe and print messages (mosquitto_sub's flags).",
        discussion: """
            Takes messages of any size MQTT allows (268,435,455 bytes), as mosquitto_sub does; \
            the library's default limit (1 MiB, MQTTClientOptions.maximumIncomingPacketSize) \
            would deliver a larger message as an `overflow` event with its first MiB only. \
            The -t filters are subscribed in the order given. A filter the broker refuses \
            (SUBACK 0x80, e.g. denied by its ACL) gets a warning on stderr and the others go \
            on; when every filter is refused, it prints "All subscription requests were denied." \
            and exits 0, as mosquitto_sub 2.0 does. (An MQTT 3.1 broker has no refusal code.)
            """,
        helpNames: [.long]
    )

    @OptionGroup var connection: ConnectionOptions

    @Option(name: .customShort("t"), help: ArgumentHelp("Topic filter to subscribe to (repeatable).", valueName: "topic"))
    var topics: [String] = []

    @Option(name: .customShort("U"), help: ArgumentHelp("Topic filter to unsubscribe from (repeatable).", valueName: "topic"))
    var unsubscribeTopics: [String] = []

    @Option(name: .customShort("C"), help: ArgumentHelp("Exit after this many messages.", valueName: "count"))
    var count: Int?

    @Flag(name: .customShort("v"), help: "Print 'topic payload'.")
    var verbose = false

    @Option(name: .customShort("W"), help: ArgumentHelp("Exit (status 27) after this many seconds from the connection.", valueName: "seconds"))
    var timeout: Int?

    @Flag(name: .customShort("R"), help: "Do not print stale (retained) messages.")
    var skipRetained = false

    @Flag(name: .customShort("c"), help: "No clean session: keep the subscription and queued messages (needs -i).")
    var noCleanSession = false

    @Flag(name: .customShort("N"), help: "Do not print a newline after each payload.")
    var noNewline = false

    func run() async throws {
        let plan = try connection.plan(command: "sub", cleanSession: !noCleanSession)
        var filters = topics
        if filters.isEmpty, let urlTopic = plan.urlTopic { filters = [urlTopic] }
        if filters.isEmpty && unsubscribeTopics.isEmpty {
            throw ToolFailure("no topic: give -t TOPIC (or -U TOPIC)")
        }
        for filter in filters { try ConnectionOptions.checkTopicFilter(filter, flag: "-t") }
        for filter in unsubscribeTopics { try ConnectionOptions.checkTopicFilter(filter, flag: "-U") }
        if let count, count < 1 { throw ToolFailure("-C must be at least 1") }
        if let timeout, !(1...2_147_483).contains(timeout) { throw ToolFailure("-W must be 1...2147483 seconds") }

        let client = NodeMCUClient(options: plan.options, logger: plan.logger)
        let outcome = Outcome()
        let printer = Printer(verbose: verbose, newline: !noNewline, skipRetained: skipRetained, limit: count, outcome: outcome)
        client.on(.message) { _, message in printer.print(message) }
        // Unreachable with the protocol's maximum as the limit (ConnectionOptions.largestPacket);
        // kept so that a lower limit could never drop a message silently.
        client.on(.overflow) { _, message in
            writeStderr("Warning: message on '\(message.topic)' of \(message.totalPayloadLength) bytes is over the packet limit: not printed")
        }
        client.on(.offline) { _ in
            outcome.finishWithError("connection lost", status: 1)
        }
        let qos = plan.qos
        let unsubscribe = unsubscribeTopics
        let seconds = timeout
        let subscriptions = filters
        try client.connect(to: plan.servers, connected: { client in
            if let seconds {
                // -W: counted from the connection, as mosquitto_sub does.
                spawnThread {
                    if outcome.wait(timeout: Double(seconds)) == nil {
                        writeStderr("Timed out")
                        outcome.finish(27)
                    }
                }
            }
            do {
                if !subscriptions.isEmpty {
                    // One SUBSCRIBE per filter, in the order of the -t flags: the NodeMCU face's
                    // multi-filter subscribe takes a dictionary (sorted by filter), which would
                    // reorder them. The SUBACKs arrive in the same order.
                    let tally = SubscriptionTally(filters: subscriptions, outcome: outcome)
                    for filter in subscriptions {
                        try client.subscribe(filter, qos: qos) { _, result in tally.answered(filter, result) }
                    }
                }
                if !unsubscribe.isEmpty {
                    try client.unsubscribe(unsubscribe) { _, result in
                        if case .failure(let error) = result {
                            outcome.finishWithError("unsubscribe failed: \(error)", status: 1)
                        } else if subscriptions.isEmpty {
                            // Only -U: done once the broker confirmed.
                            outcome.finish(0)
                        }
                    }
                }
            } catch {
                outcome.finishWithError("\(error)", status: 1)
            }
        }, failed: { _, reason in
            outcome.finishWithError(reason.description, status: exitStatus(for: reason))
        })
        let status = outcome.wait(timeout: nil) ?? 1
        if !outcome.connectionEnded { closeAndWait(client) }
        Glibc.exit(status)
    }
}

/// Collects the SUBACKs of the -t filters (on the loop thread): warns for each refused filter and
/// ends the command when all were refused, as mosquitto_sub does.
final class SubscriptionTally: @unchecked Sendable {
    let outcome: Outcome
    /// Loop thread only.
    private var waiting: Int
    private var granted = 0

    init(filters: [String], outcome: Outcome) {
        self.waiting = filters.count
        self.outcome = outcome
    }

    func answered(_ filter: String, _ result: Result<SubAckReturnCode, MQTTClientError>) {
        switch result {
        case .success(.granted):
            granted += 1
        case .success(.failure):
            // mosquitto_sub 2.0 shows refusals only in its -d trace; a warning is kinder.
            writeStderr("Warning: subscription to '\(filter)' refused by the broker (SUBACK 0x80)")
        case .failure(let error):
            outcome.finishWithError("subscribe failed: \(error)", status: 1)
            return
        }
        waiting -= 1
        if waiting == 0 && granted == 0 && !outcome.isFinished {
            // mosquitto_sub's words and status (2.0.11: DISCONNECT, then exit 0).
            writeStderr("All subscription requests were denied.")
            outcome.finish(0)
        }
    }
}

/// Writes received messages to stdout (binary-safe) on the loop thread and counts them for -C.
final class Printer: @unchecked Sendable {
    let verbose: Bool
    let newline: Bool
    let skipRetained: Bool
    let limit: Int?
    let outcome: Outcome
    /// Loop thread only.
    private var printed = 0
    private var line: [UInt8] = []

    init(verbose: Bool, newline: Bool, skipRetained: Bool, limit: Int?, outcome: Outcome) {
        self.verbose = verbose
        self.newline = newline
        self.skipRetained = skipRetained
        self.limit = limit
        self.outcome = outcome
    }

    func print(_ message: MQTTMessageView) {
        if skipRetained && message.retain { return }
        if let limit, printed >= limit { return }
        line.removeAll(keepingCapacity: true)
        if verbose {
            line.append(contentsOf: message.topicBytes)
            line.append(0x20)
        }
        line.append(contentsOf: message.payload)
        if newline { line.append(0x0A) }
        line.withUnsafeBytes { writeAll(1, $0) }
        printed += 1
        if let limit, printed >= limit { outcome.finish(0) }
    }
}
