import Broker
import Foundation
import Logging
import Synchronization
import TernCore
import Testing
import Worker

/// Returns the headers its job carries, and fails its first attempt when asked.
private struct HeaderEcho: TernTask {
    struct Input: Codable, Sendable { var failFirst = false; var failAlways = false; var sleepMs = 0 }
    typealias Output = [String: String]
    static let name = "test.header-echo"
    static let options = TaskOptions(maxAttempts: 2, retryBackoff: .fixed(.milliseconds(10)))
    func run(_ input: Input, context: JobContext) async throws -> [String: String] {
        if input.failAlways || (input.failFirst && context.attempt == 1) { throw PermanentErrorless("attempt \(context.attempt) fails") }
        if input.sleepMs > 0 { try await Task.sleep(for: .milliseconds(input.sleepMs)) }
        var seen = context.headers
        seen["trail"] = Trail.current
        return seen
    }
}

private struct PermanentErrorless: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The execution middleware a task ran inside, outermost first.
private enum Trail {
    @TaskLocal static var current = ""
}

/// Adds a tenant header from the caller's task-local, and refuses the tenant "blocked".
private struct TenantHeader: EnqueueMiddleware {
    @TaskLocal static var tenant: String?
    func enqueue(_ job: inout OutgoingJob) async throws {
        guard let tenant = Self.tenant else { return }
        if tenant == "blocked" { throw PermanentErrorless("tenant \(tenant) may not enqueue \(job.task)") }
        job.headers["tenant"] = tenant
    }
}

/// Appends its name to the trail around each attempt.
private struct Named: JobMiddleware {
    let name: String
    func run(_ context: JobContext, next: (JobContext) async throws -> Data) async throws -> Data {
        try await Trail.$current.withValue(Trail.current + (Trail.current.isEmpty ? "" : ">") + name) { try await next(context) }
    }
}

@Suite("Job headers, middleware and lifecycle events")
struct MiddlewareTests {
    @Test("headers travel from enqueue to the claim and the record; a debounce and a waiting job carry theirs", arguments: BrokerKind.allCases)
    func headersRoundTrip(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let broker = subject.broker
        var request = contractRequest()
        request.headers = ["tenant": "acme", "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"]
        let receipt = try await broker.enqueue([request, contractRequest()])
        #expect(try await broker.job(receipt[0].id)?.headers == request.headers)
        #expect(try await broker.job(receipt[1].id)?.headers == [:])
        let claimed = try await broker.claim(queue: .default, limit: 2, worker: "w", lease: .seconds(30))
        #expect(Dictionary(uniqueKeysWithValues: claimed.map { ($0.id, $0.headers) }) == [receipt[0].id: request.headers, receipt[1].id: [:]])

        // A debounced enqueue gives the waiting job its headers along with its input.
        var debounced = contractRequest(input: "1")
        debounced.unique = UniqueLock(key: String(repeating: "d", count: 32), mode: .debounce(.seconds(60)))
        debounced.headers = ["v": "1"]
        let first = try await broker.enqueue([debounced])[0]
        debounced.headers = ["v": "2"]
        #expect(try await broker.enqueue([debounced])[0].debounced)
        #expect(try await broker.job(first.id)?.headers == ["v": "2"])

        // A job made waiting for another carries its headers to its claim.
        let parent = try await broker.enqueue([contractRequest(queue: "mw-parent")])[0]
        var dependent = contractRequest(queue: "mw-child")
        dependent.headers = ["workflow-step": "2"]
        dependent.dependencies = JobDependencies(parents: [parent.id])
        let child = try await broker.enqueue([dependent])[0]
        #expect(try await broker.job(child.id)?.state == .waiting)
        let running = try await claimOne(broker, queue: "mw-parent")
        #expect(try await broker.complete(running.lease, result: Data("1".utf8)))
        let released = try await eventually(within: .seconds(20)) {
            guard let job = try await broker.claim(queue: "mw-child", limit: 1, worker: "w", lease: .seconds(30)).first
            else { throw WaitError("the dependent is not released yet") }
            return job
        }
        #expect(released.id == child.id && released.headers == ["workflow-step": "2"])
    }

