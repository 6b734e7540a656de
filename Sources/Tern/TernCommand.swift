import ArgumentParser
import Foundation

/// The `tern` command: every subcommand of the CLI and the servers.
public struct TernCommand: AsyncParsableCommand {
    public static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: programName,
            abstract: "Tern: typed background jobs for Swift, on Redis.",
            subcommands: clientCommandTypes + [
                DevCommand.self, WorkerCommand.self, APICommand.self, SchedulerCommand.self, TokenCommand.self, RedisCheckCommand.self,
            ]
        )
    }

    /// The name that help and errors show: the binary's own (`shop` for an application built on
    /// ``TernApplication``), or `tern` under one of ``multiCallNames`` and in a test runner.
    static let programName: String = {
        let name = String((CommandLine.arguments.first ?? "").split(separator: "/").last ?? "")
        return name.isEmpty || multiCallNames.contains(name) || name.contains(".xctest") ? "tern" : name
    }()

    /// The subcommands that talk to the HTTP API: they exit 2 on a usage error.
    static let clientCommandTypes: [any ParsableCommand.Type] = [
        StatusCommand.self, WaitCommand.self, JobsCommand.self, EnqueueCommand.self, CancelCommand.self, RetryCommand.self, RunCommand.self,
        DeleteCommand.self, QueuesCommand.self, PauseCommand.self, ResumeCommand.self, WorkersCommand.self, SchedulesCommand.self,
        TasksCommand.self, StatsCommand.self, TopCommand.self, WorkflowCommand.self, LimitsCommand.self,
    ]

    public init() {}

    /// The subcommands a binary runs when it is invoked under that name (a link named `worker` to
    /// `tern` runs `tern worker`): one binary serves as `tern`, `worker`, `api` and `scheduler`.
    static let multiCallNames: Set<String> = ["worker", "api", "scheduler"]

    /// The subcommand a program at `path` runs by its name alone, if its file name is one of
    /// ``multiCallNames``.
    static func subcommandNamed(by path: String) -> String? {
        let name = String(path.split(separator: "/").last ?? "")
        return multiCallNames.contains(name) ? name : nil
    }

    /// Parses the process's arguments and runs the chosen subcommand; the `tern` executable's entry.
    /// Invoked under one of ``multiCallNames``, it runs that subcommand.
    public static func runFromCommandLine() async {
        if let name = subcommandNamed(by: CommandLine.arguments.first ?? "") { return await runSubcommand(name) }
        let arguments = Array(CommandLine.arguments.dropFirst())
        // The client commands exit 2 on a usage error, as documented for scripts; the servers keep 64.
        guard let first = arguments.first, clientCommands.contains(first) else { return await main() }
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }

    /// The names of ``clientCommandTypes``.
    static let clientCommands = Set(clientCommandTypes.compactMap { $0.configuration.commandName })

    /// Runs one subcommand with the process's arguments after it: the entry of the thin `worker`,
    /// `api` and `scheduler` executables.
    public static func runSubcommand(_ name: String) async {
        await main([name] + CommandLine.arguments.dropFirst())
    }
}
