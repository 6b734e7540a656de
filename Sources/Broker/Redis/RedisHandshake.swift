import TernCore
import CHiredis
import Foundation

/// Opens a hiredis context and prepares it for the connection loop: connect with a timeout,
/// keep-alive, `AUTH`, `SELECT`, `CLIENT SETNAME`, then non-blocking mode.
enum RedisHandshake {
    /// - Parameter attempt: the count of failed attempts so far, which picks a cluster's seed.
    static func open(
        _ configuration: RedisConfiguration, attempt: Int = 0
    ) -> Result<UnsafeMutablePointer<redisContext>, RedisError> {
        let timeout = timeval(configuration.connectTimeout)
        let opened: UnsafeMutablePointer<redisContext>?
        var configuration = configuration
        configuration.endpoint = configuration.endpoint(attempt: attempt)
        if let sentinel = configuration.sentinel {
            switch sentinel.resolve(timeout: configuration.connectTimeout) {
            case .success(let primary): configuration.endpoint = primary
            case .failure(let error): return .failure(error)
            }
        }
        switch configuration.endpoint {
        case .tcp(let host, let port):
            opened = redisConnectWithTimeout(host, Int32(port), timeout)
        case .unix(let path):
            opened = redisConnectUnixWithTimeout(path, timeout)
        }
        guard let context = opened else {
            return .failure(.connectFailed("\(configuration.endpoint): cannot allocate a context"))
        }
        if context.pointee.err != 0 {
            let text = errorText(context)
            redisFree(context)
            return .failure(.connectFailed("\(configuration.endpoint): \(text)"))
        }
        _ = redisSetTimeout(context, timeout)
        if case .tcp = configuration.endpoint { _ = redisEnableKeepAlive(context) }
        if let error = authenticate(context, configuration) {
            redisFree(context)
            return .failure(error)
        }
        tern_redis_set_nonblocking(context)
        return .success(context)
    }

    private static func authenticate(
        _ context: UnsafeMutablePointer<redisContext>, _ configuration: RedisConfiguration
    ) -> RedisError? {
        for step in steps(configuration) {
            switch command(context, step) {
            case .failure(let error): return error
            case .success(let reply): if let error = check(step, reply) { return error }
            }
        }
        return nil
    }

    /// The commands that prepare a new connection, in order: `AUTH`, `SELECT`, `CLIENT SETNAME`.
    static func steps(_ configuration: RedisConfiguration) -> [[String]] {
        var steps: [[String]] = []
        if let password = configuration.password {
            steps.append(configuration.username.map { ["AUTH", $0, password] } ?? ["AUTH", password])
        }
        if configuration.database != 0 { steps.append(["SELECT", String(configuration.database)]) }
        if let name = configuration.clientName { steps.append(["CLIENT", "SETNAME", name]) }
        // Through Sentinel, the server named as primary must say so itself (it may be mid-failover).
        if configuration.sentinel != nil { steps.append(["ROLE"]) }
        return steps
    }


    /// What the reply to a handshake step means: `nil` to go on, else the error that fails the connect.
    static func check(_ step: [String], _ reply: RedisValue) -> RedisError? {
        if step[0] == "ROLE", case .array(let parts) = reply {
            let role = parts.first?.string ?? "unknown"
            return role == "master" ? nil : .connectFailed("the server Sentinel names as primary is a \(role) (mid-failover?)")
        }
        guard case .error(let error) = reply else { return nil }
        // Only a refusal of the credentials is one: another error answered to AUTH (a full server's
        // `max number of clients reached`, a loading one) is a failed connect, retried.
        if error.code == "NOAUTH" || (step[0] == "AUTH" && refusesCredentials(error)) { return .authenticationFailed(error) }
        // A restricted ACL user may lack `client|setname` (the name is only a label) or `role`
        // (a replica is then found by its first READONLY reply instead).
        if error.code == "NOPERM" && (step[0] == "CLIENT" || step[0] == "ROLE") { return nil }
        return .connectFailed("\(step.prefix(2).joined(separator: " ")) failed: \(error.message)")
    }

    /// Whether an error answered to `AUTH` refuses the credentials: a wrong password or user, or a
    /// password sent to a server that has none.
    static func refusesCredentials(_ error: RedisServerError) -> Bool {
        // A server before Redis 6 answers a user name with `wrong number of arguments`.
        error.code == "WRONGPASS"
            || ["invalid password", "no password is set", "without any password configured", "invalid username", "wrong number of arguments"]
                .contains { error.message.contains($0) }
    }

    /// Runs one command in blocking mode with `redisCommandArgv`.
    static func command(
        _ context: UnsafeMutablePointer<redisContext>, _ arguments: [String]
    ) -> Result<RedisValue, RedisError> {
        var joined: [CChar] = []
        var offsets: [Int] = []
        var lengths: [Int] = []
        for argument in arguments {
            offsets.append(joined.count)
            lengths.append(argument.utf8.count)
            joined.append(contentsOf: argument.utf8.map { CChar(bitPattern: $0) })
        }
        joined.append(0)
        let raw = joined.withUnsafeBufferPointer { buffer in
            var pointers: [UnsafePointer<CChar>?] = offsets.map { buffer.baseAddress! + $0 }
            return redisCommandArgv(context, Int32(arguments.count), &pointers, lengths)
        }
        guard let raw else { return .failure(.connectFailed(errorText(context))) }
        defer { freeReplyObject(raw) }
        return .success(RedisReply.value(of: raw.assumingMemoryBound(to: redisReply.self)))
    }

    static func errorText(_ context: UnsafeMutablePointer<redisContext>) -> String {
        let text = withUnsafeBytes(of: context.pointee.errstr) { buffer in
            String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self)
        }
        return text.isEmpty ? "connection error \(context.pointee.err)" : text
    }
}

extension timeval {
    init(_ duration: Duration) {
        let nanos = max(duration.nanoseconds, 1_000)
        self.init(tv_sec: Int(nanos / 1_000_000_000), tv_usec: Int((nanos % 1_000_000_000) / 1_000))
    }
}
