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
}
