import Broker
import Foundation
import Logging
import TernCore

/// The sample tasks the README, the docs and the tests use.
///
/// ```swift
/// var registry = TaskRegistry()
/// try SampleTasks.register(in: &registry, includingTestTasks: true)
/// ```
public enum SampleTasks {
    /// Registers every sample task. The test tasks — `crash` (kills its process on purpose), `spin`
    /// (a CPU loop that may ignore cancellation) and `record` (appends to a file the input names) —
    /// only when `includingTestTasks` is set (Tern's own executables set it when the environment
    /// variable `TERN_TEST_TASKS` is `1`, as the tests do; never set it in production).
    public static func register(in registry: inout TaskRegistry, includingTestTasks: Bool) throws {
        try registry.register(Echo.self)
        try registry.register(Sleep.self)
        try registry.register(Flaky.self)
        try registry.register(Fail.self)
        try registry.register(Primes.self)
        if includingTestTasks {
            try registry.register(Crash.self)
            try registry.register(Spin.self)
            try registry.register(Record.self)
        }
    }
}

/// `echo`: returns its input unchanged (any JSON value).
public struct Echo: TernTask {
    public typealias Input = JSONValue
    public typealias Output = JSONValue
    public static let name = "echo"
    /// It only returns: it runs on Swift's shared pool, not a job thread.
    public static let options = TaskOptions(nonBlocking: true)
    public init() {}
    public func run(_ input: JSONValue, context: JobContext) async throws -> JSONValue { input }
}

/// `sleep`: sleeps `ms` milliseconds (at most 1 hour), reporting progress ten times.
public struct Sleep: TernTask {
    public struct Input: Codable, Sendable {
        public var ms: Int
        public init(ms: Int) { self.ms = ms }
    }
    public struct Output: Codable, Sendable { public var sleptMs: Int }
    public static let name = "sleep"
    /// A soft limit above the largest sleep allowed; it only awaits (`Task.sleep`), so it runs on
    /// Swift's shared pool.
    public static let options = TaskOptions(softTimeLimit: .seconds(3_700), nonBlocking: true)
    public init() {}
    public func run(_ input: Input, context: JobContext) async throws -> Output {
        guard (0...3_600_000).contains(input.ms) else { throw PermanentError("ms must be 0...3600000") }
        for step in 1...10 {
            try await Task.sleep(for: .milliseconds(input.ms) / 10)
            try await context.progress(Double(step) / 10, "slept \(input.ms * step / 10) of \(input.ms) ms")
        }
        return Output(sleptMs: input.ms)
    }
}

/// `flaky`: fails its first `failures` attempts, then succeeds with the attempt number.
public struct Flaky: TernTask {
    public struct Input: Codable, Sendable {
        public var failures: Int
        public init(failures: Int) { self.failures = failures }
    }
    public struct Output: Codable, Sendable { public var attempt: Int }
    public static let name = "flaky"
    public static let options = TaskOptions(maxAttempts: 5, retryBackoff: .exponential(base: .milliseconds(100), cap: .seconds(5)))
    public init() {}
    public func run(_ input: Input, context: JobContext) async throws -> Output {
        struct Flake: Error, CustomStringConvertible {
            let attempt: Int
            var description: String { "flaky failure on attempt \(attempt)" }
        }
        if context.attempt <= input.failures { throw Flake(attempt: context.attempt) }
        return Output(attempt: context.attempt)
    }
}

/// `fail`: always fails permanently with `message`.
public struct Fail: TernTask {
    public struct Input: Codable, Sendable {
        public var message: String
        public init(message: String) { self.message = message }
    }
    public typealias Output = JSONValue
    public static let name = "fail"
    public init() {}
    public func run(_ input: Input, context: JobContext) async throws -> JSONValue {
        throw PermanentError(input.message)
    }
}