    @Test("enqueue middleware adds headers and refuses; execution middleware nests; observers see each step", arguments: [BrokerKind.memory, .redis])
    func chain(_ kind: BrokerKind) async throws {
        guard let subject = try await ContractBroker.make(kind) else { return }
        defer { subject.stop() }
        let events = Mutex<[String]>([])
        var middleware = Middleware()
        middleware.enqueue.append(TenantHeader())
        middleware.execution.append(Named(name: "outer"))
        middleware.execution.append(Named(name: "inner"))
        middleware.observe { event in
            events.withLock { $0.append("\(event.kind.rawValue) \(event.attempt) \(event.headers["tenant"] ?? "-")\(event.retryIn == nil ? "" : " retry")") }
        }
        let tern = TernClient(broker: subject.broker, middleware: middleware)

        // Refused: the error is the middleware's, and nothing is made (a batch neither).
        let before = try await subject.broker.stats(.default).pending
        await #expect(throws: PermanentErrorless.self) {
            try await TenantHeader.$tenant.withValue("blocked") { try await tern.enqueue(HeaderEcho.self, .init()) }
        }
        await #expect(throws: PermanentErrorless.self) {
            try await TenantHeader.$tenant.withValue("blocked") { try await tern.enqueueBatch(HeaderEcho.self, [.init(), .init()]) }
        }
        #expect(try await subject.broker.stats(.default).pending == before)
        // Headers beyond their limits are refused before anything is sent.
        await #expect(throws: TernClientError.invalidOption("header name 'Bad' must be 1 to 64 bytes of a-z 0-9 - _ .")) {
            var options = TernClient.JobOptions()
            options.headers = ["Bad": "x"]
            try await tern.enqueue(HeaderEcho.self, .init(), options: options)
        }

        var options = TernClient.JobOptions()
        options.headers = ["request-id": "r-17"]
        let ok = try await TenantHeader.$tenant.withValue("acme") { try await tern.enqueue(HeaderEcho.self, .init(), options: options) }
        let retried = try await TenantHeader.$tenant.withValue("acme") { try await tern.enqueue(HeaderEcho.self, .init(failFirst: true)) }
        let failed = try await tern.enqueue(HeaderEcho.self, .init(failAlways: true))
        #expect(try await ok.status().headers == ["request-id": "r-17", "tenant": "acme"])

        var registry = TaskRegistry()
        try registry.register(HeaderEcho.self)
        var configuration = JobEnvironment.workerConfiguration()
        configuration.reaperInterval = .milliseconds(100)
        let worker = JobWorker(
            broker: subject.broker, registry: registry, configuration: configuration,
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }), middleware: middleware)
        let running = Task { try await worker.run() }
        defer { worker.shutdown() }
        #expect(try await ok.result(timeout: .seconds(30)) == ["request-id": "r-17", "tenant": "acme", "trail": "outer>inner"])
        #expect(try await retried.result(timeout: .seconds(30))["trail"] == "outer>inner")
        await #expect(throws: TernClientError.self) { try await failed.result(timeout: .seconds(30)) }

        // Cancelled while it runs.
        let slow = try await tern.enqueue(HeaderEcho.self, .init(sleepMs: 60_000))
        _ = try await eventually(within: .seconds(20)) {
            guard try await slow.status().state == .running else { throw WaitError("not running yet") }
        }
        #expect(try await slow.cancel() == .running)
        await #expect(throws: TernClientError.cancelled(slow.id)) { try await slow.result(timeout: .seconds(30)) }
        // Observers hear of an outcome once it is stored, just before the client can see it.
        let seen = try await eventually(within: .seconds(20)) {
            let seen = events.withLock { $0 }
            guard seen.filter({ $0.hasPrefix("cancelled") }).count == 1 else { throw WaitError("no cancelled event yet: \(seen)") }
            return seen
        }
        worker.shutdown()
        try await running.value
        #expect(seen.filter { $0.hasPrefix("started") }.count == 6, "one attempt of ok and slow, two of retried and failed")
        #expect(seen.contains("succeeded 1 acme"))
        #expect(seen.contains("retrying 1 acme retry") && seen.contains("succeeded 2 acme"))
        #expect(seen.contains("retrying 1 - retry") && seen.contains("failed 2 -"))
        #expect(seen.contains("cancelled 1 -"))
        #expect(seen.count == 12, "\(seen)")
    }
}
