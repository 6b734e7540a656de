/// The tasks this deployment runs.
///
/// This module will hold the sample tasks the README, the docs and the tests use (`echo`, `sleep`,
/// `flaky`, `fail`, `primes`, `crash`). A deployment replaces it with its own task module; it depends on
/// the core module only.
public enum Tasks {}
