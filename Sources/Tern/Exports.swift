// `import Tern` is all an application needs: tasks, their context and options (TernCore), the
// client and brokers that enqueue jobs from Swift (Broker), swift-log for `context.logger`, and,
// to run Tern's services in a process of its own, the worker (Worker) and swift-service-lifecycle.
@_exported import Broker
@_exported import Logging
@_exported import ServiceLifecycle
@_exported import TernCore
@_exported import Worker
