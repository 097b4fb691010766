/// `--plot FILE.svg`: the per-second series as a picture a browser shows. The upper panel is the
/// rates (or, for `conn`, the connections), the lower one the latency percentiles of each second
/// (with `--latency`). Plain SVG 1.1, no script, no external font.
struct LoadPlot {
    struct Line {
        var name: String
        var color: String
        var points: [(x: Double, y: Double)]
    }

    let title: String
    let series: [LoadSample]
    let mode: BenchCommand.Mode

    static let width = 900.0
    static let panelHeight = 260.0
    static let left = 80.0, right = 24.0, top = 40.0, gap = 70.0

    func render() -> String {
        var panels: [(title: String, unit: String, lines: [Line])] = []
        func line(_ name: String, _ color: String, _ value: (LoadSample) -> Double?) -> Line {
            Line(name: name, color: color, points: series.compactMap { s in value(s).map { (s.second, $0) } })
        }
        if mode == .conn {
            panels.append(("connections", "clients", [line("connected", "#1f77b4") { Double($0.online) }]))
        } else {
            var rates: [Line] = []
            if mode == .pub {
                rates.append(line("sent/s", "#1f77b4") { Double($0.sent) / max(0.001, $0.span) })
                if series.contains(where: { $0.acked > 0 }) {
                    rates.append(line("acknowledged/s", "#ff7f0e") { Double($0.acked) / max(0.001, $0.span) })
                }
            } else {
                rates.append(line("received/s", "#2ca02c") { Double($0.received) / max(0.001, $0.span) })
            }
            panels.append(("message rate", "messages/s", rates))
        }
        if series.contains(where: { ($0.latency?.count ?? 0) > 0 }) {
            func ms(_ pick: @escaping (IntervalLatency) -> UInt64) -> (LoadSample) -> Double? {
                { s in s.latency.flatMap { $0.count > 0 ? Double(pick($0)) / 1e6 : nil } }
            }
            panels.append(("latency per second", "ms", [
                line("p50", "#2ca02c", ms { $0.p50 }), line("p99", "#ff7f0e", ms { $0.p99 }), line("max", "#d62728", ms { $0.max }),
            ]))
        }
        let height = Self.top + Double(panels.count) * (Self.panelHeight + Self.gap)
        var svg = """
            <?xml version="1.0" encoding="UTF-8"?>
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(Self.width))" height="\(Int(height))" \
            viewBox="0 0 \(Int(Self.width)) \(Int(height))" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(Self.left)" y="24" font-size="15" font-weight="bold">\(xmlEscape(title))</text>

            """
        let xMax = max(1, series.map(\.second).max() ?? 1)
        for (n, panel) in panels.enumerated() {
            let y0 = Self.top + Double(n) * (Self.panelHeight + Self.gap) + 10
            svg += self.panel(panel.title, unit: panel.unit, lines: panel.lines, y0: y0, xMax: xMax)
        }
        svg += "</svg>\n"
        return svg
    }

    private func panel(_ title: String, unit: String, lines: [Line], y0: Double, xMax: Double) -> String {
        let w = Self.width - Self.left - Self.right
        let h = Self.panelHeight
        let yMax = niceCeiling(max(lines.flatMap { $0.points.map(\.y) }.max() ?? 1, 1e-9))
        func px(_ x: Double) -> Double { Self.left + x / xMax * w }
        func py(_ y: Double) -> Double { y0 + h - y / yMax * h }
        var out = "<g>\n<text x=\"\(Self.left)\" y=\"\(fmt(y0 - 6))\" font-weight=\"bold\">\(xmlEscape(title)) (\(xmlEscape(unit)))</text>\n"
        out += "<rect x=\"\(fmt(Self.left))\" y=\"\(fmt(y0))\" width=\"\(fmt(w))\" height=\"\(fmt(h))\" fill=\"none\" stroke=\"#999\"/>\n"
        for i in 0...4 {
            let value = yMax * Double(i) / 4
            let y = py(value)
            out += "<line x1=\"\(fmt(Self.left))\" y1=\"\(fmt(y))\" x2=\"\(fmt(Self.left + w))\" y2=\"\(fmt(y))\" stroke=\"#eee\"/>\n"
            out += "<text x=\"\(fmt(Self.left - 6))\" y=\"\(fmt(y + 4))\" text-anchor=\"end\">\(axisLabel(value))</text>\n"
        }
        let xStep = max(1, niceCeiling(xMax / 8))
        var x = 0.0
        while x <= xMax + 1e-9 {
            out += "<text x=\"\(fmt(px(x)))\" y=\"\(fmt(y0 + h + 16))\" text-anchor=\"middle\">\(axisLabel(x))</text>\n"
            x += xStep
        }
        out += "<text x=\"\(fmt(Self.left + w))\" y=\"\(fmt(y0 + h + 32))\" text-anchor=\"end\">seconds</text>\n"
        for (k, line) in lines.enumerated() {
            if !line.points.isEmpty {
                let points = line.points.map { "\(fmt(px($0.x))),\(fmt(py($0.y)))" }.joined(separator: " ")
                out += "<polyline fill=\"none\" stroke=\"\(line.color)\" stroke-width=\"2\" points=\"\(points)\"/>\n"
                for p in line.points where line.points.count <= 120 {
                    out += "<circle cx=\"\(fmt(px(p.x)))\" cy=\"\(fmt(py(p.y)))\" r=\"2.5\" fill=\"\(line.color)\"/>\n"
                }
            }
            let lx = Self.left + 10 + Double(k) * 150
            out += "<rect x=\"\(fmt(lx))\" y=\"\(fmt(y0 + 8))\" width=\"14\" height=\"4\" fill=\"\(line.color)\"/>"
            out += "<text x=\"\(fmt(lx + 20))\" y=\"\(fmt(y0 + 14))\">\(xmlEscape(line.name))</text>\n"
        }
        return out + "</g>\n"
    }

    /// The smallest 1, 2 or 5 times a power of ten that is at least `value`.
    func niceCeiling(_ value: Double) -> Double {
        var magnitude = 1.0
        while magnitude * 10 <= value { magnitude *= 10 }
        while magnitude > value { magnitude /= 10 }
        for factor in [1.0, 2.0, 5.0, 10.0] where factor * magnitude >= value { return factor * magnitude }
        return 10 * magnitude
    }

    func axisLabel(_ value: Double) -> String {
        if value >= 1_000_000 { return formatFixed(value / 1_000_000, digits: value.truncatingRemainder(dividingBy: 1_000_000) == 0 ? 0 : 1) + "M" }
        if value >= 10_000 { return formatFixed(value / 1_000, digits: 0) + "k" }
        if value == value.rounded() { return String(Int(value)) }
        var text = formatFixed(value, digits: value < 0.1 ? 3 : 2)
        while text.hasSuffix("0") { text.removeLast() }
        return text
    }

    func fmt(_ value: Double) -> String { formatFixed(max(0, value), digits: 1) }
}

extension LoadSample {
    /// The seconds this sample covers (1, or less for the partial last one).
    var span: Double {
        let whole = second.rounded(.down)
        return second == whole ? 1 : second - whole
    }
}

/// Text for XML content and attributes.
func xmlEscape(_ s: String) -> String {
    var out = ""
    for c in s {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        default: out.append(c)
        }
    }
    return out
}
