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

    /// `--metrics-port` (`TERN_SCHEDULER_METRICS_PORT`, `scheduler.metrics_port`) and
    /// `--metrics-host` (`scheduler.metrics_host`, default 127.0.0.1); `nil` without a port.
    static func metrics(_ settings: SettingsResolver, port: Int?, host: String?) throws -> MetricsEndpoint? {
        let section = settings.file.scheduler
        let port = try settings.optional(
            SettingNames(flag: "--metrics-port", environment: "TERN_SCHEDULER_METRICS_PORT", file: "scheduler.metrics_port"),
            flag: port, file: section?.metricsPort, in: 1...65_535)
        let host = try settings.value(
            SettingNames(flag: "--metrics-host", file: "scheduler.metrics_host"), flag: host, file: section?.metricsHost,
            default: MetricsEndpoint.defaultHost)
        return port.map { MetricsEndpoint(host: host, port: $0) }
    }
}
