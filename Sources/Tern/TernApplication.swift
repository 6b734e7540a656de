import Broker
import TernCore

/// Your application: its tasks and the resources they use. Conforming to this protocol is all a
/// package needs to run every part of Tern for its own tasks.
///
/// ```swift
/// import Tern
///
/// @main struct Shop: TernApplication {
///     static func tasks(_ tasks: inout TaskRegistry, _ dependencies: inout Dependencies) throws {
///         try tasks.register(ResizeImage.self)
///         try tasks.register(SendInvoice.self)
///         dependencies.register((any Mailer).self) { SMTPMailer() }
///     }
/// }
/// ```
///
/// `swift run shop worker --processes 4`, `swift run shop api`, `swift run shop scheduler`,
/// `swift run shop dev`, `swift run shop redis-check`, `swift run shop token create …` and every
/// client subcommand then work as `tern`'s do, with your tasks: the API validates input against
/// your Swift types and documents them, the scheduler fires your tasks, the supervisor's processes
/// (this same binary) run them.
public protocol TernApplication: Sendable {
    /// Registers the application's tasks in `tasks` and declares the resources they use in
    /// `dependencies`. Called once per process at start-up, by every subcommand that needs tasks;
    /// resources are only made when a job first asks for one (see ``Dependencies``).
    static func tasks(_ tasks: inout TaskRegistry, _ dependencies: inout Dependencies) throws

    /// Adds the application's enqueue and execution middleware and its lifecycle observers (see
    /// ``Middleware``); by default, none. Called once per process at start-up: the API and every
    /// ``TernClient`` the runtime makes run the enqueue middleware, workers the rest.
    static func middleware(_ middleware: inout Middleware)

    /// Enqueues and prints a few example jobs when `dev` starts (skipped with `--no-demo`); by
    /// default, none.
    static func demo(_ client: TernClient) async throws
}

extension TernApplication {
    public static func demo(_ client: TernClient) async throws {}
    public static func middleware(_ middleware: inout Middleware) {}

    /// Runs the subcommand the process's arguments name: the entry point of `@main`.
    public static func main() async {
        await ApplicationTasks.$current.withValue(Self.self) {
            await TernCommand.runFromCommandLine()
        }
    }

    /// Runs subcommand `name` with all the process's arguments after it: the entry point of a thin
    /// executable, such as Tern's own `worker`, `api` and `scheduler`.
    public static func main(subcommand name: String) async {
        await ApplicationTasks.$current.withValue(Self.self) {
            await TernCommand.runSubcommand(name)
        }
    }
}

extension Dependencies {
    /// These declarations plus, unless the application declares its own, a ``TernClient`` on
    /// `broker`: how a job enqueues follow-up jobs (`context.dependency(TernClient.self)`).
    func addingClient(_ broker: any JobBroker, middleware: Middleware) -> Dependencies {
        guard !declares(TernClient.self) else { return self }
        var dependencies = self
        dependencies.register(TernClient.self, value: TernClient(broker: broker, middleware: middleware))
        return dependencies
    }
}

/// The tasks and resources of the application whose entry point is running.
enum ApplicationTasks {
    /// The application; `nil` when ``TernCommand`` runs on its own (client subcommands only need
    /// no tasks).
    @TaskLocal static var current: (any TernApplication.Type)? = nil

    /// A registry, the declared resources and the middleware of the current application (empty
    /// without one); with `tracing`, the middleware traces jobs too (``JobTracing``).
    static func load(tracing: Bool = false) throws -> (registry: TaskRegistry, dependencies: Dependencies, middleware: Middleware) {
        var registry = TaskRegistry()
        var dependencies = Dependencies()
        var middleware = Middleware()
        try current?.tasks(&registry, &dependencies)
        current?.middleware(&middleware)
        if tracing { middleware.addTracing() }
        return (registry, dependencies, middleware)
    }

    /// Runs the current application's demo, if it has one.
    static func demo(_ client: TernClient) async throws {
        try await current?.demo(client)
    }
}
