import Logging
import Synchronization

/// The resources of one process, made from ``Dependencies`` on first use and closed together.
///
/// A worker process owns one store: every job's ``JobContext/dependency(_:)`` reads from it. A
/// resource whose creation throws is not kept: the job that asked fails with that error (and is
/// retried by its task's rules), and the next job tries again.
public final class DependencyStore: Sendable {
    private enum Slot {
        /// Being made; these callers wait for it.
        case making([Waiter])
        case ready(any Sendable)
    }

    private typealias Waiter = CheckedContinuation<(any Sendable)?, any Error>

    private struct State {
        var slots: [ObjectIdentifier: Slot] = [:]
        /// Made resources, oldest first: they are closed newest first.
        var made: [ObjectIdentifier] = []
        var closed = false
    }

    private enum Step {
        case ready(any Sendable)
        case make
        case wait
        case closed
    }

    private let dependencies: Dependencies
    private let logger: Logger
    private let state = Mutex(State())

    /// A store for `dependencies`; `logger` hears of resources made and of failures to close them.
    public init(_ dependencies: Dependencies, logger: Logger) {
        self.dependencies = dependencies
        self.logger = logger
    }

    /// A store with nothing declared.
    public static var empty: DependencyStore {
        DependencyStore(Dependencies(), logger: Logger(label: "tern.dependencies", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    /// The resource of type `type`, made now if this process has not made it yet (callers asking
    /// while it is made wait for the same one).
    /// - Throws: ``DependencyError`` if it is not declared or the store is closed; the recipe's own
    ///   error if making it failed.
    public func get<Value: Sendable>(_ type: Value.Type) async throws -> Value {
        let key = ObjectIdentifier(type)
        guard let recipe = dependencies.recipes[key] else { throw DependencyError.notDeclared("\(type)") }
        while true {
            let step: Step = state.withLock { state in
                if state.closed { return .closed }
                switch state.slots[key] {
                case .ready(let value): return .ready(value)
                case .making: return .wait
                case nil:
                    state.slots[key] = .making([])
                    return .make
                }
            }
            switch step {
            case .ready(let value): return value as! Value
            case .closed: throw DependencyError.closed(recipe.name)
            case .make: return try await make(key, recipe) as! Value
            case .wait:
                // nil: the maker failed before this caller queued; try again (this caller may make it).
                if let value = try await waitForMaker(key) { return value as! Value }
            }
        }
    }

    /// Closes the resources made, newest first; a resource that fails to close is logged. Later
    /// calls to ``get(_:)`` throw ``DependencyError/closed(_:)``.
    public func shutdown() async {
        let made: [(ObjectIdentifier, any Sendable)] = state.withLock { state in
            state.closed = true
            defer { state.made = [] }
            return state.made.reversed().compactMap { key in
                if case .ready(let value) = state.slots[key] { (key, value) } else { nil }
            }
        }
        for (key, value) in made {
            guard let recipe = dependencies.recipes[key], let close = recipe.shutdown else { continue }
            do {
                try await close(value)
                logger.debug("dependency closed", metadata: ["dependency": "\(recipe.name)"])
            } catch {
                logger.error("dependency failed to close", metadata: ["dependency": "\(recipe.name)", "error": "\(error)"])
            }
        }
    }

    private func make(_ key: ObjectIdentifier, _ recipe: Dependencies.Recipe) async throws -> any Sendable {
        let result: Result<any Sendable, any Error>
        do {
            result = .success(try await recipe.make())
        } catch {
            result = .failure(error)
        }
        let (waiters, closedMeanwhile): ([Waiter], Bool) = state.withLock { state in
            guard case .making(let waiters) = state.slots[key] else { return ([], state.closed) }
            switch result {
            case .success(let value) where !state.closed:
                state.slots[key] = .ready(value)
                state.made.append(key)
            default:
                state.slots[key] = nil
            }
            return (waiters, state.closed)
        }
        if closedMeanwhile, case .success(let value) = result {
            // Made after the store closed: close it at once rather than leak it.
            try? await recipe.shutdown?(value)
            for waiter in waiters { waiter.resume(throwing: DependencyError.closed(recipe.name)) }
            throw DependencyError.closed(recipe.name)
        }
        if case .failure(let error) = result {
            logger.warning("dependency could not be made", metadata: ["dependency": "\(recipe.name)", "error": "\(error)"])
        } else {
            logger.debug("dependency made", metadata: ["dependency": "\(recipe.name)"])
        }
        // Waiters get the resource, or on a failure `nil`: they then make it themselves, so one job's
        // error (its cancellation, say) is not every waiting job's.
        for waiter in waiters { waiter.resume(returning: try? result.get()) }
        return try result.get()
    }

    /// Waits for the resource another caller is making; `nil` if nobody is making it any more (its
    /// maker failed).
    private func waitForMaker(_ key: ObjectIdentifier) async throws -> (any Sendable)? {
        let value: (any Sendable)? = try await withCheckedThrowingContinuation { continuation in
            let now: Result<(any Sendable)?, any Error>? = state.withLock { state in
                switch state.slots[key] {
                case .making(var waiters):
                    waiters.append(continuation)
                    state.slots[key] = .making(waiters)
                    return nil
                case .ready(let value): return .success(value)
                case nil: return .success(nil)
                }
            }
            if let now { continuation.resume(with: now) }
        }
        return value
    }
}
