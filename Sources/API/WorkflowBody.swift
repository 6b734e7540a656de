import Broker
import Foundation
import HTTPTypes
import TernCore

/// The body of `POST /v1/workflows`: exactly one of
///
/// ```json
/// {"chain": [job, step, ...]}
/// {"group": [job, ...]}
/// {"chord": {"group": [job, ...], "callback": step, "allow_failures": false}}
/// {"batch": {"jobs": [job, ...], "on_complete": step, "on_success": step}}
/// ```
/// A `job` is shaped like the body of `POST /v1/jobs`. A `step` is too, without `input`: its
/// input is made from the jobs before it. Every job is checked against its task's input schema,
/// and every link against the schemas: a step's input schema must accept the output schema of the
/// job before it (a chord's callback: an array of the members' outputs). Problems are reported
/// with JSON pointers (`/chain/2/task`).
enum WorkflowBody {
    /// The most steps of a chain; the most members of a group, chord or batch.
    static let maxChain = 100
    static let maxMembers = 10_000

    /// The plan of `bytes`, and each step's JSON pointer in the body (a join's is its group's).
    static func parse(_ bytes: Data, tasks: TaskDirectory) async throws(Problem) -> (plan: WorkflowPlan, pointers: [String]) {
        let body = try EnqueueBody.parseObject(bytes)
        guard body.object.count == 1, let kindName = body.object.keys.first, let kind = WorkflowPlan.Kind(rawValue: kindName) else {
            throw Problem(.unprocessableContent, "invalid_request", "the body must have exactly one of chain, group, chord and batch",
                errors: [.init(pointer: "", message: "expected one of chain, group, chord, batch")])
        }
        let raw = (try? JSONSerialization.jsonObject(with: bytes)) as? [String: Any] ?? [:]
        var names: [String] = []
        collectTasks(raw[kindName], into: &names)
        let registry = try await tasks.registry(for: names)
        var parser = Parser(bytes: body.bytes, registry: registry)
        let plan = parser.plan(kind: kind, value: body.object[kindName]!, range: body.members[kindName]!)
        guard parser.errors.isEmpty else {
            let code = parser.unknownTask ? "unknown_task" : "invalid_request"
            throw Problem(.unprocessableContent, code, "the workflow has \(parser.errors.count) problem(s)", errors: parser.errors)
        }
        return (plan, parser.pointers)
    }

    /// Every `task` string in the body, for loading the published tasks once.
    private static func collectTasks(_ value: Any?, into names: inout [String]) {
        if let object = value as? [String: Any] {
            if let task = object["task"] as? String { names.append(task) }
            for (key, member) in object where key != "input" { collectTasks(member, into: &names) }
        } else if let items = value as? [Any] {
            for item in items { collectTasks(item, into: &names) }
        }
    }

    /// Builds a plan, collecting every problem.
    private struct Parser {
        let bytes: [UInt8]
        let registry: TaskRegistry
        var errors: [Problem.FieldError] = []
        var unknownTask = false
        var steps: [WorkflowPlan.Step] = []
        /// Each step's JSON pointer, in step order.
        var pointers: [String] = []

        init(bytes: [UInt8], registry: TaskRegistry) {
            (self.bytes, self.registry) = (bytes, registry)
        }

