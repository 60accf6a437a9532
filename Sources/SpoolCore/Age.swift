import Foundation

/// Ages as users write them: a number and a unit, `30s`, `10m`, `2h`, `7d`, `1w`
/// (`spool gc --older-than`, `spool events --since`, `[spool] retain_finished`).
public enum Age {
    /// The seconds in `text`, or nil when it is not such an age.
    public static func parse(_ text: String) -> TimeInterval? {
        guard let unit = text.last, let value = Double(text.dropLast()), value >= 0, value.isFinite else { return nil }
        switch unit {
        case "s": return value
        case "m": return value * 60
        case "h": return value * 3600
        case "d": return value * 86400
        case "w": return value * 604_800
        default: return nil
        }
    }

    /// A `--since` value — an ISO 8601 time or an age before `now` — as a `Timestamp` string
    /// (which compares as text with the times Spool writes), or nil when it is neither.
    public static func cutoff(_ text: String, now: Date) -> String? {
        if let age = parse(text) { return Timestamp.string(now.addingTimeInterval(-age)) }
        let formatter = ISO8601DateFormatter()
        for options: ISO8601DateFormatter.Options in [[.withInternetDateTime, .withFractionalSeconds], [.withInternetDateTime]] {
            formatter.formatOptions = options
            if let date = formatter.date(from: text) { return Timestamp.string(date) }
        }
        return nil
    }
}

/// Filters `events.jsonl` lines by their `eventTime`.
public enum EventFilter {
    /// Whether the event on `line` happened at or after `cutoff` (a `Timestamp` string; nil
    /// keeps everything). Event times are ISO 8601 in UTC with milliseconds: they compare as text.
    public static func isAtOrAfter(_ line: Data, _ cutoff: String?) -> Bool {
        guard let cutoff else { return true }
        guard let object = try? JSONSerialization.jsonObject(with: line) as? [String: Any],
              let time = object["eventTime"] as? String else { return false }
        return time >= cutoff
    }
}
