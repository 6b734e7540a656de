import Foundation

/// A cron expression: 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds
/// first, or a macro (`@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`,
/// `@hourly`).
///
/// Each field takes `*`, a value, a range `a-b`, a step `*/n`, `a-b/n` or `a/n`, and lists of these
/// separated by commas. Months take `jan`…`dec` and days of week `sun`…`sat` (0 or 7 is Sunday),
/// in any case. `?` is `*` in the day fields. As in classic cron, when both day-of-month and
/// day-of-week are restricted a day matching either one matches.
///
/// ```swift
/// let cron = try CronExpression("30 2 * * mon-fri")
/// ```
public struct CronExpression: Sendable, Hashable, CustomStringConvertible {
    /// The allowed values of each field, as sets.
    let seconds: Set<Int>
    let minutes: Set<Int>
    let hours: Set<Int>
    let daysOfMonth: Set<Int>
    let months: Set<Int>
    /// 0 (Sunday) … 6.
    let daysOfWeek: Set<Int>
    /// Whether the day fields were restricted (not `*` or `?`).
    let daysOfMonthRestricted: Bool
    let daysOfWeekRestricted: Bool

    /// The expression as written.
    public let description: String

    /// Parses `text`.
    /// - Throws: ``CronError`` naming the field and the part that is wrong.
    public init(_ text: String) throws(CronError) {
        description = text
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        let expanded: String
        switch trimmed {
        case "@yearly", "@annually": expanded = "0 0 1 1 *"
        case "@monthly": expanded = "0 0 1 * *"
        case "@weekly": expanded = "0 0 * * 0"
        case "@daily", "@midnight": expanded = "0 0 * * *"
        case "@hourly": expanded = "0 * * * *"
        default:
            guard !trimmed.hasPrefix("@") else { throw CronError(field: nil, message: "unknown macro '\(text)'; use @yearly (@annually), @monthly, @weekly, @daily (@midnight) or @hourly") }
            expanded = trimmed
        }
        var fields = expanded.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 || fields.count == 6 else {
            throw CronError(field: nil, message: "expected 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, got \(fields.count)")
        }
        if fields.count == 5 { fields.insert("0", at: 0) }
        seconds = try Self.parse(fields[0], .second)
        minutes = try Self.parse(fields[1], .minute)
        hours = try Self.parse(fields[2], .hour)
        daysOfMonth = try Self.parse(fields[3], .dayOfMonth)
        months = try Self.parse(fields[4], .month)
        daysOfWeek = Set(try Self.parse(fields[5], .dayOfWeek).map { $0 % 7 })
        daysOfMonthRestricted = !["*", "?"].contains(fields[3])
        daysOfWeekRestricted = !["*", "?"].contains(fields[5])
    }

    /// Whether the calendar day matches the day fields (`weekday` 0 is Sunday).
    func matchesDay(month: Int, day: Int, weekday: Int) -> Bool {
        guard months.contains(month) else { return false }
        switch (daysOfMonthRestricted, daysOfWeekRestricted) {
        case (true, true): return daysOfMonth.contains(day) || daysOfWeek.contains(weekday)
        case (true, false): return daysOfMonth.contains(day)
        case (false, true): return daysOfWeek.contains(weekday)
        case (false, false): return true
        }
    }

    private static func parse(_ text: String, _ field: CronField) throws(CronError) -> Set<Int> {
        if text == "?" && (field == .dayOfMonth || field == .dayOfWeek) { return Set(field.range) }
        var values: Set<Int> = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let pieces = part.split(separator: "/", omittingEmptySubsequences: false)
            guard (1...2).contains(pieces.count), !pieces[0].isEmpty else { throw CronError(field: field, message: "'\(part)' is not a value, range or step") }
            var step = 1
            if pieces.count == 2 {
                guard let value = Int(pieces[1]), value >= 1, value <= field.range.upperBound else {
                    throw CronError(field: field, message: "step '\(pieces[1])' must be a whole number from 1 to \(field.range.upperBound)")
                }
                step = value
            }
            let range: ClosedRange<Int>
            if pieces[0] == "*" {
                range = field.range
            } else if let dash = pieces[0].firstIndex(of: "-") {
                let low = try value(pieces[0][..<dash], field)
                let high = try value(pieces[0][pieces[0].index(after: dash)...], field)
                guard low <= high else { throw CronError(field: field, message: "range '\(pieces[0])' goes backwards") }
                range = low...high
            } else {
                let start = try value(pieces[0], field)
                range = start...(pieces.count == 2 ? field.range.upperBound : start)
            }
            values.formUnion(stride(from: range.lowerBound, through: range.upperBound, by: step))
        }
        return values
    }

    private static func value(_ text: Substring, _ field: CronField) throws(CronError) -> Int {
        if let number = Int(text) {
            guard field.range.contains(number) else {
                throw CronError(field: field, message: "'\(text)' is out of range \(field.range.lowerBound)-\(field.range.upperBound)")
            }
            return number
        }
        if let index = field.names.firstIndex(of: String(text)) { return index + field.namesStart }
        throw CronError(field: field, message: "'\(text)' is not a number\(field.names.isEmpty ? "" : " or a name (\(field.names.first!)…\(field.names.last!))")")
    }
}

/// The fields of a cron expression.
public enum CronField: String, Sendable, CaseIterable {
    case second, minute, hour, dayOfMonth = "day-of-month", month, dayOfWeek = "day-of-week"

    var range: ClosedRange<Int> {
        switch self {
        case .second, .minute: 0...59
        case .hour: 0...23
        case .dayOfMonth: 1...31
        case .month: 1...12
        case .dayOfWeek: 0...7
        }
    }

    var names: [String] {
        switch self {
        case .month: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        case .dayOfWeek: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
        default: []
        }
    }

    var namesStart: Int { self == .month ? 1 : 0 }
}

/// Why a cron expression was refused: the field, and what is wrong in it.
public struct CronError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The field at fault, or `nil` for the expression as a whole.
    public var field: CronField?
    public var message: String

    public var description: String {
        field.map { "cron \($0.rawValue) field: \(message)" } ?? "cron expression: \(message)"
    }
}
