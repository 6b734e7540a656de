import Hummingbird
import Logging

/// Turns every error into an `application/problem+json` answer: ``Problem``s as they are,
/// Hummingbird's own errors (unknown routes, oversized bodies) with a stable code, and anything
/// unexpected into a 500 `internal_error` that is logged but not described to the client.
struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let problem as Problem {
            return try problem.response(from: request, context: context)
        } catch let error as any HTTPResponseError {
            return try Self.problem(for: error, request).response(from: request, context: context)
        } catch {
            context.logger.error("unexpected error", metadata: ["error": "\(error)", "path": "\(request.uri.path.prefix(200))"])
            return try Problem(.internalServerError, "internal_error", "an unexpected error occurred; it was logged")
                .response(from: request, context: context)
        }
    }

    static func problem(for error: any HTTPResponseError, _ request: Request) -> Problem {
        switch error.status {
        case .notFound:
            Problem(.notFound, "not_found", "no route matches \(request.method.rawValue) \(request.uri.path.prefix(200))")
        case .contentTooLarge:
            Problem(.contentTooLarge, "body_too_large", "the request body is too large")
        default:
            Problem(error.status, "http_error", error.status.reasonPhrase)
        }
    }
}
