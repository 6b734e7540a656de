import ArgumentParser
import Broker
import Foundation
import Logging
import OTel
import ServiceLifecycle
import Tasks
import TernCore
import Tracing
import Worker

/// `tern-bench tracing`: what tracing costs a worker — the same no-op jobs drained by one
/// in-process worker without tracing, then with ``JobTracing`` and OpenTelemetry exporting every
/// span over OTLP/HTTP to a local collector that accepts and drops them.
struct TracingBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tracing", abstract: "Measure the drain rate and worker CPU per job with tracing off and on (OTLP/HTTP export).")

    @Option(help: "Jobs per run.")
    var jobs: Int = 20_000

    @Option(help: "Runs of each; the median is printed.")
    var runs: Int = 3

    @Option(help: "Worker concurrency.")
    var concurrency: Int = 64

    @Option(help: "The share of traces recorded (the sampler's ratio), 0 to 1.")
    var sampleRatio: Double = 1

    @Option(help: "Use this Redis instead of starting one; keys go under the prefix trbench.")
    var redisURL: String?

    func run() async throws {
        let redis = try await BenchRedis.start(url: redisURL)
        defer { redis.stop() }
        let client = RedisClient(configuration: redis.configuration)
        defer { client.close() }
        let (sink, port) = try Self.startSink()
        defer { kill(sink.processIdentifier, SIGKILL) }
        print("tern-bench tracing: Redis at \(redis.configuration.endpointDescription); \(jobs) jobs, concurrency \(concurrency), median of \(runs)")
        var off: [(Double, Double)] = []
        for run in 0..<runs { off.append(try await drain(client, prefix: "trbench-off\(run)", tracing: false)) }
        // The tracer is bootstrapped once, for the rest of the process.
        var configuration = OTel.Configuration.default
        configuration.serviceName = "tern-bench"
        configuration.logs.enabled = false
        configuration.metrics.enabled = false
        configuration.traces.otlpExporter.endpoint = "http://127.0.0.1:\(port)/v1/traces"
        configuration.traces.otlpExporter.protocol = .httpProtobuf
        configuration.diagnosticLogLevel = .error
        if sampleRatio < 1 { configuration.traces.sampler = .parentBasedTraceIDRatio(ratio: sampleRatio) ?? .parentBasedAlwaysOn }
        let backend = try OTel.makeTracingBackend(configuration: configuration)
        InstrumentationSystem.bootstrap(backend.factory)
        let group = ServiceGroup(services: [backend.service], logger: Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() }))
        let exporter = Task { try await group.run() }
        var on: [(Double, Double)] = []
        for run in 0..<runs { on.append(try await drain(client, prefix: "trbench-on\(run)", tracing: true)) }
        await group.triggerGracefulShutdown()
        _ = await exporter.result
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        for (name, results) in [("tracing off", off), ("tracing on, \(Int(sampleRatio * 100)) % sampled", on)] {
            print(name.padding(toLength: 34, withPad: " ", startingAt: 0)
                + String(format: "%10.0f jobs/s %10.1f µs of worker CPU per job", median(results.map(\.0)), median(results.map(\.1))))
        }
    }

    /// Enqueues the jobs (each with an enqueue span when tracing), then drains them with one
    /// worker; the drain's rate and this process's CPU per job during it.
    private func drain(_ client: RedisClient, prefix: String, tracing: Bool) async throws -> (Double, Double) {
        let broker = try RedisJobBroker(client: client, prefix: prefix)
        try await broker.prepare()
        var middleware = Middleware()
        if tracing { middleware.addTracing() }
        let tern = TernClient(broker: broker, middleware: middleware)
        for start in stride(from: 0, to: jobs, by: 1000) {
            _ = try await tern.enqueueBatch(Echo.self, Array(repeating: .null, count: min(1000, jobs - start)))
        }
        var registry = TaskRegistry()
        try registry.register(Echo.self)
        var workerConfiguration = WorkerConfiguration()
        workerConfiguration.concurrency = concurrency
        let worker = JobWorker(
            broker: broker, registry: registry, configuration: workerConfiguration,
            logger: Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() }), middleware: middleware)
        let cpuBefore = BenchProcess.cpuSeconds()
        let start = ContinuousClock.now
        let running = Task { try await worker.run() }
        while try await broker.stats(.default).succeeded < jobs { try await Task.sleep(for: .milliseconds(5)) }
        let elapsed = ContinuousClock.now - start
        let cpu = BenchProcess.cpuSeconds() - cpuBefore
        worker.shutdown()
        try await running.value
        _ = try await client.send("FLUSHDB")
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return (Double(jobs) / seconds, cpu / Double(jobs) * 1e6)
    }

    /// A collector that accepts and drops OTLP/HTTP posts: a small Python HTTP server on a free port.
    private static func startSink() throws -> (Process, Int) {
        let script = """
            import http.server, socketserver, sys
            class Sink(http.server.BaseHTTPRequestHandler):
                def do_POST(self):
                    self.rfile.read(int(self.headers.get('Content-Length', 0)))
                    self.send_response(200); self.send_header('Content-Type', 'application/x-protobuf'); self.send_header('Content-Length', '0'); self.end_headers()
                def log_message(self, *args): pass
            server = socketserver.ThreadingTCPServer(('127.0.0.1', 0), Sink)
            print(server.server_address[1], flush=True)
            server.serve_forever()
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", script]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        guard let port = Int(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            process.terminate()
            throw ValidationError("the OTLP sink did not start")
        }
        return (process, port)
    }
}
