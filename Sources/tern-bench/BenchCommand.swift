import ArgumentParser

/// `tern-bench`: release-mode benchmarks whose figures go into BENCHMARKS.md.
@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tern-bench",
        abstract: "Tern's benchmarks. Build in release mode: swift run -c release tern-bench <name>.",
        subcommands: [RedisBench.self, JobsBench.self, FunctionsBench.self, FetchSketchBench.self, EnqueueFloorBench.self, HeartbeatBench.self, WorkflowsBench.self, LimitsBench.self, TracingBench.self]
    )
}
