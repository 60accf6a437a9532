import Foundation
import SpoolCore
import SpoolDaemon

/// The status page as HTML, rendered on the server from `StatusOverview` and `RequestDetail`.
/// Every value that comes from outside (file names, InferenceIds, custom attributes, failure
/// reasons, model output) goes through `HTML.text` or `HTML.attribute`; the page's own script and
/// style are separate files (`/ui/app.js`, `/ui/app.css`) and the Content-Security-Policy admits
/// no inline script, so even a value that slipped through could not run.
enum StatusPageHTML {
    static func overview(_ overview: StatusOverview) -> String {
        var body = ""
        if overview.endpoints.isEmpty {
            body += "<p class=\"empty\">No endpoint is configured.</p>"
        }
        for endpoint in overview.endpoints {
            body += endpointSection(endpoint, now: overview.time)
        }
        body += failuresSection(overview.failures)
        return page(title: "Spool", updated: overview.time, body: body)
    }

    static func request(_ detail: RequestDetail) -> String {
        let r = detail.request
        var rows: [(String, String)] = [
            ("State", "<span class=\"state \(HTML.attribute(r.State))\">\(HTML.text(r.State))</span>"),
            ("Endpoint", HTML.text(r.EndpointName)),
            ("Received", HTML.text(r.ReceivedTime)),
            ("Started", HTML.text(r.StartedTime ?? "—")),
            ("Finished", HTML.text(r.FinishedTime ?? "—")),
            ("Attempts", "\(r.Attempts)"),
            ("Payload", "\(formatBytes(r.PayloadBytes))"),
        ]
        if let progress = detail.progress {
            let percent = Int((progress * 100).rounded(.down))
            rows.append(("Progress", "<progress max=\"100\" value=\"\(percent)\"></progress> \(percent) % (\(formatBytes(r.BytesProcessed)))"))
        }
        rows += [
            ("Input", "<code>\(HTML.text(r.InputLocation))</code>"),
            ("Output", "<code>\(HTML.text(r.OutputLocation))</code>"),
            ("Failure marker", "<code>\(HTML.text(r.FailureLocation))</code>"),
        ]
        if let type = r.ContentType { rows.append(("Content type", HTML.text(type))) }
        if let accept = r.Accept { rows.append(("Accept", HTML.text(accept))) }
        if let attributes = r.CustomAttributes { rows.append(("Custom attributes", HTML.text(attributes))) }
        if let code = r.FailureCode { rows.append(("Failure code", "<span class=\"code\">\(HTML.text(code))</span>")) }
        if let reason = r.FailureReason { rows.append(("Reason", "<span class=\"reason\">\(HTML.text(reason))</span>")) }
        if let marker = detail.marker {
            if let status = marker.exitStatus { rows.append(("Exit status", "\(status)")) }
            if let signal = marker.signal { rows.append(("Signal", "\(signal)")) }
            if let status = marker.httpStatus { rows.append(("HTTP status", "\(status)")) }
            if let kept = marker.keptInputLocation { rows.append(("Kept input", "<code>\(HTML.text(kept))</code>")) }
        }
        var body = "<section><h2>Request <code>\(HTML.text(r.InferenceId))</code></h2><table class=\"detail\">"
        for (name, value) in rows {
            body += "<tr><th>\(name)</th><td>\(value)</td></tr>"
        }
        body += "</table>"
        if let tail = detail.marker?.modelOutputTail, !tail.isEmpty {
            body += "<h3>What the model said last</h3><pre class=\"tail\">\(HTML.text(tail))</pre>"
        }
        body += "</section>"
        return page(title: "Spool · \(r.InferenceId)", updated: nil, body: body)
    }

    static func unknownRequest(_ id: String) -> String {
        page(title: "Spool · unknown request", updated: nil,
             body: "<section><h2>No request has InferenceId <code>\(HTML.text(id))</code></h2>"
                + "<p>It was never queued here, or retention removed it.</p></section>")
    }

    // MARK: Parts