        mutating func plan(kind: WorkflowPlan.Kind, value: JSONValue, range: Range<Int>) -> WorkflowPlan {
            switch kind {
            case .chain:
                let items = list(value, range, at: "/chain", max: WorkflowBody.maxChain)
                for (index, (item, itemRange)) in items.enumerated() {
                    let parents = index == 0 ? [] : [steps.count - 1]
                    add(item, itemRange, at: "/chain/\(index)", parents: parents, made: index == 0 ? nil : .output)
                }
                return WorkflowPlan(kind: .chain, steps: steps)
            case .group:
                let members = addMembers(value, range, at: "/group")
                addJoin(after: members, input: .outputs, onFailure: .cancel)
                return WorkflowPlan(kind: .group, steps: steps)
            case .chord:
                let fields = object(value, range, at: "/chord", allowed: ["group", "callback", "allow_failures"])
                var allowFailures = false
                if let flag = fields["allow_failures"] {
                    if case .bool(let value) = flag.value { allowFailures = value } else {
                        errors.append(.init(pointer: "/chord/allow_failures", message: "must be true or false"))
                    }
                }
                let members = fields["group"].map { addMembers($0.value, $0.range, at: "/chord/group") } ?? missing("/chord/group")
                if let callback = fields["callback"] {
                    add(callback.value, callback.range, at: "/chord/callback", parents: members, made: allowFailures ? .outcomes : .outputs,
                        onFailure: allowFailures ? .run : .cancel)
                } else {
                    errors.append(.init(pointer: "/chord/callback", message: "missing"))
                }
                return WorkflowPlan(kind: .chord, steps: steps)
            case .batch:
                let fields = object(value, range, at: "/batch", allowed: ["jobs", "on_complete", "on_success"])
                let members = fields["jobs"].map { addMembers($0.value, $0.range, at: "/batch/jobs") } ?? missing("/batch/jobs")
                addJoin(after: members, input: .summary, onFailure: .run)
                let join = steps.count - 1
                if let callback = fields["on_complete"] {
                    add(callback.value, callback.range, at: "/batch/on_complete", parents: [join], made: .summary)
                }
                if let callback = fields["on_success"] {
                    add(callback.value, callback.range, at: "/batch/on_success", parents: members, made: .summary)
                }
                return WorkflowPlan(kind: .batch, steps: steps, final: join)
            }
        }

        private mutating func missing(_ pointer: String) -> [Int] {
            errors.append(.init(pointer: pointer, message: "missing"))
            return []
        }

        /// The elements of an array of 1 to `max` items, with their byte ranges.
        private mutating func list(_ value: JSONValue, _ range: Range<Int>, at pointer: String, max: Int) -> [(JSONValue, Range<Int>)] {
            guard case .array(let items) = value, let ranges = JSONSlices.elements(bytes, in: range), ranges.count == items.count,
                (1...max).contains(items.count)
            else {
                errors.append(.init(pointer: pointer, message: "expected an array of 1 to \(max) jobs"))
                return []
            }
            return Array(zip(items, ranges))
        }

        /// The members of an object, each with its byte range; unknown members are problems.
        private mutating func object(
            _ value: JSONValue, _ range: Range<Int>, at pointer: String, allowed: Set<String>
        ) -> [String: (value: JSONValue, range: Range<Int>)] {
            guard case .object(let fields) = value, let ranges = JSONSlices.members(bytes, in: range) else {
                errors.append(.init(pointer: pointer, message: "expected an object"))
                return [:]
            }
            var out: [String: (value: JSONValue, range: Range<Int>)] = [:]
            for key in fields.keys.sorted() {
                guard allowed.contains(key) else {
                    errors.append(.init(pointer: "\(pointer)/\(key)", message: "unknown field"))
                    continue
                }
                if let field = fields[key], let fieldRange = ranges[key] { out[key] = (field, fieldRange) }
            }
            return out
        }

        private mutating func addMembers(_ value: JSONValue, _ range: Range<Int>, at pointer: String) -> [Int] {
            list(value, range, at: pointer, max: WorkflowBody.maxMembers).enumerated().map { index, item in
                add(item.0, item.1, at: "\(pointer)/\(index)", parents: [], made: nil)
                return steps.count - 1
            }
        }

        private mutating func addJoin(after members: [Int], input: JobDependencies.Input, onFailure: JobDependencies.OnFailure) {
            var options = TaskOptions(queue: members.first.map { steps[$0].request.queue } ?? .default)
            if let first = members.first { options.resultRetention = steps[first].request.retention }
            let request = EnqueueRequest(task: JobDependencies.joinTask, input: Data("null".utf8), options: options)
            steps.append(WorkflowPlan.Step(request: request, parents: members, input: input, onFailure: onFailure, join: true))
            pointers.append("")
        }

