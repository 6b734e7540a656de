import API
import Broker
import Hummingbird
import HummingbirdTesting
import Tasks
import TernCore

/// Runs `test` against the API over a fresh memory broker with the sample tasks and no
/// authentication; `configure` may change the context first (middleware, configuration).
func withSampleAPI(
    configure: (inout APIContext) -> Void = { _ in },
    _ test: @escaping @Sendable (any TestClientProtocol, MemoryJobBroker) async throws -> Void
) async throws {
    let broker = MemoryJobBroker()
    var registry = TaskRegistry()
    try SampleTasks.register(in: &registry, includingTestTasks: false)
    var api = APIContext(broker: broker, registry: registry, configuration: APIConfiguration(), access: .none, checkReady: {})
    configure(&api)
    try await Application(router: buildRouter(api)).test(.router) { client in try await test(client, broker) }
}