/// `primes`: counts the primes below `below` (at most 50,000,000) — CPU-bound, checks for
/// cancellation every 10,000 numbers.
public struct Primes: TernTask {
    public struct Input: Codable, Sendable {
        public var below: Int
        public init(below: Int) { self.below = below }
    }
    public struct Output: Codable, Sendable { public var count: Int }
    public static let name = "primes"
    public init() {}
    public func run(_ input: Input, context: JobContext) async throws -> Output {
        guard (0...50_000_000).contains(input.below) else { throw PermanentError("below must be 0...50000000") }
        guard input.below > 2 else { return Output(count: 0) }
        var composite = [Bool](repeating: false, count: input.below)
        var count = 0
        for number in 2..<input.below {
            if number % 10_000 == 0 { try Task.checkCancellation() }
            guard !composite[number] else { continue }
            count += 1
            var multiple = number * number
            while multiple < input.below {
                composite[multiple] = true
                multiple += number
            }
        }
        return Output(count: count)
    }
}

/// `crash`: kills its own process — `fatal` (`fatalError`), `unwrap` (force-unwrapping nil) or
/// `overflow` (integer overflow). Registered only when sample crash tasks are enabled.
public struct Crash: TernTask {
    public enum Kind: String, Codable, Sendable, CaseIterable { case fatal, unwrap, overflow }
    public struct Input: Codable, Sendable {
        public var kind: Kind
        public init(kind: Kind) { self.kind = kind }
    }
    public typealias Output = JSONValue
    public static let name = "crash"
    public static let options = TaskOptions(maxAttempts: 3)
    public init() {}
    public func run(_ input: Input, context: JobContext) async throws -> JSONValue {
        switch input.kind {
        case .fatal:
            fatalError("crash task: fatalError on purpose")
        case .unwrap:
            let nothing: Int? = Int("not a number")
            return .number(Double(nothing!))
        case .overflow:
            var value = Int.max - Int(context.attempt > 0 ? 0 : 1)
            value += context.attempt
            return .number(Double(value))
        }
    }
}

/// `spin`: keeps a CPU busy for `ms` milliseconds. With `cooperative` false it never checks for
/// cancellation, so only its hard time limit (kill) stops it. Soft limit 1 s, hard limit 2 s, one
/// attempt. A test task (`TERN_TEST_TASKS=1`).
public struct Spin: TernTask {
    public struct Input: Codable, Sendable {
        public var ms: Int
        public var cooperative: Bool
        public init(ms: Int, cooperative: Bool) {
            self.ms = ms
            self.cooperative = cooperative
        }
    }
    public struct Output: Codable, Sendable { public var spunMs: Int }
    public static let name = "spin"
    public static let options = TaskOptions(maxAttempts: 1, softTimeLimit: .seconds(1), hardTimeLimit: .seconds(2))
    public init() {}
    public func run(_ input: Input, context: JobContext) async throws -> Output {
        guard (0...600_000).contains(input.ms) else { throw PermanentError("ms must be 0...600000") }
        let end = ContinuousClock.now + .milliseconds(input.ms)
        var counter: UInt64 = 0
        while ContinuousClock.now < end {
            for _ in 0..<10_000 { counter &+= 1 }
            if input.cooperative { try Task.checkCancellation() }
        }
        return Output(spunMs: input.ms + Int(counter & 0))
    }
}

/// `record`: appends `text` and a newline to the file at `path` (one `write` with `O_APPEND`, so
/// lines from many processes never interleave) and returns the text: an
/// execution log for tests. With `followUp`, it also logs `recorded` and enqueues an `echo` of the
/// text through `context.dependency(TernClient.self)`. A test task (`TERN_TEST_TASKS=1`): it writes where its
/// input says.
public struct Record: TernTask {
    public struct Input: Codable, Sendable {
        public var path: String
        public var text: String
        public var followUp: Bool?
        public init(path: String, text: String, followUp: Bool? = nil) {
            self.path = path
            self.text = text
            self.followUp = followUp
        }
    }
    public typealias Output = String
    public static let name = "record"
    public init() {}
    public func run(_ input: Input, context: JobContext) async throws -> String {
        let fd = open(input.path, O_WRONLY | O_APPEND | O_CREAT, 0o644)
        guard fd >= 0 else { throw PermanentError("cannot open \(input.path): errno \(errno)") }
        defer { close(fd) }
        let bytes = Array((input.text + "\n").utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else { throw PermanentError("short write to \(input.path)") }
        if input.followUp == true {
            context.logger.info("recorded", metadata: ["text": "\(input.text)"])
            _ = try await context.dependency(TernClient.self).enqueue(Echo.self, .string(input.text))
        }
        return input.text
    }
}
