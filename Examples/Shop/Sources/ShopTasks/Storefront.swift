import Foundation
import Tern

/// The storefront (the shop's tenant) the current code works for: set by the web request that
/// enqueues a job, and by ``StorefrontMiddleware`` around each job a worker runs.
public enum Storefront {
    @TaskLocal public static var current: String?
}

/// Carries ``Storefront/current`` with each job, in its `storefront` header: the enqueue side adds
/// the header, the worker side sets the storefront (and the logger's metadata) around the task.
public struct StorefrontMiddleware: EnqueueMiddleware, JobMiddleware {
    public init() {}

    public func enqueue(_ job: inout OutgoingJob) async throws {
        if let storefront = Storefront.current, job.headers["storefront"] == nil { job.headers["storefront"] = storefront }
    }

    public func run(_ context: JobContext, next: (JobContext) async throws -> Data) async throws -> Data {
        guard let storefront = context.headers["storefront"] else { return try await next(context) }
        var context = context
        context.logger[metadataKey: "storefront"] = "\(storefront)"
        return try await Storefront.$current.withValue(storefront) { try await next(context) }
    }
}
