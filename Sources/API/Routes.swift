import Broker
import Foundation
import Hummingbird
import Logging
import NIOCore
import Scheduler
import Synchronization
import TernCore

/// What the routes need: the broker, the registered tasks, who may call, limits, metrics and a
/// readiness probe.
public struct APIContext: Sendable {
    public var broker: any JobBroker
    /// The tasks compiled into this process.
    public let registry: TaskRegistry
    /// These and the tasks workers published: what the API accepts, lists and documents.
    public let tasks: TaskDirectory
    public var configuration: APIConfiguration
    /// Who may call: tokens with roles, or nobody checked (`.none`, development only). `tern api`
    /// replaces its tokens on SIGHUP through it.
    public let accessControl: AccessControl
    /// The access policy in force.
    public var access: AccessPolicy { accessControl.current }
    /// The metrics `/metrics` serves.
    public var metrics: APIMetrics
    /// Where security events go (label `tern.security`; see ``SecurityEventsMiddleware``).
    public var securityLogger = Logger(label: "tern.security")
    /// Throws when the job store cannot serve requests (for `/readyz`).
    public var checkReady: @Sendable () async throws -> Void
    /// Schedules created over the API.
    public var scheduleStore: any ScheduleStoring
    /// Schedules of the config file: listed, but not changed over the API.
    public var configuredSchedules: [ScheduleDefinition]
    /// The application's middleware: its enqueue middleware runs on every job the API enqueues.
    public var middleware = Middleware()
    /// A client on ``broker`` that runs ``middleware``.
    var client: TernClient { TernClient(broker: broker, middleware: middleware) }
    /// Requests holding a connection open (`?wait=` and event streams), against their cap.
    let waiters = WaiterCount()
    /// Wakes those requests when Redis publishes a change of their job.
    let notifier: JobNotifier
    /// Whether job changes are pushed to waiting requests now (the subscription, which the first
    /// wait starts, is in place); when not, waits poll.
    public var jobChangesPushed: Bool { notifier.isLive }

    public init(
        broker: any JobBroker, registry: TaskRegistry, configuration: APIConfiguration, access: AccessPolicy,
        metrics: APIMetrics = APIMetrics(), scheduleStore: any ScheduleStoring = MemoryScheduleStore(),
        configuredSchedules: [ScheduleDefinition] = [], checkReady: @escaping @Sendable () async throws -> Void
    ) {
        self.scheduleStore = scheduleStore
        self.configuredSchedules = configuredSchedules
        self.broker = broker
        self.registry = registry
        tasks = TaskDirectory(compiled: registry, broker: broker)
        notifier = JobNotifier(broker: broker)
        self.configuration = configuration
        accessControl = AccessControl(access)
        self.metrics = metrics
        self.checkReady = checkReady
    }
}

/// Builds the router with every route of the HTTP API.
public func buildRouter(_ api: APIContext) -> Router<APIRequestContext> {
    let router = Router(context: APIRequestContext.self)
    // Outermost first: metrics see the final status; problems turn every error into problem+json.
    // A stream ticket in a URL is a credential: spans record the query without it.
    if api.configuration.tracing { router.add(middleware: TracingMiddleware(redactingQueryParameters: ["ticket"])) }
    router.add(middleware: MetricsMiddleware(metrics: api.metrics))
    router.add(middleware: ProblemMiddleware())
    router.add(middleware: TransportSecurityMiddleware(servesTLS: api.configuration.tls != nil, required: api.configuration.tlsRequired))
    router.add(middleware: AuthenticationMiddleware(access: api.accessControl, sessionSecret: api.configuration.sessionSecret))
    router.add(middleware: SecurityEventsMiddleware(logger: api.securityLogger, metrics: api.metrics))
    addPublicRoutes(router, api)
    addJobRoutes(router, api)
    addQueueRoutes(router, api)
    addWorkerRoutes(router, api)
    addLimitRoutes(router, api)
    addStreamTicketRoutes(router, api)
    addScheduleRoutes(router, api)
    addWorkflowRoutes(router, api)
    if api.configuration.dashboard { addDashboardRoutes(router, api) }
    return router
}

/// `/healthz`, `/readyz`, `/openapi.json`, `/docs` (no token needed) and `/metrics` (read).
private func addPublicRoutes(_ router: Router<APIRequestContext>, _ api: APIContext) {
    router.get("/healthz") { _, _ in try JSONResponse.make(["status": "ok"]) }
    router.get("/readyz") { _, _ in
        do {
            try await api.checkReady()
            return try JSONResponse.make(["status": "ready"])
        } catch {
            throw Problem.unavailable(error)
        }
    }
    router.get("/openapi.json") { _, _ in
        let document = await api.tasks.document { OpenAPIDocument.json(api, registry: $0) }
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: document)))
    }
    let page = ByteBuffer(string: DocsPage.html)
    router.get("/docs") { _, _ in
        Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: page))
    }
    router.get("/metrics") { _, context in
        try context.require(.read)
        // The queue figures come from Redis; without it the process's own metrics still answer.
        var latencies: [(QueueName, LatencyHistogram)] = []
        if let stats = try? await queueStats(api, limit: api.configuration.maxQueuesListed).stats {
            api.metrics.queues(stats)
            latencies = (try? await withThrowingTaskGroup(of: (QueueName, LatencyHistogram).self) { group in
                for queue in stats.map(\.queue) { group.addTask { (queue, try await api.broker.latency(queue, minutes: nil)) } }
                return try await group.reduce(into: []) { $0.append($1) }.sorted { $0.0.rawValue < $1.0.rawValue }
            }) ?? []
        }
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: api.metrics.text(latencies: latencies))))
    }
}

