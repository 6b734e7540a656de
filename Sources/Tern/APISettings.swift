import API
import ArgumentParser
import Foundation
import Logging
import TernCore

/// Turns the `api:` section of the config file and the environment into the API's configuration
/// and access policy.
enum APISettings {
    /// The API's configuration: `--host`/`TERN_API_HOST`/`api.host`, `--port`/`TERN_API_PORT`/
    /// `api.port`, `--max-body-bytes`/`api.max_body_bytes`, and the file's other `api.` limits,
    /// each over the default of ``APIConfiguration`` and checked against its range.
    static func configuration(
        _ settings: SettingsResolver, host: String? = nil, port: Int? = nil, maxBodyBytes: Int? = nil
    ) throws -> APIConfiguration {
        var configuration = APIConfiguration()
        let file = settings.file.api
        func names(_ key: String, flag: String? = nil, _ variable: String? = nil) -> SettingNames {
            SettingNames(flag: flag, environment: variable, file: "api." + key)
        }
        configuration.host = try settings.value(
            names("host", flag: "--host", "TERN_API_HOST"), flag: host, file: file?.host, default: configuration.host)
        guard !configuration.host.isEmpty else { throw ValidationError("api.host must not be empty") }
        configuration.port = try settings.value(
            names("port", flag: "--port", "TERN_API_PORT"), flag: port, file: file?.port, default: configuration.port, in: 1...65_535)
        configuration.maxBodyBytes = try settings.value(
            names("max_body_bytes", flag: "--max-body-bytes"), flag: maxBodyBytes, file: file?.maxBodyBytes,
            default: configuration.maxBodyBytes, in: 1_024...(64 << 20))
        configuration.maxJSONDepth = try settings.value(
            names("max_json_depth"), flag: nil, file: file?.maxJSONDepth, default: configuration.maxJSONDepth, in: 2...512)
        configuration.maxWaitSeconds = try settings.value(
            names("max_wait_seconds"), flag: nil, file: file?.maxWaitSeconds, default: configuration.maxWaitSeconds, in: 0...300)
        configuration.maxWaiters = try settings.value(
            names("max_waiters"), flag: nil, file: file?.maxWaiters, default: configuration.maxWaiters, in: 0...1_000_000)
        configuration.idleTimeout = try settings.seconds(
            names("idle_timeout_seconds"), flag: nil, file: file?.idleTimeoutSeconds, default: configuration.idleTimeout, in: 1...3_600)
        configuration.bodyTimeout = try settings.seconds(
            names("body_timeout_seconds"), flag: nil, file: file?.bodyTimeoutSeconds, default: configuration.bodyTimeout, in: 1...3_600)
        configuration.maxHeaderBytes = try settings.value(
            names("max_header_bytes"), flag: nil, file: file?.maxHeaderBytes, default: configuration.maxHeaderBytes,
            in: 1_024...(1 << 20))
        configuration.maxConnections = try settings.value(
            names("max_connections"), flag: nil, file: file?.maxConnections, default: configuration.maxConnections,
            in: 1...1_000_000)
        if let text: String = try settings.optional(names("dashboard", "TERN_API_DASHBOARD"), flag: nil, file: nil) {
            switch text.lowercased() {
            case "1", "true", "yes": configuration.dashboard = true
            case "0", "false", "no": configuration.dashboard = false
            default: throw ValidationError("TERN_API_DASHBOARD must be true or false, not '\(text)'")
            }
        } else {
            configuration.dashboard = file?.dashboard ?? configuration.dashboard
        }
        configuration.secureCookie = try settings.enabled(
            names("secure_cookie", "TERN_API_SECURE_COOKIE"), flag: false, file: file?.secureCookie)
        let certificate: String? = try settings.optional(
            names("tls.cert_file", "TERN_API_TLS_CERT_FILE"), flag: nil, file: file?.tls?.certFile)
        let key: String? = try settings.optional(names("tls.key_file", "TERN_API_TLS_KEY_FILE"), flag: nil, file: file?.tls?.keyFile)
        switch (certificate, key) {
        case (let certificate?, let key?):
            do {
                configuration.tls = try APITLS(certificateFile: certificate, keyFile: key)
            } catch {
                throw ValidationError("\(error)")
            }
        case (nil, nil): break
        default: throw ValidationError("api.tls.cert_file and api.tls.key_file go together: give both, or neither")
        }
        configuration.tlsRequired = try settings.enabled(
            names("tls.required", "TERN_API_TLS_REQUIRED"), flag: false, file: file?.tls?.required)
        let hours = try settings.value(
            names("session_hours"), flag: nil, file: file?.sessionHours,
            default: Double(configuration.sessionLifetime.components.seconds) / 3600, in: 0.01...720)
        configuration.sessionLifetime = .seconds(Int64((hours * 3600).rounded()))
        if let secret: String = try settings.optional(
            names("session_secret", "TERN_API_SESSION_SECRET"), flag: nil, file: file?.sessionSecret)
        {
            guard secret.utf8.count >= 32 else {
                throw ValidationError("api.session_secret (or TERN_API_SESSION_SECRET) must have at least 32 characters")
            }
            configuration.sessionSecret = Array(secret.utf8)
        }
        return configuration
    }

