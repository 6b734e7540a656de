import Synchronization

/// The API's access policy, which can be replaced while the API serves: `tern api` reads its
/// configuration file again on SIGHUP and puts the new tokens and JWT settings in force here. Each
/// request reads the policy once, as it is authenticated, so a request in flight keeps the grant it
/// was checked with.
public final class AccessControl: Sendable {
    private let policy: Mutex<AccessPolicy>

    public init(_ policy: AccessPolicy) { self.policy = Mutex(policy) }

    /// The policy in force.
    public var current: AccessPolicy { policy.withLock { $0 } }

    /// Puts `new` in force for the requests that follow.
    /// - Throws: ``AccessControlError/authenticationModeChanged`` when `new` would turn
    ///   authentication on or off: the OpenAPI document and the dashboard were built for one mode,
    ///   so that takes a restart.
    public func replace(with new: AccessPolicy) throws(AccessControlError) {
        try policy.withLock { policy throws(AccessControlError) in
            guard policy.requiresToken == new.requiresToken else { throw .authenticationModeChanged }
            policy = new
        }
    }
}

/// Why ``AccessControl/replace(with:)`` refused a policy.
public enum AccessControlError: Error, CustomStringConvertible, Equatable {
    /// The new policy turns authentication on or off (`api.auth`).
    case authenticationModeChanged

    public var description: String {
        switch self {
        case .authenticationModeChanged: "api.auth cannot change between tokens and none without a restart"
        }
    }
}
