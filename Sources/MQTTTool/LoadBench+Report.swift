import Histogram
#if canImport(Glibc)
import Glibc
#endif

/// One second of a many-client run: the totals at its end and the rates within it.
struct LoadSample: Sendable {
    /// Seconds since the start: whole for the samples of the run, fractional for the last.
    var second: Double
    var online: Int
    var target: Int
    var subscribed: Int
    var sentTotal: Int
    var receivedTotal: Int
    var ackedTotal: Int
    /// Within this second.
    var sent: Int
    var received: Int
    var acked: Int
    var inflight: Int
    var errors: Int
    /// "connect failed 2, lost 1" when there are errors.
    var errorKinds: String
    /// --latency: this second's latency (sub: publish→receive, pub QoS 1/2: publish→ack).
    var latency: IntervalLatency?

    init(second: Double, totals: LoadTotals, previous: LoadTotals, target: Int) {
        self.second = second
        online = totals.online
        self.target = target
        subscribed = totals.subscribed
        sentTotal = totals.sent
        receivedTotal = totals.received
        ackedTotal = totals.acked
        sent = totals.sent - previous.sent
        received = totals.received - previous.received
        acked = totals.acked - previous.acked
        inflight = totals.inflight
        errors = totals.errors
        errorKinds = [("connect failed", totals.connectFailed), ("lost", totals.lost), ("refused", totals.refused),
                      ("publish failed", totals.publishFailed)]
            .filter { $0.1 > 0 }.map { "\($0.0) \($0.1)" }.joined(separator: ", ")
    }

    /// "errors 0", or "errors 3 (connect failed 2, lost 1)".
    var errorText: String { errors == 0 ? "errors 0" : "errors \(errors) (\(errorKinds))" }

    var secondText: String {
        second == second.rounded() ? pad(Int(second), 4) : formatFixed(second, digits: 2)
    }

    /// The progress line: elapsed, connected/target, sent/s, received/s, in flight, errors.
    func line(mode: BenchCommand.Mode) -> String {
        var text = "\(secondText)s connected \(online)/\(target)"
        if mode == .conn { return text + "  " + errorText }
        if mode == .sub { text += " subscribed \(subscribed)" }
        text += "  sent \(grouped(Int(Double(sent) / span)))/s  received \(grouped(Int(Double(received) / span)))/s"
        if inflight > 0 || mode == .pub { text += "  in-flight \(inflight)" }
        if let latency { text += "  p99 \(latency.p99Text)" }
        text += "  " + errorText
        return text
    }
}

/// The latency percentiles of one second (nanoseconds); nil fields when nothing was recorded.
struct IntervalLatency: Sendable {
    var count: UInt64
    var p50: UInt64
    var p99: UInt64
    var max: UInt64

    init(_ h: Histogram<UInt64>) {
        count = h.totalCount
        max = h.max
        p50 = Swift.min(h.valueAtPercentile(50), max)
        p99 = Swift.min(h.valueAtPercentile(99), max)
    }

    var p99Text: String { count == 0 ? "-" : "\(formatFixed(Double(p99) / 1e6, digits: 3)) ms" }

    /// JSON / CSV fields in microseconds ("" or null when empty).
    func micros(_ ns: UInt64) -> String { formatFixed(Double(ns) / 1e3, digits: 1) }
}

/// The once-a-second line on stderr: overwritten in place on a terminal, plain lines otherwise
/// (a log file or a pipe gets one line per second).
struct ProgressLine {
    let prefix: String
    let inPlace = isatty(2) == 1

    func show(_ line: String) {
        if inPlace {
            var text = "\r\(prefix): \(line)\u{1B}[K"
            text.withUTF8 { writeAll(2, UnsafeRawBufferPointer($0)) }
        } else {
            writeStderr("\(prefix): \(line)")
        }
    }

    /// The last line (the partial last second); ends the line on a terminal.
    func finish(_ line: String) {
        if inPlace {
            var text = "\r\(prefix): \(line)\u{1B}[K\n"
            text.withUTF8 { writeAll(2, UnsafeRawBufferPointer($0)) }
        } else {
            writeStderr("\(prefix): \(line)")
        }
    }
}

/// The figures of a finished run: the summary on stdout and the --json document.
struct LoadReport {
    let args: LoadBenchArguments
    /// Why the run ended: goal, duration, interrupted, no connection left.
    let ended: String
    let elapsed: Double
    let totals: LoadTotals
    let histograms: LoadHistograms
    let reasons: [String: Int]
    /// Monotonic ns of the last CONNACK, and of the start.
    let lastConnected: UInt64
    let startTime: UInt64
    /// Seconds from the first DISCONNECT to the broker closing the last connection (QoS 0 sent
    /// counts what the kernel took: a slower broker reads the rest during this time).
    let closeSeconds: Double
    let closedAll: Bool

    /// Seconds from the start to the last CONNACK.
    var connectSeconds: Double { lastConnected > startTime ? Double(lastConnected - startTime) / 1e9 : 0 }

