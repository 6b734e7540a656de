import ArgumentParser
import Foundation
import Logging
import OTel
import ServiceLifecycle
import Tracing

/// OpenTelemetry tracing of a Tern process (docs/operations.md#tracing): with
/// `tracing.otlp_endpoint` (or `TERN_TRACING_OTLP_ENDPOINT`), spans are exported over OTLP/HTTP
/// (protobuf); without it, nothing is set up and tracing costs nothing.
struct TracingSettings: Sendable {
    /// Where spans go: the collector's OTLP/HTTP traces URL (`/v1/traces` is added to a URL
    /// without a path).
    var endpoint: String
    /// The `service.name` of the spans.
    var serviceName: String
    /// The share of traces recorded when no parent decides, 0 to 1.
    var sampleRatio: Double

    /// The settings of `tracing:` and its variables, or `nil` when tracing is off.
    static func resolve(_ settings: SettingsResolver, service: String) throws -> TracingSettings? {
        let file = settings.file.tracing
        guard let endpoint: String = try settings.optional(
            SettingNames(environment: "TERN_TRACING_OTLP_ENDPOINT", file: "tracing.otlp_endpoint"), flag: nil, file: file?.otlpEndpoint)
        else { return nil }
        guard let url = URL(string: endpoint), ["http", "https"].contains(url.scheme ?? ""), url.host != nil else {
            // A usage error (exit 64) in every command, as any other bad setting.
            throw ValidationError("tracing.otlp_endpoint must be an http:// or https:// URL, not '\(endpoint)'")
        }
        let name: String = try settings.optional(
            SettingNames(environment: "TERN_TRACING_SERVICE_NAME", file: "tracing.service_name"), flag: nil, file: file?.serviceName)
            ?? service
        let ratio = try settings.value(
            SettingNames(file: "tracing.sample_ratio"), flag: nil, file: file?.sampleRatio, default: 1.0, in: 0...1)
        let path = url.path.isEmpty || url.path == "/" ? "/v1/traces" : ""
        return TracingSettings(endpoint: endpoint.hasSuffix("/") && !path.isEmpty ? endpoint.dropLast() + path : endpoint + path,
            serviceName: name, sampleRatio: ratio)
    }

    /// Bootstraps the process's tracer (once per process) and returns the exporter's service, to
    /// run in the process's service group: it sends spans in batches and flushes them on shutdown.
    func bootstrap(logger: Logger) throws -> any Service {
        var configuration = OTel.Configuration.default
        configuration.serviceName = serviceName
        configuration.logs.enabled = false
        configuration.metrics.enabled = false
        configuration.traces.exporter = .otlp
        configuration.traces.otlpExporter.endpoint = endpoint
        configuration.traces.otlpExporter.protocol = .httpProtobuf
        configuration.traces.sampler = sampleRatio >= 1 ? .parentBasedAlwaysOn : .parentBasedTraceIDRatio(ratio: sampleRatio) ?? .parentBasedAlwaysOn
        configuration.traces.batchSpanProcessor.scheduleDelay = .seconds(1)
        configuration.diagnosticLogLevel = .error
        let backend = try OTel.makeTracingBackend(configuration: configuration)
        InstrumentationSystem.bootstrap(backend.factory)
        logger.info("tracing on", metadata: ["otlp_endpoint": "\(endpoint)", "service": "\(serviceName)"])
        return backend.service
    }
}
