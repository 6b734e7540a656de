import Synchronization

/// Merges concurrent calls into batches without a background task.
///
/// The first caller becomes the leader and flushes its own item at once. Callers that arrive while a
/// flush is under way queue up; when the flush ends, the leader hands its role to the first of them,
/// which flushes all that queued (up to `maxBatch`) in one go. A lone caller therefore waits for
/// nothing, and under load the batch grows to whatever arrived during one round trip — the same
/// shape as automatic pipelining, one level up: one Function call for many jobs.
final class Coalescer<Item: Sendable, Output: Sendable>: Sendable {
    typealias Flush = @Sendable ([Item]) async -> [Result<Output, any Error>]

    private struct Waiter {
        let item: Item
        /// Resumed with the item's result, or with `nil` to make the waiter the next leader.
        let continuation: CheckedContinuation<Result<Output, any Error>?, Never>
    }

    private struct State {
        var queue: [Waiter] = []
        var flushing = false
    }

    private let state = Mutex(State())
    private let maxBatch: Int
    private let flush: Flush

    /// - Parameters:
    ///   - maxBatch: the most items one flush takes.
    ///   - flush: performs a batch; returns one result per item, in order.
    init(maxBatch: Int, flush: @escaping Flush) {
        self.maxBatch = max(1, maxBatch)
        self.flush = flush
    }

    /// Submits one item and returns its result once its batch has been flushed.
    func submit(_ item: Item) async throws -> Output {
        let leads = state.withLock { state in
            guard !state.flushing else { return false }
            state.flushing = true
            return true
        }
        if !leads {
            let outcome = await withCheckedContinuation { continuation in
                let leadsNow = state.withLock { state in
                    guard state.flushing else {
                        state.flushing = true
                        return true
                    }
                    state.queue.append(Waiter(item: item, continuation: continuation))
                    return false
                }
                if leadsNow { continuation.resume(returning: nil) }
            }
            if let outcome { return try outcome.get() }
        }
        return try await lead(with: item)
    }

    private func lead(with item: Item) async throws -> Output {
        let batch = state.withLock { state in
            let count = min(state.queue.count, maxBatch - 1)
            defer { state.queue.removeFirst(count) }
            return Array(state.queue.prefix(count))
        }
        // The flush is shielded: cancelling the leader must not fail its followers' items, whose
        // Redis call may already be under way.
        let items = [item] + batch.map(\.item)
        var results = await RedisCancellationShield.shielded { await flush(items) }
        if results.count != batch.count + 1 {
            results = Array(repeating: .failure(RedisError.protocolError("a batch returned the wrong number of results")), count: batch.count + 1)
        }
        for (waiter, result) in zip(batch, results.dropFirst()) { waiter.continuation.resume(returning: result) }
        let next: Waiter? = state.withLock { state in
            guard !state.queue.isEmpty else {
                state.flushing = false
                return nil
            }
            return state.queue.removeFirst()
        }
        next?.continuation.resume(returning: nil)
        return try results[0].get()
    }
}
