/// The application resources tasks use — a database pool, an HTTP client, settings — declared once
/// by type, next to the tasks.
///
/// A declaration is a recipe: nothing is created until a job first asks for it (so the API, the
/// scheduler and `--check-config` never open your database). Each process then creates each
/// resource at most once, shares it between all its jobs, and shuts it down when its worker stops,
/// in the reverse order of creation.
///
/// ```swift
/// static func tasks(_ tasks: inout TaskRegistry, _ dependencies: inout Dependencies) throws {
///     try tasks.register(SendInvoice.self)
///     dependencies.register(HTTPClient.self) {
///         HTTPClient(eventLoopGroupProvider: .singleton)
///     } shutdown: { client in
///         try await client.shutdown()
///     }
///     // A protocol type as the key lets tests swap in a double:
///     dependencies.register((any Mailer).self) { SMTPMailer() }
/// }
///
/// // In the task:
/// let mailer = try await context.dependency((any Mailer).self)
/// ```
public struct Dependencies: Sendable {
    /// How one resource is made and closed, with its type erased.
    struct Recipe: Sendable {
        let name: String
        let make: @Sendable () async throws -> any Sendable
        let shutdown: (@Sendable (any Sendable) async throws -> Void)?
    }

    private(set) var recipes: [ObjectIdentifier: Recipe] = [:]

    /// Declares no resources.
    public init() {}

    /// Declares the resource of type `type`, made by `make` the first time a job of this process
    /// asks for it, and closed by `shutdown` (if given) when the process's worker stops. Declaring a
    /// type again replaces the earlier declaration: this is how a test swaps in a double.
    public mutating func register<Value: Sendable>(
        _ type: Value.Type, make: @escaping @Sendable () async throws -> Value,
        shutdown: (@Sendable (Value) async throws -> Void)? = nil
    ) {
        var close: (@Sendable (any Sendable) async throws -> Void)?
        if let shutdown {
            close = { @Sendable value in try await shutdown(value as! Value) }
        }
        recipes[ObjectIdentifier(type)] = Recipe(name: "\(type)", make: { try await make() }, shutdown: close)
    }

    /// Declares a ready value of type `type` (settings, a constant, a test double); nothing to close.
    public mutating func register<Value: Sendable>(_ type: Value.Type, value: Value) {
        register(type, make: { value })
    }

    /// Whether a resource of type `type` is declared.
    public func declares<Value>(_ type: Value.Type) -> Bool { recipes[ObjectIdentifier(type)] != nil }

    /// The declared types' names, sorted.
    public var names: [String] { recipes.values.map(\.name).sorted() }
}

/// Why a job could not get a resource.
public enum DependencyError: Error, Sendable, Hashable, CustomStringConvertible {
    /// No resource of this type was declared in the application's `Dependencies`.
    case notDeclared(String)
    /// The process is stopping: its resources are closed or being closed.
    case closed(String)

    public var description: String {
        switch self {
        case .notDeclared(let name):
            "no dependency of type \(name) is declared: register it in the application's Dependencies"
        case .closed(let name): "dependency \(name) is not available: the worker is stopping"
        }
    }
}