        /// Adds one job; `made`: where its input comes from (`nil`: it is given).
        private mutating func add(
            _ value: JSONValue, _ range: Range<Int>, at pointer: String, parents: [Int], made: JobDependencies.Input?,
            onFailure: JobDependencies.OnFailure = .cancel
        ) {
            guard case .object(var fields) = value, let members = JSONSlices.members(bytes, in: range) else {
                errors.append(.init(pointer: pointer, message: "expected a job object"))
                steps.append(WorkflowPlan.Step(request: EnqueueRequest(task: "-", input: Data(), options: TaskOptions())))
                pointers.append(pointer)
                return
            }
            for key in ["unique", "unique_key"] where fields[key] != nil {
                errors.append(.init(pointer: "\(pointer)/\(key)", message: "not allowed: the jobs of a workflow take no unique key"))
                fields[key] = nil
            }
            if made != nil, fields["input"] != nil {
                errors.append(.init(pointer: pointer + "/input", message: "not allowed: this step's input is made from the jobs before it"))
            }
            var input = members["input"].map { Data(bytes[$0]) }
            if made != nil {
                fields["input"] = .null
                input = nil
            }
            var step = WorkflowPlan.Step(request: EnqueueRequest(task: "-", input: Data("null".utf8), options: TaskOptions()))
            do {
                step.request = try EnqueueBody.parse(
                    object: fields, input: input, registry: registry, idempotencyKey: nil, pointerPrefix: pointer, inputIsMade: made != nil)
            } catch {
                errors += error.errors
                unknownTask = unknownTask || error.code == "unknown_task"
            }
            step.request.unique = nil
            step.parents = parents
            step.onFailure = onFailure
            if let made {
                step.input = made
                checkLink(step.request.task, made: made, parents: parents, at: pointer)
            }
            steps.append(step)
            pointers.append(pointer)
        }

        /// A problem when the input schema of `task` does not accept what its parents make.
        private mutating func checkLink(_ task: String, made: JobDependencies.Input, parents: [Int], at pointer: String) {
            guard let consumer = registry[task]?.inputSchema, let first = parents.first else { return }
            let (registry, steps) = (self.registry, self.steps)
            let output: (Int) -> JSONValue = { registry[steps[$0].request.task]?.outputSchema ?? .object([:]) }
            let producer: JSONValue
            let what: String
            switch made {
            case .output:
                producer = steps[first].join ? .object(["type": .string("array"), "items": output(steps[first].parents.first ?? first)]) : output(first)
                what = "the output of task '\(steps[first].request.task)'"
            case .outputs:
                producer = .object(["type": .string("array"), "items": output(first)])
                what = "the list of outputs of task '\(steps[first].request.task)'"
            case .outcomes:
                // Only the list is checked: each outcome is {"ok": output} or {"error": message}.
                var list: [String: JSONValue] = ["type": .string("array")]
                if case .object(let fields) = consumer, let items = fields["items"] { list["items"] = items }
                producer = .object(list)
                what = "the list of member outcomes"
            case .summary:
                let count: JSONValue = .object(["type": .string("integer")])
                producer = .object([
                    "type": .string("object"), "properties": .object(["total": count, "succeeded": count, "failed": count]),
                    "required": .array([.string("failed"), .string("succeeded"), .string("total")]),
                ])
                what = "the batch summary {total, succeeded, failed}"
            case .given:
                return
            }
            if let problem = SchemaCompatibility.problem(consumer: consumer, producer: producer) {
                errors.append(.init(pointer: pointer + "/task", message: "the input of task '\(task)' does not accept \(what): \(problem)"))
            }
        }
    }
}
