import TernCommands

await TernCommand.runSubcommand("worker")
