import Foundation
import TernCore

/// What a token may do. Each role includes reading.
public enum Role: String, Sendable, CaseIterable, Codable {
    /// Read jobs, queues, workers, tasks and metrics.
    case reader
    /// Read, and enqueue jobs (optionally only of listed tasks and queues).
    case producer
    /// Read, and cancel, retry, pause and resume.
    case `operator`
    /// Everything.
    case admin

    /// Whether the role allows `permission`.
    public func allows(_ permission: Permission) -> Bool {
        switch (self, permission) {
        case (.admin, _), (_, .read), (.producer, .enqueue), (.operator, .operate): true
        default: false
        }
    }
}

/// The classes of endpoints, by what they change.
public enum Permission: String, Sendable, CaseIterable {
    /// `GET` endpoints under `/v1`, and `/metrics`.
    case read
    /// `POST /v1/jobs` and `POST /v1/jobs/batch`.
    case enqueue
    /// Cancel, retry, pause and resume.
    case operate

    /// The lowest role that has this permission, for error messages.
    var minimumRoles: String {
        switch self {
        case .read: "any role"
        case .enqueue: "producer or admin"
        case .operate: "operator or admin"
        }
    }
}

/// One configured token: who it is, its role, and for producers, what it may enqueue.
public struct TokenGrant: Sendable, Hashable {
    /// A name for logs and errors (never the token).
    public var name: String
    /// The token's role.
    public var role: Role
    /// For producers: the only tasks it may enqueue (`nil`: any).
    public var tasks: Set<String>?
    /// For producers: the only queues it may enqueue to (`nil`: any).
    public var queues: Set<QueueName>?

    public init(name: String, role: Role, tasks: Set<String>? = nil, queues: Set<QueueName>? = nil) {
        self.name = name
        self.role = role
        self.tasks = tasks
        self.queues = queues
    }

    /// Whether this grant may enqueue a job of `task` to `queue`.
    public func mayEnqueue(task: String, queue: QueueName) -> Bool {
        role.allows(.enqueue) && (tasks?.contains(task) ?? true) && (queues?.contains(queue) ?? true)
    }
}

/// Who may call the API: nobody without a token, or everybody (`auth: none`, for development).
public struct AccessPolicy: Sendable {
    /// A token known by the SHA-256 digest of its text.
    public struct Token: Sendable {
        public var sha256: [UInt8]
        public var grant: TokenGrant

        /// - Parameter sha256Hex: the digest as 64 hexadecimal digits (`tern token create` prints it).
        public init?(sha256Hex: String, grant: TokenGrant) {
            guard let digest = Self.bytes(hex: sha256Hex), digest.count == 32 else { return nil }
            self.sha256 = digest
            self.grant = grant
        }

        /// A token given by its text (tests and `tern dev`, which make one at start-up).
        public init(secret: String, grant: TokenGrant) {
            self.sha256 = SHA256.digest(Array(secret.utf8))
            self.grant = grant
        }

        private static func bytes(hex: String) -> [UInt8]? {
            let digits = Array(hex.lowercased().utf8)
            guard digits.count % 2 == 0 else { return nil }
            var bytes: [UInt8] = []
            for index in stride(from: 0, to: digits.count, by: 2) {
                guard let high = nibble(digits[index]), let low = nibble(digits[index + 1]) else { return nil }
                bytes.append(high << 4 | low)
            }
            return bytes
        }

        private static func nibble(_ digit: UInt8) -> UInt8? {
            switch digit {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
            default: nil
            }
        }
    }

    /// `nil` when authentication is off.
    let tokens: [Token]?
    /// Verifies JWT bearer tokens, when they are configured.
    let jwt: JWTAuthenticator?

    /// Every request must carry one of `tokens`, or a JWT that `jwt` accepts.
    public static func tokens(_ tokens: [Token], jwt: JWTAuthenticator? = nil) -> AccessPolicy {
        AccessPolicy(tokens: tokens, jwt: jwt)
    }
    /// No authentication: every caller is an admin. For local development only.
    public static let none = AccessPolicy(tokens: nil, jwt: nil)

    /// What a bearer credential proves.
    struct Authentication: Sendable {
        var grant: TokenGrant?
        /// Why a JWT was refused.
        var jwtFailure: JWTFailure?
        /// The end of a JWT's validity (its `exp`).
        var expires: Date?
    }

    /// The grant of a bearer credential: a JWT when JWTs are configured and it has a JWT's shape,
    /// else a static token.
    func authenticate(_ credential: Substring) async -> Authentication {
        if let jwt, JWTAuthenticator.looksLikeJWT(credential) {
            switch await jwt.verify(credential) {
            case .success(let identity): return Authentication(grant: identity.grant, expires: identity.expires)
            case .failure(let failure): return Authentication(jwtFailure: failure)
            }
        }
        return Authentication(grant: grant(forSecret: credential))
    }

    /// Whether requests need a token.
    public var requiresToken: Bool { tokens != nil }

    /// How many static tokens are configured.
    public var tokenCount: Int { tokens?.count ?? 0 }

    /// Whether JWT bearer tokens are accepted.
    public var acceptsJWTs: Bool { jwt != nil }

    /// The grant of the configured token named `name` (a dashboard session names its token).
    func grant(named name: String) -> TokenGrant? {
        guard let tokens else { return TokenGrant(name: "anonymous", role: .admin) }
        return tokens.first { $0.grant.name == name }?.grant
    }

    /// The grant of the token `secret`, comparing its digest with every configured digest in
    /// constant time (the work does not depend on which, if any, matches).
    func grant(forSecret secret: Substring) -> TokenGrant? {
        guard let tokens else { return TokenGrant(name: "anonymous", role: .admin) }
        let digest = SHA256.digest(Array(secret.utf8))
        var found: TokenGrant?
        for token in tokens {
            var difference: UInt8 = 0
            for (a, b) in zip(token.sha256, digest) { difference |= a ^ b }
            if difference == 0 && found == nil { found = token.grant }
        }
        return found
    }
}
