import Foundation

/// How a task keeps its jobs unique: at most one job per unique key in a queue, by one of three
/// rules. The key is the task's name with the whole input (canonical JSON: keys sorted, numbers as
/// doubles), or with only the input's top-level members named in ``keyFields``, or a caller's own key
/// given at enqueue. An enqueue that meets a held key creates nothing and answers the job that
/// holds it.
///
/// ```swift
/// static let options = TaskOptions(unique: .whileActive.keyed(by: "customer_id"))
/// ```
public struct UniquePolicy: Sendable, Hashable {
    /// When a key is held.
    public enum Mode: Sendable, Hashable {
        /// While the job that took the key is scheduled, queued, running or retrying; released
        /// when it finishes in any way (or its lease is lost for good and it fails).
        case whileActive
        /// For this long after the job that took the key was enqueued, whatever the job does:
        /// at most one job per key per window.
        case until(Duration)
        /// The job runs this long after the last enqueue with its key: an enqueue that finds the
        /// key's job still scheduled replaces its input and pushes its due time to now + window.
        /// Once the job started, the next enqueue makes a new job.
        case debounce(Duration)

        /// The name used in the API, the catalogue and the job: `while_active`, `until`, `debounce`.
        public var name: String {
            switch self {
            case .whileActive: "while_active"
            case .until: "until"
            case .debounce: "debounce"
            }
        }

        /// The window of `until` and `debounce`, in milliseconds; `nil` for `whileActive`.
        public var windowMilliseconds: Int64? {
            switch self {
            case .whileActive: nil
            case .until(let window), .debounce(let window): window.nanoseconds / 1_000_000
            }
        }

        /// The mode named `name` (see ``name``), with its window for `until` and `debounce`.
        public init?(name: String, windowMilliseconds: Int64?) {
            switch (name, windowMilliseconds) {
            case ("while_active", _): self = .whileActive
            case ("until", let window?) where window >= 1: self = .until(.milliseconds(window))
            case ("debounce", let window?) where window >= 1: self = .debounce(.milliseconds(window))
            default: return nil
            }
        }
    }

    /// The longest window of `until` and `debounce`: 30 days.
    public static let maxWindow = Duration.seconds(30 * 86_400)
    /// The most input members a key may be built from.
    public static let maxKeyFields = 16

    public var mode: Mode
    /// The input's top-level members the key is built from, in any order; empty (the default) for
    /// the whole input. A member the input lacks counts as `null`.
    public var keyFields: [String]

    /// Creates a policy.
    public init(_ mode: Mode, keyFields: [String] = []) {
        self.mode = mode
        self.keyFields = keyFields
    }

    /// No second job with the same key while one is waiting or running.
    public static var whileActive: UniquePolicy { UniquePolicy(.whileActive) }
    /// At most one job per key per `window` from its enqueue.
    public static func until(_ window: Duration) -> UniquePolicy { UniquePolicy(.until(window)) }
    /// The job runs `window` after the last enqueue with its key, with the last input.
    public static func debounce(_ window: Duration) -> UniquePolicy { UniquePolicy(.debounce(window)) }

    /// This policy with its key built from the input members `fields` only.
    public func keyed(by fields: String...) -> UniquePolicy { UniquePolicy(mode, keyFields: fields) }

    /// What is wrong with the policy, if anything: a window below 1 ms or above ``maxWindow``, or
    /// more than ``maxKeyFields`` key fields.
    public var problem: String? {
        if case .until(let window) = mode, window < .milliseconds(1) || window > Self.maxWindow {
            return "the until window must be from 1 ms to 30 days"
        }
        if case .debounce(let window) = mode, window < .milliseconds(1) || window > Self.maxWindow {
            return "the debounce window must be from 1 ms to 30 days"
        }
        if keyFields.count > Self.maxKeyFields { return "a unique key is built from at most \(Self.maxKeyFields) input members" }
        return nil
    }

    /// The key of a job of `task` with `input` (JSON): 32 hex digits of a SHA-256.
    public func key(task: String, input: Data) -> String {
        let value = (try? JSONDecoder().decode(JSONValue.self, from: input)) ?? .string(String(decoding: input, as: UTF8.self))
        var keyed = value
        if !keyFields.isEmpty, case .object(let members) = value {
            keyed = .object(Dictionary(keyFields.map { ($0, members[$0] ?? .null) }, uniquingKeysWith: { first, _ in first }))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let canonical = (try? encoder.encode(keyed)) ?? input
        return Self.digest(task: task, Array("input\n".utf8) + Array(canonical))
    }

    /// The key of a job of `task` under a caller's own key text.
    public static func key(task: String, explicit: String) -> String {
        digest(task: task, Array("key\n".utf8) + Array(explicit.utf8))
    }

    private static func digest(task: String, _ bytes: [UInt8]) -> String {
        String(SHA256.hex(bytes: Array("\(task)\n".utf8) + bytes).prefix(32))
    }
}