    /// The access policy: `TERN_API_AUTH` (or `api.auth`) `none` turns authentication off; else
    /// the tokens of `api.tokens` and the JWTs of `api.jwt`, at least one of the two. `devToken`
    /// adds an admin token (what `tern dev` prints). A `reload` (SIGHUP) does not warn again that
    /// authentication is off.
    static func access(
        _ settings: SettingsResolver, devToken: String? = nil, reload: Bool = false, logger: Logger
    ) async throws -> AccessPolicy {
        let file = settings.file.api
        let mode = try settings.value(
            SettingNames(environment: "TERN_API_AUTH", file: "api.auth"), flag: nil, file: file?.auth, default: "tokens")
        switch mode {
        case "none":
            if !reload { logger.warning("API authentication is off (auth: none): anyone who can reach the port is an admin") }
            return .none
        case "tokens":
            var tokens = try (file?.tokens ?? []).map(token)
            if let devToken { tokens.append(.init(secret: devToken, grant: TokenGrant(name: "tern-dev (generated)", role: .admin))) }
            let jwtConfiguration = try jwt(settings)
            var jwt: JWTAuthenticator?
            if jwtConfiguration.isEnabled {
                do {
                    jwt = try await JWTAuthenticator(configuration: jwtConfiguration, logger: logger)
                } catch {
                    throw ValidationError("api.jwt: \(error)")
                }
            }
            guard !tokens.isEmpty || jwt != nil else {
                throw ValidationError("""
                    no API tokens are configured. Create one with `tern token create --name NAME --role admin` and \
                    add what it prints under api.tokens in config/tern.yaml, or set api.auth: none (or TERN_API_AUTH=none) \
                    for local development only.
                    """)
            }
            guard Set(tokens.map(\.grant.name)).count == tokens.count else { throw ValidationError("api.tokens: two tokens share a name") }
            guard Set(tokens.map(\.sha256)).count == tokens.count else { throw ValidationError("api.tokens: two tokens share a sha256") }
            return .tokens(tokens, jwt: jwt)
        default:
            throw ValidationError("api.auth (or TERN_API_AUTH) must be tokens or none, not '\(mode)'")
        }
    }

    /// `api.jwt` and its `TERN_API_JWT_*` variables, each checked.
    static func jwt(_ settings: SettingsResolver) throws -> JWTConfiguration {
        let file = settings.file.api?.jwt
        func names(_ key: String, _ variable: String? = nil) -> SettingNames {
            SettingNames(environment: variable, file: "api.jwt." + key)
        }
        var configuration = JWTConfiguration()
        configuration.secret = try settings.optional(names("secret", "TERN_API_JWT_SECRET"), flag: nil, file: file?.secret)
        if let secret = configuration.secret, secret.utf8.count < 32 {
            throw ValidationError("api.jwt.secret (or TERN_API_JWT_SECRET) must have at least 32 bytes")
        }
        configuration.jwksFile = try settings.optional(names("jwks_file", "TERN_API_JWT_JWKS_FILE"), flag: nil, file: file?.jwksFile)
        configuration.jwksURL = try settings.optional(names("jwks_url", "TERN_API_JWT_JWKS_URL"), flag: nil, file: file?.jwksURL)
        if let url = configuration.jwksURL, !(url.hasPrefix("https://") || url.hasPrefix("http://")) {
            throw ValidationError("api.jwt.jwks_url must be an http:// or https:// URL, not '\(url)'")
        }
        configuration.issuer = try settings.optional(names("issuer", "TERN_API_JWT_ISSUER"), flag: nil, file: file?.issuer)
        configuration.audience = try settings.optional(names("audience", "TERN_API_JWT_AUDIENCE"), flag: nil, file: file?.audience)
        configuration.jwksRefresh = try settings.seconds(
            names("jwks_refresh_seconds"), flag: nil, file: file?.jwksRefreshSeconds, default: configuration.jwksRefresh, in: 30...86_400)
        configuration.leeway = try settings.seconds(
            names("leeway_seconds"), flag: nil, file: file?.leewaySeconds, default: configuration.leeway, in: 0...600)
        for (key, value, keyPath) in [
            ("role_claim", file?.roleClaim, \JWTConfiguration.roleClaim), ("tasks_claim", file?.tasksClaim, \.tasksClaim),
            ("queues_claim", file?.queuesClaim, \.queuesClaim),
        ] {
            guard let value else { continue }
            guard !value.isEmpty, value.utf8.count <= 128 else { throw ValidationError("api.jwt.\(key) must be 1 to 128 bytes") }
            configuration[keyPath: keyPath] = value
        }
        return configuration
    }

