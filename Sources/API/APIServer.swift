import Hummingbird
import Logging

/// Builds the HTTP API application on `api`, listening on the configured host and port.
public func buildApplication(_ api: APIContext, logger: Logger) -> some ApplicationProtocol {
    Application(
        router: buildRouter(api),
        configuration: .init(address: .hostname(api.configuration.host, port: api.configuration.port), serverName: "tern"),
        logger: logger)
}
