import API
import Broker
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import InMemoryTracing
import Logging
import NIOCore
import Synchronization
import Tasks
import TernCore
import TernTesting
import Testing
import Tracing
import Worker

/// A task that makes a span of its own.
private struct Traced: TernTask {
    typealias Input = Int
    typealias Output = Int
    static let name = "test.traced"
    func run(_ input: Int, context: JobContext) async throws -> Int {
        withSpan("inside") { span in span.attributes["input"] = input }
        return input
    }
}

/// Collects what an OTLP/HTTP exporter posts to `/v1/traces`.
private final class Collector: Sendable {
    let bodies = Mutex<[[UInt8]]>([])
    var received: [UInt8] { bodies.withLock { $0.flatMap { $0 } } }
}

@Suite("Tracing")
struct TracingTests {
    @Test("one trace joins the HTTP request, the enqueue, the job's run and the task's own span")
    func oneTrace() async throws {
        let tracer = InMemoryTracer()
        let broker = MemoryJobBroker()
        var registry = TaskRegistry()
        try registry.register(Traced.self)
        var middleware = Middleware()
        middleware.addTracing()
        let id = try await withTracer(tracer) { () async throws -> String in
            var configuration = APIConfiguration()
            configuration.tracing = true
            var api = APIContext(broker: broker, registry: registry, configuration: configuration, access: .none, checkReady: {})
            api.middleware = middleware
            let worker = JobWorker(
                broker: broker, registry: registry, configuration: JobEnvironment.workerConfiguration(),
                logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }), middleware: middleware)
            let running = Task { try await worker.run() }
            defer { worker.shutdown() }
            let id = try await Application(router: buildRouter(api)).test(.router) { client in
                try await client.execute(
                    uri: "/v1/jobs", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: #"{"task":"test.traced","input":7}"#)
                ) { response -> String in
                    let object = try #require(JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
                    return try #require(object["id"] as? String)
                }
            }
            _ = try await eventually(within: .seconds(20)) {
                guard let jobID = JobID(id), try await broker.job(jobID)?.state == .succeeded else { throw WaitError("not done yet") }
            }
            worker.shutdown()
            try await running.value
            return id
        }
        let spans = try await eventually(within: .seconds(10)) {
            let spans = tracer.finishedSpans
            guard spans.contains(where: { $0.kind == .server }), spans.contains(where: { $0.operationName == "inside" }) else {
                throw WaitError("spans so far: \(spans.map(\.operationName))")
            }
            return spans
        }
        let server = try #require(spans.first { $0.kind == .server })
        let enqueue = try #require(spans.first { $0.operationName == "enqueue test.traced" })
        let run = try #require(spans.first { $0.operationName == "run test.traced" })
        let inside = try #require(spans.first { $0.operationName == "inside" })
        #expect(enqueue.kind == .producer && run.kind == .consumer)
        #expect(enqueue.traceID == server.traceID && enqueue.parentSpanID == server.spanID, "the enqueue is a child of the request")
        #expect(run.traceID == server.traceID && run.parentSpanID == enqueue.spanID, "the run is a child of the enqueue")
        #expect(inside.traceID == server.traceID && inside.parentSpanID == run.spanID, "the task's span is a child of the run")
        #expect(run.attributes.get("messaging.message.id") == .string(id))
        #expect(run.attributes.get("tern.attempt") == .int64(1))
        // The context travelled in the job's headers.
        let jobID = try #require(JobID(id))
        let record = try #require(try await broker.job(jobID))
        #expect(!record.headers.isEmpty)
    }
}

extension HeavyProcessTests {
    @Suite("Tracing from real processes", .enabled(if: TestRedis.enabled, TestRedis.reason))
    struct TracingProcessTests {
        @Test("a worker with tracing.otlp_endpoint exports the job's run span over OTLP/HTTP, in the trace of its traceparent header")
        func otlpExport() async throws {
            let environment = try await JobEnvironment.start()
            defer { environment.stop() }
            let collector = Collector()
            let router = Router()
            router.post("/v1/traces") { request, _ -> Response in
                let body = try await request.body.collect(upTo: 16 << 20)
                collector.bodies.withLock { $0.append(Array(body.readableBytesView)) }
                return Response(status: .ok, headers: [.contentType: "application/x-protobuf"])
            }
            try await Application(router: router).test(.live) { server in
                let port = try #require(server.port)
                let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
                var request = try TernClient.request(Echo.self, .string("traced"))
                request.headers = ["traceparent": "00-\(traceID)-00f067aa0ba902b7-01"]
                _ = try await environment.broker.enqueue([request])

                let worker = Process()
                worker.executableURL = URL(fileURLWithPath: WorkerBinary.path)
                worker.arguments = ["--redis-url", environment.server.url, "--prefix", environment.broker.keys.prefix, "--heartbeat", "0.2"]
                worker.environment = WorkerBinary.testTasksEnvironment.merging(
                    ["TERN_TRACING_OTLP_ENDPOINT": "http://127.0.0.1:\(port)", "TERN_TRACING_SERVICE_NAME": "tracing-test"]) { $1 }
                worker.standardOutput = FileHandle.nullDevice
                worker.standardError = FileHandle.nullDevice
                try worker.run()
                defer { if worker.isRunning { kill(worker.processIdentifier, SIGKILL) } }
                try await eventually(within: .seconds(30)) {
                    guard try await environment.broker.stats(.default).succeeded == 1 else { throw WaitError("the job has not run yet") }
                }
                // A graceful stop flushes the spans still in the batch.
                kill(worker.processIdentifier, SIGTERM)
                await waitForExit(worker)
                #expect(worker.terminationStatus == 0)
                let received = try await eventually(within: .seconds(20)) {
                    let bytes = collector.received
                    guard bytes.count > 0 else { throw WaitError("nothing exported yet") }
                    return bytes
                }
                // Protobuf keeps strings and ids as raw bytes: the span's name, the service and the trace id.
                func contains(_ needle: [UInt8]) -> Bool {
                    received.count >= needle.count && (0...(received.count - needle.count)).contains { Array(received[$0..<$0 + needle.count]) == needle }
                }
                let idBytes = stride(from: 0, to: traceID.count, by: 2).map { offset -> UInt8 in
                    let start = traceID.index(traceID.startIndex, offsetBy: offset)
                    return UInt8(traceID[start..<traceID.index(start, offsetBy: 2)], radix: 16)!
                }
                #expect(contains(Array("run echo".utf8)))
                #expect(contains(Array("tracing-test".utf8)))
                #expect(contains(idBytes), "the run span is in the trace of the job's traceparent")
            }
        }
    }
}