    /// The goal was reached with no failed, refused or lost connection.
    var succeeded: Bool {
        if totals.errors > 0 || ended == "no connection left" { return false }
        switch args.mode {
        case .conn: return totals.online == args.clients
        case .pub: return args.limit == 0 || totals.sent >= args.limit
        case .sub: return args.limit == 0 || totals.received >= args.limit
        }
    }

    func summaryLines() -> [String] {
        var lines: [String] = []
        let hosts = args.hosts.joined(separator: ",")
        lines.append("mqtt bench \(args.mode.rawValue): \(args.clients) clients on \(args.threads) threads, \(hosts):\(args.port), QoS \(args.qos.rawValue), ended (\(ended)) after \(formatFixed(elapsed, digits: 3)) s: \(succeeded ? "ok" : "FAILED")")
        let rate = connectSeconds > 0 ? Double(totals.online + totals.lost) / connectSeconds : 0
        lines.append("  connections  \(totals.online + totals.lost) up, \(totals.connectFailed) failed, \(totals.lost) lost; last CONNACK after \(formatFixed(connectSeconds, digits: 3)) s (\(grouped(Int(rate))) conn/s)")
        lines.append("  connect      \(percentileText(histograms.connectLatency))")
        if args.mode != .conn {
            let sentRate = elapsed > 0 ? Double(totals.sent) / elapsed : 0
            let receivedRate = elapsed > 0 ? Double(totals.received) / elapsed : 0
            var messages = "  messages     sent \(grouped(totals.sent)) (\(grouped(Int(sentRate)))/s)"
            if args.qos != .atMostOnce && args.mode == .pub { messages += ", acknowledged \(grouped(totals.acked))" }
            messages += ", received \(grouped(totals.received)) (\(grouped(Int(receivedRate)))/s)"
            if args.mode == .sub { messages += ", \(totals.subscribed) subscribed" }
            lines.append(messages)
        }
        if args.latency && args.mode == .sub {
            lines.append("  latency      publish→receive \(percentileText(histograms.latency))")
            lines.append("  sequences    missing \(totals.missing), duplicate or reordered \(totals.late), unstamped \(totals.unstamped)")
            let publishers = histograms.publishers
            let flawed = publishers.filter { $0.value.missing > 0 || $0.value.late > 0 }.sorted { $0.key < $1.key }
            var text = "  publishers   \(publishers.count) seen, \(flawed.count) with gaps or duplicates"
            if !flawed.isEmpty {
                text += ": " + flawed.prefix(5).map { "\($0.key) (missing \($0.value.missing), late \($0.value.late))" }.joined(separator: ", ")
                if flawed.count > 5 { text += ", ... (--json lists all)" }
            }
            lines.append(text)
        }
        if args.latency && args.mode == .pub && args.qos != .atMostOnce {
            lines.append("  latency      publish→\(args.qos == .atLeastOnce ? "PUBACK" : "PUBCOMP") \(percentileText(histograms.ackLatency))")
        }
        lines.append("  closed       \(closedAll ? "all" : "NOT all (10 s bound)") \(formatFixed(closeSeconds, digits: 3)) s after the end (the broker had read everything sent)")
        lines.append("  errors       \(totals.errors)")
        for (reason, count) in reasons.sorted(by: { $0.value > $1.value }) {
            lines.append("    \(grouped(count)) × \(reason)")
        }
        return lines
    }

    /// "p50 0.123 ms  p90 ...  max ... (n samples)" or "no samples".
    func percentileText(_ h: Histogram<UInt64>) -> String {
        guard h.totalCount > 0 else { return "no samples" }
        func ms(_ ns: UInt64) -> String { formatFixed(Double(ns) / 1e6, digits: 3) }
        let p = percentiles(h)
        return "p50 \(ms(p.p50)) ms  p90 \(ms(p.p90))  p99 \(ms(p.p99))  p99.9 \(ms(p.p999))  max \(ms(p.max)) ms (\(grouped(Int(h.totalCount))) samples)"
    }

    func percentiles(_ h: Histogram<UInt64>) -> (p50: UInt64, p90: UInt64, p99: UInt64, p999: UInt64, max: UInt64) {
        // The histogram's percentiles are the highest value equivalent to the bucket: capped at
        // the maximum, so that p99.9 <= max always holds.
        let max = h.max
        return (Swift.min(h.valueAtPercentile(50), max), Swift.min(h.valueAtPercentile(90), max),
                Swift.min(h.valueAtPercentile(99), max), Swift.min(h.valueAtPercentile(99.9), max), max)
    }

    func jsonPercentiles(_ h: Histogram<UInt64>) -> String {
        guard h.totalCount > 0 else { return "null" }
        func us(_ ns: UInt64) -> String { formatFixed(Double(ns) / 1e3, digits: 1) }
        let p = percentiles(h)
        return "{\"count\": \(h.totalCount), \"p50\": \(us(p.p50)), \"p90\": \(us(p.p90)), \"p99\": \(us(p.p99)), \"p99_9\": \(us(p.p999)), \"max\": \(us(p.max))}"
    }

