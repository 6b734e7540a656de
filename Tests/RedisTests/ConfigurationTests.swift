import Broker
import Testing

@Suite("Connection URLs")
struct ConfigurationTests {
    @Test("redis:// URLs with and without credentials, port and database")
    func tcpURLs() throws {
        let plain = try RedisConfiguration(url: "redis://localhost")
        #expect(plain.endpoint == .tcp(host: "localhost", port: 6379))
        #expect(plain.database == 0 && plain.username == nil && plain.password == nil)

        let full = try RedisConfiguration(url: "redis://tern:p%40ss%2Fword@10.1.2.3:6380/4")
        #expect(full.endpoint == .tcp(host: "10.1.2.3", port: 6380))
        #expect(full.username == "tern")
        #expect(full.password == "p@ss/word")
        #expect(full.database == 4)

        let passwordOnly = try RedisConfiguration(url: "redis://:secret@host:1")
        #expect(passwordOnly.username == nil && passwordOnly.password == "secret")
        let bare = try RedisConfiguration(url: "redis://secret@host")
        #expect(bare.password == "secret")

        let ipv6 = try RedisConfiguration(url: "redis://[::1]:7000/1")
        #expect(ipv6.endpoint == .tcp(host: "::1", port: 7000))
        #expect(ipv6.endpointDescription == "[::1]:7000")
    }

    @Test("unix:// URLs with query parameters")
    func unixURLs() throws {
        let socket = try RedisConfiguration(url: "unix:///run/redis/redis.sock?db=2&user=app&password=x%26y")
        #expect(socket.endpoint == .unix(path: "/run/redis/redis.sock"))
        #expect(socket.database == 2)
        #expect(socket.username == "app")
        #expect(socket.password == "x&y")
        #expect(socket.endpointDescription == "unix:/run/redis/redis.sock")
    }

    @Test(
        "bad URLs are refused with a message naming the problem",
        arguments: [
            ("localhost:6379", "not a URL"),
            ("http://localhost", "unknown scheme"),
            ("redis://host:0", "port"),
            ("redis://host:99999", "port"),
            ("redis://host:abc", "port"),
            ("redis://host/-1", "database"),
            ("redis://host/x", "database"),
            ("redis://", "no host"),
            ("unix://relative/path", "absolute"),
            ("unix:///tmp/s.sock?timeout=3", "unknown parameter"),
            ("redis://user:%zz@host", "percent"),
        ])
    func badURLs(url: String, message: String) {
        #expect {
            try RedisConfiguration(url: url)
        } throws: { error in
            guard let error = error as? RedisError, case .invalidConfiguration(let text) = error else { return false }
            return text.contains(message)
        }
    }

    @Test("rediss:// takes its CA, client certificate, key and server name from the query")
    func tlsURLs() throws {
        let plain = try RedisConfiguration(url: "rediss://host:6380")
        #expect(plain.tls == RedisTLS())
        #expect(plain.effectiveTransport == .eventLoop)
        #expect(plain.endpoint == .tcp(host: "host", port: 6380))
        let full = try RedisConfiguration(
            url: "rediss://u:p%40ss@redis.internal/2?ca=/etc/tern/ca.pem&cert=/etc/tern/c.pem&key=/etc/tern/c%20key.pem&sni=redis.example")
        #expect(full.tls == RedisTLS(caFile: "/etc/tern/ca.pem", certificateFile: "/etc/tern/c.pem", keyFile: "/etc/tern/c key.pem", serverName: "redis.example"))
        #expect(full.password == "p@ss" && full.username == "u" && full.database == 2)
        #expect(full.endpoint == .tcp(host: "redis.internal", port: 6379))
        #expect(try RedisConfiguration(url: "redis://host").effectiveTransport == .dedicatedThread)
        for (url, message) in [
            ("rediss://host?cert=/c.pem", "only one of cert and key"),
            ("rediss://host?ca=", "empty 'ca'"),
            ("rediss://host?verify=no", "unknown parameter 'verify'"),
            ("redis+tls://host", "unknown scheme"),
            ("redis://host:6380?ca=/etc/ca.pem", "for TLS use rediss://"),
            ("redis+sentinel://s1/m?password=x", "takes none"),
        ] {
            #expect {
                try RedisConfiguration(url: url)
            } throws: { error in
                guard let error = error as? RedisError, case .invalidConfiguration(let text) = error else { return false }
                return text.contains(message)
            }
        }
    }

    @Test("redis+sentinel:// names the sentinels, the master name, and the data nodes' credentials and database")
    func sentinelURLs() throws {
        let configuration = try RedisConfiguration(url: "redis+sentinel://tern:s%40cret@10.0.0.1,10.0.0.2:26380,[::1]/my-primary/3")
        #expect(configuration.sentinel == RedisSentinel(
            masterName: "my-primary",
            nodes: [.tcp(host: "10.0.0.1", port: 26379), .tcp(host: "10.0.0.2", port: 26380), .tcp(host: "::1", port: 26379)]))
        #expect(configuration.username == "tern" && configuration.password == "s@cret" && configuration.database == 3)
        #expect(configuration.endpointDescription == "'my-primary' via Sentinel 10.0.0.1:26379,10.0.0.2:26380,[::1]:26379")
        #expect(!configuration.endpointDescription.contains("s@cret"))
        #expect(try RedisConfiguration(url: "redis+sentinel://s1/m").sentinel?.nodes == [.tcp(host: "s1", port: 26379)])
        for (url, message) in [
            ("redis+sentinel://s1,s2", "no master name"),
            ("redis+sentinel://s1/", "no master name"),
            ("redis+sentinel://s1,,s2/m", "no host"),
            ("redis+sentinel://s1/m/x", "database 'x'"),
        ] {
            #expect {
                try RedisConfiguration(url: url)
            } throws: { error in
                guard let error = error as? RedisError, case .invalidConfiguration(let text) = error else { return false }
                return text.contains(message)
            }
        }
    }

    @Test("passwords never appear in redacted URLs or errors")
    func redaction() {
        #expect(RedisConfiguration.redacted("redis://tern:hunter2@host:1/0") == "redis://tern:***@host:1/0")
        #expect(RedisConfiguration.redacted("redis://hunter2@host") == "redis://***@host")
        #expect(RedisConfiguration.redacted("redis://:p@ss@host:0") == "redis://:***@host:0")
        #expect(RedisConfiguration.redacted("redis+sentinel://u:pw@s1,s2/m?password=x") == "redis+sentinel://u:***@s1,s2/m?password=***")
        #expect(RedisConfiguration.redacted("unix:///s?db=1&password=hunter2&user=u") == "unix:///s?db=1&password=***&user=u")
        do {
            _ = try RedisConfiguration(url: "redis://u:hunter2@host:notaport")
        } catch {
            #expect(!"\(error)".contains("hunter2"))
        }
    }

    @Test("commands encode their name and argument count, never their arguments, in descriptions")
    func commandDescription() {
        var command = RedisCommand("auth", "user", "hunter2")
        command.append(1)
        #expect(command.name == "AUTH")
        #expect(command.argumentCount == 4)
        #expect(!command.description.contains("hunter2"))
    }
}
