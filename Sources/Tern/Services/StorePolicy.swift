import Broker
import TernCore

/// What a deployment's job store keeps and refuses, the same for every process that writes to it
/// (API, workers, schedulers, `tern dev`): from the `queues:` section of the configuration file.
public struct StorePolicy: Sendable {
    /// The caps on waiting jobs per queue, checked at enqueue.
    public var caps = QueueCaps()
    /// The most failed jobs kept per queue.
    public var failedCap = JobLimits.defaultFailedCap
    /// How long a failed job is kept when its task sets no `failedRetention`.
    public var failedRetention = JobLimits.defaultFailedRetention

    public init() {}

    /// A broker on `client` with this policy.
    public func broker(client: RedisClient, prefix: String) throws -> RedisJobBroker {
        try RedisJobBroker(client: client, prefix: prefix, failedCap: failedCap, failedRetention: failedRetention, caps: caps)
    }
}
