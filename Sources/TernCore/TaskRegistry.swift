import Foundation

/// The tasks a process knows, by name. Names map to Swift types, so no code ever runs from data.
///
/// ```swift
/// var registry = TaskRegistry()
/// try registry.register(Resize.self)
/// ```
public struct TaskRegistry: Sendable {
    /// A registered task, with its input and output erased to JSON.
    public struct Entry: Sendable {
        /// The task's name.
        public let name: String
        /// The task's options.
        public let options: TaskOptions
        /// The JSON Schema of the task's input, derived from its Swift type (see ``JSONSchema``).
        public let inputSchema: JSONValue
        /// The JSON Schema of the task's output.
        public let outputSchema: JSONValue
        /// Decodes `input` as the task's input type, throwing the decoding error if it does not fit.
        public let validate: @Sendable (_ input: Data) throws -> Void
        /// Runs the task on JSON input and returns JSON output.
        public let run: @Sendable (_ input: Data, _ context: JobContext) async throws -> Data
        /// Whether an error the task threw should skip retries.
        public let isPermanent: @Sendable (any Error) -> Bool
        /// The delay before the retry after a failed attempt.
        public let retryDelay: @Sendable (_ attempt: Int, _ error: any Error) -> Duration
        /// Whether the task was published by a worker elsewhere (``add(published:)``) rather than
        /// registered from its Swift type here.
        public var isPublished = false

        /// The delay before the retry after failed attempt `attempt` of `maxAttempts`, or `nil` when
        /// the job fails for good: `error` is permanent, or that was the last attempt.
        public func retryDelay(afterAttempt attempt: Int, of maxAttempts: Int, error: any Error) -> Duration? {
            isPermanent(error) || attempt >= maxAttempts ? nil : retryDelay(attempt, error)
        }
    }

    private var entries: [String: Entry] = [:]

    /// Creates an empty registry.
    public init() {}

    /// Registers `task`.
    /// - Throws: ``TaskRegistryError`` if the name is invalid or already taken.
    public mutating func register<T: TernTask>(_ task: T.Type) throws(TaskRegistryError) {
        guard Self.isValidName(T.name) else { throw .invalidName(T.name) }
        guard entries[T.name] == nil else { throw .duplicateName(T.name) }
        let options = T.options
        guard (0...9).contains(options.priority), options.maxAttempts >= 1 else {
            throw .invalidOptions(T.name, "priority must be 0...9 and maxAttempts at least 1")
        }
        guard options.softTimeLimit.map({ $0 > .zero }) ?? true, options.resultRetention >= .milliseconds(1),
            options.failedRetention.map({ $0 >= .milliseconds(1) }) ?? true,
            options.expiresAfter.map({ $0 >= .zero }) ?? true
        else {
            throw .invalidOptions(T.name, "softTimeLimit must be positive, resultRetention and failedRetention at least 1 ms, expiresAfter not negative")
        }
        if let hard = options.hardTimeLimit, hard < options.softTimeLimit ?? .zero || hard <= .zero {
            throw .invalidOptions(T.name, "hardTimeLimit must be positive and not below softTimeLimit")
        }
        if let problem = options.unique?.problem { throw .invalidOptions(T.name, problem) }
        if let problem = options.limit?.problem { throw .invalidOptions(T.name, problem) }
        entries[T.name] = Entry(
            name: T.name, options: options,
            inputSchema: JSONSchema.of(T.Input.self), outputSchema: JSONSchema.of(T.Output.self),
            validate: Self.validator(for: T.Input.self),
            run: { input, context in
                let decoded: T.Input
                do {
                    decoded = try TaskCodec.decoder.decode(T.Input.self, from: input)
                } catch let error as DecodingError {
                    // Retrying cannot fix the input: fail the job at once.
                    throw PermanentError("invalid input: \(DecodingFailure.describe(error))")
                }
                let output = try await T().run(decoded, context: context)
                return try TaskCodec.encoder.encode(output)
            },
            isPermanent: { T.isPermanent($0) },
            retryDelay: { T.retryDelay(afterAttempt: $0, error: $1) })
    }

    /// Decodes input as `Input`. Any JSON is a ``JSONValue``, so for it checking that the input is
    /// JSON is enough, and `JSONSerialization` does that without the decoder's failed attempts.
    private static func validator<Input: Decodable & Sendable>(for type: Input.Type) -> @Sendable (Data) throws -> Void {
        if type == JSONValue.self {
            return { input in
                do {
                    _ = try JSONSerialization.jsonObject(with: input, options: [.fragmentsAllowed])
                } catch {
                    throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "The given data was not valid JSON.", underlyingError: error))
                }
            }
        }
        return { input in _ = try TaskCodec.decoder.decode(Input.self, from: input) }
    }

    /// Adds `entry` under its name (callers check the name is free).
    mutating func insert(_ entry: Entry) { entries[entry.name] = entry }

    /// The task registered under `name`.
    public subscript(name: String) -> Entry? { entries[name] }

    /// Every registered name, sorted.
    public var names: [String] { entries.keys.sorted() }

    /// Whether `name` is a valid task name: 1 to 128 characters of `a-z A-Z 0-9 . _ -`.
    public static func isValidName(_ name: String) -> Bool {
        (1...128).contains(name.utf8.count)
            && name.utf8.allSatisfy {
                switch $0 {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
                    true
                default: false
                }
            }
    }
}

/// Why a task could not be registered.
public enum TaskRegistryError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Two tasks share a name.
    case duplicateName(String)
    /// The name does not match the pattern.
    case invalidName(String)
    /// The task's options are out of range.
    case invalidOptions(String, String)

    public var description: String {
        switch self {
        case .duplicateName(let name): "two tasks are registered under the name '\(name)'"
        case .invalidName(let name): "task name '\(name)' must be 1-128 characters of a-z A-Z 0-9 . _ -"
        case .invalidOptions(let name, let problem): "task '\(name)': \(problem)"
        }
    }
}

/// The JSON coders for task inputs and outputs, created once (creating one costs more than using it).
public enum TaskCodec {
    /// Encodes inputs and outputs.
    public static let encoder = JSONEncoder()
    /// Decodes inputs and outputs.
    public static let decoder = JSONDecoder()
}
