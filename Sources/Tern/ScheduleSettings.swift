import ArgumentParser
import Foundation
import Scheduler
import TernCore

/// Turns the `schedules:` and `scheduler:` sections of the config file into schedules and the
/// scheduler's configuration.
enum ScheduleSettings {
    static func schedules(_ entries: [ScheduleDefinition]?) throws -> [Schedule] {
        do {
            return try (entries ?? []).map { try $0.schedule() }
        } catch {
            throw ValidationError("\(error)")
        }
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
        guard configuration.lateness >= configuration.pollInterval * 2 + .seconds(1) else {
            throw ValidationError("scheduler.lateness_seconds must be at least twice poll_ms plus 1 s, or on-time ticks would count as missed")
        }
        return configuration
    }
}
