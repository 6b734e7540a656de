import ArgumentParser

/// The `tern` command: every subcommand of the CLI and the servers.
public struct TernCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "tern",
        abstract: "Tern: typed background jobs for Swift, on Redis.",
        subcommands: [DevCommand.self, WorkerCommand.self, APICommand.self, SchedulerCommand.self, TokenCommand.self, RedisCheckCommand.self]
    )

    public init() {}

    /// Parses the process's arguments and runs the chosen subcommand; the `tern` executable's entry.
    public static func runFromCommandLine() async {
        await main()
    }

    /// Runs one subcommand with the process's arguments after it: the entry of the thin `worker`,
    /// `api` and `scheduler` executables.
    public static func runSubcommand(_ name: String) async {
        await main([name] + CommandLine.arguments.dropFirst())
    }
}
