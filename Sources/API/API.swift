/// The HTTP API.
///
/// This module will hold the Hummingbird 2 routes under `/v1`: typed enqueue validated against each
/// task's Swift input type, job status and results, cancel and retry, listings with cursors, queue
/// and worker views, schedules, the OpenAPI document generated from the task registry, bearer-token
/// auth with roles, request limits, health, readiness and Prometheus metrics.
public enum API {}
