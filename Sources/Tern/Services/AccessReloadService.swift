import API
import Logging
import ServiceLifecycle
import UnixSignals

/// `tern api` on SIGHUP: reads its settings again (the configuration file named at start-up, with
/// the process's environment) and puts the tokens and JWT settings they give in force, for the
/// requests that follow. Settings that do not validate change nothing; the log says why. Reloads
/// run one at a time, in the order of the signals.
struct AccessReloadService: Service {
    let control: AccessControl
    let logger: Logger
    /// The access policy of the settings as they are now.
    let policy: @Sendable () async throws -> AccessPolicy

    func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            await reload()
        }
    }

    /// One reload: `API tokens reloaded` (with the number of tokens and whether JWTs are accepted),
    /// or `API tokens not reloaded; the previous ones stay` with the reason.
    func reload() async {
        do {
            let new = try await policy()
            try control.replace(with: new)
            logger.notice("API tokens reloaded", metadata: ["tokens": "\(new.tokenCount)", "jwt": new.acceptsJWTs ? "on" : "off"])
        } catch {
            logger.error("API tokens not reloaded; the previous ones stay", metadata: ["error": "\(error)"])
        }
    }
}
