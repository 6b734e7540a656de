import Foundation

/// Runs a short-lived tool (`openssl`, `redis-cli`) to its end and returns its exit status and its
/// standard output and error, read from a file.
///
/// It uses `posix_spawn` and `waitpid` on a thread of its own: Foundation's `Process.waitUntilExit()`
/// called from Swift concurrency's threads was seen to never return while other processes were
/// being started at the same time.
func runTool(_ arguments: [String]) async throws -> (status: Int32, output: String) {
    let output = FileManager.default.temporaryDirectory.appendingPathComponent("tern-tool-\(UUID().uuidString).log").path
    defer { try? FileManager.default.removeItem(atPath: output) }
    let status = try await offPool { () throws -> Int32 in
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Only 0, 1 and 2 are inherited (see Tern's ChildProcess for why).
        if let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") {
            typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32
            _ = unsafeBitCast(symbol, to: CloseFrom.self)(&actions, 3)
        }
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, arguments[0], &actions, nil, &argv, environ)
        guard result == 0 else { throw WaitError("cannot start \(arguments[0]): \(String(cString: strerror(result)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        // WIFEXITED / WEXITSTATUS, spelled out (the C macros are not imported).
        return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }
    return (status, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
}