    /// The --json document: settings, per-second series, summary (latencies in microseconds).
    func json(series: [LoadSample]) -> String {
        var out = "{\n"
        out += "  \"tool\": \"swift-uv-mqtt mqtt bench\",\n"
        out += "  \"settings\": {\"mode\": \(jsonString(args.mode.rawValue)), \"clients\": \(args.clients), \"first_index\": \(args.firstIndex), "
        out += "\"threads\": \(args.threads), \"hosts\": [\(args.hosts.map(jsonString).joined(separator: ", "))], \"port\": \(args.port), "
        out += "\"topic\": \(jsonString(args.topic)), \"qos\": \(args.qos.rawValue), \"payload_bytes\": \(args.payloadSize), "
        out += "\"connect_interval_ms\": \(formatFixed(Double(args.connectSpacing) / 1e6, digits: 3)), \"message_interval_ms\": \(args.messageInterval), \"limit\": \(args.limit), "
        out += "\"latency\": \(args.latency), \"clock\": \(jsonString(args.clock.rawValue))},\n"
        out += "  \"series\": [\n"
        out += series.map { s in
            "    {\"second\": \(s.secondText.drop(while: { $0 == " " })), \"connected\": \(s.online), \"subscribed\": \(s.subscribed), \"sent\": \(s.sentTotal), "
                + "\"received\": \(s.receivedTotal), \"acked\": \(s.ackedTotal), \"sent_per_s\": \(s.sent), "
                + "\"received_per_s\": \(s.received), \"acked_per_s\": \(s.acked), \"inflight\": \(s.inflight), \"errors\": \(s.errors)"
                + (s.latency.map { l in
                    l.count == 0 ? ", \"latency_us\": null"
                        : ", \"latency_us\": {\"count\": \(l.count), \"p50\": \(l.micros(l.p50)), \"p99\": \(l.micros(l.p99)), \"max\": \(l.micros(l.max))}"
                } ?? "") + "}"
        }.joined(separator: ",\n")
        out += "\n  ],\n"
        out += "  \"summary\": {\"ended\": \(jsonString(ended)), \"ok\": \(succeeded), \"elapsed_s\": \(formatFixed(elapsed, digits: 6)), "
        out += "\"close_s\": \(formatFixed(closeSeconds, digits: 6)), \"connected\": \(totals.online + totals.lost), \"connect_failed\": \(totals.connectFailed), \"lost\": \(totals.lost), "
        out += "\"refused\": \(totals.refused), \"subscribed\": \(totals.subscribed), \"connect_s\": \(formatFixed(connectSeconds, digits: 6)), "
        out += "\"sent\": \(totals.sent), \"acked\": \(totals.acked), \"received\": \(totals.received), \"publish_failed\": \(totals.publishFailed), "
        out += "\"missing\": \(totals.missing), \"late\": \(totals.late), \"unstamped\": \(totals.unstamped), \"errors\": \(totals.errors),\n"
        out += "    \"error_reasons\": {\(reasons.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)): \($0.value)" }.joined(separator: ", "))},\n"
        out += "    \"connect_latency_us\": \(jsonPercentiles(histograms.connectLatency)),\n"
        out += "    \"latency_us\": \(jsonPercentiles(histograms.latency)),\n"
        out += "    \"ack_latency_us\": \(jsonPercentiles(histograms.ackLatency)),\n"
        out += "    \"publishers\": ["
        out += histograms.publishers.sorted { $0.key < $1.key }.map { p in
            "{\"publisher\": \(p.key), \"received\": \(p.value.received), \"missing\": \(p.value.missing), \"late\": \(p.value.late)}"
        }.joined(separator: ", ")
        out += "]}\n"
        out += "}\n"
        return out
    }
}

extension LoadReport {
    /// The --csv document: one row per second (the last row is the partial last second).
    func csv(series: [LoadSample]) -> String {
        var out = "second,connected,subscribed,sent,received,acked,sent_per_s,received_per_s,acked_per_s,inflight,errors,"
        out += "latency_p50_us,latency_p99_us,latency_max_us\n"
        for s in series {
            out += "\(s.secondText.drop(while: { $0 == " " })),\(s.online),\(s.subscribed),\(s.sentTotal),\(s.receivedTotal),\(s.ackedTotal),"
            out += "\(s.sent),\(s.received),\(s.acked),\(s.inflight),\(s.errors),"
            if let l = s.latency, l.count > 0 {
                out += "\(l.micros(l.p50)),\(l.micros(l.p99)),\(l.micros(l.max))\n"
            } else {
                out += ",,\n"
            }
        }
        return out
    }
}

/// A JSON string literal.
func jsonString(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 {
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}

/// 1234567 as "1,234,567".
func grouped(_ n: Int) -> String {
    let digits = String(n.magnitude)
    var out = ""
    for (i, c) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
        out.append(c)
    }
    return n < 0 ? "-" + out : out
}

/// Right-aligns a number in `width` characters.
func pad(_ n: Int, _ width: Int) -> String {
    let s = String(n)
    return s.count >= width ? s : String(repeating: " ", count: width - s.count) + s
}
