/// Runs jobs.
///
/// This module will hold the fetch loop (claiming up to the free slots in one call, waiting on Redis
/// when idle), job execution in a task group with soft time limits, leases and heartbeats, the
/// reaper that returns expired leases to their queues, retries with backoff, result storage, graceful
/// shutdown, and the supervisor that runs worker processes and restarts the ones that die.
public enum Worker {}
