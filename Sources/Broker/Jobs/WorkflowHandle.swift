import Foundation
import TernCore

/// A workflow's jobs and where it stands, read from the jobs themselves: the workflow's id is its
/// final job's (a chain's last step, a group's join, a chord's callback, a batch's join), and its
/// other jobs are found through their dependencies.
public struct WorkflowStatus: Sendable {
    /// Where a workflow stands.
    public enum State: String, Sendable, Hashable {
        /// Some job has not finished.
        case running
        /// The final job succeeded.
        case succeeded
        /// A job failed (for good) or expired; the jobs after it were cancelled.
        case failed
        /// A job was cancelled, and none failed.
        case cancelled
    }

    /// The final job's id.
    public var id: JobID
    /// `chain`, `group`, `chord` or `batch` (`chain` for a job that names no kind).
    public var kind: String
    public var state: State
    /// Every job, each after the jobs it depends on; the final job last.
    public var jobs: [JobRecord]
    /// The most jobs a status reads.
    public static let maxJobs = WorkflowPlan.maxSteps

    /// The final job's record.
    public var final: JobRecord { jobs[jobs.count - 1] }
    /// The jobs neither finished nor waiting: the current step of a chain, the members still
    /// to run of a group.
    public var current: [JobRecord] { jobs.filter { !$0.state.isTerminal && $0.state != .waiting } }
    /// Jobs finished, of all (a batch's progress).
    public var finishedCount: Int { jobs.filter(\.state.isTerminal).count }

    /// The status of the workflow whose final job is `id`; `nil` for an unknown job.
    public static func load(_ id: JobID, broker: any JobBroker) async throws -> WorkflowStatus? {
        guard let final = try await broker.job(id) else { return nil }
        var records: [JobID: JobRecord] = [id: final]
        var frontier = final.dependsOn
        while !frontier.isEmpty, records.count < maxJobs {
            let wanted = Array(Set(frontier.filter { records[$0] == nil }).prefix(maxJobs - records.count))
            var found: [JobRecord] = []
            // At most 256 reads in flight: a 10,000-member group is 40 rounds, not 10,000 tasks.
            for start in stride(from: 0, to: wanted.count, by: 256) {
                found += try await withThrowingTaskGroup(of: JobRecord?.self) { group in
                    for id in wanted[start..<min(start + 256, wanted.count)] { group.addTask { try await broker.job(id) } }
                    return try await group.reduce(into: [JobRecord]()) { if let record = $1 { $0.append(record) } }
                }
            }
            for record in found { records[record.id] = record }
            frontier = found.flatMap(\.dependsOn)
        }
        // Each job after its dependencies (depth-first from the final job, dependencies in order).
        var ordered: [JobRecord] = []
        var seen: Set<JobID> = []
        func visit(_ id: JobID) {
            guard !seen.contains(id), let record = records[id] else { return }
            seen.insert(id)
            for parent in record.dependsOn { visit(parent) }
            ordered.append(record)
        }
        for parent in final.dependsOn { visit(parent) }
        ordered.append(final)
        return WorkflowStatus(id: id, kind: final.workflow ?? "chain", state: state(of: ordered), jobs: ordered)
    }

    private static func state(of jobs: [JobRecord]) -> State {
        if jobs.contains(where: { $0.state == .failed || $0.state == .expired }) { return .failed }
        if jobs.contains(where: { $0.state == .cancelled }) { return .cancelled }
        return jobs.last?.state == .succeeded ? .succeeded : .running
    }
}

/// A workflow of ``Workflow``: its status, its typed result, cancellation.
public struct WorkflowHandle<Output: Codable & Sendable>: Sendable {
    /// The final job's id, which names the workflow.
    public let id: JobID
    /// Every job of the workflow, in the plan's order.
    public let jobs: [JobID]
    let broker: any JobBroker

    /// Where the workflow stands.
    /// - Throws: ``TernClientError/notFound(_:)`` if its final job is gone (after its retention).
    public func status() async throws -> WorkflowStatus {
        guard let status = try await WorkflowStatus.load(id, broker: broker) else { throw TernClientError.notFound(id) }
        return status
    }

    /// Waits until the final job finishes and returns the workflow's typed result.
    /// - Throws: ``TernClientError/failed(_:_:)`` when a job failed (the final job was cancelled
    ///   because of it: its error names the job), ``TernClientError/cancelled(_:)``,
    ///   ``TernClientError/expired(_:)``, ``TernClientError/timedOut(_:)``.
    public func result(timeout: Duration = .seconds(60), pollInterval: Duration = .milliseconds(20)) async throws -> Output {
        let deadline = ContinuousClock.now + timeout
        while true {
            guard let record = try await broker.job(id) else { throw TernClientError.notFound(id) }
            switch record.state {
            case .succeeded: return try TaskCodec.decoder.decode(Output.self, from: record.result ?? Data("null".utf8))
            case .failed: throw TernClientError.failed(id, record.error ?? "failed")
            case .cancelled:
                if let error = record.error, error.hasPrefix("dependency ") { throw TernClientError.failed(id, error) }
                throw TernClientError.cancelled(id)
            case .expired: throw TernClientError.expired(id)
            case .scheduled, .queued, .running, .retrying, .waiting:
                guard ContinuousClock.now < deadline else { throw TernClientError.timedOut(id) }
                try await Task.sleep(for: pollInterval)
            }
        }
    }

    /// Cancels every job of the workflow that has not finished, the later ones first. Running
    /// jobs stop through their workers. Returns how many jobs it asked to stop.
    @discardableResult
    public func cancel() async throws -> Int {
        try await Self.cancel(try await status(), broker: broker)
    }

    /// Cancels the unfinished jobs of `status`, the later ones first; returns how many.
    public static func cancel(_ status: WorkflowStatus, broker: any JobBroker) async throws -> Int {
        var count = 0
        for job in status.jobs.reversed() where !job.state.isTerminal {
            if let state = try await broker.cancel(job.id), state == .cancelled || state == .running { count += 1 }
        }
        return count
    }
}

extension TernClient {
    /// Enqueues a typed workflow; returns its handle.
    ///
    /// ```swift
    /// let report = try await tern.enqueue(.chord(urls.map { FetchPage.job($0) }, then: Summarize.self))
    /// let summary = try await report.result(timeout: .seconds(300))
    /// ```
    public func enqueue<Output>(_ workflow: Workflow<Output>) async throws -> WorkflowHandle<Output> {
        let submission = try await submit(try workflow.plan())
        return WorkflowHandle(id: submission.final, jobs: submission.jobs, broker: broker)
    }

    /// A handle for an existing workflow, named by its final job's id.
    public func workflow<Output>(_ output: Output.Type, id: JobID) -> WorkflowHandle<Output> {
        WorkflowHandle(id: id, jobs: [], broker: broker)
    }
}
