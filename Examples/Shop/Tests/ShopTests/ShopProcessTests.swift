import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import ShopTasks
import Tern
import Testing

/// Shop's own binary as processes: `shop worker`, `shop api` and `shop scheduler` on a redis-server
/// of the test's own. Under `CI=true` a missing redis-server fails these tests instead of skipping.
@Suite(
    "Shop's binary: worker, API and scheduler processes",
    .serialized,
    .enabled(if: ShopBinary.redisAvailable, "redis-server is not installed (apt-get install redis-server)"))
struct ShopProcessTests {
    @Test("an invoice enqueued over HTTP runs on the worker process and its typed result is read over HTTP; the mailer is made once and closed at SIGTERM")
    func invoiceOverHTTP() async throws {
        let system = try await ShopSystem.start()
        defer { system.stop() }
        let worker = try system.run(["worker", "--queues", "mail,images,default"])
        let api = try system.run(["api", "--port", "\(system.apiPort)"])
        defer { [worker, api].forEach { $0.killIfRunning() } }
        try await system.waitForAPI()

        var ids: [String] = []
        for order in 1...3 {
            let (status, body) = try await system.post(
                "/v1/jobs", ["task": "send-invoice", "input": ["order": order, "email": "ada@example.com", "totalCents": 1999]])
            #expect(status == 201, "\(body)")
            ids.append(try #require(body["id"] as? String))
        }
        for id in ids {
            let (_, job) = try await system.get("/v1/jobs/\(id)?wait=30")
            #expect(job["state"] as? String == "succeeded", "\(job)")
            let result = try #require(job["result"] as? [String: Any])
            let messageID = try #require(result["messageID"] as? String)
            #expect(FileManager.default.fileExists(atPath: system.outbox + "/\(messageID).eml"))
        }
        let (_, resized) = try await system.enqueueAndWait(
            "resize-image", ["width": 2, "height": 2, "pixels": [0, 100, 200, 100], "targetWidth": 1])
        #expect(resized["state"] as? String == "succeeded")
        #expect((resized["result"] as? [String: Any])?["pixels"] as? [Int] == [100])

        #expect(await worker.stop() == 0)
        #expect(worker.logText.contains("shop: outbox mailer closed after 3 message(s)"), "\(worker.logText)")
        #expect(worker.logText.components(separatedBy: "outbox mailer closed").count == 2, "closed once")
        #expect(await api.stop() == 0)
    }

    @Test("shop dev serves the queues of Shop's own tasks, not only default: an invoice (mail) and a resize (images) run in it")
    func devServesTheTasksQueues() async throws {
        let system = try await ShopSystem.start()
        defer { system.stop() }
        let dev = try system.run(["dev", "--no-demo", "--port", "\(system.apiPort)"])
        defer { dev.killIfRunning() }
        try await system.waitForAPI()
        let (_, invoice) = try await system.enqueueAndWait("send-invoice", ["order": 7, "email": "ada@example.com", "totalCents": 500])
        #expect(invoice["state"] as? String == "succeeded", "\(invoice)")
        let (_, resized) = try await system.enqueueAndWait(
            "resize-image", ["width": 2, "height": 2, "pixels": [0, 100, 200, 100], "targetWidth": 1])
        #expect(resized["state"] as? String == "succeeded", "\(resized)")
        // Standard output to a file is flushed at the exit.
        #expect(await dev.stop() == 0)
        #expect(dev.logText.contains("on queues default, images, mail"), "\(dev.logText)")
    }

    @Test("shop dev starts a redis-server of its own when nothing answers on its loopback Redis, keeps the data in .data/, stops it at the exit, and takes back one a killed run left")
    func devStartsRedis() async throws {
        let port = try freePort()
        let system = try await ShopSystem.start(redisURL: "redis://127.0.0.1:\(port)")
        defer { system.stop() }
        let data = system.folder + "/.data/redis-\(port)"
        func redisPID() -> pid_t? {
            (try? String(contentsOfFile: data + "/redis.pid", encoding: .utf8)).flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        defer { if let pid = redisPID() { kill(pid, SIGKILL) } }
        // A run killed outright leaves its server running.
        let first = try system.run(["dev", "--no-demo", "--port", "\(system.apiPort)"])
        defer { first.killIfRunning() }
        try await system.waitForAPI()
        let (_, invoice) = try await system.enqueueAndWait("send-invoice", ["order": 8, "email": "ada@example.com", "totalCents": 500])
        #expect(invoice["state"] as? String == "succeeded", "\(invoice)")
        let pid = try #require(redisPID())
        first.killIfRunning()
        _ = await first.exited()
        #expect(DevRedisProbe.running(pid))
        // The next run uses it (the job is still there), and stops it at its exit.
        let second = try system.run(["dev", "--no-demo", "--port", "\(system.apiPort)"])
        defer { second.killIfRunning() }
        try await system.waitForAPI()
        let id = try #require(invoice["id"] as? String)
        #expect(try await system.get("/v1/jobs/\(id)").1["state"] as? String == "succeeded")
        #expect(await second.stop() == 0)
        #expect(!DevRedisProbe.running(pid), "the redis-server that shop dev started still runs")
        #expect(FileManager.default.fileExists(atPath: data + "/appendonlydir"))
        #expect(second.logText.contains("using the redis-server that an earlier tern dev left on 127.0.0.1:\(port) (pid \(pid)"), "\(second.logText)")
    }

    @Test("shop's help names shop, not tern")
    func helpNamesTheBinary() async throws {
        let system = try await ShopSystem.start()
        defer { system.stop() }
        let help = try system.run(["--help"])
        defer { help.killIfRunning() }
        #expect(await help.exited() == 0)
        #expect(help.logText.contains("USAGE: shop <subcommand>"), "\(help.logText)")
    }

    @Test("input is validated against Shop's Swift types: a wrong type answers 422 with the pointer, an unknown task 422 unknown_task at /task")
    func badInput() async throws {
        let system = try await ShopSystem.start()
        defer { system.stop() }
        let api = try system.run(["api", "--port", "\(system.apiPort)"])
        defer { api.killIfRunning() }
        try await system.waitForAPI()
        let (status, problem) = try await system.post(
            "/v1/jobs", ["task": "send-invoice", "input": ["order": "42", "email": "ada@example.com", "totalCents": 1999]])
        #expect(status == 422)
        #expect(problem["code"] as? String == "invalid_request")
        let pointers = (problem["errors"] as? [[String: Any]] ?? []).compactMap { $0["pointer"] as? String }
        #expect(pointers == ["/input/order"], "\(problem)")
        let (unknownStatus, unknown) = try await system.post("/v1/jobs", ["task": "echo", "input": 1])
        #expect(unknownStatus == 422 && unknown["code"] as? String == "unknown_task", "\(unknown)")
        let unknownErrors = unknown["errors"] as? [[String: Any]] ?? []
        #expect(unknownErrors.compactMap { $0["pointer"] as? String } == ["/task"])
        #expect(unknownErrors.compactMap { $0["message"] as? String } == ["unknown task 'echo'"])
        let (_, tasks) = try await system.getArray("/v1/tasks")
        #expect(tasks.compactMap { $0["name"] as? String }.sorted() == ["build-gallery", "import-catalog", "resize-image", "send-invoice"])
        #expect(await api.stop() == 0)
    }

    @Test("a schedule of import-catalog in the config file fires, and the worker runs its jobs")
    func scheduleFires() async throws {
        let system = try await ShopSystem.start(schedules: """
            scheduler:
              poll_ms: 100
            schedules:
              - name: catalog-every-second
                task: import-catalog
                input: {products: [{sku: "tea-1", name: "Green tea", priceCents: 450}, {sku: "", name: "?", priceCents: 1}]}
                every_seconds: 1
            """)
        defer { system.stop() }
        let scheduler = try system.run(["scheduler"])
        let worker = try system.run(["worker", "--queues", "default"])
        defer { [scheduler, worker].forEach { $0.killIfRunning() } }
        let broker = try system.broker()
        var fired: [JobRecord] = []
        let deadline = ContinuousClock.now + .seconds(60)
        while fired.count < 2, ContinuousClock.now < deadline {
            fired = try await broker.jobs(queue: "default", state: .succeeded, cursor: nil, limit: 100).jobs
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(fired.count >= 2, "\(scheduler.logText)\n\(worker.logText)")
        for job in fired {
            #expect(job.task == "import-catalog" && job.schedule == "catalog-every-second")
            let output = try JSONDecoder().decode(ImportCatalog.Output.self, from: try #require(job.result))
            #expect(output == .init(accepted: 1, refused: [""]))
        }
        #expect(await scheduler.stop() == 0)
        #expect(await worker.stop() == 0)
    }

    @Test(
        "the plain tern api, built without Shop's code, accepts Shop's tasks from the catalogue Shop's worker published",
        .enabled(if: ShopBinary.plainTern != nil || ProcessInfo.processInfo.environment["CI"] == "true",
            "Tern's tern binary is not next to shop: build Shop with --scratch-path ../../.build"))
    func plainTernAPI() async throws {
        let system = try await ShopSystem.start()
        defer { system.stop() }
        let worker = try system.run(["worker", "--queues", "mail,images,default"])
        let api = try system.runPlainTern(["api", "--port", "\(system.apiPort)"])
        defer { [worker, api].forEach { $0.killIfRunning() } }
        try await system.waitForAPI()
        // The worker publishes its catalogue when it starts; the API reads it within 2 s.
        var invoice: [String: Any]?
        let deadline = ContinuousClock.now + .seconds(60)
        while invoice == nil, ContinuousClock.now < deadline {
            let (_, tasks) = try await system.getArray("/v1/tasks")
            invoice = tasks.first { $0["name"] as? String == "send-invoice" && ($0["workers"] as? [String])?.isEmpty == false }
            if invoice == nil { try await Task.sleep(for: .milliseconds(200)) }
        }
        let listed = try #require(invoice, "the plain API never listed send-invoice with a worker: \(api.logText)")
        #expect(listed["source"] as? String == "published")
        #expect(listed["queue"] as? String == "mail")

        let (_, job) = try await system.enqueueAndWait("send-invoice", ["order": 7, "email": "bo@example.com", "totalCents": 500])
        #expect(job["state"] as? String == "succeeded", "\(job)")
        #expect((job["result"] as? [String: Any])?["messageID"] as? String != nil)

        let (status, problem) = try await system.post(
            "/v1/jobs", ["task": "send-invoice", "input": ["order": "7", "email": "bo@example.com", "totalCents": 500]])
        #expect(status == 422)
        #expect((problem["errors"] as? [[String: Any]] ?? []).compactMap { $0["pointer"] as? String } == ["/input/order"], "\(problem)")
        let (unknownStatus, unknown) = try await system.post("/v1/jobs", ["task": "refund-order", "input": ["order": 7]])
        #expect(unknownStatus == 422 && unknown["code"] as? String == "unknown_task", "\(unknown)")
        #expect((unknown["errors"] as? [[String: Any]] ?? []).compactMap { $0["message"] as? String } == ["unknown task 'refund-order'"])
        #expect(await api.stop() == 0)
        #expect(await worker.stop() == 0)
    }
}
