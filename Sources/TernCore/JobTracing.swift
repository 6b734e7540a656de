import Foundation
import Tracing

/// Distributed tracing of jobs (docs/operations.md#tracing), with whatever tracer the process
/// bootstrapped (swift-distributed-tracing; `tracing.otlp_endpoint` bootstraps OpenTelemetry).
///
/// - Enqueue: a `producer` span `enqueue <task>`, a child of the caller's current span (the API's
///   request span, a job's run span), whose context goes into the job's headers (`traceparent`
///   and `tracestate` for W3C trace context).
/// - Run: a `consumer` span `run <task>` around every attempt, a child of the enqueue span read
///   from the headers, so one trace joins the request that enqueued the job and every attempt of
///   it; the task's own spans are its children.
public struct JobTracing: EnqueueMiddleware, JobMiddleware {
    public init() {}

    public func enqueue(_ job: inout OutgoingJob) async throws {
        var headers = job.headers
        withSpan("enqueue \(job.task)", ofKind: .producer) { span in
            span.attributes["messaging.system"] = "tern"
            span.attributes["messaging.operation.type"] = "send"
            span.attributes["messaging.destination.name"] = job.queue.rawValue
            span.attributes["tern.task"] = job.task
            InstrumentationSystem.instrument.inject(span.context, into: &headers, using: HeaderCarrier())
        }
        job.headers = headers
    }

    public func run(_ context: JobContext, next: (JobContext) async throws -> Data) async throws -> Data {
        var parent = ServiceContext.current ?? .topLevel
        InstrumentationSystem.instrument.extract(context.headers, into: &parent, using: HeaderCarrier())
        return try await withSpan("run \(context.task)", context: parent, ofKind: .consumer) { span in
            span.attributes["messaging.system"] = "tern"
            span.attributes["messaging.operation.type"] = "process"
            span.attributes["messaging.destination.name"] = context.id.queue.rawValue
            span.attributes["messaging.message.id"] = context.id.rawValue
            span.attributes["tern.task"] = context.task
            span.attributes["tern.attempt"] = context.attempt
            return try await next(context)
        }
    }
}

extension JobTracing {
    /// `headers` with the trace context of `context` added (`traceparent` and `tracestate` for W3C
    /// trace context), or as they are when adding it would break the header limits: tracing never
    /// refuses a job. How a producer that does not enqueue through ``TernClient`` (the scheduler)
    /// makes the job's runs children of its span.
    public static func headers(_ headers: [String: String], tracing context: ServiceContext) -> [String: String] {
        var traced = headers
        InstrumentationSystem.instrument.inject(context, into: &traced, using: HeaderCarrier())
        return JobHeaders.problem(traced) == nil ? traced : headers
    }
}

/// Writes and reads trace context in a job's headers.
struct HeaderCarrier: Injector, Extractor {
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) {
        let name = key.lowercased()
        // A header the limits refuse is left out: tracing must never refuse a job.
        if JobHeaders.isValidName(name), value.utf8.count <= JobHeaders.maxValueBytes { carrier[name] = value }
    }

    func extract(key: String, from carrier: [String: String]) -> String? { carrier[key.lowercased()] }
}
