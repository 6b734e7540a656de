import API
import Broker
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Synchronization
import Tasks
import TernCore
import Testing

/// Keeps every record logged through it.
private final class RecordingLog: Sendable {
    struct Record: Sendable {
        let level: Logger.Level
        let message: String
        let metadata: [String: String]
    }

    private let kept = Mutex<[Record]>([])
    var records: [Record] { kept.withLock { $0 } }

    func logger() -> Logger {
        var logger = Logger(label: "tern.security") { _ in Handler(log: self) }
        logger.logLevel = .debug
        return logger
    }

    struct Handler: LogHandler {
        let log: RecordingLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let fields = (metadata.merging(event.metadata ?? [:]) { $1 }).mapValues { "\($0)" }
            log.kept.withLock { $0.append(Record(level: event.level, message: "\(event.message)", metadata: fields)) }
        }
    }
}

@Suite("Security events")
struct SecurityEventsTests {
    @Test("auth failures by reason and admin actions by name are logged under tern.security and counted; no secret is logged")
    func events() async throws {
        let broker = MemoryJobBroker()
        var registry = TaskRegistry()
        try SampleTasks.register(in: &registry, includingTestTasks: false)
        let access = AccessPolicy.tokens([
            .init(secret: "reader-secret-1", grant: TokenGrant(name: "dash", role: .reader)),
            .init(secret: "operator-secret-1", grant: TokenGrant(name: "ops", role: .operator)),
        ])
        let log = RecordingLog()
        var api = APIContext(broker: broker, registry: registry, configuration: APIConfiguration(), access: access, checkReady: {})
        api.securityLogger = log.logger()
        _ = try await broker.enqueue([EnqueueRequest(task: "echo", input: Data("1".utf8), options: TaskOptions())])
        try await Application(router: buildRouter(api)).test(.router) { client in
            func call(_ method: HTTPRequest.Method, _ path: String, token: String?, _ status: HTTPResponse.Status) async throws {
                var headers: HTTPFields = [.contentType: "application/json"]
                if let token { headers[.authorization] = "Bearer \(token)" }
                headers[HTTPField.Name("X-Forwarded-For")!] = "203.0.113.7"
                try await client.execute(uri: path, method: method, headers: headers) { response in
                    #expect(response.status == status, "\(method) \(path)")
                }
            }
            try await call(.get, "/v1/queues", token: nil, .unauthorized)
            try await call(.get, "/v1/queues", token: "wrong-secret", .unauthorized)
            try await call(.post, "/v1/queues/default/pause", token: "reader-secret-1", .forbidden)
            try await call(.post, "/v1/queues/default/pause", token: "operator-secret-1", .ok)
            try await call(.post, "/v1/queues/default/resume", token: "operator-secret-1", .ok)
            try await call(.get, "/v1/queues", token: "reader-secret-1", .ok)

            let failures = log.records.filter { $0.metadata["event"] == "auth_failure" }
            #expect(failures.map { $0.metadata["reason"] } == ["missing_token", "invalid_token", "forbidden"])
            #expect(failures.allSatisfy { $0.level == .warning && $0.metadata["path"] != nil && $0.metadata["client"] != nil })
            #expect(failures.last?.metadata["token"] == "dash" && failures.last?.metadata["forwarded_for"] == "203.0.113.7")
            let actions = log.records.filter { $0.metadata["event"] == "admin_action" }
            #expect(actions.map { $0.metadata["action"] } == ["queue_pause", "queue_resume"])
            #expect(actions.allSatisfy { $0.metadata["token"] == "ops" && $0.level == .notice })
            #expect(log.records.filter { $0.metadata["event"] == "token_used" }.count == 4)
            let everything = log.records.map { "\($0.message) \($0.metadata)" }.joined()
            #expect(!everything.contains("secret"), "a token's secret was logged")

            try await client.execute(uri: "/metrics", method: .get, headers: [.authorization: "Bearer reader-secret-1"]) { response in
                let text = String(buffer: response.body)
                #expect(text.contains(#"tern_auth_failures_total{reason="missing_token"} 1"#))
                #expect(text.contains(#"tern_auth_failures_total{reason="invalid_token"} 1"#))
                #expect(text.contains(#"tern_auth_failures_total{reason="forbidden"} 1"#))
                #expect(text.contains(#"tern_admin_actions_total{action="queue_pause"} 1"#))
                #expect(text.contains(#"tern_token_requests_total{token="ops"} 2"#))
            }
        }
    }

    @Test("every operator and admin route names its action")
    func actions() {
        let cases: [(HTTPRequest.Method, String, String?)] = [
            (.post, "/v1/jobs/X.default/cancel", "job_cancel"), (.post, "/v1/jobs/X.default/retry", "job_retry"),
            (.post, "/v1/jobs/X.default/run", "job_run"),
            (.post, "/v1/workflows/X.default/cancel", "workflow_cancel"), (.post, "/v1/queues/q/purge", "queue_purge"),
            (.post, "/v1/queues/q/retry-failed", "queue_retry_failed"), (.put, "/v1/schedules/nightly", "schedule_put"),
            (.delete, "/v1/schedules/nightly", "schedule_delete"), (.post, "/v1/schedules/nightly/pause", "schedule_pause"),
            (.post, "/v1/schedules/nightly/run", "schedule_run"),
            (.post, "/v1/workers/h:1:a/quiet", "worker_quiet"), (.post, "/v1/workers/h:1:a/resume", "worker_resume"),
            (.post, "/v1/workers/h:1:a/stop", "worker_stop"),
            (.post, "/ui/login", "dashboard_login"), (.post, "/v1/jobs", nil), (.get, "/v1/queues/q/pause", nil),
        ]
        for (method, path, action) in cases {
            #expect(SecurityEvents.action(method, path) == action, "\(method) \(path)")
        }
    }
}
