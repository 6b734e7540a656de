import Foundation
import Hummingbird
import Logging
import NIOCore

/// Security events: every authentication failure with its reason, every refusal by role or scope,
/// and every operator or admin action (cancel, retry, pause, resume, purge, schedule changes,
/// dashboard login and logout). Each is logged under the label `tern.security` with the caller's
/// token name (never its secret) and the client's address, and counted on `/metrics`:
/// `tern_auth_failures_total{reason}` and `tern_admin_actions_total{action}`. Requests of each
/// token are counted as `tern_token_requests_total{token}` (and logged at `debug`).
struct SecurityEventsMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext
    let logger: Logger
    let metrics: APIMetrics

    /// Why a request was refused: the reasons `tern_auth_failures_total` counts, and for JWTs,
    /// ``JWTFailure/reason`` (`jwt_expired`, `jwt_bad_signature`, …).
    enum FailureReason: String, CaseIterable {
        /// No token or session on a route that needs one.
        case missingToken = "missing_token"
        /// A bearer token (or a dashboard login's token) that matches none.
        case invalidToken = "invalid_token"
        /// A dashboard session cookie that is forged, expired or of a removed token.
        case invalidSession = "invalid_session"
        /// A stream ticket (`?ticket=`) that is forged, expired or of a removed token.
        case invalidTicket = "invalid_ticket"
        /// A session's state-changing request without its CSRF token.
        case csrfFailed = "csrf_failed"
        /// A token whose role or allowed tasks and queues do not cover the request.
        case forbidden
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let grant = context.grant, context.requiresToken {
            metrics.tokenRequest(name: grant.name)
            logger.debug("token used", metadata: event("token_used", request, context))
        }
        do {
            let response = try await next(request, context)
            if (200..<300).contains(response.status.code), let action = SecurityEvents.action(request.method, request.uri.path) {
                metrics.adminAction(action)
                var metadata = event("admin_action", request, context)
                metadata["action"] = .string(action)
                logger.notice("security event", metadata: metadata)
            }
            return response
        } catch let problem as Problem where problem.status == .unauthorized || problem.status == .forbidden {
            let reason = problem.securityReason ?? context.jwtFailure.map(\.reason) ?? Self.reason(problem, context).rawValue
            metrics.authFailure(reason)
            var metadata = event("auth_failure", request, context)
            metadata["reason"] = .string(reason)
            metadata["status"] = .stringConvertible(problem.status.code)
            logger.warning("security event", metadata: metadata)
            throw problem
        }
    }

    /// The event's common fields: what, the token's name (if any), the client and the request.
    private func event(_ name: String, _ request: Request, _ context: Context) -> Logger.Metadata {
        var metadata: Logger.Metadata = [
            "event": .string(name), "method": .string(request.method.rawValue), "path": .string(request.uri.path),
            "client": .string(context.channel.remoteAddress.map(Self.address) ?? "unknown"),
        ]
        if let name = context.grant?.name, context.requiresToken { metadata["token"] = .string(name) }
        if let forwarded = request.headers[.init("X-Forwarded-For")!] { metadata["forwarded_for"] = .string(String(forwarded.prefix(200))) }
        return metadata
    }

    private static func address(_ address: SocketAddress) -> String {
        if let ip = address.ipAddress { return address.port.map { "\(ip):\($0)" } ?? ip }
        return address.description
    }

    static func reason(_ problem: Problem, _ context: Context) -> FailureReason {
        if problem.status == .forbidden { return problem.code == "csrf_failed" ? .csrfFailed : .forbidden }
        if context.invalidToken { return .invalidToken }
        if context.invalidSession { return .invalidSession }
        return problem.detail.hasPrefix("send a token") ? .missingToken : .invalidToken
    }

}

/// The names of security events.
public enum SecurityEvents {
    /// The operator or admin action a request names, if it is one (`tern_admin_actions_total`'s
    /// `action`): `job_cancel`, `job_retry`, `job_run`, `job_delete`, `workflow_cancel`, `queue_pause`, `queue_resume`,
    /// `queue_purge`, `queue_retry_failed`, `schedule_put`, `schedule_delete`, `schedule_pause`,
    /// `schedule_resume`, `schedule_run`, `worker_quiet`, `worker_resume`, `worker_stop`, `limit_set`, `limit_clear`,
    /// `dashboard_login`, `dashboard_logout`.
    public static func action(_ method: HTTPRequest.Method, _ path: String) -> String? {
        let parts = path.split(separator: "/").map(String.init)
        switch (method, parts.count, parts.first, parts.count > 1 ? parts[1] : "", parts.last ?? "") {
        case (.post, 4, "v1", "jobs", "cancel"): return "job_cancel"
        case (.post, 4, "v1", "jobs", "retry"): return "job_retry"
        case (.post, 4, "v1", "jobs", "run"): return "job_run"
        case (.delete, 3, "v1", "jobs", _): return "job_delete"
        case (.post, 4, "v1", "workflows", "cancel"): return "workflow_cancel"
        case (.post, 4, "v1", "workers", let verb) where ["quiet", "resume", "stop"].contains(verb): return "worker_" + verb
        case (.post, 4, "v1", "queues", let verb) where ["pause", "resume", "purge", "retry-failed"].contains(verb):
            return "queue_" + verb.replacingOccurrences(of: "-", with: "_")
        case (.put, 4, "v1", "queues", "limits"): return "limit_set"
        case (.delete, 4, "v1", "queues", "limits"): return "limit_clear"
        case (.put, 3, "v1", "schedules", _): return "schedule_put"
        case (.delete, 3, "v1", "schedules", _): return "schedule_delete"
        case (.post, 4, "v1", "schedules", let verb) where ["pause", "resume", "run"].contains(verb): return "schedule_" + verb
        case (.post, 2, "ui", "login", _): return "dashboard_login"
        case (.post, 2, "ui", "logout", _): return "dashboard_logout"
        default: return nil
        }
    }
}
