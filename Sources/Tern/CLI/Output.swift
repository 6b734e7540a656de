import Foundation

/// Terminal output: aligned tables, times, colour on a terminal only, and job data made safe.
enum Output {
    /// Colour only when standard output is a terminal and `NO_COLOR` is unset.
    static let colour = isatty(STDOUT_FILENO) == 1 && (ProcessInfo.processInfo.environment["NO_COLOR"] ?? "").isEmpty

    /// `text` with control characters (ANSI escapes among them) shown as `\u{…}` escapes, so data
    /// from jobs can never drive the terminal.
    static func clean(_ text: String) -> String {
        var result = ""
        for scalar in text.unicodeScalars {
            if scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar == "\u{2028}" || scalar == "\u{2029}" {
                result += "\\u{" + String(scalar.value, radix: 16) + "}"
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    /// Any JSON value as one clean line.
    /// A period in milliseconds, short: `1s`, `1min`, `1h`, `1500ms`.
    static func duration(milliseconds: Int) -> String {
        for (unit, scale) in [("h", 3_600_000), ("min", 60_000), ("s", 1_000)] where milliseconds % scale == 0 {
            return milliseconds == scale ? unit : "\(milliseconds / scale)\(unit)"
        }
        return "\(milliseconds)ms"
    }

    static func value(_ value: Any?) -> String {
        switch value {
        case nil, is NSNull: return "-"
        case let text as String: return clean(text)
        case let number as NSNumber: return String(cString: number.objCType) == "c" ? (number.boolValue ? "true" : "false") : "\(number)"
        case let other?:
            let data = try? JSONSerialization.data(withJSONObject: other, options: [.sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes])
            return clean(data.map { String(decoding: $0, as: UTF8.self) } ?? "\(other)")
        }
    }

    /// A state name, coloured on a terminal.
    static func state(_ name: String) -> String {
        guard colour else { return name }
        let code: String
        switch name {
        case "succeeded": code = "32"
        case "failed", "expired": code = "31"
        case "running": code = "36"
        case "cancelled", "retrying": code = "33"
        default: return name
        }
        return "\u{1B}[\(code)m\(name)\u{1B}[0m"
    }

    /// An ISO 8601 time as "2026-11-25 20:01:02Z (3m ago)".
    static func time(_ value: Any?) -> String {
        guard let text = value as? String, let date = parseTime(text) else {
            return "-"
        }
        return text.replacingOccurrences(of: "T", with: " ").replacingOccurrences(of: ".000Z", with: "Z") + " (" + relative(date) + ")"
    }

    /// An ISO 8601 time with or without milliseconds.
    static func parseTime(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: text) ?? ISO8601DateFormatter().date(from: text)
    }

    static func relative(_ date: Date) -> String {
        let seconds = Int(Date().timeIntervalSince(date).rounded())
        let magnitude = abs(seconds)
        let amount = magnitude < 60 ? "\(magnitude)s" : magnitude < 3600 ? "\(magnitude / 60)m" : magnitude < 86_400 ? "\(magnitude / 3600)h" : "\(magnitude / 86_400)d"
        return seconds >= 0 ? "\(amount) ago" : "in \(amount)"
    }

    /// Prints rows as columns aligned under `headers` (colour codes do not count toward widths).
    static func table(_ headers: [String], _ rows: [[String]]) {
        let widths = headers.indices.map { column in
            ([headers[column]] + rows.map { $0[column] }).map { visibleWidth($0) }.max() ?? 0
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                index == cells.count - 1 ? cell : cell + String(repeating: " ", count: widths[index] - visibleWidth(cell))
            }.joined(separator: "  ")
        }
        print(colour ? "\u{1B}[1m" + line(headers) + "\u{1B}[0m" : line(headers))
        for row in rows { print(line(row)) }
    }

    private static func visibleWidth(_ text: String) -> Int {
        var width = 0
        var inEscape = false
        for scalar in text.unicodeScalars {
            if scalar == "\u{1B}" { inEscape = true } else if inEscape { if scalar == "m" { inEscape = false } } else { width += 1 }
        }
        return width
    }

    /// Prints `object` as JSON (for `--json`).
    static func json(_ object: Any?) {
        let data = try? JSONSerialization.data(withJSONObject: object ?? NSNull(), options: [.sortedKeys, .prettyPrinted, .fragmentsAllowed, .withoutEscapingSlashes])
        print(data.map { String(decoding: $0, as: UTF8.self) } ?? "null")
    }
}

