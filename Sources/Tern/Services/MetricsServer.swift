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

/// Serves a Prometheus registry at `/metrics`, for the worker and the scheduler.
enum MetricsServer {
    /// `GET /metrics` on `endpoint` until the group shuts down; `beforeScrape` refreshes gauges.
    /// A failure to serve (the port is taken) is logged as `cannot serve <process> metrics`, and the
    /// process runs on without metrics.
    static func service(
        _ registry: PrometheusCollectorRegistry, at endpoint: MetricsEndpoint, of process: String, logger: Logger,
        beforeScrape: @escaping @Sendable () -> Void = {}
    ) -> some Service {
        let router = Router()
        router.get("/metrics") { _, _ in
            beforeScrape()
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
        let app = Application(router: router, configuration: .init(address: .hostname(endpoint.host, port: endpoint.port)), logger: logger)
        return Served(app: app, address: "\(endpoint.host):\(endpoint.port)", process: process, logger: logger)
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
