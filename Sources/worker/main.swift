import Tasks
import Tern

await SampleApplication.main(subcommand: "worker")
