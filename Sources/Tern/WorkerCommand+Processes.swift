import ArgumentParser
import Foundation

extension WorkerCommand {
    /// This binary's path, for starting worker processes and isolated jobs.
    static var executablePath: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    /// This process's arguments without `--processes`, plus `extra`: what a child is started with.
    /// The child runs ``executablePath``: when this process was started under a link named
    /// `worker` to a binary of another name, the child needs the subcommand spelled out, and the
    /// other way round.
    static func childArguments(adding extra: String?) -> [String] {
        childArguments(CommandLine.arguments, executable: executablePath, adding: extra)
    }

    static func childArguments(_ invocation: [String], executable: String, adding extra: String?) -> [String] {
        var arguments = Array(invocation.dropFirst())
        let invokedBy = TernCommand.subcommandNamed(by: invocation.first ?? "")
        let childBy = TernCommand.subcommandNamed(by: executable)
        if let invokedBy, childBy == nil {
            arguments.insert(invokedBy, at: 0)
        } else if invokedBy == nil, childBy != nil, !arguments.isEmpty {
            arguments.removeFirst()
        }
        if let index = arguments.firstIndex(of: "--processes"), index + 1 < arguments.count {
            arguments.removeSubrange(index...(index + 1))
        }
        arguments.removeAll { $0.hasPrefix("--processes=") }
        if let extra, !arguments.contains(extra) { arguments.append(extra) }
        return arguments
    }
}

extension WorkerCommand {
    /// Runs `executable arguments --check-config`; throws what it printed if it exits non-zero.
    static func checkChildConfiguration(executable: String, arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments + ["--check-config"]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let output = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationReason == .exit && process.terminationStatus == 0 else {
            let text = String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw ValidationError(text.isEmpty ? "the configuration check exited with status \(process.terminationStatus)" : text)
        }
    }
}

