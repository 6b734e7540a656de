import Broker
import Foundation
import Synchronization
import Tern

/// A `redis-server` child process on a free loopback port (and a unix socket), for tests, benchmarks
/// and embedded use.
///
/// ```swift
/// let server = try await LocalRedisServer.start()
/// defer { server.stop() }
/// let client = RedisClient(configuration: try RedisConfiguration(url: server.url))
/// ```
public final class LocalRedisServer: Sendable {
    /// How to start the server.
    public struct Options: Sendable {
        /// Turn the append-only file on, with `appendfsync everysec` (default `true`).
        public var appendOnly: Bool = true
        /// Extra `redis-server` arguments, such as `["--requirepass", "secret"]`.
        public var extraArguments: [String] = []
        /// The data folder; a new temporary folder by default (removed by ``stop()``).
        public var directory: String?
        /// The `redis-server` binary; by default the first found in the standard system folders
        /// (see ``LocalRedisServer/findExecutable(searchPath:)``).
        public var executable: String?

        /// Creates options with the defaults.
        public init() {}
    }

    /// The TCP port on 127.0.0.1.
    public let port: Int
    /// The data folder.
    public let directory: String
    /// The unix socket path.
    public var socketPath: String { directory + "/redis.sock" }
    /// A `redis://` URL for this server.
    public var url: String { "redis://127.0.0.1:\(port)" }
    /// A `unix://` URL for this server.
    public var unixURL: String { "unix://\(socketPath)" }

    private let options: Options
    private let executable: String
    private let ownsDirectory: Bool
    private let process: Mutex<pid_t?>

    private init(options: Options, executable: String, port: Int, directory: String, ownsDirectory: Bool) {
        self.options = options
        self.executable = executable
        self.port = port
        self.directory = directory
        self.ownsDirectory = ownsDirectory
        self.process = Mutex(nil)
    }

    deinit { stop() }

    /// The first executable `redis-server` in `searchPath` (a `PATH`-style list; callers pass the
    /// environment's) and then in `/usr/local/bin`, `/usr/bin`, `/usr/sbin` and `/bin`; `nil` when
    /// there is none.
    public static func findExecutable(searchPath: String? = nil) -> String? {
        RedisServerExecutable.find(searchPath: searchPath)
    }

    /// Starts a server and waits until it answers `PING` (up to 10 s).
    public static func start(_ options: Options = Options()) async throws -> LocalRedisServer {
        guard let executable = options.executable ?? findExecutable() else {
            throw RedisError.connectFailed("redis-server is not installed (Debian: apt-get install redis-server)")
        }
        var lastError: any Error = RedisError.connectFailed("redis-server did not start")
        for _ in 0..<3 {
            // A fresh folder per attempt: a failed attempt removes its own folder.
            let directory = options.directory ?? NSTemporaryDirectory() + "tern-redis-" + UUID().uuidString
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let server = LocalRedisServer(
                options: options, executable: executable, port: try freePort(), directory: directory,
                ownsDirectory: options.directory == nil)
            do {
                try await server.launch()
                return server
            } catch {
                lastError = error
                server.stop()
            }
        }
        throw lastError
    }

    /// Starts the server again on the same port and folder (after ``kill()`` or ``stopAndWait(keepingData:)``).
    public func restart() async throws {
        try await launch()
    }

    /// Whether the process is running.
    public var isRunning: Bool { pid != nil }

    /// The process id, while running.
    public var pid: Int32? {
        process.withLock { pid in
            guard let running = pid else { return nil }
            var status: Int32 = 0
            if waitpid(running, &status, WNOHANG) == running {
                pid = nil
                return nil
            }
            return running
        }
    }

    /// Sends SIGKILL and waits for the process to exit; the folder is kept for ``restart()``.
    public func kill() async {
        await signalAndWait(SIGKILL)
    }

    /// Sends `signal` (for example SIGSTOP or SIGCONT) without waiting.
    public func send(signal: Int32) {
        if let pid { _ = Glibc.kill(pid, signal) }
    }

