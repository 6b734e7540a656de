// `import Tern` is all an application needs: tasks, their context and options (TernCore), the
// client and brokers that enqueue jobs from Swift (Broker), and swift-log for `context.logger`.
@_exported import Broker
@_exported import Logging
@_exported import TernCore
