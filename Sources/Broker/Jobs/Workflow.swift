import Foundation
import TernCore

/// One job of a workflow: a task, its input and per-job options.
public struct JobSpec<T: TernTask>: Sendable {
    public var input: T.Input
    public var options: TernClient.JobOptions

    /// Creates a job of `T` with `input`.
    public init(_ input: T.Input, options: TernClient.JobOptions = TernClient.JobOptions()) {
        self.input = input
        self.options = options
    }
}

extension TernTask {
    /// A job of this task with `input`, for a ``Workflow``.
    public static func job(_ input: Input, options: TernClient.JobOptions = TernClient.JobOptions()) -> JobSpec<Self> {
        JobSpec(input, options: options)
    }
}

/// One member's outcome, as a chord that allows failures passes it to its callback: `{"ok":
/// output}` or `{"error": "message"}`.
public enum MemberOutcome<Output: Codable & Sendable>: Codable, Sendable {
    case ok(Output)
    case error(String)

    enum CodingKeys: String, CodingKey { case ok, error }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        if let message = try container.decodeIfPresent(String.self, forKey: .error) {
            self = .error(message)
        } else {
            self = .ok(try container.decode(Output.self, forKey: .ok))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .ok(let output): try container.encode(output, forKey: .ok)
        case .error(let message): try container.encode(message, forKey: .error)
        }
    }
}

/// What a batch's callbacks get, and its result: how many of its jobs finished, and how.
public struct BatchSummary: Codable, Sendable, Hashable {
    public var total: Int
    public var succeeded: Int
    public var failed: Int

    public init(total: Int, succeeded: Int, failed: Int) {
        (self.total, self.succeeded, self.failed) = (total, succeeded, failed)
    }
}

/// A typed workflow whose result is `Output`: chains, groups, chords and batches of typed jobs.
/// The compiler checks every link: a step's input type is the previous step's output type, and a
/// chord's callback takes the list of its members' outputs.
///
/// ```swift
/// let pages = try await tern.enqueue(.chain(FetchPage.job(url)).then(ExtractLinks.self).then(StoreLinks.self))
/// let all = try await tern.enqueue(.group(urls.map { FetchPage.job($0) }))        // [FetchPage.Output]
/// let report = try await tern.enqueue(.chord(urls.map { FetchPage.job($0) }, then: Summarize.self))
/// ```
public struct Workflow<Output: Codable & Sendable>: Sendable {
    let plan: @Sendable () throws -> WorkflowPlan

    init(_ plan: @escaping @Sendable () throws -> WorkflowPlan) { self.plan = plan }

    /// A chain that starts with `first`; add steps with ``then(_:options:)``.
    public static func chain<A: TernTask>(_ first: JobSpec<A>) -> Workflow<A.Output> {
        Workflow<A.Output> { WorkflowPlan(kind: .chain, steps: [WorkflowPlan.Step(request: try TernClient.request(A.self, first.input, options: first.options))]) }
    }

    /// A chain of two steps: `b` runs with `a`'s output.
    public static func chain<A: TernTask, B: TernTask>(_ a: JobSpec<A>, _ b: B.Type) -> Workflow<B.Output> where B.Input == A.Output {
        Workflow<A.Output>.chain(a).then(b)
    }

    /// A chain of three steps.
    public static func chain<A: TernTask, B: TernTask, C: TernTask>(
        _ a: JobSpec<A>, _ b: B.Type, _ c: C.Type
    ) -> Workflow<C.Output> where B.Input == A.Output, C.Input == B.Output {
        Workflow<A.Output>.chain(a).then(b).then(c)
    }

    /// Members that run side by side; the result is the list of their outputs, in member order.
    /// At most 10,000 members.
    public static func group<A: TernTask>(_ members: [JobSpec<A>]) -> Workflow<[A.Output]> {
        Workflow<[A.Output]> {
            var steps = try members.map { WorkflowPlan.Step(request: try TernClient.request(A.self, $0.input, options: $0.options)) }
            steps.append(Self.join(after: steps.count, like: steps.first?.request, input: .outputs, onFailure: .cancel))
            return WorkflowPlan(kind: .group, steps: steps)
        }
    }

    /// A group, then `callback` with the list of the members' outputs. The callback runs once,
    /// after the last member succeeded; a member that fails (for good) cancels it.
    public static func chord<A: TernTask, C: TernTask>(
        _ members: [JobSpec<A>], then callback: C.Type, options: TernClient.JobOptions = TernClient.JobOptions()
    ) -> Workflow<C.Output> where C.Input == [A.Output] {
        Workflow<[A.Output]>.group(members).then(callback, options: options)
    }

