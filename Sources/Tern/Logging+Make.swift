import ArgumentParser
import Foundation
import Logging

/// Builds the executables' loggers.
enum LogSetup {
    /// A logger writing to standard error as text or as one JSON object per line.
    /// The level is `TERN_LOG_LEVEL` (trace, debug, info, notice, warning, error, critical), `info`
    /// when unset.
    static func make(label: String, format: String?) throws -> Logger {
        var logger: Logger
        switch format ?? "text" {
        case "text": logger = Logger(label: label, factory: { StreamLogHandler.standardError(label: $0) })
        case "json": logger = Logger(label: label, factory: { JSONLogHandler(label: $0) })
        default: throw ValidationError("--log-format must be text or json")
        }
        logger.logLevel = try level()
        return logger
    }

    /// A logger in the format of `flag` (`--log-format`), else `TERN_LOG_FORMAT`, else `log.format`,
    /// else text; at the level of `level` (`--log-level`), else `TERN_LOG_LEVEL`, else `log.level`,
    /// else info.
    static func make(label: String, _ settings: SettingsResolver, flag: String?, level levelFlag: String? = nil) throws -> Logger {
        let format = try settings.optional(
            SettingNames(flag: "--log-format", environment: "TERN_LOG_FORMAT", file: "log.format"),
            flag: flag, file: settings.file.log?.format)
        guard format == nil || format == "text" || format == "json" else {
            throw ValidationError("the log format (--log-format, TERN_LOG_FORMAT, log.format) must be text or json, not '\(format!)'")
        }
        var logger = try make(label: label, format: format)
        let level = try settings.optional(
            SettingNames(flag: "--log-level", environment: "TERN_LOG_LEVEL", file: "log.level"), flag: levelFlag,
            file: settings.file.log?.level)
        if let level {
            guard let value = Logger.Level(rawValue: level.lowercased()) else {
                throw ValidationError(
                    "the log level (--log-level, TERN_LOG_LEVEL, log.level) must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")), not '\(level)'")
            }
            logger.logLevel = value
        }
        return logger
    }

    /// The level named by `TERN_LOG_LEVEL`, `info` when unset.
    static func level(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Logger.Level {
        guard let name = environment["TERN_LOG_LEVEL"], !name.isEmpty else { return .info }
        guard let level = Logger.Level(rawValue: name.lowercased()) else {
            throw ValidationError("TERN_LOG_LEVEL must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")), not '\(name)'")
        }
        return level
    }
}

/// Writes one JSON object per line to standard error: `ts`, `level`, `label`, `message`, and the
/// metadata (job, task, attempt, worker, ...).
struct JSONLogHandler: LogHandler {
    let label: String
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info

    init(label: String) { self.label = label }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var object: [String: String] = [
            "ts": ISO8601DateFormatter().string(from: Date()), "level": "\(event.level)", "label": label,
            "message": "\(event.message)",
        ]
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) {
            object[key] = "\(value)"
        }
        guard var data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
        data.append(10)
        FileHandle.standardError.write(data)
    }
}
