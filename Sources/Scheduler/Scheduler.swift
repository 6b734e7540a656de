/// Emits periodic jobs.
///
/// This module will hold cron and interval schedules with IANA time zones, the computation of due
/// ticks from Redis time, and the emission of each tick at most once across any number of scheduler
/// replicas (a per-tick key written by the same Redis Function that enqueues the job).
public enum Scheduler {}