    /// A group, then `callback` with every member's outcome (`{"ok": output}` or `{"error":
    /// message}`), once every member finished, however.
    public static func chord<A: TernTask, C: TernTask>(
        _ members: [JobSpec<A>], allowingFailures callback: C.Type, options: TernClient.JobOptions = TernClient.JobOptions()
    ) -> Workflow<C.Output> where C.Input == [MemberOutcome<A.Output>] {
        Workflow<C.Output> {
            var steps = try members.map { WorkflowPlan.Step(request: try TernClient.request(A.self, $0.input, options: $0.options)) }
            steps.append(try Self.callback(C.self, after: Array(steps.indices), input: .outcomes, onFailure: .run, options: options))
            return WorkflowPlan(kind: .chord, steps: steps)
        }
    }

    /// Members whose result is a ``BatchSummary`` once all finished, however; add callbacks with
    /// ``onComplete(_:options:)`` and ``onSuccess(_:options:)``.
    public static func batch<A: TernTask>(_ members: [JobSpec<A>]) -> Workflow<BatchSummary> {
        Workflow<BatchSummary> {
            var steps = try members.map { WorkflowPlan.Step(request: try TernClient.request(A.self, $0.input, options: $0.options)) }
            steps.append(Self.join(after: steps.count, like: steps.first?.request, input: .summary, onFailure: .run))
            return WorkflowPlan(kind: .batch, steps: steps)
        }
    }

    /// This workflow, then `next` with its result as input: a chain's next step; after a group,
    /// a chord's callback.
    public func then<B: TernTask>(_ next: B.Type, options: TernClient.JobOptions = TernClient.JobOptions()) -> Workflow<B.Output>
    where B.Input == Output {
        Workflow<B.Output> {
            var plan = try self.plan()
            if plan.kind == .group, plan.steps[plan.final].join {
                // The callback takes the join's place: it counts the members itself.
                let join = plan.steps.remove(at: plan.final)
                plan.steps.append(try Self.callback(B.self, after: join.parents, input: .outputs, onFailure: .cancel, options: options))
                return WorkflowPlan(kind: .chord, steps: plan.steps)
            }
            plan.steps.append(try Self.callback(B.self, after: [plan.final], input: .output, onFailure: .cancel, options: options))
            return WorkflowPlan(kind: .chain, steps: plan.steps)
        }
    }

    /// A callback that runs once every job of the batch finished, with its ``BatchSummary``.
    public func onComplete<C: TernTask>(_ callback: C.Type, options: TernClient.JobOptions = TernClient.JobOptions()) -> Workflow<Output>
    where C.Input == BatchSummary, Output == BatchSummary {
        adding(callback, options: options) { plan in ([plan.final], .output, .cancel) }
    }

    /// A callback that runs once every job of the batch succeeded, with its ``BatchSummary``; a
    /// job that fails (for good) cancels it.
    public func onSuccess<C: TernTask>(_ callback: C.Type, options: TernClient.JobOptions = TernClient.JobOptions()) -> Workflow<Output>
    where C.Input == BatchSummary, Output == BatchSummary {
        adding(callback, options: options) { plan in (plan.steps[plan.final].parents, .summary, .cancel) }
    }

    private func adding<C: TernTask>(
        _ callback: C.Type, options: TernClient.JobOptions,
        _ links: @escaping @Sendable (WorkflowPlan) -> ([Int], JobDependencies.Input, JobDependencies.OnFailure)
    ) -> Workflow<Output> {
        Workflow<Output> {
            var plan = try self.plan()
            let (parents, input, onFailure) = links(plan)
            plan.steps.append(try Self.callback(C.self, after: parents, input: input, onFailure: onFailure, options: options))
            return plan
        }
    }

    private static func callback<C: TernTask>(
        _ task: C.Type, after parents: [Int], input: JobDependencies.Input, onFailure: JobDependencies.OnFailure,
        options: TernClient.JobOptions
    ) throws -> WorkflowPlan.Step {
        var request = try TernClient.request(task, encoded: Data("null".utf8), options: options)
        request.unique = nil
        return WorkflowPlan.Step(request: request, parents: parents, input: input, onFailure: onFailure)
    }

    /// The join after `count` members, on the first member's queue and retention.
    private static func join(
        after count: Int, like member: EnqueueRequest?, input: JobDependencies.Input, onFailure: JobDependencies.OnFailure
    ) -> WorkflowPlan.Step {
        var options = TaskOptions(queue: member?.queue ?? .default)
        if let member { options.resultRetention = member.retention }
        let request = EnqueueRequest(task: JobDependencies.joinTask, input: Data("null".utf8), options: options)
        return WorkflowPlan.Step(request: request, parents: Array(0..<count), input: input, onFailure: onFailure, join: true)
    }
}
