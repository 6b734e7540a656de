import Dispatch
import TernCore

/// Lets a piece of code finish its Redis calls although its task is cancelled.
///
/// Inside ``shielded(_:)`` a command sent on a ``RedisConnection`` (through ``RedisClient`` or a
/// broker) is not abandoned when the task is cancelled: the caller waits for its reply, bounded by
/// the command timeout as always. This is how a cancelled worker still releases its jobs and how a
/// batched call made on behalf of several callers survives the cancellation of the one that sent
/// it, without an unstructured `Task`. Blocking commands (`BLPOP`) are never shielded
/// (``unshielded(_:)``): a cancelled caller must stop waiting for work.
public enum RedisCancellationShield {
    @TaskLocal static var isActive = false

    /// Runs `body` with Redis calls shielded from the task's cancellation.
    public static func shielded<T>(_ body: () async throws -> T) async rethrows -> T {
        try await $isActive.withValue(true) { try await body() }
    }

    /// Waits `duration` whether or not the task is cancelled: a shielded call's pause between tries.
    static func sleep(for duration: Duration) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(duration.nanoseconds))) { continuation.resume() }
        }
    }

    /// Runs `body` with Redis calls cancellable again, inside a shielded region.
    public static func unshielded<T>(_ body: () async throws -> T) async rethrows -> T {
        try await $isActive.withValue(false) { try await body() }
    }
}
