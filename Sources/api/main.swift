import TernCommands

await TernCommand.runSubcommand("api")
