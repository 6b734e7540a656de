import ArgumentParser
import Foundation

/// A setting's name in each place it can come from; `nil` where it cannot come from there.
struct SettingNames: Sendable {
    /// The command-line flag, with its dashes: `--concurrency`.
    var flag: String?
    /// The environment variable: `TERN_CONCURRENCY`.
    var environment: String?
    /// The configuration file key, dotted: `worker.concurrency`.
    var file: String?

    init(flag: String? = nil, environment: String? = nil, file: String? = nil) {
        (self.flag, self.environment, self.file) = (flag, environment, file)
    }
}

/// A type a setting can have: parsed from an environment variable's text.
protocol SettingValue: Comparable, Sendable {
    /// `text` as this type, or `nil` when it is not one.
    init?(settingText text: String)
    /// What a value must look like, for errors: "a whole number".
    static var settingKind: String { get }
}

extension Int: SettingValue {
    init?(settingText text: String) { self.init(text.trimmingCharacters(in: .whitespaces)) }
    static var settingKind: String { "a whole number" }
}

extension Double: SettingValue {
    init?(settingText text: String) {
        guard let value = Double(text.trimmingCharacters(in: .whitespaces)), value.isFinite else { return nil }
        self = value
    }
    static var settingKind: String { "a number" }
}

extension String: SettingValue {
    init?(settingText text: String) { self = text }
    static var settingKind: String { "text" }
}

/// The one place a command's settings are resolved: a flag beats a non-empty environment
/// variable, which beats the configuration file, which beats the default. The default is never
/// written here: each comes from the library's configuration type that owns it
/// (`WorkerConfiguration`, `APIConfiguration`, `RedisConfiguration.defaultURL`, ...).
///
/// Every error names the source the bad value came from (`TERN_CONCURRENCY must be a whole
/// number, not 'ten'`, `worker.concurrency must be 1...10000`), so a user knows what to fix.
struct SettingsResolver: Sendable {
    /// The process environment (an empty variable counts as unset).
    let environment: [String: String]
    /// The configuration file (empty when there is none).
    let file: ConfigFile

    init(environment: [String: String] = ProcessInfo.processInfo.environment, file: ConfigFile) {
        (self.environment, self.file) = (environment, file)
    }

    /// The value from the first source that has one, checked against `range`; `nil` when no
    /// source sets it.
    func optional<T: SettingValue>(
        _ names: SettingNames, flag: T?, file fileValue: T?, in range: ClosedRange<T>? = nil
    ) throws -> T? {
        if let flag { return try check(flag, range, name: names.flag ?? names.file ?? "the flag") }
        if let variable = names.environment, let text = nonEmpty(environment[variable]) {
            guard let value = T(settingText: text) else {
                throw ValidationError("\(variable) must be \(T.settingKind), not '\(text)'")
            }
            return try check(value, range, name: variable, text: text)
        }
        if let fileValue { return try check(fileValue, range, name: names.file ?? "the configuration file") }
        return nil
    }

    /// The value from the first source that has one, else `fallback` (the library's default).
    func value<T: SettingValue>(
        _ names: SettingNames, flag: T?, file fileValue: T?, default fallback: T, in range: ClosedRange<T>? = nil
    ) throws -> T {
        try optional(names, flag: flag, file: fileValue, in: range) ?? fallback
    }

    /// The name of the source a value comes from, for errors found after resolving it: the flag
    /// when `flagGiven`, else the variable when set, else the file key.
    func source(_ names: SettingNames, flagGiven: Bool) -> String {
        if flagGiven, let flag = names.flag { return flag }
        if let variable = names.environment, nonEmpty(environment[variable]) != nil { return variable }
        return names.file ?? names.flag ?? names.environment ?? "the setting"
    }

    /// Seconds (a flag, variable or key in seconds, fractions allowed) as a `Duration`, in
    /// `range` seconds, else `fallback`. Milliseconds are the finest step.
    func seconds(
        _ names: SettingNames, flag: Double?, file fileValue: Double?, default fallback: Duration, in range: ClosedRange<Double>
    ) throws -> Duration {
        guard let value = try optional(names, flag: flag, file: fileValue, in: range) else { return fallback }
        return .milliseconds(Int64((value * 1000).rounded()))
    }

    /// A comma-separated list from a flag or variable, or the file's list; `nil` when none sets it.
    /// Items are trimmed; empty items are dropped.
    func list(_ names: SettingNames, flag: String?, file fileValue: [String]?) throws -> [String]? {
        let text: String? = try optional(names, flag: flag, file: nil)
        if let text {
            return text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        return fileValue
    }

    /// A switch: on when the flag is given, else `TERN_…` is `1`/`true`/`yes`, else the file's value.
    func enabled(_ names: SettingNames, flag: Bool, file fileValue: Bool?) throws -> Bool {
        if flag { return true }
        if let variable = names.environment, let text = nonEmpty(environment[variable]) {
            switch text.lowercased() {
            case "1", "true", "yes": return true
            case "0", "false", "no": return false
            default: throw ValidationError("\(variable) must be true or false, not '\(text)'")
            }
        }
        return fileValue ?? false
    }

    private func check<T: SettingValue>(_ value: T, _ range: ClosedRange<T>?, name: String, text: String? = nil) throws -> T {
        guard let range, !range.contains(value) else { return value }
        let shown = text.map { ", not '\($0)'" } ?? ", not \(value)"
        throw ValidationError("\(name) must be \(range.lowerBound)...\(range.upperBound)\(shown)")
    }
}

/// An environment value, or `nil` when it is unset or empty: every command treats an empty
/// variable as unset.
func nonEmpty(_ text: String?) -> String? {
    text.flatMap { $0.isEmpty ? nil : $0 }
}
