import Broker
import Foundation
import TernTesting
import Testing

/// The suites that run many real processes and measure time: one at a time, so that their timing
/// bounds hold on a 2-core machine (the lighter tests still run beside them).
@Suite(.serialized) enum HeavyProcessTests {}

/// A `worker --processes …` supervisor on `environment`'s Redis and key prefix, with short timings
/// and the test tasks; its standard error goes to a log file in the server's directory.
/// Unchecked: the process is only started in `init`, then signalled and awaited.
final class SupervisorProcess: @unchecked Sendable {
    let process: Process
    let log: String

    init(_ environment: JobEnvironment, _ arguments: [String], name: String = "supervisor") throws {
        log = environment.server.directory + "/\(name).log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process = Process()
        process.executableURL = URL(fileURLWithPath: WorkerBinary.path)
        process.arguments = [
            "--redis-url", environment.server.url, "--prefix", environment.broker.keys.prefix,
            "--lease", "5", "--heartbeat", "0.2", "--reaper", "0.3",
        ] + arguments
        process.environment = WorkerBinary.testTasksEnvironment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }

    /// What the supervisor and its processes logged so far.
    var logText: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    /// Sends SIGTERM and waits for the exit; `true` if it exited 0.
    func stop() async -> Bool {
        kill(pid, SIGTERM)
        await waitForExit(process)
        return process.terminationReason == .exit && process.terminationStatus == 0
    }

    /// Kills it (and, through their closed pipes, its processes) if a test ended early.
    func killIfRunning() {
        if process.isRunning { kill(pid, SIGKILL) }
    }

    /// The live worker processes this supervisor runs, as registered.
    func children(_ broker: RedisJobBroker) async throws -> [WorkerInfo] {
        try await broker.workers().filter { $0.supervisorPID == pid }
    }

    /// Waits until exactly `count` processes of this supervisor are registered and returns them.
    func waitForChildren(_ broker: RedisJobBroker, count: Int, excluding old: Set<Int32> = []) async throws -> [WorkerInfo] {
        try await eventually(within: .seconds(30)) {
            let children = try await self.children(broker).filter { !old.contains($0.pid) }
            guard children.count == count else { throw WaitError("\(children.count) of \(count) processes registered") }
            return children
        }
    }
}

/// `GET path` on 127.0.0.1:`port` over a plain socket, off the concurrency pool; the response body.
func httpGet(port: Int, _ path: String) async throws -> String {
    try await offPool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw WaitError("socket() failed") }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw WaitError("cannot connect to port \(port)") }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            response += buffer[..<count]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { throw WaitError("no HTTP response") }
        return String(text[split.upperBound...])
    }
}
