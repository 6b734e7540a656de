import Hummingbird
import Logging
import NIOCore
import TernCore

/// Builds the HTTP API application on `api`, listening on the configured host and port, with the
/// configured connection limits.
public func buildApplication(_ api: APIContext, logger: Logger) -> some ApplicationProtocol {
    let limits = api.configuration
    var configuration = ApplicationConfiguration(
        address: .hostname(limits.host, port: limits.port), serverName: "tern", backlog: 256)
    configuration.availableConnectionsDelegate = .maximum(limits.maxConnections, logger: logger)
    return Application(
        router: buildRouter(api),
        server: .http1OnEventLoops(configuration: .init(
            idleTimeout: .nanoseconds(limits.idleTimeout.nanoseconds),
            httpDecoderConfiguration: .init(
                maxHeaderFieldSize: limits.maxHeaderBytes, maxHeaderListSize: limits.maxHeaderBytes,
                maxHeaderFieldCount: limits.maxHeaderCount))),
        configuration: configuration,
        logger: logger)
}
