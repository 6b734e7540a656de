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
        guard let grant else { throw Problem.unauthenticated(invalid: invalidToken) }
        guard grant.role.allows(permission) else {
            throw Problem(.forbidden, "forbidden", "this token's role (\(grant.role.rawValue)) cannot \(permission.rawValue); it needs \(permission.minimumRoles)")
        }
        return grant
    }
}

/// Reads `Authorization: Bearer <token>` and sets the caller's grant. Without a valid bearer token
/// the caller is anonymous: public routes (`/healthz`, `/readyz`, `/openapi.json`, `/docs`) still
/// answer, so probes behind proxies that add other credentials work; every other route answers 401.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext
    let policy: AccessPolicy

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        context.requiresToken = policy.requiresToken
        if !policy.requiresToken {
            context.grant = policy.grant(forSecret: "")
        } else if let header = request.headers[.authorization] {
            if header.count > 7, header.prefix(7).lowercased() == "bearer ",
                let grant = policy.grant(forSecret: header.dropFirst(7).drop(while: { $0 == " " }))
            {
                context.grant = grant
                context.logger[metadataKey: "token"] = .string(grant.name)
            } else {
                context.invalidToken = true
            }
        }
        return try await next(request, context)
    }
}

extension Problem {
    /// 401 with `WWW-Authenticate`, never saying which part of a token was wrong.
    static func unauthenticated(invalid: Bool) -> Problem {
        var problem = Problem(
            .unauthorized, "unauthorized",
            invalid ? "the bearer token is not valid" : "send a token: Authorization: Bearer <token>")
        problem.headers[.wwwAuthenticate] = invalid ? #"Bearer realm="tern", error="invalid_token""# : #"Bearer realm="tern""#
        return problem
    }
}
