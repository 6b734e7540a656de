import Testing

@testable import Tern

@Suite("One binary under several names")
struct MultiCallTests {
    @Test("a program named worker, api or scheduler runs that subcommand; any other name does not")
    func namesRunSubcommands() {
        #expect(TernCommand.subcommandNamed(by: "/usr/local/bin/worker") == "worker")
        #expect(TernCommand.subcommandNamed(by: "api") == "api")
        #expect(TernCommand.subcommandNamed(by: "./scheduler") == "scheduler")
        #expect(TernCommand.subcommandNamed(by: "/usr/local/bin/tern") == nil)
        #expect(TernCommand.subcommandNamed(by: "/opt/worker/tern") == nil)
    }

    @Test("a worker's processes get the subcommand spelled out exactly when their binary's name does not imply it")
    func childArguments() {
        let options = ["--concurrency", "4", "--processes", "2"]
        // `tern worker …` starting `tern`: unchanged.
        #expect(
            WorkerCommand.childArguments(["/bin/tern", "worker"] + options, executable: "/bin/tern", adding: "--child")
                == ["worker", "--concurrency", "4", "--child"])
        // A link named `worker` to `tern`: the child runs `tern`, so it needs `worker`.
        #expect(
            WorkerCommand.childArguments(["/bin/worker"] + options, executable: "/bin/tern", adding: "--child")
                == ["worker", "--concurrency", "4", "--child"])
        // The thin `worker` executable starting itself: no subcommand.
        #expect(
            WorkerCommand.childArguments(["/bin/worker"] + options, executable: "/bin/worker", adding: nil)
                == ["--concurrency", "4"])
        // `tern worker` where `tern` links to a binary named `worker`: the subcommand goes.
        #expect(
            WorkerCommand.childArguments(["/bin/tern", "worker"] + options, executable: "/bin/worker", adding: nil)
                == ["--concurrency", "4"])
    }
}
