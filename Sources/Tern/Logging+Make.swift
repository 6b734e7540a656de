import ArgumentParser
import Foundation
import Logging
import Synchronization
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

    /// The logger's metadata with the event's own, which wins, and the event's error as
    /// `error.message` and `error.type` (as `StreamLogHandler` writes them).
    func merged(_ event: LogEvent) -> Logger.Metadata {
        var merged = metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 })
        if let error = event.error {
            merged["error.message"] = "\(error)"
            merged["error.type"] = "\(String(reflecting: type(of: error)))"
        }
        return merged
    }
}

/// Writes lines to standard error as swift-log's `StreamLogHandler` does (`<time> <level> <label>:
/// <metadata> [<source>] <message>`, the metadata sorted by key), but formats the logger's
/// metadata only when it writes a line, reuses the time's text within a second, and writes each
/// line with one `write(2)`. `StreamLogHandler` formats all the metadata again each time a key is
/// set, and the API sets keys on every request (Hummingbird's request id, the token's name).
struct TextLogHandler: MetadataKeepingLogHandler {
    let label: String
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info

    init(label: String) { self.label = label }

    func log(event: LogEvent) { LogOutput.write(line(event, time: LogOutput.shared.time())) }

    /// The line `event` makes at `time`, with its newline.
    func line(_ event: LogEvent, time: String) -> String {
        let metadata = merged(event)
        var line = time
        line += " \(event.level)"
        if !label.isEmpty { line += " " + label }
        line += ":"
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) { line += " \(key)=\(value)" }
        line += " [\(event.source)] \(event.message)\n"
        return line
    }
}

/// Where text lines go: standard error, each line in one `write(2)`, stamped with the local time as
/// `StreamLogHandler` writes it (`2026-12-07T12:01:45+0000`), formatted once per second.
final class LogOutput: Sendable {
    static let shared = LogOutput()

    private let last = Mutex<(second: Int, text: String)>((-1, ""))

    func time() -> String {
        let now = Foundation.time(nil)
        if let cached = last.withLock({ $0.second == now ? $0.text : nil }) { return cached }
        var seconds = now
        var parts = tm()
        localtime_r(&seconds, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let length = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &parts)
        let text = String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        last.withLock { $0 = (now, text) }
        return text
    }

    /// Writes `line` to standard error whole (one `write(2)`, repeated only for what a short write
    /// left).
    static func write(_ line: String) {
        var line = line
        line.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = Foundation.write(2, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 && errno == EINTR { continue }
                guard written > 0 else { return }
                offset += written
            }
        }
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