    /// Stops the server with SIGTERM (SIGKILL after 10 s) and removes a folder it created, without
    /// blocking the caller: the signal is sent at once, and waiting for the exit and removing the
    /// folder happen on a thread of their own, so a test's `defer { server.stop() }` never holds a
    /// Swift concurrency thread. (If this process exits first, the server still stops; only its
    /// folder may be left.)
    public func stop() {
        guard let running = takePID() else { return }
        Self.send(SIGTERM, to: running)
        let directory = ownsDirectory ? directory : nil
        Thread {
            Self.waitForExit(running)
            if let directory { try? FileManager.default.removeItem(atPath: directory) }
        }.start()
    }

    /// Stops the server with SIGTERM (SIGKILL after 10 s) and waits for it to exit, without holding a
    /// Swift concurrency thread; unless `keepingData`, removes a folder it created.
    public func stopAndWait(keepingData: Bool = false) async {
        await signalAndWait(SIGTERM)
        if ownsDirectory && !keepingData { try? FileManager.default.removeItem(atPath: directory) }
    }

    private func takePID() -> pid_t? {
        process.withLock { pid -> pid_t? in
            defer { pid = nil }
            return pid
        }
    }

    /// Signals the process and waits for its exit on a thread of its own.
    private func signalAndWait(_ signal: Int32) async {
        guard let running = takePID() else { return }
        Self.send(signal, to: running)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Thread {
                Self.waitForExit(running)
                continuation.resume()
            }.start()
        }
    }

    /// Sends `signal`, after SIGCONT in case the process was stopped.
    private static func send(_ signal: Int32, to running: pid_t) {
        _ = Glibc.kill(running, SIGCONT)
        _ = Glibc.kill(running, signal)
    }

    /// Blocks until the process exits, sending SIGKILL after 10 s.
    private static func waitForExit(_ running: pid_t) {
        var status: Int32 = 0
        for attempt in 0..<2_000 {
            let result = waitpid(running, &status, WNOHANG)
            if result == running || (result < 0 && errno == ECHILD) { return }
            if attempt == 1_000 { _ = Glibc.kill(running, SIGKILL) }
            usleep(10_000)
        }
    }

    private func launch() async throws {
        let arguments =
            [
                executable, "--port", String(port), "--bind", "127.0.0.1", "--dir", directory,
                "--unixsocket", socketPath, "--unixsocketperm", "700", "--save", "",
                "--appendonly", options.appendOnly ? "yes" : "no", "--appendfsync", "everysec",
                "--logfile", directory + "/redis.log", "--daemonize", "no",
            ] + options.extraArguments
        let pid = try ChildProcess.spawn(arguments)
        self.process.withLock { $0 = pid }
        let deadline = ContinuousClock.now + .seconds(10)
        var configuration = RedisConfiguration(endpoint: .unix(path: socketPath))
        configuration.connectTimeout = .milliseconds(500)
        while ContinuousClock.now < deadline {
            guard self.pid != nil else {
                throw RedisError.connectFailed("redis-server exited at start-up; see \(directory)/redis.log")
            }
            if FileManager.default.fileExists(atPath: socketPath) {
                let connection = RedisConnection(configuration: configuration)
                defer { connection.close() }
                do {
                    if try await connection.send(RedisCommand("PING")).string == "PONG" { return }
                } catch RedisError.server(let error) where error.code == "NOAUTH" {
                    return  // up, and asking for a password
                } catch {
                    // Not ready yet.
                }
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw RedisError.connectFailed("redis-server did not answer within 10 s; see \(directory)/redis.log")
    }

    /// A TCP port on 127.0.0.1 that is free now (for a server a test or a tool starts).
    public static func freePort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw RedisError.connectFailed("socket() failed") }
        defer { _ = Glibc.close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                bind(descriptor, socketAddress, length) == 0
                    && getsockname(descriptor, socketAddress, &length) == 0
            }
        }
        guard bound else { throw RedisError.connectFailed("cannot find a free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
