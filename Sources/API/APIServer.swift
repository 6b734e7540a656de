import Hummingbird
import Logging
import NIOCore

/// Builds the HTTP API application on `api`, listening on the configured host and port, with the
/// configured connection limits.
public func buildApplication(_ api: APIContext, logger: Logger) -> some ApplicationProtocol {
    let limits = api.configuration
    var configuration = ApplicationConfiguration(
        address: .hostname(limits.host, port: limits.port), serverName: "tern", backlog: 256)
    configuration.availableConnectionsDelegate = .maximum(limits.maxConnections, logger: logger)
    let idle = limits.idleTimeout.components
    return Application(
        router: buildRouter(api),
        server: .http1(configuration: .init(
            idleTimeout: .nanoseconds(idle.seconds * 1_000_000_000 + idle.attoseconds / 1_000_000_000),
            httpDecoderConfiguration: .init(
                maxHeaderFieldSize: limits.maxHeaderBytes, maxHeaderListSize: limits.maxHeaderBytes,
                maxHeaderFieldCount: limits.maxHeaderCount))),
        configuration: configuration,
        logger: logger)
}
