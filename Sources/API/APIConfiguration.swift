/// How the HTTP API listens and what it accepts.
public struct APIConfiguration: Sendable {
    /// The address to bind (default 127.0.0.1).
    public var host = "127.0.0.1"
    /// The port (default 8080).
    public var port = 8080
    /// The largest request body, in bytes (default 256 KiB); a larger one is refused with 413
    /// before it is read in full.
    public var maxBodyBytes = 256 * 1024
    /// The default page size of listings (20) and the largest a client may ask for (100).
    public var defaultPageSize = 20
    public var maxPageSize = 100
    /// The longest `?wait=` on `GET /v1/jobs/{id}`, in seconds (30); longer waits are cut to it.
    public var maxWaitSeconds = 30

    public init() {}
}
