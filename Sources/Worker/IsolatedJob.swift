import Broker
import Foundation
import Logging
import Synchronization
import TernCore

/// The child side of an isolated job: a process started by ``IsolatedRunner`` that runs one job and
/// reports its outcome on its standard output, then exits.
///
/// Protocol: the parent writes `<id> <attempt> <max attempts> <task> <worker id>`, the input in
/// base64 and the headers' JSON in base64 (empty for none), a line each, then `cancel` to cancel the job (end of input means the parent is gone: the child
/// exits at once). The child writes `progress <value> <base64 message|->` lines, then
/// `result <base64 output>` or `error <permanent 0|1> <retry delay ms|-> <base64 message>`. The
/// task's own writes to standard output go to standard error, so they cannot disturb the protocol.
public enum IsolatedJob {
    /// The hidden flag that starts a worker binary in this mode.
    public static let flag = "--run-isolated-job"

    /// Runs the job the parent sends and returns the exit status (0 once an outcome is written). The
    /// job's resources are made from `dependencies` in this process and closed before it returns;
    /// the task's logger is `logger` with the job's metadata.
    public static func main(registry: TaskRegistry, dependencies: Dependencies, logger: Logger) async -> Int32 {
        let channel = ProtocolChannel()
        let reader = LineReader(fd: 0)
        guard let header = reader.line(), let encoded = reader.line(), let input = Data(base64Encoded: encoded),
            let encodedHeaders = reader.line(), let headers = Data(base64Encoded: encodedHeaders)
        else {
            FileHandle.standardError.write(Data("tern: \(flag) expects a job on standard input\n".utf8))
            return 64
        }
        let fields = header.split(separator: " ").map(String.init)
        guard fields.count == 5, let id = JobID(fields[0]), let attempt = Int(fields[1]), let maxAttempts = Int(fields[2]),
            let entry = registry[fields[3]]
        else {
            FileHandle.standardError.write(Data("tern: bad isolated job header '\(header)'\n".utf8))
            return 64
        }
        var logger = logger
        logger[metadataKey: "job"] = "\(id)"
        logger[metadataKey: "task"] = "\(entry.name)"
        logger[metadataKey: "attempt"] = "\(attempt)"
        logger[metadataKey: "worker"] = "\(fields[4])"
        let store = DependencyStore(dependencies, logger: logger)
        let context = JobContext(
            id: id, attempt: attempt, maxAttempts: maxAttempts, task: entry.name, headers: JobHeaders.decode([UInt8](headers)),
            logger: logger, dependencies: store
        ) { value, message in
            let text = message.map { Data($0.utf8).base64EncodedString() } ?? "-"
            channel.write("progress \(value) \(text)")
        }
        let (cancels, cancel) = AsyncStream<Void>.makeStream()
        Thread {
            // `cancel` cancels the job; the parent closing our input means it is gone.
            while let line = reader.line() {
                if line == "cancel" { cancel.yield() }
            }
            exit(70)
        }.start()
        let outcome = await Self.run(entry, input, context, cancelledBy: cancels)
        // Closed before the outcome is written: once it is, the parent may end this process.
        await store.shutdown()
        do {
            let output = try outcome.get()
            channel.write("result \(output.base64EncodedString())")
        } catch {
            let permanent = entry.isPermanent(error)
            let delay = entry.retryDelay(afterAttempt: attempt, of: maxAttempts, error: error)
            let message = JobWorker.describe(error)
            channel.write("error \(permanent ? 1 : 0) \(delay.map { "\($0.nanoseconds / 1_000_000)" } ?? "-") \(Data(message.utf8).base64EncodedString())")
        }
        return 0
    }

    /// Runs the job; the first element of `cancels` cancels it (its outcome is still awaited).
    private static func run(
        _ entry: TaskRegistry.Entry, _ input: Data, _ context: JobContext, cancelledBy cancels: AsyncStream<Void>
    ) async -> Result<Data, any Error> {
        await withTaskGroup(of: Result<Data, any Error>?.self) { group in
            group.addTask {
                do { return .success(try await entry.run(input, context)) } catch { return .failure(error) }
            }
            group.addTask {
                for await _ in cancels { return nil }
                return nil
            }
            while let next = await group.next() {
                // A cancel (or the job's end) cancels the other child; the job's outcome is awaited.
                group.cancelAll()
                if let outcome = next { return outcome }
            }
            return .failure(CancellationError())
        }
    }
}

/// The child's protocol output: the original standard output, moved aside so that the task's
/// prints (which now go to standard error) cannot mix with it.
private final class ProtocolChannel: Sendable {
    private let fd: Int32
    private let lock = Mutex(())

    init() {
        fd = dup(1)
        dup2(2, 1)
    }

    func write(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        lock.withLock { _ in
            var offset = 0
            while offset < bytes.count {
                let written = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
                if written < 0 && errno == EINTR { continue }
                guard written > 0 else { return }
                offset += written
            }
        }
    }
}

/// Reads lines from a file descriptor, blocking (used from one thread at a time).
private final class LineReader: @unchecked Sendable {
    private let fd: Int32
    private var buffer: [UInt8] = []

    init(fd: Int32) { self.fd = fd }

    func line() -> String? {
        while true {
            if let newline = buffer.firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                return line
            }
            var chunk = [UInt8](repeating: 0, count: 65_536)
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return nil }
            buffer += chunk[..<count]
        }
    }
}
