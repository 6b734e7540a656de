import Foundation

extension RedisClient {
    /// Replaces the stored schedule `name` (in the hash `keys.schedules`) with `replacement`, only
    /// if its definition is still `expected`, the bytes that were read: `false` if it was changed
    /// or deleted meanwhile. A read-modify-write (pause, resume) thus never undoes a concurrent
    /// change, nor brings back a deleted schedule.
    ///
    /// The schedules' version is incremented in the same write, whatever the swap answers (a
    /// needless increment costs the schedulers one reload): a swap whose reply is lost is never
    /// left unseen by them.
    public func swapSchedule(_ name: String, in keys: RedisJobKeys, expected: [UInt8], replacement: Data) async throws -> Bool {
        let commands = [
            Self.functionCall("tern_schedule_swap", keys: [keys.schedules], arguments: [name, Data(expected), replacement]),
            RedisCommand("INCR", keys.schedulesVersion),
        ]
        var replies = try await pipeline(commands)
        if case .error(let error) = replies[0], Self.isMissingFunction(error) {
            try await load(JobFunctions.library)
            replies = try await pipeline(commands)
        }
        _ = try replies[1].throwingServerError()
        return try replies[0].throwingServerError().int == 1
    }
}
