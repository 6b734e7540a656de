/// How the HTTP API listens and what it accepts.
public struct APIConfiguration: Sendable {
    /// The address to bind (default 127.0.0.1).
    public var host = "127.0.0.1"
    /// The port (default 8080).
    public var port = 8080
    /// Whether each request gets a server span (Hummingbird's `TracingMiddleware`, with the
    /// process's tracer), continuing a caller's W3C `traceparent`; on with `tracing.otlp_endpoint`.
    public var tracing = false
    /// The largest request body, in bytes (default 256 KiB); a larger one is refused with 413
    /// before it is read in full.
    public var maxBodyBytes = 256 * 1024
    /// The default page size of listings (20) and the largest a client may ask for (100).
    public var defaultPageSize = 20
    public var maxPageSize = 100
    /// The most queues one page of `GET /v1/queues` lists (1,000, also its default), and the most
    /// that `/metrics` reports (the first by name): each queue listed costs Redis calls.
    public var maxQueuesListed = 1_000
    /// The longest `?wait=` on `GET /v1/jobs/{id}`, in seconds (30); longer waits are cut to it.
    public var maxWaitSeconds = 30
    /// The most requests that may hold a connection open at once, `?wait=` and event streams
    /// together (default 1,000); more answer 503 `too_many_waiters` with `Retry-After`.
    public var maxWaiters = 1_000
    /// The longest an event stream (`GET /v1/jobs/{id}/events`) stays open, in seconds (default
    /// 3,600); then it ends and an EventSource client reconnects.
    public var maxEventStreamSeconds = 3_600
    /// The deepest a request body may nest arrays and objects (default 32); deeper is a 422.
    public var maxJSONDepth = 32
    /// A connection that sends nothing for this long (no request, or a request that stalls) is
    /// closed (default 30 s). An answer being streamed is not cut.
    public var idleTimeout = Duration.seconds(30)
    /// The longest a request body may take to arrive (default 30 s); a slower one is answered 408
    /// `body_timeout` and the connection closed.
    public var bodyTimeout = Duration.seconds(30)
    /// The largest request head in bytes (default 16 KiB): the request target plus every header
    /// name and value. A larger one is answered 400 with an empty body by the HTTP parser, before
    /// any route, and the connection is closed.
    public var maxHeaderBytes = 16 * 1024
    /// The most headers in one request (default 100).
    public var maxHeaderCount = 100
    /// The most connections served at once (default 1,024); more wait to be accepted.
    public var maxConnections = 1_024

    /// Whether `/ui` serves the dashboard (default true; `api.dashboard`).
    public var dashboard = true
    /// How long a dashboard session lasts after login (default 8 hours; `api.session_hours`).
    public var sessionLifetime = Duration.seconds(8 * 3600)
    /// Whether the dashboard's session cookie carries `Secure` (default false; `api.secure_cookie`):
    /// set it when browsers reach the API over HTTPS, through a TLS proxy, so that the cookie is never
    /// sent over plain HTTP.
    public var secureCookie = false
    /// Serve HTTPS on the API's port with this certificate and key (`api.tls.cert_file` and
    /// `api.tls.key_file`); `nil` (the default) for plain HTTP. Answers then carry
    /// `Strict-Transport-Security`, and the dashboard's cookie `Secure`.
    public var tls: APITLS?
    /// Refuse requests to `/v1` and `/ui` that did not come over TLS (`api.tls.required`, default
    /// false): with ``tls`` every request does; without it (TLS ends at a proxy), a request must
    /// carry `X-Forwarded-Proto: https`, else it is answered 403 `tls_required`.
    public var tlsRequired = false

    /// Whether the session cookie carries `Secure`: ``secureCookie``, or HTTPS (served or required).
    var cookieSecure: Bool { secureCookie || tls != nil || tlsRequired }
    /// The key that signs dashboard session cookies, at least 32 bytes (`TERN_API_SESSION_SECRET`).
    /// The default is random per process: sessions then end when the process restarts, and a
    /// session made by one API replica is unknown to the others, so give replicas behind one
    /// load balancer the same secret.
    public var sessionSecret: [UInt8] = {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }()

    public init() {}
}
