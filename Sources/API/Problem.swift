import Broker
import Foundation
import Hummingbird
import TernCore

/// An error answer in `application/problem+json` (RFC 9457), with a stable `code` clients can
/// match on. Large input is never echoed.
public struct Problem: HTTPResponseError, Sendable {
    /// One problem with one field of the request, by JSON pointer.
    public struct FieldError: Sendable, Encodable, Hashable {
        public var pointer: String
        public var message: String

        public init(pointer: String, message: String) {
            self.pointer = pointer
            self.message = message
        }

        /// The problem a decoding error names, its pointer under `prefix` (`/input` for a job's input).
        init(_ error: DecodingError, under prefix: String) {
            let described = DecodingFailure.describe(error)  // "<pointer>: <message>"
            guard let separator = described.range(of: ": ") else {
                self.init(pointer: prefix, message: String(described.prefix(300)))
                return
            }
            let pointer = String(described[..<separator.lowerBound])
            self.init(pointer: prefix + (pointer == "/" ? "" : pointer), message: String(described[separator.upperBound...].prefix(300)))
        }
    }

    public var status: HTTPResponse.Status
    /// A stable machine-readable code (`invalid_request`, `malformed_json`, `not_found`,
    /// `store_unavailable`, ...; docs/http-api.md lists them all).
    public var code: String
    /// A human-readable explanation.
    public var detail: String
    /// Field-level problems, for 422 answers.
    public var errors: [FieldError]
    /// Seconds after which a retry may succeed (`Retry-After`), for 429 and 503 answers.
    public var retryAfter: Int?
    /// Extra response headers (`WWW-Authenticate` on 401).
    public var headers: HTTPFields = [:]
    /// The job the problem is about, as the member `job` (for `idempotency_key_reused`).
    public var job: JobID?
    /// For a 401 or 403, the reason the security event counts, when the request context cannot
    /// tell it (a refused dashboard login's JWT); not sent.
    var securityReason: String?

    public init(_ status: HTTPResponse.Status, _ code: String, _ detail: String, errors: [FieldError] = [], retryAfter: Int? = nil) {
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors
        self.retryAfter = retryAfter
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var object: [String: Any] = [
            "type": "about:blank", "title": status.reasonPhrase, "status": Int(status.code), "code": code,
            "detail": detail,
        ]
        if !errors.isEmpty { object["errors"] = errors.map { ["pointer": $0.pointer, "message": $0.message] } }
        if let job { object["job"] = job.rawValue }
        let data = try JSONWriter.bytes(object)
        var headers = headers
        headers[.contentType] = "application/problem+json"
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// The answer for a broker failure: Redis trouble of any kind is a 503 the client may retry.
    /// The cause is not sent: it names internal hosts and ports.
    /// Redis out of memory (`OOM`, at its `maxmemory`) is `store_full`, with a longer `Retry-After`.
    static func unavailable(_ error: any Error) -> Problem {
        if case .server(let server)? = error as? RedisError, server.code == "OOM" {
            return Problem(
                .serviceUnavailable, "store_full", "the job store is out of memory; retry after Retry-After seconds", retryAfter: 5)
        }
        return Problem(.serviceUnavailable, "store_unavailable", "the job store is unavailable; retry after Retry-After seconds", retryAfter: 1)
    }

    /// Seconds a client should wait before sending again to a full queue.
    static let queueFullRetryAfter = 2

    /// 422 for an idempotency key that already holds a job made by a different request.
    static func idempotencyKeyReused(_ key: String, job: JobID, pointer: String) -> Problem {
        var problem = Problem(
            .unprocessableContent, "idempotency_key_reused",
            "idempotency key '\(key)' already holds job \(job.rawValue), made by a different request (task, queue, input or options); use a new key for a new job",
            errors: [.init(pointer: pointer, message: "already used for job \(job.rawValue) with a different request")])
        problem.job = job
        return problem
    }

    /// 429 for a job refused because its queue is at its cap on waiting jobs.
    static func queueFull(_ queue: QueueName) -> Problem {
        Problem(
            .tooManyRequests, "queue_full",
            "queue '\(queue.rawValue)' is at its cap on waiting jobs; retry after Retry-After seconds",
            retryAfter: queueFullRetryAfter)
    }
}
