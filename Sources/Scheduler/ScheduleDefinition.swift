import Foundation
import TernCore

/// A schedule as written in the config file's `schedules:` and in the HTTP API's JSON: the same
/// keys in both places.
///
/// ```yaml
/// - name: nightly-report
///   task: report
///   input: {format: pdf}
///   cron: "30 2 * * *"
///   timezone: Europe/Berlin
/// ```
public struct ScheduleDefinition: Codable, Sendable, Hashable {
    public var name: String
    public var task: String
    /// The task's input; `null` when absent.
    public var input: JSONValue?
    /// A cron expression, or…
    public var cron: String?
    /// …its IANA time zone (default UTC), or…
    public var timezone: String?
    /// …a fixed interval in seconds (at least 1).
    public var everySeconds: Double?
    public var queue: String?
    public var priority: Int?
    public var jitterSeconds: Double?
    public var enabled: Bool?
    /// `skip` (default), `once` or `all`.
    public var catchUp: String?
    /// For `all`: the most missed ticks run (default 100).
    public var catchUpLimit: Int?
    /// `allow` (default) or `skip`.
    public var overlap: String?
    /// Attempts of each job, 1 to 100 (default: the task's).
    public var maxAttempts: Int?
    /// Each job expires if it has not started this many seconds after it was due (default: the
    /// task's `expiresAfter`, else never).
    public var expiresAfterSeconds: Double?
    /// Headers of each job (``JobHeaders``), for the application's middleware; the scheduler adds
    /// the trace context of the tick when tracing is on.
    public var headers: [String: String]?

    enum CodingKeys: String, CodingKey {
        case name, task, input, cron, timezone, queue, priority, enabled, overlap, headers
        case maxAttempts = "max_attempts"
        case expiresAfterSeconds = "expires_after_seconds"
        case everySeconds = "every_seconds"
        case jitterSeconds = "jitter_seconds"
        case catchUp = "catch_up"
        case catchUpLimit = "catch_up_limit"
    }

    public init(name: String, task: String, input: JSONValue? = nil, cron: String? = nil, timezone: String? = nil, everySeconds: Double? = nil) {
        self.name = name
        self.task = task
        self.input = input
        self.cron = cron
        self.timezone = timezone
        self.everySeconds = everySeconds
    }

    /// The schedule this definition describes (not yet checked against the tasks: see
    /// ``Schedule/validate(against:)``).
    public func schedule() throws(ScheduleError) -> Schedule {
        func invalid(_ problem: String) -> ScheduleError { .invalid(name, problem) }
        let trigger: Schedule.Trigger
        switch (cron, everySeconds) {
        case (let text?, nil):
            let expression: CronExpression
            do {
                expression = try CronExpression(text)
            } catch {
                throw invalid("\(error)")
            }
            let zoneName = timezone ?? "UTC"
            guard let zone = TimeZone(identifier: zoneName) else { throw invalid("unknown time zone '\(zoneName.prefix(64))' (use an IANA name such as Europe/Berlin)") }
            trigger = .cron(CronSchedule(expression, timeZone: zone))
        case (nil, let seconds?):
            guard timezone == nil else { throw invalid("timezone applies to cron schedules only") }
            guard seconds.isFinite, (1...(366 * 86_400)).contains(seconds) else { throw invalid("every_seconds must be 1 to 31622400 (366 days)") }
            trigger = .interval(.milliseconds(Int64(seconds * 1000)))
        default:
            throw invalid("give either cron or every_seconds")
        }
        let queueName = try queue.map { text throws(ScheduleError) in
            guard let queue = QueueName(text) else { throw invalid("invalid queue name '\(text.prefix(64))'") }
            return queue
        }
        if let catchUpLimit, !(1...10_000).contains(catchUpLimit) {
            throw invalid("the catch-up limit must be 1-10000")
        }
        let policy: Schedule.CatchUp
        switch catchUp ?? "skip" {
        case "skip": policy = .skip
        case "once": policy = .once
        case "all": policy = .all(limit: catchUpLimit ?? 100)
        case let other: throw invalid("catch_up must be skip, once or all, not '\(other.prefix(32))'")
        }
        let skipIfRunning: Bool
        switch overlap ?? "allow" {
        case "allow": skipIfRunning = false
        case "skip": skipIfRunning = true
        case let other: throw invalid("overlap must be allow or skip, not '\(other.prefix(32))'")
        }
        let jitter = jitterSeconds ?? 0
        guard jitter.isFinite, (0...86_400).contains(jitter) else { throw invalid("jitter_seconds must be 0 to 86400") }
        if let maxAttempts, !(1...100).contains(maxAttempts) { throw invalid("max_attempts must be 1 to 100") }
        if let expires = expiresAfterSeconds, !expires.isFinite || !(0...Self.maxExpiresAfterSeconds).contains(expires) {
            throw invalid("expires_after_seconds must be 0 to 3155760000 (100 years)")
        }
        if let headers, let problem = JobHeaders.problem(headers) { throw invalid("headers: " + problem) }
        let inputData = (try? JSONEncoder().encode(input ?? .null)) ?? Data("null".utf8)
        return Schedule(
            name: name, trigger: trigger, task: task, input: inputData, queue: queueName, priority: priority,
            jitter: .milliseconds(Int64(jitter * 1000)), enabled: enabled ?? true, catchUp: policy, skipIfRunning: skipIfRunning,
            maxAttempts: maxAttempts, expiresAfter: expiresAfterSeconds.map { .milliseconds(Int64($0 * 1000)) },
            headers: headers ?? [:])
    }

    /// The longest `expires_after_seconds`: 100 years.
    public static let maxExpiresAfterSeconds: Double = 3_155_760_000
}
