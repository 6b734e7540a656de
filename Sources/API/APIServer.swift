import Hummingbird
import HummingbirdCore
import HummingbirdTLS
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
    let http: HTTPServerBuilder = .http1OnEventLoops(configuration: .init(
        idleTimeout: .nanoseconds(limits.idleTimeout.nanoseconds),
        httpDecoderConfiguration: .init(
            maxHeaderFieldSize: limits.maxHeaderBytes, maxHeaderListSize: limits.maxHeaderBytes,
            maxHeaderFieldCount: limits.maxHeaderCount)))
    // `.tls` only wraps the builder in a closure here (it cannot fail now); the certificate and
    // key were read and checked when the configuration was made (``APITLS``).
    let server = limits.tls.map { tls in try! HTTPServerBuilder.tls(http, tlsConfiguration: tls.serverConfiguration()) } ?? http
    return Application(router: buildRouter(api), server: server, configuration: configuration, logger: logger)
}
