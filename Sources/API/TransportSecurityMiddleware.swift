import Hummingbird

/// HTTPS for the API: `Strict-Transport-Security` (one year) on every answer that went over TLS,
/// served here or ended at a proxy that says so (`X-Forwarded-Proto: https`); and, with
/// ``APIConfiguration/tlsRequired``, 403 `tls_required` for a request to `/v1` or `/ui` that did
/// not (probes and `/metrics` stay reachable over plain HTTP, for load balancers and scrapers).
struct TransportSecurityMiddleware<Context: RequestContext>: RouterMiddleware {
    let servesTLS: Bool
    let required: Bool
    static var hsts: String { "max-age=31536000" }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let secure = servesTLS || request.headers[.init("X-Forwarded-Proto")!]?.lowercased() == "https"
        if required, !secure, request.uri.path.hasPrefix("/v1/") || request.uri.path == "/v1" || request.uri.path.hasPrefix("/ui") {
            throw Problem(.forbidden, "tls_required", "this API accepts requests to /v1 and /ui over HTTPS only")
        }
        do {
            var response = try await next(request, context)
            if secure { response.headers[.strictTransportSecurity] = Self.hsts }
            return response
        } catch var problem as Problem where secure {
            problem.headers[.strictTransportSecurity] = Self.hsts
            throw problem
        }
    }
}
