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

    /// `scheduler.poll_ms` and `scheduler.lateness_seconds` over the defaults of
    /// ``SchedulerConfiguration``.
    static func configuration(_ settings: SettingsResolver) throws -> SchedulerConfiguration {
        var configuration = SchedulerConfiguration()
        let section = settings.file.scheduler
        if let poll = try settings.optional(
            SettingNames(file: "scheduler.poll_ms"), flag: nil, file: section?.pollMilliseconds, in: 10...10_000)
        {
            configuration.pollInterval = .milliseconds(poll)
        }
        configuration.lateness = try settings.seconds(
            SettingNames(file: "scheduler.lateness_seconds"), flag: nil, file: section?.latenessSeconds,
            default: configuration.lateness, in: 1...86_400)
        guard configuration.lateness >= configuration.pollInterval * 2 + .seconds(1) else {
            throw ValidationError("scheduler.lateness_seconds must be at least twice poll_ms plus 1 s, or on-time ticks would count as missed")
        }
        return configuration
    }
}
