import TernCommands

await TernCommand.runSubcommand("scheduler")
