import Foundation
import TernCore

/// Jobs and the links between them, untyped: what ``TernClient`` and the HTTP API submit. Built
/// by ``Workflow`` in Swift (with the links' types checked by the compiler) or from a
/// `POST /v1/workflows` body (checked against the tasks' JSON Schemas).
public struct WorkflowPlan: Sendable {
    /// The shape of a workflow.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// Steps one after the other; each step's output is the next one's input.
        case chain
        /// Members side by side; the result is the list of their outputs, in member order.
        case group
        /// A group, then a callback whose input is the list of the members' outputs.
        case chord
        /// Members with callbacks when all finished (`on_complete`) or all succeeded (`on_success`).
        case batch
    }

    /// One job of the plan.
    public struct Step: Sendable {
        /// The job, with its task, input (ignored when made from dependencies) and options.
        public var request: EnqueueRequest
        /// The steps it waits for, by index (each lower than its own).
        public var parents: [Int]
        public var input: JobDependencies.Input
        public var onFailure: JobDependencies.OnFailure
        /// A join: no task runs (see ``JobDependencies/join``).
        public var join: Bool

        /// Creates a step.
        public init(
            request: EnqueueRequest, parents: [Int] = [], input: JobDependencies.Input = .given,
            onFailure: JobDependencies.OnFailure = .cancel, join: Bool = false
        ) {
            self.request = request
            self.parents = parents
            self.input = input
            self.onFailure = onFailure
            self.join = join
        }
    }

    /// The most jobs in one workflow: 10,000 members, a join and two callbacks.
    public static let maxSteps = 10_003

    public var kind: Kind
    /// The jobs, each after the steps it waits for.
    public var steps: [Step]
    /// The step whose job names the workflow: its last step, its join or its callback.
    public var final: Int

    /// Creates a plan.
    public init(kind: Kind, steps: [Step], final: Int? = nil) {
        self.kind = kind
        self.steps = steps
        self.final = final ?? steps.count - 1
    }

    /// A digest of the whole plan: its kind, each job as its ``EnqueueRequest/fingerprint`` has it,
    /// and the links. A workflow's idempotency key, held by its first job, is bound to it, so the
    /// same key with another plan is refused, not answered with the workflow the key made.
    var digest: String {
        var text = "\(kind.rawValue) \(final)\n"
        for step in steps {
            let parents = step.parents.map(String.init).joined(separator: ",")
            text += "\(step.request.fingerprint) \(parents) \(step.input.rawValue) \(step.onFailure.rawValue) \(step.join)\n"
        }
        return String(SHA256.hex(bytes: Array(text.utf8)).prefix(32))
    }

    /// A plan's problem, if it has one: no steps, too many, or a link to a later step.
    public var problem: String? {
        if steps.isEmpty { return "a workflow has at least one job" }
        if steps.count > Self.maxSteps { return "a workflow has at most \(Self.maxSteps) jobs" }
        for (index, step) in steps.enumerated() where step.parents.contains(where: { $0 < 0 || $0 >= index }) {
            return "step \(index) waits for a step that does not come before it"
        }
        return nil
    }
}

extension TernClient {
    /// Enqueues the jobs of `plan`, each level of the plan in one ``JobBroker/enqueue(_:)`` call
    /// (a chain of n steps: n calls; a group or chord: 2). Returns the ids of the jobs, in the
    /// plan's order.
    /// - Throws: ``TernClientError/invalidOption(_:)`` for a plan with a problem;
    ///   ``TernClientError/queueFull(_:)`` when a first-level job's queue is at its cap (the jobs
    ///   created before stay); a ``JobDependencyError`` or a broker error.
    public func submit(_ plan: WorkflowPlan) async throws -> WorkflowSubmission {
        if let problem = plan.problem { throw TernClientError.invalidOption(problem) }
        var plan = plan
        // A join runs no task: middleware sees the jobs that do.
        for index in plan.steps.indices where !plan.steps[index].join { try await prepare(&plan.steps[index].request) }
        var ids = [JobID?](repeating: nil, count: plan.steps.count)
        var level = 0
        while let first = ids.firstIndex(where: { $0 == nil }) {
            var ready = (first..<plan.steps.count).filter { index in
                ids[index] == nil && plan.steps[index].parents.allSatisfy { ids[$0] != nil }
            }
            // A first job with an idempotency key goes alone: if it names a workflow made before,
            // nothing else is made.
            if level == 0, plan.steps[0].request.idempotencyKey != nil {
                ready = [0]
                plan.steps[0].request.workflowDigest = plan.digest
            }
            let requests = ready.map { index -> EnqueueRequest in
                let step = plan.steps[index]
                var request = step.request
                if !step.parents.isEmpty || step.join {
                    request.idempotencyKey = nil
                    request.unique = nil
                    request.dependencies = JobDependencies(
                        parents: step.parents.map { ids[$0]! }, input: step.input, onFailure: step.onFailure, join: step.join,
                        workflow: index == plan.final ? plan.kind.rawValue : nil)
                }
                return request
            }
            let receipts = try await broker.enqueue(requests)
            for (index, receipt) in zip(ready, receipts) {
                if receipt.refused { throw TernClientError.queueFull(plan.steps[index].request.queue) }
                if receipt.keyReused {
                    throw TernClientError.idempotencyKeyReused(plan.steps[index].request.idempotencyKey ?? "", receipt.id)
                }
                if level == 0, !receipt.created {
                    // An idempotency key that made this workflow before: answer that workflow.
                    let final = try await existingFinal(from: receipt.id, steps: plan.steps.count)
                    let jobs = try await WorkflowStatus.load(final, broker: broker)?.jobs.map(\.id) ?? [final]
                    return WorkflowSubmission(final: final, jobs: jobs, created: false)
                }
                ids[index] = receipt.id
            }
            level += 1
        }
        let jobs = ids.map { $0! }
        return WorkflowSubmission(final: jobs[plan.final], jobs: jobs, created: true)
    }

    /// The final job of the workflow whose first job is `first`: the job that names its kind,
    /// found through the jobs' dependents.
    private func existingFinal(from first: JobID, steps: Int) async throws -> JobID {
        var frontier = [first]
        var seen: Set<JobID> = []
        while !frontier.isEmpty, seen.count < WorkflowPlan.maxSteps {
            var next: [JobID] = []
            for id in frontier where seen.insert(id).inserted {
                guard let record = try await broker.job(id) else { continue }
                if record.workflow != nil || steps == 1 { return id }
                next += record.dependents
            }
            frontier = next
        }
        throw TernClientError.workflowIncomplete(first)
    }
}

/// What submitting a workflow did.
public struct WorkflowSubmission: Sendable, Hashable {
    /// The final job, which names the workflow.
    public var final: JobID
    /// Its jobs: in the plan's order when created, else each after the jobs it depends on.
    public var jobs: [JobID]
    /// `false` when an idempotency key on its first job named a workflow made before.
    public var created: Bool
}
