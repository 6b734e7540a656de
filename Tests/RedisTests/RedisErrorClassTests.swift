@testable import Broker
import Testing

/// How the client classifies failures: what callers rely on to retry safely.
@Suite("Redis failures: never sent or not, credentials or not")
struct RedisErrorClassTests {
    @Test("a command refused while the connection backs off was never sent, whatever broke the connection")
    func refusals() {
        let causes: [RedisError] = [
            .connectionLost("reset by peer"), .timeout(.seconds(1)), .protocolError("bad reply"), .connectFailed("refused"),
            .server(RedisServerError(message: "READONLY You can't write against a read only replica.")),
        ]
        for cause in causes {
            let refusal = RedisConnectionCore.refusal(for: cause)
            #expect(refusal.wasNotSent && refusal.isTransient, "\(cause) → \(refusal)")
        }
        let wrong = RedisError.authenticationFailed(RedisServerError(message: "WRONGPASS invalid username-password pair"))
        #expect(RedisConnectionCore.refusal(for: wrong) == wrong)
    }

    @Test("only a refusal of the credentials answered to AUTH is an authentication failure; a full server is a failed connect")
    func authReplies() {
        let step = ["AUTH", "user", "secret"]
        for text in [
            "WRONGPASS invalid username-password pair or user is disabled.", "ERR invalid password",
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
            "ERR Client sent AUTH, but no password is set",
        ] {
            guard case .authenticationFailed = RedisHandshake.check(step, .error(RedisServerError(message: text))) else {
                Issue.record("not an authentication failure: \(text)")
                continue
            }
        }
        for text in ["ERR max number of clients reached", "LOADING Redis is loading the dataset in memory"] {
            let error = RedisHandshake.check(step, .error(RedisServerError(message: text)))
            #expect(error?.isTransient == true && error?.wasNotSent == true, "\(text) → \(String(describing: error))")
        }
        guard case .authenticationFailed = RedisHandshake.check(["SELECT", "1"], .error(RedisServerError(message: "NOAUTH Authentication required."))) else {
            Issue.record("NOAUTH is an authentication failure")
            return
        }
    }
}
