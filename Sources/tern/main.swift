import TernCommands

await TernCommand.runFromCommandLine()
