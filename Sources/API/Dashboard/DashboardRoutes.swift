import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// The dashboard's routes: its page and assets under `/ui`, login, logout and the session.
///
/// The page is a small static application (``DashboardAssets``) that reads the `/v1` API with the
/// session cookie. Everything it shows enters the page as text, never as markup, and the
/// Content-Security-Policy allows scripts and styles from this origin only (no inline code), so job
/// data (inputs, results, errors, names) cannot run in an operator's browser.
enum DashboardRoutes {
    /// The header a session's state-changing request carries its CSRF token in.
    static let csrfHeader = HTTPField.Name("X-CSRF-Token")!

    /// The headers of every dashboard answer.
    static let securityHeaders: HTTPFields = [
        .contentSecurityPolicy:
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
            + "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        HTTPField.Name("X-Frame-Options")!: "DENY",
        HTTPField.Name("X-Content-Type-Options")!: "nosniff",
        HTTPField.Name("Referrer-Policy")!: "no-referrer",
        .cacheControl: "no-store",
    ]

    static func asset(_ text: String, type: String) -> @Sendable (Request, APIRequestContext) async throws -> Response {
        let body = ByteBuffer(string: text)
        return { _, _ in
            var headers = securityHeaders
            headers[.contentType] = type
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: body))
        }
    }

    /// `{name, role, csrf, auth}`: who the session is, for the page.
    static func sessionObject(_ grant: TokenGrant, csrf: String, auth: String) -> [String: Any] {
        ["name": grant.name, "role": grant.role.rawValue, "csrf": csrf, "auth": auth]
    }
}

/// `/ui` (the page), `/ui/app.js`, `/ui/app.css`, `POST /ui/login`, `POST /ui/logout` and
/// `GET /ui/session`.
func addDashboardRoutes(_ router: Router<APIRequestContext>, _ api: APIContext) {
    let page = DashboardRoutes.asset(DashboardAssets.html, type: "text/html; charset=utf-8")
    router.get("/ui", use: page)
    router.get("/ui/app.js", use: DashboardRoutes.asset(DashboardAssets.script, type: "text/javascript; charset=utf-8"))
    router.get("/ui/app.css", use: DashboardRoutes.asset(DashboardAssets.style, type: "text/css; charset=utf-8"))
    let secret = api.configuration.sessionSecret
    let auth = api.access.requiresToken ? "tokens" : "none"

    router.post("/ui/login") { request, context in
        // JSON only: a page on another site cannot send that without the browser asking first.
        let body = try await readJSONBody(request, context, api)
        guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any], let token = object["token"] as? String
        else { throw Problem(.badRequest, "invalid_login", #"send {"token": "<an API token>"}"#) }
        let authentication = await api.access.authenticate(Substring(token))
        guard let grant = authentication.grant else {
            if let failure = authentication.jwtFailure {
                context.logger.notice("dashboard login refused", metadata: ["reason": .string(failure.reason)])
                var problem = Problem(.unauthorized, "unauthorized", "the token is not valid: \(failure.description)")
                problem.securityReason = failure.reason
                throw problem
            }
            context.logger.notice("dashboard login refused: the token matches none")
            throw Problem(.unauthorized, "unauthorized", "the token is not valid")
        }
        // A JWT's session carries its grant, and ends when the JWT does.
        let session = DashboardSession.start(
            tokenName: grant.name, lifetime: api.configuration.sessionLifetime,
            grant: authentication.expires == nil ? nil : grant, until: authentication.expires)
        context.logger.info("dashboard login", metadata: ["token": .string(grant.name)])
        var headers = DashboardRoutes.securityHeaders
        headers[.setCookie] = session.setCookie(secret: secret, secure: api.configuration.cookieSecure)
        return try JSONResponse.make(
            DashboardRoutes.sessionObject(grant, csrf: session.csrfToken(secret: secret), auth: auth), headers: headers)
    }

    router.post("/ui/logout") { _, _ in
        var headers = DashboardRoutes.securityHeaders
        headers[.setCookie] = DashboardSession.clearCookie
        return try JSONResponse.make(["logged_out": true], headers: headers)
    }

    router.get("/ui/live") { request, context in
        try context.require(.read)
        return try DashboardLive.response(request: request, api: api)
    }

    router.get("/ui/session") { _, context in
        let grant = try context.require(.read)
        let csrf = context.session?.csrfToken(secret: secret) ?? ""
        return try JSONResponse.make(
            DashboardRoutes.sessionObject(grant, csrf: csrf, auth: auth), headers: DashboardRoutes.securityHeaders)
    }
}
