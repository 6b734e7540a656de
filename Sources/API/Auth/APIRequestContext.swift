import Foundation
import Hummingbird
import Logging
import NIOCore

/// The request context of the HTTP API: Hummingbird's, plus the caller's grant once authenticated.
public struct APIRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The caller, set by ``AuthenticationMiddleware`` from the `Authorization` header.
    public var grant: TokenGrant?
    /// Whether the server asks for tokens (when not, every caller is an admin).
    var requiresToken = true
    /// The caller sent a bearer token that matches none: 401 on every route that needs a token.
    var invalidToken = false
    /// Why the caller's JWT was refused, for the 401's `WWW-Authenticate` and the security event.
    var jwtFailure: JWTFailure?
    /// The caller sent a dashboard session cookie that is forged, expired or of a removed token.
    var invalidSession = false
    /// The caller's dashboard session, when the request was authenticated by its cookie.
    var session: DashboardSession?
    /// When the caller's credential ends, for a grant that is not a static token's: a JWT's expiry,
    /// or the end of its dashboard session, or of its stream ticket. `nil` for a static token.
    var grantEnds: Date?
    /// The caller sent a stream ticket (`?ticket=`) that is forged, expired or of a removed token.
    var invalidTicket = false
    /// A state-changing request authenticated by a session cookie came without its CSRF token:
    /// 403 on every route that needs a grant.
    var csrfFailed = false

    /// The connection the request came on, to close it after an early refusal (see
    /// ``BodyReader``).
    let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// The caller's grant if it allows `permission`.
    /// - Throws: 401 ``Problem`` without a valid token, 403 with a token of the wrong role.
    @discardableResult
    func require(_ permission: Permission) throws -> TokenGrant {
        if csrfFailed {
            throw Problem(
                .forbidden, "csrf_failed",
                "a request of a dashboard session that changes something must carry the session's X-CSRF-Token header")
        }
        guard let grant else {
            if invalidTicket {
                var problem = Problem(
                    .unauthorized, "unauthorized", "the stream ticket is not valid or has expired: get a new one from POST /v1/stream-tickets")
                problem.headers[.wwwAuthenticate] = #"Bearer realm="tern", error="invalid_token""#
                problem.securityReason = SecurityEventsMiddleware.FailureReason.invalidTicket.rawValue
                throw problem
            }
            if invalidSession && !invalidToken {
                throw Problem(.unauthorized, "unauthorized", "the dashboard session has ended or is not valid: log in again")
            }
            throw Problem.unauthenticated(invalid: invalidToken, jwtFailure: jwtFailure)
        }
        guard grant.role.allows(permission) else {
            throw Problem(.forbidden, "forbidden", "this token's role (\(grant.role.rawValue)) cannot \(permission.rawValue); it needs \(permission.minimumRoles)")
        }
        return grant
    }
}

/// Reads `Authorization: Bearer <token>`, or else the dashboard's session cookie, or else (on `GET`
/// of an event stream) a stream ticket (``StreamTicket``, `?ticket=`), and sets the caller's grant. Without either the caller is anonymous: public routes (`/healthz`, `/readyz`,
/// `/openapi.json`, `/docs`, the dashboard's pages) still answer, so probes behind proxies that add
/// other credentials work; every other route answers 401. A session's state-changing request
/// (any method but GET, HEAD and OPTIONS) counts only with the session's `X-CSRF-Token`.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext
    /// Read once per request: the policy in force when the request arrived.
    let access: AccessControl
    /// The key that signs session cookies (``APIConfiguration/sessionSecret``).
    let sessionSecret: [UInt8]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let policy = access.current
        var context = context
        context.requiresToken = policy.requiresToken
        if !policy.requiresToken {
            context.grant = policy.grant(forSecret: "")
        } else if let header = request.headers[.authorization] {
            let authentication = header.count > 7 && header.prefix(7).lowercased() == "bearer "
                ? await policy.authenticate(header.dropFirst(7).drop(while: { $0 == " " })) : AccessPolicy.Authentication()
            if let grant = authentication.grant {
                context.grant = grant
                context.grantEnds = authentication.expires
                context.logger[metadataKey: "token"] = .string(grant.name)
            } else {
                context.invalidToken = true
                context.jwtFailure = authentication.jwtFailure
            }
        } else if request.method == .get, StreamTicket.accepted(on: request.uri.path), let ticket = request.uri.queryParameters.get("ticket") {
            // Before the cookie: a stale session of the same site must not hide a fresh ticket.
            if let (grant, ends) = StreamTicket.grant(Substring(ticket), secret: sessionSecret, policy: policy) {
                context.grant = grant
                context.grantEnds = ends
                context.logger[metadataKey: "token"] = .string(grant.name)
            } else {
                context.invalidTicket = true
            }
        } else if let cookie = DashboardSession.cookie(in: request.headers[.cookie]) {
            if let session = DashboardSession.verify(cookie, secret: sessionSecret),
                let grant = session.grant ?? policy.grant(named: session.tokenName)
            {
                if [.get, .head, .options].contains(request.method)
                    || session.acceptsCSRF(request.headers[DashboardRoutes.csrfHeader].map { Substring($0) }, secret: sessionSecret)
                {
                    context.grant = grant
                    context.session = session
                    if session.grant != nil { context.grantEnds = Date(timeIntervalSince1970: TimeInterval(session.expires)) }
                    context.logger[metadataKey: "token"] = .string(grant.name)
                } else {
                    context.csrfFailed = true
                }
            } else {
                context.invalidSession = true
            }
        }
        return try await next(request, context)
    }
}

extension Problem {
    /// 401 with `WWW-Authenticate`. A static token's answer never says what was wrong (it matches
    /// none); a JWT's says why it was refused (``JWTFailure/description``), never a key or secret.
    static func unauthenticated(invalid: Bool, jwtFailure: JWTFailure? = nil) -> Problem {
        if let jwtFailure {
            var problem = Problem(.unauthorized, "unauthorized", "the bearer token is not valid: \(jwtFailure.description)")
            problem.headers[.wwwAuthenticate] = #"Bearer realm="tern", error="invalid_token", error_description=""#
                + jwtFailure.description.replacingOccurrences(of: "\"", with: "'") + "\""
            return problem
        }
        var problem = Problem(
            .unauthorized, "unauthorized",
            invalid ? "the bearer token is not valid" : "send a token: Authorization: Bearer <token>")
        problem.headers[.wwwAuthenticate] = invalid ? #"Bearer realm="tern", error="invalid_token""# : #"Bearer realm="tern""#
        return problem
    }
}
