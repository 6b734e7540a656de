import Foundation

/// A cron expression in an IANA time zone: the instants it fires at.
///
/// Times are matched on the zone's wall clock. Daylight saving time:
/// - a wall-clock time that does not exist (the hour skipped in spring) fires once, at the first
///   instant after the gap (02:30 in New York on the spring-forward day fires at 03:00 EDT);
/// - a wall-clock time that happens twice (the hour repeated in autumn) fires once, at its first
///   occurrence; the repeated hour fires nothing again.
public struct CronSchedule: Sendable, Hashable {
    public let expression: CronExpression
    public let timeZone: TimeZone

    public init(_ expression: CronExpression, timeZone: TimeZone) {
        self.expression = expression
        self.timeZone = timeZone
    }

    /// The first firing strictly after `milliseconds` (since 1970), or `nil` if the expression
    /// never matches within 10 years (for example `0 0 30 2 *`).
    public func next(after milliseconds: Int64) -> Int64? {
        let after = milliseconds >= 0 ? milliseconds / 1000 : (milliseconds - 999) / 1000
        var local = LocalTime(naiveSeconds: after + Int64(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(after)))))
        let horizon = local.naiveSeconds + 10 * 366 * 86_400
        while let candidate = local.next(matching: expression), candidate.naiveSeconds <= horizon {
            if let instant = resolve(candidate.naiveSeconds), instant * 1000 > milliseconds { return instant * 1000 }
            local = candidate
        }
        return nil
    }

    /// The first `count` firings after `milliseconds`.
    public func upcoming(after milliseconds: Int64, count: Int) -> [Int64] {
        firings(after: milliseconds, count: count, next: next(after:))
    }

    /// The instant (seconds) a wall-clock time fires at: its only instant, the first of two, or the
    /// end of the gap it falls in.
    func resolve(_ naive: Int64) -> Int64? {
        // The offsets a day either side of the wall time read as UTC: offsets run from -12 to +14
        // hours, so half a day would sample after a change in zones at +12 or more (Auckland).
        let early = timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(naive - 86_400)))
        let late = timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(naive + 86_400)))
        let valid = Set([early, late]).map { naive - Int64($0) }
            .filter { Int64(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double($0)))) == naive - $0 }
        if let first = valid.min() { return first }
        // In a gap: the clock jumped over this time; fire when the jump happens.
        let beforeGap = Date(timeIntervalSince1970: Double(naive - Int64(max(early, late))))
        return timeZone.nextDaylightSavingTimeTransition(after: beforeGap).map { Int64($0.timeIntervalSince1970) }
    }
}

/// A wall-clock time, as seconds since 1970-01-01T00:00 on a clock without zones.
struct LocalTime {
    var naiveSeconds: Int64

    /// The first time strictly after this one that `cron` matches, searching day by day.
    func next(matching cron: CronExpression) -> LocalTime? {
        var days = floorDiv(naiveSeconds, 86_400)
        var secondOfDay = Int(naiveSeconds - days * 86_400) + 1
        for _ in 0..<(10 * 366 + 2) {
            let (_, month, day) = civil(days)
            let weekday = Int(((days % 7) + 11) % 7)  // 1970-01-01 was a Thursday (4)
            if cron.matchesDay(month: month, day: day, weekday: weekday), let time = timeOfDay(atOrAfter: secondOfDay, cron) {
                return LocalTime(naiveSeconds: days * 86_400 + Int64(time))
            }
            days += 1
            secondOfDay = 0
        }
        return nil
    }

    /// The first second of the day at or after `start` whose hour, minute and second match.
    private func timeOfDay(atOrAfter start: Int, _ cron: CronExpression) -> Int? {
        guard start < 86_400 else { return nil }
        var hour = start / 3600, minute = (start % 3600) / 60, second = start % 60
        while hour < 24 {
            if !cron.hours.contains(hour) {
                hour += 1; minute = 0; second = 0; continue
            }
            while minute < 60 {
                if cron.minutes.contains(minute), let found = cron.seconds.filter({ $0 >= second }).min() {
                    return hour * 3600 + minute * 60 + found
                }
                minute += 1; second = 0
            }
            hour += 1; minute = 0; second = 0
        }
        return nil
    }
}

func floorDiv(_ a: Int64, _ b: Int64) -> Int64 { a >= 0 ? a / b : -((-a + b - 1) / b) }

/// The civil date of a day count since 1970-01-01 (proleptic Gregorian; Howard Hinnant's method).
func civil(_ days: Int64) -> (year: Int, month: Int, day: Int) {
    let z = days + 719_468
    let era = floorDiv(z, 146_097)
    let dayOfEra = z - era * 146_097
    let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
    let monthIndex = (5 * dayOfYear + 2) / 153
    let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
    let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
    return (Int(yearOfEra + era * 400 + (month <= 2 ? 1 : 0)), Int(month), Int(day))
}

/// The first `count` instants `next` gives, each after the one before, starting after `start`.
func firings(after start: Int64, count: Int, next: (Int64) -> Int64?) -> [Int64] {
    var result: [Int64] = []
    var from = start
    while result.count < count, let instant = next(from) {
        result.append(instant)
        from = instant
    }
    return result
}