/// Counts requests that hold a connection open, so that a flood of them is refused with 503.
final class WaiterCount: Sendable {
    private let count = Atomic<Int>(0)

    /// Runs `body` as one more waiter, or throws 503 `too_many_waiters` at the cap.
    func run<T>(cap: Int, _ body: () async throws -> T) async throws -> T {
        let slot = try acquire(cap: cap)
        defer { withExtendedLifetime(slot) {} }
        return try await body()
    }

    /// Takes a waiter slot for a stream that outlives the handler. The slot is given back when the
    /// returned value is gone, even if the stream's body never runs (the client left first).
    func acquire(cap: Int) throws -> WaiterSlot {
        guard count.add(1, ordering: .relaxed).newValue <= cap else {
            count.subtract(1, ordering: .relaxed)
            throw Problem(.serviceUnavailable, "too_many_waiters", "too many requests are waiting for jobs; retry later", retryAfter: 1)
        }
        return WaiterSlot(self)
    }

    fileprivate func release() { count.subtract(1, ordering: .relaxed) }
}

/// One taken waiter slot; released when it is deallocated.
final class WaiterSlot: Sendable {
    private let owner: WaiterCount

    fileprivate init(_ owner: WaiterCount) { self.owner = owner }

    deinit { owner.release() }
}

/// Checks the content type, reads the body up to the limit and checks its shape (depth,
/// duplicate keys) before it is parsed. A refused body is discarded first (see ``BodyReader``).
func readJSONBody(_ request: Request, _ context: APIRequestContext, _ api: APIContext) async throws -> Data {
    let reader = BodyReader(request: request, context: context, configuration: api.configuration)
    let contentType = request.headers[.contentType] ?? ""
    guard contentType.lowercased().hasPrefix("application/json") else {
        await reader.discard()
        throw Problem(.unsupportedMediaType, "unsupported_media_type", "send the body as application/json")
    }
    let data = try await reader.read()
    // RFC 8259 lets a parser ignore a byte order mark; inputs are stored without it.
    let text = data.starts(with: [0xEF, 0xBB, 0xBF]) ? data.dropFirst(3) : data
    if let violation = JSONShapeCheck.violation(in: text, maxDepth: api.configuration.maxJSONDepth) {
        throw violation.problem
    }
    return Data(text)
}

/// Runs the checks a route with a body makes before reading it (the token, the schedule's name);
/// if one refuses the request, its body is discarded first, so that a client that sends the whole
/// body before reading sees the answer.
func refusingEarly<T>(
    _ request: Request, _ context: APIRequestContext, _ api: APIContext, _ checks: () async throws -> T
) async throws -> T {
    do {
        return try await checks()
    } catch {
        await BodyReader(request: request, context: context, configuration: api.configuration).discard()
        throw error
    }
}

private struct BodyTimeout: Error {}

/// Runs a broker call; any store failure becomes a 503 with `Retry-After`. A request the broker or
/// the client refuses (dependencies, a workflow's queue at its cap) keeps its own answer.
func broker<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let problem as Problem {
        throw problem
    } catch let error as JobDependencyError {
        throw Problem(.unprocessableContent, "invalid_request", error.description, errors: [.init(pointer: "/depends_on", message: error.description)])
    } catch let error as TernClientError {
        throw Problem(workflowError: error)
    } catch {
        throw Problem.unavailable(error)
    }
}

/// Runs the enqueue middleware on `request`: 422 `invalid_request` at `pointer`/headers for headers
/// beyond their limits, 422 `enqueue_refused` with the error's description for a refusal.
func prepare(_ request: inout EnqueueRequest, _ api: APIContext, pointer: String = "") async throws(Problem) {
    do {
        try await api.client.prepare(&request)
    } catch TernClientError.invalidOption(let problem) {
        throw Problem(.unprocessableContent, "invalid_request", "the job request has 1 problem(s)",
            errors: [.init(pointer: pointer + "/headers", message: problem)])
    } catch {
        throw Problem(.unprocessableContent, "enqueue_refused", "the job was refused: \(error)",
            errors: [.init(pointer: pointer.isEmpty ? "" : pointer, message: "\(error)")])
    }
}

func jobID(_ context: APIRequestContext) throws -> JobID {
    let text = context.parameters.get("id") ?? ""
    guard let id = JobID(text) else { throw Problem(.notFound, "not_found", "no job has the id '\(text.prefix(100))'") }
    return id
}

func notFound(_ id: JobID) -> Problem {
    Problem(.notFound, "not_found", "no job has the id '\(id.rawValue)'")
}

func queueName(_ context: APIRequestContext) throws -> QueueName {
    let text = context.parameters.get("queue") ?? ""
    guard let queue = QueueName(text) else {
        throw Problem(.unprocessableContent, "invalid_queue", "queue names have 1-64 characters of a-z 0-9 _ -")
    }
    return queue
}
