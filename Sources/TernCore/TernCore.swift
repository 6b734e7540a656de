/// The core model of Tern, with no I/O.
///
/// This module will hold the job model and its codec, job ids, job states, retry policies, the task
/// protocol and its registry, the clock abstraction and Tern's errors. Every other module depends on
/// it; it depends on Foundation alone, so a package that only defines tasks stays light.
public enum TernCore {}
