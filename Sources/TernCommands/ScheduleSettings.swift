import ArgumentParser
import Foundation
import Scheduler
import TernCore

/// Turns the `schedules:` and `scheduler:` sections of the config file into schedules and the
/// scheduler's configuration.
enum ScheduleSettings {
    static func schedules(_ entries: [ConfigFile.ScheduleEntry]?) throws -> [Schedule] {
        try (entries ?? []).map(schedule)
    }

    static func configuration(_ section: ConfigFile.SchedulerSection?) throws -> SchedulerConfiguration {
        var configuration = SchedulerConfiguration()
        if let poll = section?.pollMilliseconds {
            guard (10...10_000).contains(poll) else { throw ValidationError("scheduler.poll_ms must be 10-10000") }
            configuration.pollInterval = .milliseconds(poll)
        }
        if let lateness = section?.latenessSeconds {
            guard lateness.isFinite, (1...86_400).contains(lateness) else { throw ValidationError("scheduler.lateness_seconds must be 1-86400") }
            configuration.lateness = .milliseconds(Int64(lateness * 1000))
        }
        return configuration
    }

    private static func schedule(_ entry: ConfigFile.ScheduleEntry) throws -> Schedule {
        func invalid(_ problem: String) -> ValidationError { ValidationError("schedule '\(entry.name)': \(problem)") }
        let trigger: Schedule.Trigger
        switch (entry.cron, entry.everySeconds) {
        case (let text?, nil):
            let expression: CronExpression
            do {
                expression = try CronExpression(text)
            } catch {
                throw invalid("\(error)")
            }
            let zoneName = entry.timezone ?? "UTC"
            guard let zone = TimeZone(identifier: zoneName) else { throw invalid("unknown time zone '\(zoneName)' (use an IANA name such as Europe/Berlin)") }
            trigger = .cron(CronSchedule(expression, timeZone: zone))
        case (nil, let seconds?):
            guard entry.timezone == nil else { throw invalid("timezone applies to cron schedules only") }
            guard seconds.isFinite, seconds >= 1 else { throw invalid("every_seconds must be at least 1") }
            trigger = .interval(.milliseconds(Int64(seconds * 1000)))
        default:
            throw invalid("give either cron or every_seconds")
        }
        let queue = try entry.queue.map { name in
            guard let queue = QueueName(name) else { throw invalid("invalid queue name '\(name)'") }
            return queue
        }
        let catchUp: Schedule.CatchUp
        switch entry.catchUp ?? "skip" {
        case "skip": catchUp = .skip
        case "once": catchUp = .once
        case "all": catchUp = .all(limit: entry.catchUpLimit ?? 100)
        case let other: throw invalid("catch_up must be skip, once or all, not '\(other)'")
        }
        let skipIfRunning: Bool
        switch entry.overlap ?? "allow" {
        case "allow": skipIfRunning = false
        case "skip": skipIfRunning = true
        case let other: throw invalid("overlap must be allow or skip, not '\(other)'")
        }
        let jitter = entry.jitterSeconds ?? 0
        guard jitter.isFinite, jitter >= 0 else { throw invalid("jitter_seconds must be 0 or more") }
        let input = try JSONEncoder().encode(entry.input ?? .null)
        return Schedule(
            name: entry.name, trigger: trigger, task: entry.task, input: input, queue: queue, priority: entry.priority,
            jitter: .milliseconds(Int64(jitter * 1000)), enabled: entry.enabled ?? true, catchUp: catchUp,
            skipIfRunning: skipIfRunning)
    }
}