    private static func page(title: String, updated: Date?, body: String) -> String {
        let stamp = updated.map { "<span class=\"updated\">updated \(HTML.text(Timestamp.string($0)))</span>" } ?? ""
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(HTML.text(title))</title>
            <link rel="stylesheet" href="/ui/app.css">
            <script src="/ui/app.js" defer></script>
            </head><body>
            <header><h1><a href="/">Spool</a></h1>
            <form action="/ui/requests" method="get"><input name="id" placeholder="InferenceId" aria-label="InferenceId">
            <button>Show</button></form>\(stamp)</header>
            <main id="main" data-refresh="\(updated == nil ? "off" : "on")">\(body)</main>
            </body></html>
            """
    }

    private static func endpointSection(_ e: StatusOverview.Endpoint, now: Date) -> String {
        let age = e.oldestQueuedAge.map(formatAge) ?? "—"
        let processed = e.succeeded + e.failed
        var html = """
            <section class="endpoint" data-endpoint="\(HTML.attribute(e.name))">
            <h2>\(HTML.text(e.name))</h2>
            <dl class="counts">
            <div><dt>Queued</dt><dd class="queued">\(e.queued)</dd></div>
            <div><dt>Running</dt><dd class="running">\(e.running)</dd></div>
            <div><dt>Oldest waiting</dt><dd class="oldest">\(age)</dd></div>
            <div><dt>Instances</dt><dd class="instances">\(e.instances)</dd></div>
            <div><dt>Processed</dt><dd class="processed">\(processed)</dd></div>
            <div><dt>Failed</dt><dd class="failed">\(e.failed)</dd></div>
            <div><dt>Expired</dt><dd class="expired">\(e.expired)</dd></div>
            <div><dt>Cancelled</dt><dd class="cancelled">\(e.cancelled)</dd></div>
            </dl>
            <div class="charts">
            """
        html += throughputChart(e.minutes)
        html += latencyChart(e.minutes)
        html += "</div>"
        if let since = e.chartKnownSince {
            html += "<p class=\"note\">Charts cover the latest \(MetricsCollector.latencyWindow) requests, since \(HTML.text(Timestamp.string(since))).</p>"
        }
        return html + "</section>"
    }

    private static func failuresSection(_ failures: [StatusOverview.Failure]) -> String {
        var html = "<section class=\"failures\"><h2>Latest failures</h2>"
        guard !failures.isEmpty else { return html + "<p class=\"empty\">None.</p></section>" }
        html += "<table><thead><tr><th>Finished</th><th>Endpoint</th><th>Request</th><th>Code</th><th>Reason</th><th>Marker</th></tr></thead><tbody>"
        for f in failures {
            let link = "/ui/requests/\(HTML.pathSegment(f.id))"
            html += "<tr class=\"failure\"><td>\(HTML.text(f.finishedAt.map(Timestamp.string) ?? "—"))</td>"
                + "<td>\(HTML.text(f.endpoint))</td>"
                + "<td><a href=\"\(HTML.attribute(link))\">\(HTML.text(f.id))</a><div class=\"input\">\(HTML.text(f.inputLocation))</div></td>"
                + "<td class=\"code\">\(HTML.text(f.code ?? f.state))</td>"
                + "<td class=\"reason\">\(HTML.text(f.reason ?? ""))</td>"
                + "<td><code>\(HTML.text(f.markerLocation))</code></td></tr>"
        }
        return html + "</tbody></table></section>"
    }

    // MARK: Charts (SVG, drawn here: nothing to load, nothing to run)

    static let chartWidth = 600.0
    static let chartHeight = 120.0

    static func throughputChart(_ minutes: [StatusOverview.Minute]) -> String {
        let peak = max(1, minutes.map(\.finished).max() ?? 0)
        let slot = chartWidth / Double(max(minutes.count, 1))
        var bars = ""
        for (i, minute) in minutes.enumerated() where minute.finished > 0 {
            let height = Double(minute.finished) / Double(peak) * (chartHeight - 10)
            bars += "<rect x=\"\(format(Double(i) * slot + 1))\" y=\"\(format(chartHeight - height))\" width=\"\(format(max(1, slot - 2)))\" height=\"\(format(height))\"><title>\(minute.finished) finished</title></rect>"
        }
        let total = minutes.reduce(0) { $0 + $1.finished }
        return chart(title: "Finished per minute (last hour: \(total))", peakLabel: "\(peak)/min", content: "<g class=\"bars\">\(bars)</g>")
    }

    static func latencyChart(_ minutes: [StatusOverview.Minute]) -> String {
        let peak = max(1, minutes.compactMap(\.p99).max() ?? 0)
        let slot = chartWidth / Double(max(minutes.count, 1))
        func lines(_ value: KeyPath<StatusOverview.Minute, Double?>, _ name: String) -> String {
            // A minute with no request breaks the line: no data is not zero latency.
            var segments: [[String]] = [[]]
            for (i, minute) in minutes.enumerated() {
                if let v = minute[keyPath: value] {
                    let y = chartHeight - v / peak * (chartHeight - 10)
                    segments[segments.count - 1].append("\(format(Double(i) * slot + slot / 2)),\(format(y))")
                } else if !(segments.last?.isEmpty ?? true) {
                    segments.append([])
                }
            }
            return segments.filter { !$0.isEmpty }.map { points in
                points.count == 1
                    ? "<circle class=\"\(name)\" cx=\"\(points[0].split(separator: ",")[0])\" cy=\"\(points[0].split(separator: ",")[1])\" r=\"2\"/>"
                    : "<polyline class=\"\(name)\" points=\"\(points.joined(separator: " "))\"/>"
            }.joined()
        }
        return chart(
            title: "Latency, arrival to result (<span class=\"p50\">p50</span> · <span class=\"p99\">p99</span>)",
            peakLabel: formatMillis(peak), content: lines(\.p50, "p50") + lines(\.p99, "p99"))
    }

    private static func chart(title: String, peakLabel: String, content: String) -> String {
        """
        <figure class="chart"><figcaption>\(title)</figcaption>
        <svg viewBox="0 0 \(format(chartWidth)) \(format(chartHeight + 14))" role="img" preserveAspectRatio="none">
        <line class="axis" x1="0" y1="\(format(chartHeight))" x2="\(format(chartWidth))" y2="\(format(chartHeight))"/>
        \(content)
        <text x="2" y="10">\(HTML.text(peakLabel))</text>
        <text x="2" y="\(format(chartHeight + 12))">−60 min</text>
        <text x="\(format(chartWidth - 2))" y="\(format(chartHeight + 12))" text-anchor="end">now</text>
        </svg></figure>
        """
    }

    // MARK: Formatting

    static func format(_ value: Double) -> String {
        String(format: "%.1f", value)
    }

    static func formatAge(_ seconds: Double) -> String {
        switch seconds {
        case ..<120: String(format: "%.0f s", seconds)
        case ..<3600: String(format: "%.0f min", seconds / 60)
        case ..<86400: String(format: "%.1f h", seconds / 3600)
        default: String(format: "%.1f d", seconds / 86400)
        }
    }

    static func formatMillis(_ ms: Double) -> String {
        ms < 1000 ? String(format: "%.0f ms", ms) : String(format: "%.1f s", ms / 1000)
    }

    static func formatBytes(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
    }
}

/// Escaping for HTML and XML built by hand: `&`, `<`, `>` and both quotes escaped (so text is
/// also safe in a quoted attribute); control characters other than tab, newline and carriage
/// return, which neither language can carry, become U+FFFD.
enum Markup {
    static func escape(_ value: String) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for scalar in value.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default:
                if scalar.value < 0x20 && scalar != "\n" && scalar != "\t" && scalar != "\r" || scalar.value == 0x7F {
                    out += "\u{FFFD}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }
}

/// Escaping for the status page's HTML.
enum HTML {
    /// Text content.
    static func text(_ value: String) -> String { Markup.escape(value) }

    /// A value inside a double-quoted attribute.
    static func attribute(_ value: String) -> String { text(value) }

    /// One URL path segment: everything but unreserved characters percent-encoded.
    static func pathSegment(_ value: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        // `alphanumerics` includes non-ASCII letters; encode those too.
        return value.unicodeScalars.map { scalar -> String in
            if scalar.isASCII, allowed.contains(scalar) { return String(scalar) }
            return String(scalar).utf8.map { String(format: "%%%02X", $0) }.joined()
        }.joined()
    }
}
