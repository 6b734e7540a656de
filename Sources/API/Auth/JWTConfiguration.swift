import Foundation

/// How the API verifies JWT bearer tokens (`api.jwt`; docs/http-api.md#jwt-bearer-tokens): HS256
/// with a shared secret, RS256 and ES256 with the keys of a JWKS document (a file or a URL), or both.
public struct JWTConfiguration: Sendable {
    /// The HS256 secret (at least 32 bytes); `nil` refuses HS256 tokens.
    public var secret: String?
    /// A JWKS file with the RS256 and ES256 public keys, read again when it changes.
    public var jwksFile: String?
    /// A JWKS URL (`https://…/.well-known/jwks.json`), fetched at start and every ``jwksRefresh``.
    public var jwksURL: String?
    /// How often the JWKS is read again (default 5 minutes); a token naming an unknown key reads it
    /// at once, at most every ``minimumRefresh``.
    public var jwksRefresh: Duration = .seconds(300)
    /// The `iss` a token must have; `nil` checks none.
    public var issuer: String?
    /// The value `aud` must hold; `nil` checks none.
    public var audience: String?
    /// The clock skew allowed on `exp` and `nbf` (default 60 s).
    public var leeway: Duration = .seconds(60)
    /// The claim holding the role: `reader`, `producer`, `operator` or `admin` (default `role`). A
    /// list takes its highest known role.
    public var roleClaim = "role"
    /// The claim listing the tasks a producer may enqueue (default `tern_tasks`; absent: any).
    public var tasksClaim = "tern_tasks"
    /// The claim listing the queues a producer may enqueue to (default `tern_queues`; absent: any).
    public var queuesClaim = "tern_queues"

    /// The shortest time between two reads of the JWKS caused by unknown keys.
    public static let minimumRefresh = Duration.seconds(30)

    /// An empty configuration: give it a secret, a JWKS file or a URL.
    public init() {}

    /// Whether the configuration can verify any token.
    public var isEnabled: Bool { secret != nil || jwksFile != nil || jwksURL != nil }
}

/// Why a JWT was refused: the `error_description` of its 401, and the reason counted by
/// `tern_auth_failures_total` (`jwt_` and ``rawValue``).
public enum JWTFailure: Error, Sendable, Hashable {
    case malformed
    case algorithm(String)
    case unknownKey
    case badSignature
    case expired
    case notYetValid
    case wrongIssuer
    case wrongAudience
    case claims(String)

    /// The label of `tern_auth_failures_total`.
    public var reason: String {
        switch self {
        case .malformed: "jwt_malformed"
        case .algorithm: "jwt_algorithm"
        case .unknownKey: "jwt_unknown_key"
        case .badSignature: "jwt_bad_signature"
        case .expired: "jwt_expired"
        case .notYetValid: "jwt_not_yet_valid"
        case .wrongIssuer: "jwt_wrong_issuer"
        case .wrongAudience: "jwt_wrong_audience"
        case .claims: "jwt_claims"
        }
    }

    /// What the 401 says, without any secret or key.
    public var description: String {
        switch self {
        case .malformed: "the token is malformed"
        case .algorithm(let alg): "the token's algorithm '\(alg.prefix(20))' is not accepted"
        case .unknownKey: "the token's key (kid) is not known"
        case .badSignature: "the token's signature does not verify"
        case .expired: "the token has expired"
        case .notYetValid: "the token is not valid yet"
        case .wrongIssuer: "the token's issuer is not trusted"
        case .wrongAudience: "the token is not meant for this API (aud)"
        case .claims(let problem): problem
        }
    }
}
