import Foundation

/// Starts the worker's child processes, the same way for supervised worker processes and isolated
/// jobs: this binary with the given arguments, its standard output piped back for its messages
/// (``SupervisorMessage`` or the isolated-job protocol), and Swift's crash backtracer off unless
/// `SWIFT_BACKTRACE` is set. The backtracer keeps a dying process alive for seconds while it
/// symbolicates, which would let a job's lease expire before the parent sees the death.
enum ChildLauncher {
    /// A configured, not yet started process and the pipes it was given.
    struct Child {
        let process: Process
        /// The read end of the child's standard output.
        let output: FileHandle
        /// The write end of its standard input, when piped.
        let input: FileHandle?
        /// The read end of its standard error, when piped (else it shares the parent's).
        let errors: FileHandle?
    }

    /// Prepares `executable arguments`; `pipeInput` and `pipeErrors` give it a pipe for standard
    /// input (else /dev/null) and standard error (else the parent's). Call `process.run()` next.
    static func prepare(executable: String, arguments: [String], pipeInput: Bool, pipeErrors: Bool) -> Child {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        if environment["SWIFT_BACKTRACE"] == nil { environment["SWIFT_BACKTRACE"] = "enable=no" }
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        let input = pipeInput ? Pipe() : nil
        process.standardInput = input ?? FileHandle.nullDevice
        let errors = pipeErrors ? Pipe() : nil
        if let errors { process.standardError = errors }
        return Child(
            process: process, output: output.fileHandleForReading, input: input?.fileHandleForWriting,
            errors: errors?.fileHandleForReading)
    }
}
