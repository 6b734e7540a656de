import Broker
import Foundation
import TernCore

/// A periodic job: when it fires, and the job it enqueues each time.
public struct Schedule: Sendable, Hashable {
    /// When a schedule fires.
    public enum Trigger: Sendable, Hashable {
        /// A cron expression on a time zone's wall clock.
        case cron(CronSchedule)
        /// Every `interval`, at multiples of it since 1970-01-01T00:00Z (so every replica agrees).
        case interval(Duration)
    }

    /// What to do with ticks missed while no scheduler ran (more than ``Scheduler/SchedulerConfiguration/lateness`` late).
    public enum CatchUp: Sendable, Hashable {
        /// Skip them (the default).
        case skip
        /// Run once for all of them.
        case once
        /// Run each of them, the oldest first, up to `limit`; the rest are skipped.
        case all(limit: Int)
    }

    /// The schedule's name: 1 to 128 characters of `a-z A-Z 0-9 . _ -`.
    public var name: String
    public var trigger: Trigger
    /// The task and its input (JSON), checked against the task's type when the schedule is loaded.
    public var task: String
    public var input: Data
    /// Overrides of the task's queue and priority.
    public var queue: QueueName?
    public var priority: Int?
    /// Each job waits a random delay from 0 up to this, so many schedules firing together spread out.
    public var jitter: Duration
    /// A disabled schedule emits nothing.
    public var enabled: Bool
    public var catchUp: CatchUp
    /// Skip a tick while the previous job of this schedule has not finished.
    public var skipIfRunning: Bool
    /// Overrides of the task's attempts and expiry.
    public var maxAttempts: Int?
    public var expiresAfter: Duration?
    /// Headers of each job (``JobHeaders``).
    public var headers: [String: String]

    public init(
        name: String, trigger: Trigger, task: String, input: Data, queue: QueueName? = nil, priority: Int? = nil,
        jitter: Duration = .zero, enabled: Bool = true, catchUp: CatchUp = .skip, skipIfRunning: Bool = false,
        maxAttempts: Int? = nil, expiresAfter: Duration? = nil, headers: [String: String] = [:]
    ) {
        self.headers = headers
        self.maxAttempts = maxAttempts
        self.expiresAfter = expiresAfter
        self.name = name
        self.trigger = trigger
        self.task = task
        self.input = input
        self.queue = queue
        self.priority = priority
        self.jitter = jitter
        self.enabled = enabled
        self.catchUp = catchUp
        self.skipIfRunning = skipIfRunning
    }

    /// The first tick strictly after `milliseconds`, or `nil` if there is none.
    public func next(after milliseconds: Int64) -> Int64? {
        switch trigger {
        case .cron(let cron): return cron.next(after: milliseconds)
        case .interval(let interval):
            let step = max(1, interval.nanoseconds / 1_000_000)
            return (floorDiv(milliseconds, step) + 1) * step
        }
    }

    /// The next `count` ticks after `milliseconds`.
    public func upcoming(after milliseconds: Int64, count: Int) -> [Int64] {
        firings(after: milliseconds, count: count, next: next(after:))
    }

    /// Checks the schedule against the registered tasks: the name, the task, its input (decoded as
    /// the task's input type, or checked against a published task's schema), and then as
    /// ``validateOwnFields()``.
    public func validate(against registry: TaskRegistry) throws(ScheduleError) {
        guard TaskRegistry.isValidName(name) else { throw .invalid(name, "names are 1-128 characters of a-z A-Z 0-9 . _ -") }
        guard let entry = registry[task] else { throw .invalid(name, "unknown task '\(task)'") }
        do {
            try entry.validate(input)
        } catch let error as DecodingError {
            throw .invalid(name, "input does not fit task '\(task)': \(DecodingFailure.describe(error))")
        } catch {
            throw .invalid(name, "input is not JSON")
        }
        try validateOwnFields()
    }

    /// Checks what needs no task: the name, the priority, the attempts, the expiry, the jitter,
    /// the interval, the catch-up limit and whether the cron expression ever matches.
    public func validateOwnFields() throws(ScheduleError) {
        guard TaskRegistry.isValidName(name) else { throw .invalid(name, "names are 1-128 characters of a-z A-Z 0-9 . _ -") }
        if let priority, !(0...9).contains(priority) { throw .invalid(name, "priority must be 0-9") }
        if let maxAttempts, !(1...100).contains(maxAttempts) { throw .invalid(name, "max_attempts must be 1 to 100") }
        if let expiresAfter, expiresAfter < .zero { throw .invalid(name, "expires_after_seconds must be 0 or more") }
        if let problem = JobHeaders.problem(headers) { throw .invalid(name, "headers: " + problem) }
        guard jitter >= .zero, jitter <= .seconds(86_400) else { throw .invalid(name, "jitter must be 0 to 86400 seconds") }
        if case .interval(let interval) = trigger, interval < .seconds(1) || interval > .seconds(366 * 86_400) {
            throw .invalid(name, "the interval must be 1 second to 366 days")
        }
        if case .all(let limit) = catchUp, !(1...10_000).contains(limit) { throw .invalid(name, "the catch-up limit must be 1-10000") }
        guard next(after: 0) != nil else { throw .invalid(name, "the cron expression never matches") }
    }

    /// The job request for one tick: the task's options with the schedule's queue, priority,
    /// attempts and expiry,
    /// delayed by a random jitter unless `jittered` is false (a run now). `nil` for a task that
    /// `registry` does not have.
    public func request(registry: TaskRegistry, jittered: Bool = true) -> EnqueueRequest? {
        guard let entry = registry[task] else { return nil }
        var options = entry.options
        if let queue { options.queue = queue }
        if let priority { options.priority = priority }
        if let maxAttempts { options.maxAttempts = maxAttempts }
        if let expiresAfter { options.expiresAfter = expiresAfter }
        let delay = jittered && jitter > .zero ? Duration.milliseconds(Int64.random(in: 0...(jitter.nanoseconds / 1_000_000))) : nil
        var request = EnqueueRequest(task: task, input: input, options: options, timing: delay.map { .after($0) } ?? .now)
        request.headers = headers
        return request
    }
}

/// Why a schedule was refused.
public enum ScheduleError: Error, Sendable, Hashable, CustomStringConvertible {
    case invalid(String, String)
    case duplicateName(String)

    public var description: String {
        switch self {
        case .invalid(let name, let problem): "schedule '\(name)': \(problem)"
        case .duplicateName(let name): "two schedules are named '\(name)'"
        }
    }
}
