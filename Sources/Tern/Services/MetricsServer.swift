import Foundation
import Hummingbird
import Logging
import Prometheus
import ServiceLifecycle

/// Where a process serves its metrics (`--metrics-host`, `--metrics-port`).
public struct MetricsEndpoint: Sendable {
    public var host: String
    public var port: Int

    /// The address when none is configured: `127.0.0.1`, this machine only.
    public static let defaultHost = "127.0.0.1"

    public init(host: String = MetricsEndpoint.defaultHost, port: Int) {
        self.host = host
        self.port = port
    }
}

/// Why a process is not alive, and why it is not ready (`nil`: it is), for its health probes.
struct HealthReport: Sendable {
    var notAlive: String?
    var notReady: String?
}

/// Serves a Prometheus registry at `/metrics`, for the worker and the scheduler, and with `health`
/// the probes `/healthz` and `/readyz`.
enum MetricsServer {
    /// `GET /metrics` on `endpoint` until the group shuts down; `beforeScrape` refreshes gauges.
    /// With `health`, `GET /healthz` and `GET /readyz` answer 200 (`{"status":"ok"}`,
    /// `{"status":"ready"}`) or 503 with the reason (`{"status":"not_alive"|"not_ready","detail":…}`).
    /// A failure to serve (the port is taken) is logged as `cannot serve <process> metrics`, and the
    /// process runs on without metrics.
    static func service(
        _ registry: PrometheusCollectorRegistry, at endpoint: MetricsEndpoint, of process: String, logger: Logger,
        beforeScrape: @escaping @Sendable () -> Void = {}, health: (@Sendable () -> HealthReport)? = nil
    ) -> some Service {
        let router = Router()
        if let health {
            router.get("/healthz") { _, _ in probe(health().notAlive, ok: "ok", failed: "not_alive") }
            router.get("/readyz") { _, _ in probe(health().notReady, ok: "ready", failed: "not_ready") }
        }
        router.get("/metrics") { _, _ in
            beforeScrape()
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
        let app = Application(router: router, configuration: .init(address: .hostname(endpoint.host, port: endpoint.port)), logger: logger)
        return Served(app: app, address: "\(endpoint.host):\(endpoint.port)", process: process, logger: logger)
    }

    private static func probe(_ problem: String?, ok: String, failed: String) -> Response {
        let object: [String: String] = problem.map { ["status": failed, "detail": $0] } ?? ["status": ok]
        let body = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return Response(
            status: problem == nil ? .ok : .serviceUnavailable, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    private struct Served<App: Service>: Service {
        let app: App
        let address: String
        let process: String
        let logger: Logger

        func run() async throws {
            logger.info("\(process) metrics listening", metadata: ["address": "\(address)/metrics"])
            do {
                try await app.run()
            } catch {
                logger.error("cannot serve \(process) metrics", metadata: ["error": "\(error)"])
                try? await gracefulShutdown()
            }
        }
    }
}
