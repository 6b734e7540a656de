import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Tern
import TernTesting
import Testing

/// Where the `shop` binary is, and whether the process tests can run.
enum ShopBinary {
    /// The `shop` executable built next to the test bundle.
    static var path: String {
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [bundle, bundle.deletingLastPathComponent()] {
            let path = candidate.appendingPathComponent("shop").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return ".build/debug/shop"
    }

    /// Tern's own `tern` binary, built without Shop's tasks, if it sits next to `shop` (it does when
    /// Shop is built on Tern's build folder, as `scripts/test` does).
    static var plainTern: String? {
        let path = URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent("tern").path
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }

    /// True when a redis-server is installed, and always under `CI=true` (there a missing one fails).
    static var redisAvailable: Bool {
        ProcessInfo.processInfo.environment["CI"] == "true"
            || LocalRedisServer.findExecutable(searchPath: ProcessInfo.processInfo.environment["PATH"]) != nil
    }
}

/// A redis-server of the test's own and a folder with Shop's config file (a prefix of its own, no
/// API tokens), in which `shop` processes run.
final class ShopSystem: Sendable {
    let server: LocalRedisServer
    let folder: String
    let apiPort: Int
    let prefix = "shop" + String(UUID().uuidString.prefix(8)).lowercased()
    var outbox: String { folder + "/outbox" }

    private init(server: LocalRedisServer, folder: String, apiPort: Int) {
        self.server = server
        self.folder = folder
        self.apiPort = apiPort
    }

    /// Starts the redis-server and writes `config/tern.yaml` with `schedules` (YAML) appended; with
    /// `redisURL`, the file names that Redis instead of the server's.
    static func start(schedules: String = "", redisURL: String? = nil) async throws -> ShopSystem {
        let server = try await LocalRedisServer.start()
        let folder = server.directory + "/shop"
        try FileManager.default.createDirectory(atPath: folder + "/config", withIntermediateDirectories: true)
        let system = ShopSystem(server: server, folder: folder, apiPort: try freePort())
        try """
            redis:
              url: \(redisURL ?? server.url)
              prefix: \(system.prefix)
            api:
              auth: none
            \(schedules)
            """.write(toFile: folder + "/config/tern.yaml", atomically: true, encoding: .utf8)
        return system
    }

    /// Stops the redis-server (the processes are stopped by their tests).
    func stop() { server.stop() }

    /// Starts `shop <arguments>` in the folder, its standard error to a log file.
    func run(_ arguments: [String]) throws -> ShopProcess {
        try ShopProcess(ShopBinary.path, arguments, folder: folder, environment: ["SHOP_OUTBOX": outbox])
    }

    /// Starts the plain `tern <arguments>`, which has none of Shop's code, in the folder.
    func runPlainTern(_ arguments: [String]) throws -> ShopProcess {
        try ShopProcess(try #require(ShopBinary.plainTern), arguments, folder: folder, environment: [:])
    }

    /// A broker on the system's Redis and prefix, to look at jobs directly.
    func broker() throws -> RedisJobBroker {
        try RedisJobBroker(client: RedisClient(configuration: try RedisConfiguration(url: server.url)), prefix: prefix)
    }

    /// Waits until the API answers `/healthz` (at most 60 s: the first start may be slow).
    func waitForAPI() async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            if let (_, response) = try? await URLSession.shared.data(from: url("/healthz")),
                (response as? HTTPURLResponse)?.statusCode == 200
            {
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("the API did not answer /healthz within 60 s")
    }

    func url(_ path: String) -> URL { URL(string: "http://127.0.0.1:\(apiPort)\(path)")! }

    /// POSTs `body` as JSON; returns the status and the JSON object answered.
    func post(_ path: String, _ body: [String: Any]) async throws -> (Int, [String: Any]) {
        var request = URLRequest(url: url(path))
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "content-type")
        request.httpBody = try JSONSerialization.data(withJSONObject: body)
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:])
    }

    /// GETs `path`; returns the status and the JSON object answered.
    func get(_ path: String) async throws -> (Int, [String: Any]) {
        var request = URLRequest(url: url(path))
        request.timeoutInterval = 60
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:])
    }

    /// GETs `path`; returns the status and the `data` array (or top-level array) answered.
    func getArray(_ path: String) async throws -> (Int, [[String: Any]]) {
        let (data, response) = try await URLSession.shared.data(from: url(path))
        let json = try? JSONSerialization.jsonObject(with: data)
        let array = json as? [[String: Any]] ?? (json as? [String: Any])?["data"] as? [[String: Any]]
            ?? (json as? [String: Any])?["tasks"] as? [[String: Any]] ?? []
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, array)
    }

    /// Enqueues a job of `task` and waits (up to 30 s) for its outcome.
    func enqueueAndWait(_ task: String, _ input: [String: Any]) async throws -> (Int, [String: Any]) {
        let (_, created) = try await post("/v1/jobs", ["task": task, "input": input])
        let id = try #require(created["id"] as? String, "\(created)")
        return try await get("/v1/jobs/\(id)?wait=30")
    }
}

/// One `shop` process.
final class ShopProcess: @unchecked Sendable {
    private let process = Process()
    let log: String

    init(_ executable: String, _ arguments: [String], folder: String, environment: [String: String]) throws {
        log = folder + "/\(arguments[0])-\(UUID().uuidString.prefix(6)).log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: folder)
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = output
        process.standardError = output
        try process.run()
    }

    /// What it printed so far.
    var logText: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    /// Sends SIGTERM and waits for the exit (off the concurrency pool); returns the exit status.
    func stop() async -> Int32 {
        process.terminate()
        return await exited()
    }

    /// Waits for the exit (off the concurrency pool); returns the exit status.
    func exited() async -> Int32 {
        let process = self.process
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Thread {
                process.waitUntilExit()
                continuation.resume()
            }.start()
        }
        return process.terminationStatus
    }

    func killIfRunning() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// A TCP port nobody listens on now.
func freePort() throws -> Int {
    #if canImport(Glibc)
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    #else
    let fd = socket(AF_INET, SOCK_STREAM, 0)
    #endif
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
        }
    }
    guard bound else { throw POSIXError(.EADDRINUSE) }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Whether a process runs, for the redis-server `shop dev` starts as a daemon.
enum DevRedisProbe {
    /// It exists and is not a zombie (an orphan may wait unreaped in a container).
    static func running(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        return !stat.contains(") Z ")
    }
}
