import Foundation
import Scheduler
import Testing

/// Milliseconds since 1970 of an ISO 8601 time with a zone ("2026-03-08T07:00:00Z").
private func ms(_ text: String) -> Int64 {
    let formatter = ISO8601DateFormatter()
    return Int64(formatter.date(from: text)!.timeIntervalSince1970 * 1000)
}

private func iso(_ milliseconds: Int64) -> String {
    ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(milliseconds) / 1000))
}

@Suite("Cron expressions")
struct CronTests {
    @Test("next runs", arguments: [
        ("*/15 * * * *", "UTC", "2026-01-01T00:07:00Z", ["2026-01-01T00:15:00Z", "2026-01-01T00:30:00Z", "2026-01-01T00:45:00Z", "2026-01-01T01:00:00Z"]),
        // Month ends: the 31st only in months that have one.
        ("0 0 31 * *", "UTC", "2026-01-31T00:00:00Z", ["2026-03-31T00:00:00Z", "2026-05-31T00:00:00Z", "2026-07-31T00:00:00Z"]),
        // Leap days.
        ("0 12 29 2 *", "UTC", "2026-01-01T00:00:00Z", ["2028-02-29T12:00:00Z", "2032-02-29T12:00:00Z", "2036-02-29T12:00:00Z"]),
        ("0 9 * * mon-fri", "UTC", "2026-11-27T10:00:00Z", ["2026-11-30T09:00:00Z", "2026-12-01T09:00:00Z", "2026-12-02T09:00:00Z"]),
        // Both day fields restricted: either matches (1st/15th, or a Friday).
        ("0 0 1,15 * FRI", "UTC", "2026-11-01T00:00:00Z", ["2026-11-06T00:00:00Z", "2026-11-13T00:00:00Z", "2026-11-15T00:00:00Z", "2026-11-20T00:00:00Z"]),
        ("0 0 * * 7", "UTC", "2026-11-26T00:00:00Z", ["2026-11-29T00:00:00Z", "2026-12-06T00:00:00Z"]),
        ("*/20 * * * * *", "UTC", "2026-01-01T00:00:00Z", ["2026-01-01T00:00:20Z", "2026-01-01T00:00:40Z", "2026-01-01T00:01:00Z"]),
        ("@hourly", "UTC", "2026-01-01T00:00:00Z", ["2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"]),
        ("@yearly", "UTC", "2026-06-01T00:00:00Z", ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"]),
        ("0 0 1 jan-mar/2 *", "UTC", "2026-01-01T00:00:00Z", ["2026-03-01T00:00:00Z", "2027-01-01T00:00:00Z"]),
        // New York springs forward on 2026-03-08 (02:00 EST → 03:00 EDT): 02:30 runs once, at 03:00 EDT.
        ("30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]),
        // New York falls back on 2026-11-01 (02:00 EDT → 01:00 EST): 01:30 runs once, at its first occurrence.
        ("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]),
        // The repeated hour fires nothing again.
        ("*/30 * * * *", "America/New_York", "2026-11-01T04:45:00Z", ["2026-11-01T05:00:00Z", "2026-11-01T05:30:00Z", "2026-11-01T07:00:00Z"]),
        // Berlin springs forward on 2026-03-29 (02:00 CET → 03:00 CEST) and falls back on 2026-10-25.
        ("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]),
        ("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]),
        ("0 9 * * *", "Europe/Berlin", "2026-01-15T09:00:00Z", ["2026-01-16T08:00:00Z", "2026-01-17T08:00:00Z"]),
        // Auckland (+13 → +12 on 2026-04-05 at 03:00, +12 → +13 on 2026-09-27 at 02:00): the repeated
        // 02:30 fires at its first occurrence, the skipped one when the clock jumps.
        ("30 2 * * *", "Pacific/Auckland", "2026-04-04T00:00:00Z", ["2026-04-04T13:30:00Z", "2026-04-05T14:30:00Z"]),
        ("30 2 * * *", "Pacific/Auckland", "2026-09-26T06:00:00Z", ["2026-09-26T14:00:00Z", "2026-09-27T13:30:00Z"]),
        // Chatham (+12:45 / +13:45, changing at 02:45 and 03:45 local): 02:30 exists on both days.
        ("30 2 * * *", "Pacific/Chatham", "2026-04-04T00:00:00Z", ["2026-04-04T12:45:00Z", "2026-04-05T13:45:00Z"]),
        ("30 2 * * *", "Pacific/Chatham", "2026-09-26T06:00:00Z", ["2026-09-26T13:45:00Z", "2026-09-27T12:45:00Z"]),
    ])
    func nextRuns(expression: String, zone: String, after: String, expected: [String]) throws {
        let schedule = CronSchedule(try CronExpression(expression), timeZone: try #require(TimeZone(identifier: zone)))
        #expect(schedule.upcoming(after: ms(after), count: expected.count).map(iso) == expected)
    }

    @Test("an expression that never matches has no next run")
    func never() throws {
        let schedule = CronSchedule(try CronExpression("0 0 30 2 *"), timeZone: .gmt)
        #expect(schedule.next(after: 0) == nil)
    }

    @Test("invalid expressions are refused with a message naming the field", arguments: [
        ("61 * * * *", "cron minute field: '61' is out of range 0-59"),
        ("* * * *", "cron expression: expected 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, got 4"),
        ("0 0 32 * *", "cron day-of-month field: '32' is out of range 1-31"),
        ("0 0 * foo *", "cron month field: 'foo' is not a number or a name (jan…dec)"),
        ("0 24 * * *", "cron hour field: '24' is out of range 0-23"),
        ("*/0 * * * *", "cron minute field: step '0' must be a whole number from 1 to 59"),
        ("5-1 * * * *", "cron minute field: range '5-1' goes backwards"),
        ("0 0 * * mon,", "cron day-of-week field: '' is not a value, range or step"),
        ("@every 5m", "cron expression: unknown macro '@every 5m'; use @yearly (@annually), @monthly, @weekly, @daily (@midnight) or @hourly"),
        ("60 * * * * *", "cron second field: '60' is out of range 0-59"),
    ])
    func invalid(expression: String, message: String) {
        #expect(throws: CronError.self) { try CronExpression(expression) }
        do {
            _ = try CronExpression(expression)
        } catch {
            #expect(error.description == message)
        }
    }
}
