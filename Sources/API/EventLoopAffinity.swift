import Hummingbird
import HummingbirdCore
import Logging
import NIOCore

/// Runs each connection's handling, its request handlers included, on the event loop that owns
/// the connection's channel instead of Swift's global pool. A request is then read, handled and
/// answered on one thread: the only thread hops left are to a Redis connection and back. Without
/// it, each request woke a pool thread to run the handler and the event loop again to write the
/// answer (measured in BENCHMARKS.md, issue 16). Handlers must not block: none in the API does
/// (Redis calls are asynchronous; blocking Redis commands use connections of their own).
struct EventLoopBoundChannel<Inner: ServerChildChannel>: ServerChildChannel {
    typealias Value = Inner.Value
    let inner: Inner

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        inner.setup(channel: channel, logger: logger)
    }

    func handle(value: Value, logger: Logger) async {
        await withTaskExecutorPreference(EventLoopTaskExecutor(value.channel.eventLoop)) {
            await inner.handle(value: value, logger: logger)
        }
    }
}

/// A task executor that runs jobs on one NIO event loop.
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        eventLoop.execute { job.runSynchronously(on: executor) }
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 whose connections are handled on their event loops (see ``EventLoopBoundChannel``).
    static func http1OnEventLoops(configuration: HTTP1Channel.Configuration) -> HTTPServerBuilder {
        .init { responder in EventLoopBoundChannel(inner: HTTP1Channel(responder: responder, configuration: configuration)) }
    }
}