    private static func token(_ entry: ConfigFile.API.Token) throws -> AccessPolicy.Token {
        guard let role = Role(rawValue: entry.role) else {
            throw ValidationError("api.tokens '\(entry.name)': role must be one of \(Role.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let queues = try entry.queues.map { names in
            try Set(names.map { name in
                guard let queue = QueueName(name) else { throw ValidationError("api.tokens '\(entry.name)': invalid queue name '\(name)'") }
                return queue
            })
        }
        if (entry.tasks != nil || entry.queues != nil) && role != .producer {
            throw ValidationError("api.tokens '\(entry.name)': tasks and queues limit producers only")
        }
        let grant = TokenGrant(name: entry.name, role: role, tasks: entry.tasks.map(Set.init), queues: queues)
        guard let token = AccessPolicy.Token(sha256Hex: entry.sha256, grant: grant) else {
            throw ValidationError("api.tokens '\(entry.name)': sha256 must be 64 hexadecimal digits (tern token create prints it)")
        }
        return token
    }

    /// A new random token: `tern_` and 64 hexadecimal digits (256 bits from the system's secure generator).
    static func newToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return "tern_" + (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }

    /// The SHA-256 of `token` as 64 hexadecimal digits, as `api.tokens` stores it.
    static func digestHex(_ token: String) -> String {
        SHA256.hex(token)
    }
}

/// `tern token create`: makes a token and prints the config entry that grants it.
struct TokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Create API tokens.",
        subcommands: [Create.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an API token and print the api.tokens entry for config/tern.yaml.",
            discussion: """
                The token is printed once; the config file keeps only its SHA-256, so a leaked config \
                does not leak tokens. Roles: reader (read), producer (read and enqueue, optionally only \
                the listed tasks and queues), operator (read, cancel, retry, pause, resume), admin (all).

                Example:
                  tern token create --name deploy-bot --role producer --task resize --queue images
                """)

        @Option(help: "A name for logs and errors.") var name: String
        @Option(help: "reader, producer, operator or admin.") var role: String
        @Option(name: .customLong("task"), help: "For producers: a task it may enqueue (repeat for more). Default: any.")
        var tasks: [String] = []
        @Option(name: .customLong("queue"), help: "For producers: a queue it may enqueue to (repeat for more). Default: any.")
        var queues: [String] = []

        func validate() throws {
            guard Role(rawValue: role) != nil else { throw ValidationError("--role must be reader, producer, operator or admin") }
            guard !name.isEmpty, name.count <= 64 else { throw ValidationError("--name must be 1-64 characters") }
            if !(tasks.isEmpty && queues.isEmpty) && role != "producer" { throw ValidationError("--task and --queue limit producers only") }
            for queue in queues where QueueName(queue) == nil { throw ValidationError("invalid queue name '\(queue)'") }
        }

        func run() throws {
            let token = APISettings.newToken()
            print("Token (shown once; give it to the client as 'Authorization: Bearer <token>'):\n  \(token)\n")
            print("Add to config/tern.yaml under api.tokens:")
            print("    - name: \(quoted(name))\n      role: \(role)\n      sha256: \(APISettings.digestHex(token))")
            if !tasks.isEmpty { print("      tasks: [\(tasks.map(quoted).joined(separator: ", "))]") }
            if !queues.isEmpty { print("      queues: [\(queues.joined(separator: ", "))]") }
        }

        /// `text` as a double-quoted YAML scalar (JSON string syntax, which YAML accepts).
        private func quoted(_ text: String) -> String {
            let data = try? JSONEncoder().encode(text)
            return data.map { String(decoding: $0, as: UTF8.self) } ?? "\"\""
        }
    }
}
