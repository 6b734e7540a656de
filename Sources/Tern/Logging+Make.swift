import ArgumentParser
import Foundation
import Logging
import TernCore

/// Builds the executables' loggers.
enum LogSetup {
    /// A logger writing to standard error as text or as one JSON object per line, at `info`.
    private static func make(label: String, format: String?) throws -> Logger {
        switch format ?? "text" {
        case "text": return Logger(label: label, factory: { TextLogHandler(label: $0) })
        case "json": return Logger(label: label, factory: { JSONLogHandler(label: $0) })
        default: throw ValidationError("--log-format must be text or json")
        }
    }

    /// A logger in the format of `flag` (`--log-format`), else `TERN_LOG_FORMAT`, else `log.format`,
    /// else text; at the level of `level` (`--log-level`), else `TERN_LOG_LEVEL`, else `log.level`,
    /// else info.
    static func make(label: String, _ settings: SettingsResolver, flag: String?, level levelFlag: String? = nil) throws -> Logger {
        let formatNames = SettingNames(flag: "--log-format", environment: "TERN_LOG_FORMAT", file: "log.format")
        let format = try settings.optional(formatNames, flag: flag, file: settings.file.log?.format)
        guard format == nil || format == "text" || format == "json" else {
            let source = settings.source(formatNames, flagGiven: flag != nil)
            throw ValidationError("\(source) must be text or json, not '\(format!)'")
        }
        var logger = try make(label: label, format: format)
        logger.logLevel = .info
        let levelNames = SettingNames(flag: "--log-level", environment: "TERN_LOG_LEVEL", file: "log.level")
        let level = try settings.optional(levelNames, flag: levelFlag, file: settings.file.log?.level)
        if let level {
            guard let value = Logger.Level(rawValue: level.lowercased()) else {
                let levels = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")
                throw ValidationError("\(settings.source(levelNames, flagGiven: levelFlag != nil)) must be one of \(levels), not '\(level)'")
            }
            logger.logLevel = value
        }
        return logger
    }

}

/// A handler that keeps its logger's metadata as it is set and formats it only when it writes a line.
protocol MetadataKeepingLogHandler: LogHandler {}

extension MetadataKeepingLogHandler {
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// The logger's metadata with the event's own, which wins.
    func merged(_ event: LogEvent) -> Logger.Metadata { metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) }
}

/// Writes lines to standard error as swift-log's `StreamLogHandler` does (`<time> <level> <label>:
/// <metadata> [<source>] <message>`), but formats the logger's metadata only when it writes a line.
/// `StreamLogHandler` formats all of it again each time a key is set, and the API sets keys on
/// every request (Hummingbird's request id, the token's name), logged or not.
struct TextLogHandler: MetadataKeepingLogHandler {
    let label: String
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info

    init(label: String) { self.label = label }

    func log(event: LogEvent) {
        var event = event
        if !metadata.isEmpty { event.metadata = merged(event) }
        StreamLogHandler.standardError(label: label).log(event: event)
    }
}

/// Writes one JSON object per line to standard error: `ts`, `level`, `label`, `message`, and the
/// metadata (job, task, attempt, worker, ...).
struct JSONLogHandler: MetadataKeepingLogHandler {
    let label: String
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info

    init(label: String) { self.label = label }

    func log(event: LogEvent) {
        var object: [String: String] = [
            "ts": Self.timestamp(), "level": "\(event.level)", "label": label,
            "message": "\(event.message)",
        ]
        for (key, value) in merged(event) {
            object[key] = "\(value)"
        }
        guard var data = try? JSONWriter.bytes(object) else { return }
        data.append(10)
        FileHandle.standardError.write(Data(data))
    }

    /// Now in UTC as `2026-12-06T13:57:25Z` (what `ISO8601DateFormatter` wrote, without making
    /// one per line).
    static func timestamp() -> String {
        var seconds = time(nil)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }
}
