import Broker
import Foundation

/// Finds the `redis-server` executable.
public enum RedisServerExecutable {
    /// The first `redis-server` on `searchPath` (a `PATH`), else in the standard folders; `nil` if
    /// there is none.
    public static func find(searchPath: String? = ProcessInfo.processInfo.environment["PATH"]) -> String? {
        let standard = ["/usr/local/bin", "/usr/bin", "/usr/sbin", "/bin"]
        let folders = (searchPath ?? "").split(separator: ":").map(String.init) + standard
        return folders.map { "\($0)/redis-server" }.first { access($0, X_OK) == 0 }
    }
}

/// The redis-server that `tern dev` starts for itself when its Redis is a loopback address that
/// nothing listens on: append-only file on (`everysec`), no eviction, bound to 127.0.0.1, with its
/// data, log and pid file in `.data/redis-<port>/` of the working directory (a folder per port, so
/// two servers never share one). It runs as a daemon (out of the terminal's process group, so a
/// Ctrl-C is `tern dev`'s alone) and is stopped when `tern dev` exits; its data stays for the next
/// run. One left running by a `tern dev` that was killed is found by its pid file, used, and
/// stopped at this run's exit.
struct DevRedisServer {
    /// The daemon's pid, from its pid file.
    let pid: pid_t
    let port: Int
    let directory: String

    /// Why `tern dev` could not start one.
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// What ``prepare(_:in:)`` did.
    enum Preparation {
        /// Nothing: the Redis is not one `tern dev` starts, or something else answers there.
        case none
        /// Started a server.
        case started(DevRedisServer)
        /// Found the server an earlier `tern dev` started and left running.
        case adopted(DevRedisServer)
    }

    /// Starts (or finds) the server for `configuration` when it names a plain loopback Redis with no
    /// credentials: `folder` is `.data` of the working directory.
    static func prepare(_ configuration: RedisConfiguration, in folder: String) async throws -> Preparation {
        guard let port = loopbackPort(configuration) else { return .none }
        let directory = folder + "/redis-\(port)"
        let owner = (try? String(contentsOfFile: directory + "/redis.pid", encoding: .utf8))
            .flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            .flatMap { running($0) && command(of: $0) == "redis-server" ? $0 : nil }
        if listening(port) {
            return owner.map { .adopted(DevRedisServer(pid: $0, port: port, directory: directory)) } ?? .none
        }
        if let owner {
            throw Failure(description: "a redis-server (pid \(owner)) uses \(directory) but does not accept connections on 127.0.0.1:\(port); stop it, or see \(directory)/redis.log")
        }
        return .started(try await start(port: port, directory: directory))
    }

    /// The loopback port of `configuration`, when it names a plain TCP Redis on this machine (no
    /// TLS, Sentinel, Cluster, user or password): the only kind `tern dev` starts.
    static func loopbackPort(_ configuration: RedisConfiguration) -> Int? {
        guard configuration.tls == nil, configuration.sentinel == nil, configuration.cluster == nil,
            configuration.username == nil, configuration.password == nil,
            case .tcp(let host, let port) = configuration.endpoint, ["127.0.0.1", "localhost"].contains(host)
        else { return nil }
        return port
    }

    /// Whether something accepts TCP connections on 127.0.0.1:`port`.
    static func listening(_ port: Int) -> Bool {
        let socket = Foundation.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { return false }
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    /// Starts redis-server on 127.0.0.1:`port` with its data in `directory`, and waits (up to
    /// 10 s) until it accepts connections.
    private static func start(port: Int, directory: String) async throws -> DevRedisServer {
        guard let executable = RedisServerExecutable.find() else {
            throw Failure(description: "nothing answers on 127.0.0.1:\(port) and there is no redis-server to start: install it (apt-get install redis-server), or pass --redis-url")
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let pidFile = directory + "/redis.pid"
        try? FileManager.default.removeItem(atPath: pidFile)
        // Not Foundation's Process: it watches its child through a descriptor that the daemon
        // would inherit and hold, so it would wait for the daemon's end.
        let starter = try ChildProcess.spawn([
            executable, "--port", "\(port)", "--bind", "127.0.0.1", "--dir", directory, "--daemonize", "yes", "--pidfile", pidFile,
            "--logfile", directory + "/redis.log", "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            "--maxmemory-policy", "noeviction",
        ])
        // The starter exits as soon as the daemon is forked.
        var status: Int32 = 0
        while waitpid(starter, &status, 0) == -1 && errno == EINTR {}
        if status & 0x7f != 0 {
            throw Failure(description: "redis-server was killed by signal \(status & 0x7f) while it started")
        }
        if (status >> 8) & 0xff != 0 {
            throw Failure(description: "redis-server exited with status \((status >> 8) & 0xff): check its arguments and \(directory)")
        }
        let deadline = ContinuousClock.now + .seconds(10)
        var pid: pid_t?
        while ContinuousClock.now < deadline {
            pid = pid ?? (try? String(contentsOfFile: pidFile, encoding: .utf8)).flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            if let pid, listening(port) { return DevRedisServer(pid: pid, port: port, directory: directory) }
            try await Task.sleep(for: .milliseconds(100))
        }
        // Not ready in time: not left running either.
        if let pid { DevRedisServer(pid: pid, port: port, directory: directory).stop() }
        throw Failure(description: "redis-server did not accept connections on 127.0.0.1:\(port) within 10 s; see \(directory)/redis.log")
    }

    /// Stops the server: SIGTERM (it writes its append-only file and exits), then SIGKILL if it
    /// still runs after 10 s (it refuses to exit when it cannot write its file).
    func stop() {
        guard kill(pid, SIGTERM) == 0 else { return }
        for _ in 0..<100 where Self.running(pid) { usleep(100_000) }
        if Self.running(pid) { kill(pid, SIGKILL) }
    }

    /// Whether process `pid` runs: it exists and is not a zombie (a daemon's parent is whichever
    /// process adopts orphans, which in a container may never reap it).
    static func running(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let end = stat.lastIndex(of: ")"),
            let state = stat[end...].dropFirst(2).first
        else { return true }
        return state != "Z"
    }

    /// The command name of process `pid` (`/proc/<pid>/comm`), if it can be read.
    static func command(of pid: pid_t) -> String? {
        (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
