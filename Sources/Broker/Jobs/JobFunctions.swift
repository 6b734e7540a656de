import TernCore

/// The Redis Functions library that performs every job state change atomically.
///
/// Contract shared by all functions: `KEYS[1]` is the queue's key base `<prefix>:{<queue>}:`; every
/// key a function touches is that base plus a suffix, so all of them share the queue's hash tag and
/// Cluster slot. Times come from Redis `TIME` (milliseconds), never from a caller. Every write on
/// behalf of a worker carries the lease token it got at claim time and is valid only while the job
/// is running with that token; any other write changes nothing, returns 0 and is counted in
/// `meta.stale_writes`. Functions that take many jobs (enqueue, claim, heartbeat, complete,
/// release) touch each shared key once per call.
///
/// Keys under the base: `pending` (zset: priority band × 2^40 + sequence), `scheduled` (zset: due
/// ms), `active` (zset: lease deadline ms), `succeeded`/`failed`/`cancelled`/`expired` (zsets: the
/// time the entry is dropped), `meta` (hash: seq, token, paused, stale_writes, lost_leases), `wake`
/// (list, at most 64 tokens), `job:<id>` (hash; field `v` is the layout version, 1), `idem:<hash>`
/// (string: job id, a space, the request's fingerprint). Changes a waiting client cares about are
/// published on the channel `<base>events` as `<what> <id> [<id> ...]` (`<what>`: a final state,
/// `retrying` or `progress`): see ``RedisSubscriber``.
enum JobFunctions {
    static let library = RedisFunctionLibrary(name: "tern", source: source)

    static let source = keyTable + body

    /// The key suffixes as Lua tables, generated from ``QueueKey`` and ``QueueItemKey`` so that
    /// the Functions and the Swift code cannot disagree on a name: `K.pending`, `K.job .. id`, and
    /// `HOLDING[state]`, the key that holds jobs in a state; and `FAILED_KEEP_MS`, the retention of
    /// a failed job enqueued without `failed_retention_ms` (``JobLimits/defaultFailedRetention``).
    static let keyTable: String = {
        let keys = QueueKey.allCases.map { "\($0) = '\($0.rawValue)'" } + QueueItemKey.allCases.map { "\($0) = '\($0.rawValue)'" }
        let holding = JobState.allCases.map { "\($0.rawValue) = '\(QueueKey(holding: $0).rawValue)'" }
        let failedKeep = JobLimits.defaultFailedRetention.components.seconds * 1000
        return """
            local K = {\(keys.joined(separator: ", "))}
            local HOLDING = {\(holding.joined(separator: ", "))}
            local FAILED_KEEP_MS = \(failedKeep)
            local EVENTS = '\(RedisJobKeys.eventsSuffix)'
            local MINUTE_KEEP_MS = \(JobLimits.throughputMinutes * 60_000)
            local MAX_DEPENDENTS = \(JobDependencies.maxDependents)
            -- A relay entry this old is stuck: the sweep no longer keeps its job for it.
            local RELAY_STUCK_MS = 3600000
            local ERRORS_KEPT = \(JobLimits.errorsKept)
            local LATENCY_BOUNDS = {\(LatencyHistogram.boundsMilliseconds.map(String.init).joined(separator: ", "))}

            """
    }()

    static let body = #"""
        local BAND = 1099511627776 -- 2^40: one priority band of sequence numbers

        -- An integer as a string argument: a Lua number passed to redis.call is formatted as a
        -- float (%.17g), which costs several times more.
        local function I(n) return string.format('%d', n) end

        -- Redis time in milliseconds, as a number and as a string.
        local function clock()
          local t = redis.call('TIME')
          local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
          return ms, I(ms)
        end

        local function now_ms() return (clock()) end

        -- The job's state, or nil if it does not exist or its retention has passed (a finished
        -- job's hash stays until the reaper's sweep deletes it; readers treat it as gone).
        local function state_of(job, now)
          local f = redis.call('HMGET', job, 'state', 'drop_ms')
          if f[2] and tonumber(f[2]) <= now then return nil end
          return f[1] or nil
        end

        -- ZADD of many {score, member} pairs in one call.
        local function zadd_all(key, pairs, flag)
          if #pairs == 0 then return end
          if flag then redis.call('ZADD', key, flag, unpack(pairs)) else redis.call('ZADD', key, unpack(pairs)) end
        end

        -- Adds ids (with their priorities) to the pending set in order, FIFO within a priority.
        local function pending_add_all(base, ids, priorities)
          if #ids == 0 then return end
          local last = redis.call('HINCRBY', base .. K.meta, 'seq', #ids)
          local pairs = {}
          for i, id in ipairs(ids) do
            pairs[#pairs + 1] = I((9 - priorities[i]) * BAND + last - #ids + i)
            pairs[#pairs + 1] = id
          end
          zadd_all(base .. K.pending, pairs)
        end

        -- Wakes up to `count` idle workers (one token each, at most 64 kept).
        local function wake(base, count)
          local tokens = {}
          for i = 1, math.max(1, math.min(count or 1, 64)) do tokens[i] = '1' end
          if redis.call('LPUSH', base .. K.wake, unpack(tokens)) > 64 then
            redis.call('LTRIM', base .. K.wake, '0', '63')
          end
        end

        -- Adds `n` to `field` of the current minute's hash (succeeded, failed, the latency
        -- buckets); each minute's hash expires after MINUTE_KEEP_MS (set with each field's first count).
        local function count_minute(base, now, field, n)
          local key = base .. K.minute .. I(math.floor(now / 60000))
          if redis.call('HINCRBY', key, field, n) == n then redis.call('PEXPIRE', key, I(MINUTE_KEEP_MS)) end
        end

        -- Records enqueue→start waits (ms) in the queue's histogram (`meta`, since the queue
        -- began: `lat:<bound>` per bucket, `lat:inf` above the last bound, and `lat:sum`) and in
        -- the current minute's (the buckets only).
        local function record_latency(base, now, waits)
          if #waits == 0 then return end
          local buckets, sum = {}, 0
          for _, wait in ipairs(waits) do
            local label = 'inf'
            for _, bound in ipairs(LATENCY_BOUNDS) do
              if wait <= bound then label = I(bound) break end
            end
            buckets[label] = (buckets[label] or 0) + 1
            sum = sum + wait
          end
          for label, n in pairs(buckets) do
            redis.call('HINCRBY', base .. K.meta, 'lat:' .. label, I(n))
            count_minute(base, now, 'lat:' .. label, n)
          end
          redis.call('HINCRBY', base .. K.meta, 'lat:sum', I(sum))
        end

        local function is_live(state)
          return state == 'queued' or state == 'scheduled' or state == 'running' or state == 'retrying' or state == 'waiting'
        end

        -- Unique keys (`unique:<key>`, holding a job id; a job's `unique` field is '<a|u|d> <key>'):
        -- the job that holds the key a new job with `unique` would take, and its state; nil when
        -- the key is free. A key of while-active (a) is held while its job is waiting or running;
        -- of debounce (d) while its job is scheduled (not started); of until (u) for its TTL.
        local function unique_holder(base, unique, now)
          local holder = redis.call('GET', base .. K.unique .. string.sub(unique, 3))
          if not holder then return nil end
          local state = state_of(base .. K.job .. holder, now)
          local mode = string.sub(unique, 1, 1)
          if mode == 'u' or (mode == 'd' and state == 'scheduled') or (mode == 'a' and is_live(state)) then
            return holder, state
          end
          return nil
        end

        -- Releases the unique key of a job that finished or was deleted, if it still holds it
        -- (an until key stays for its window).
        local function unlock(base, id, unique)
          if unique and string.sub(unique, 1, 1) ~= 'u' then
            local lock = base .. K.unique .. string.sub(unique, 3)
            if redis.call('GET', lock) == id then redis.call('DEL', lock) end
          end
        end

        -- A retried job takes its while-active or debounce key back unless another live job holds
        -- it (an operator's retry is never refused for uniqueness).
        local function relock(base, id, unique, now)
          if unique and string.sub(unique, 1, 1) ~= 'u' then
            local lock = base .. K.unique .. string.sub(unique, 3)
            local holder = redis.call('GET', lock)
            if not holder or not is_live(state_of(base .. K.job .. holder, now)) then redis.call('SET', lock, id) end
          end
        end

        -- A finished job's outcome for its dependents: 'o', output; or 'e', message.
        local function outcome_of(id, state, result, err)
          if state == 'succeeded' then return 'o', result or 'null' end
          return 'e', id .. ' ' .. state .. (err and (': ' .. err) or '')
        end

        -- Per call (reset by `entry`): how deep dependents are being resolved in this call, and
        -- the jobs it added to the relay.
        local CALL = {depth = 0, relayed = {}}
        local resolve_one -- defined with the dependencies, below

        local function relay_add(base, id, now)
          -- Each change gets a later score than the entry's last, even within one millisecond:
          -- tern_relay_done removes only an entry whose score did not change since it was taken.
          local last = redis.call('ZSCORE', base .. K.relay, id)
          redis.call('ZADD', base .. K.relay, I(last and math.max(now, tonumber(last) + 1) or now), id)
          CALL.relayed[#CALL.relayed + 1] = id
        end

        -- Tells a changed job's dependents its outcome: those on this queue at once, in this
        -- atomic step (up to 32 levels deep), the others through the relay.
        local function notify(base, id, dependents, kind, payload, now)
          local suffix = string.match(id, '%.[^.]+$')
          local remote = CALL.depth >= 32
          if not remote then
            CALL.depth = CALL.depth + 1
            for line in string.gmatch(dependents, '[^\n]+') do
              local dependent, index = string.match(line, '^(%S+) (%S+)$')
              if dependent and suffix and string.sub(dependent, -#suffix) == suffix then
                resolve_one(base, dependent, index, kind, payload, now)
              else
                remote = true
              end
            end
            CALL.depth = CALL.depth - 1
          end
          if remote then relay_add(base, id, now) end
        end

        -- Moves a job to a terminal state. After its retention (a failed job: its failed retention)
        -- readers treat it as gone (`drop_ms`) and the reaper's sweep deletes it.
        local function finish(base, id, state, now, keep, ...)
          local job = base .. K.job .. id
          local f = redis.call('HMGET', job, 'retention_ms', 'failed_retention_ms', 'unique', 'dependents', 'error')
          if not keep and state == 'failed' then keep = tonumber(f[2] or FAILED_KEEP_MS) end
          keep = keep or tonumber(f[1] or '86400000')
          unlock(base, id, f[3])
          local drop = I(now + keep)
          redis.call('HSET', job, 'state', state, 'finished_ms', I(now), 'drop_ms', drop, ...)
          redis.call('ZADD', base .. HOLDING[state], drop, id)
          redis.call('PUBLISH', base .. EVENTS, state .. ' ' .. id)
          if state == 'failed' then count_minute(base, now, 'failed', 1) end
          if f[4] then
            local extra, result = {...}, nil
            for k = 1, #extra - 1, 2 do
              if extra[k] == 'result' then result = extra[k + 1] end
            end
            local kind, payload = outcome_of(id, state, result, f[5])
            notify(base, id, f[4], kind, payload, now)
          end
        end

        -- Deletes the failed jobs beyond `cap` that are due to be dropped first (with one retention: the oldest).
        local function cap_failed(base, cap)
          local excess = redis.call('ZCARD', base .. K.failed) - cap
          if excess > 0 then
            local oldest = redis.call('ZRANGE', base .. K.failed, 0, excess - 1)
            for _, id in ipairs(oldest) do redis.call('DEL', base .. K.job .. id, base .. K.dependencies .. id) end
            redis.call('ZREMRANGEBYRANK', base .. K.failed, 0, excess - 1)
          end
        end

        local function record_error(job, attempt, message, now, keep)
          local errors = cjson.decode(redis.call('HGET', job, 'errors') or '[]')
          errors[#errors + 1] = {attempt = attempt, message = message, at_ms = now}
          while #errors > keep do table.remove(errors, 1) end
          redis.call('HSET', job, 'errors', cjson.encode(errors), 'error', message)
        end

        -- A worker's write is valid only with the token of the job's current run.
        local function token_matches(base, job, token)
          local f = redis.call('HMGET', job, 'token', 'state')
          if f[1] == token and f[2] == 'running' then return true end
          redis.call('HINCRBY', base .. K.meta, 'stale_writes', 1)
          return false
        end

        local function promote_due(base, now, limit)
          local due = redis.call('ZRANGEBYSCORE', base .. K.scheduled, '-inf', I(now), 'LIMIT', '0', I(limit))
          if #due == 0 then return 0 end
          local ids, priorities = {}, {}
          for _, id in ipairs(due) do
            local job = base .. K.job .. id
            local priority = redis.call('HGET', job, 'priority')
            if priority then
              redis.call('HSET', job, 'state', 'queued')
              ids[#ids + 1] = id
              priorities[#priorities + 1] = tonumber(priority)
            end
          end
          redis.call('ZREM', base .. K.scheduled, unpack(due))
          pending_add_all(base, ids, priorities)
          wake(base, #ids)
          return #due
        end

        -- Limits (docs/limits.md). A queue's `limits` hash maps 'd:<scope>' (declared by workers)
        -- and 'o:<scope>' (set by operators; wins) to '<count> <period ms> <burst> <concurrency>'
        -- (0: none). Scopes: '*' (every job of the queue), '<task>', and '<task>#' (each limit key
        -- of the task's jobs: bucket '<task>#<lkey>'). A job over a limit at claim time is held
        -- back, still 'queued', in its bucket's `lwait:` list (and `throttled`), and the bucket in
        -- `limit_due` at the time its first job may run: the claim promotes it then (field `thr`
        -- '1'). Rate: GCRA on `lrate:<bucket>`. Concurrency: `lhold:<bucket>` holds the running
        -- jobs; every way out of `running` releases them (`held` lists the job's buckets) and makes
        -- the bucket due at once.

        -- The queue's limits by scope: {count, period, burst, conc}; nil without any.
        local function load_limits(base)
          local raw = redis.call('HGETALL', base .. K.limits)
          if #raw == 0 then return nil end
          local L = {}
          for i = 1, #raw, 2 do
            local kind, scope = string.sub(raw[i], 1, 1), string.sub(raw[i], 3)
            if kind == 'o' or L[scope] == nil then
              local v = {}
              for n in string.gmatch(raw[i + 1], '%S+') do v[#v + 1] = tonumber(n) end
              L[scope] = {count = v[1] or 0, period = v[2] or 0, burst = math.max(1, v[3] or 1), conc = v[4] or 0, own = kind == 'o'}
            end
          end
          return L
        end

        -- The buckets a job of `task` with limit key `lkey` counts in: {{bucket, spec}, ...}.
        local function buckets_of(L, task, lkey)
          local out = {}
          local function add(bucket, spec)
            if spec and (spec.count > 0 or spec.conc > 0) then out[#out + 1] = {bucket, spec} end
          end
          add('*', L['*'])
          add(task, L[task])
          if lkey and lkey ~= '' then add(task .. '#' .. lkey, L[task .. '#']) end
          return out
        end

        -- nil if a job may run in `bucket` now; else when it may ('inf': once a slot frees).
        local function limit_wait(base, bucket, spec, now)
          if spec.conc > 0 and redis.call('SCARD', base .. K.limitHold .. bucket) >= spec.conc then return 'inf' end
          if spec.count > 0 and spec.period > 0 then
            local interval = spec.period / spec.count
            local tat = math.max(tonumber(redis.call('GET', base .. K.limitRate .. bucket) or '0'), now)
            local at = tat - (spec.burst - 1) * interval
            if at > now then return I(math.ceil(at)) end
          end
          return nil
        end

        -- A job starts in `bucket`: takes its rate and slot.
        local function limit_take(base, bucket, spec, now, id)
          if spec.conc > 0 then redis.call('SADD', base .. K.limitHold .. bucket, id) end
          if spec.count > 0 and spec.period > 0 then
            local interval = spec.period / spec.count
            local key = base .. K.limitRate .. bucket
            -- Starts keep to a grid of `interval`: one that comes late (less than an interval)
            -- keeps its place, so lateness does not slow the rate down over time.
            local tat = tonumber(redis.call('GET', key) or '0')
            tat = (tat >= now - interval and tat or now) + interval
            redis.call('SET', key, string.format('%.3f', tat), 'PX', I(math.ceil(tat - now + spec.burst * interval) + 1000))
          end
        end

        -- Holds `id` back in `bucket` until `at` (ms, or 'inf'); `front` keeps a promoted job
        -- first in line.
        local function limit_hold(base, id, bucket, at, now, front)
          local list = base .. K.limitWait .. bucket
          if front then redis.call('LPUSH', list, id) else redis.call('RPUSH', list, id) end
          redis.call('ZADD', base .. K.throttled, I(now), id)
          redis.call('HSET', base .. K.job .. id, 'thr', '0')
          if at == 'inf' and front then
            redis.call('ZADD', base .. K.limitDue, '+inf', bucket)
          elseif at == 'inf' then
            redis.call('ZADD', base .. K.limitDue, 'NX', '+inf', bucket)
          elseif at then
            redis.call('ZADD', base .. K.limitDue, at, bucket)
          end
        end

        -- Whether `bucket` is still under a limit.
        local function limited(L, bucket)
          local hash = string.find(bucket, '#', 1, true)
          local spec = L[hash and string.sub(bucket, 1, hash) or bucket]
          return spec ~= nil and (spec.count > 0 or spec.conc > 0)
        end

        -- Moves the first held-back job of each due bucket to `pending` (all of them, up to 1,000,
        -- for a bucket whose limit was lifted); a bucket stays due a second later in case its job
        -- never comes back (cancelled), sooner when it runs.
        local function promote_limited(base, now, L)
          local due = redis.call('ZRANGEBYSCORE', base .. K.limitDue, '-inf', I(now), 'LIMIT', '0', '32')
          for _, bucket in ipairs(due) do
            local list = base .. K.limitWait .. bucket
            local budget = limited(L, bucket) and 1 or 1000
            local id = redis.call('LPOP', list)
            while id do
              redis.call('ZREM', base .. K.throttled, id)
              local f = redis.call('HMGET', base .. K.job .. id, 'state', 'priority')
              if f[1] == 'queued' then
                redis.call('HSET', base .. K.job .. id, 'thr', '1')
                -- First in its priority band (in the order promoted): its turn has come, whatever
                -- else is queued.
                redis.call('ZADD', base .. K.pending, I((9 - tonumber(f[2])) * BAND - budget), id)
                budget = budget - 1
                if budget == 0 then break end
              end
              id = redis.call('LPOP', list)
            end
            if redis.call('EXISTS', list) == 1 then
              redis.call('ZADD', base .. K.limitDue, I(now + 1000), bucket)
            else
              redis.call('ZREM', base .. K.limitDue, bucket)
            end
          end
        end

        -- Gives back the concurrency slots a job held (`held`: its buckets, '\n'-separated).
        local function release_slots(base, id, held, now)
          if not held then return end
          for bucket in string.gmatch(held, '[^\n]+') do
            redis.call('SREM', base .. K.limitHold .. bucket, id)
            if redis.call('EXISTS', base .. K.limitWait .. bucket) == 1 then
              redis.call('ZADD', base .. K.limitDue, I(now), bucket)
            end
          end
          redis.call('HDEL', base .. K.job .. id, 'held')
        end

        -- The limit check of one popped job: true if it may run (its buckets taken, `held`
        -- set), false if it was held back.
        local function limit_admit(base, L, id, task, lkey, promoted, now)
          local buckets = buckets_of(L, task, lkey)
          if #buckets == 0 then return true end
          for _, b in ipairs(buckets) do
            -- A job that was not promoted waits behind those held back already.
            if not promoted and redis.call('EXISTS', base .. K.limitWait .. b[1]) == 1 then
              limit_hold(base, id, b[1], nil, now, false)
              return false
            end
            local at = limit_wait(base, b[1], b[2], now)
            if at then
              limit_hold(base, id, b[1], at, now, promoted)
              return false
            end
          end
          local held = {}
          for _, b in ipairs(buckets) do
            limit_take(base, b[1], b[2], now, id)
            if b[2].conc > 0 then held[#held + 1] = b[1] end
            -- The next held-back job's turn.
            if redis.call('EXISTS', base .. K.limitWait .. b[1]) == 1 then
              redis.call('ZADD', base .. K.limitDue, limit_wait(base, b[1], b[2], now) or I(now), b[1])
            end
          end
          if #held > 0 then redis.call('HSET', base .. K.job .. id, 'held', table.concat(held, '\n')) end
          if promoted then redis.call('HDEL', base .. K.job .. id, 'thr') end
          return true
        end

        -- ARGV: field ('d:<scope>' or 'o:<scope>'), value ('' deletes it). Every held-back bucket
        -- becomes due, so a looser limit applies at once. Returns 1.
        local function limit(keys, args)
          local base = keys[1]
          if args[2] == '' then
            redis.call('HDEL', base .. K.limits, args[1])
          else
            redis.call('HSET', base .. K.limits, args[1], args[2])
          end
          local buckets = redis.call('ZRANGE', base .. K.limitDue, '0', '-1')
          local now = now_ms()
          for _, bucket in ipairs(buckets) do redis.call('ZADD', base .. K.limitDue, I(now), bucket) end
          -- The last limit gone: claims no longer look at held-back jobs, so they go now (and
          -- what is left over, at the next reaper pass).
          if #buckets > 0 and redis.call('EXISTS', base .. K.limits) == 0 then promote_limited(base, now, {}) end
          if #buckets > 0 then wake(base, #buckets) end
          return 1
        end

        -- Dependencies (docs/workflows.md). A job that depends on others is created `waiting` by
        -- tern_wait, with `parents` (their ids, space-separated), `deps_total`, `input_from`
        -- (given, output, outputs, outcomes, summary), `on_fail` (cancel, run) and `join` ('1': no
        -- task runs; it succeeds with its made input as its result). `deps:<id>` maps each
        -- dependency's index to its outcome: 'o' .. output JSON, or 'e' .. message. A job others
        -- depend on lists them in `dependents` ('<id> <index>' lines). When it finishes, its
        -- dependents on this queue learn its outcome in the same call (`notify`); for those on
        -- other queues, and when it is retried, it enters the `relay` set, which a worker or the API
        -- drains (tern_relay_take, then tern_resolve on each dependent's queue, then
        -- tern_relay_done): resolving is idempotent, so a crash anywhere only delays it until the
        -- next reaper pass.

        local ORPHAN_KEEP_MS = '604800000' -- outcomes recorded for a job not created (yet): 7 days

        -- The made input of a job whose dependencies all finished.
        local function made_input(base, id, from, total, given)
          if from == 'given' then return given end
          local raw = redis.call('HGETALL', base .. K.dependencies .. id)
          local by_index = {}
          for k = 1, #raw, 2 do by_index[tonumber(raw[k])] = raw[k + 1] end
          if from == 'output' then return string.sub(by_index[0] or 'onull', 2) end
          if from == 'summary' then
            local ok = 0
            for index = 0, total - 1 do
              if string.sub(by_index[index] or 'e', 1, 1) == 'o' then ok = ok + 1 end
            end
            return '{"total":' .. I(total) .. ',"succeeded":' .. I(ok) .. ',"failed":' .. I(total - ok) .. '}'
          end
          local parts = {}
          for index = 0, total - 1 do
            local v = by_index[index] or 'onull'
            local body = string.sub(v, 2)
            if from == 'outputs' then
              parts[#parts + 1] = string.sub(v, 1, 1) == 'o' and body or 'null'
            elseif string.sub(v, 1, 1) == 'o' then
              parts[#parts + 1] = '{"ok":' .. body .. '}'
            else
              parts[#parts + 1] = '{"error":' .. cjson.encode(body) .. '}'
            end
          end
          return '[' .. table.concat(parts, ',') .. ']'
        end

        -- Cancels a waiting job because its dependency `index` failed ('<id> <state>: <error>').
        local function cancel_for(base, id, index, message, now)
          local job = base .. K.job .. id
          redis.call('ZREM', base .. K.waiting, id)
          redis.call('HSET', job, 'dep_cancel', index)
          record_error(job, 0, 'dependency ' .. message, now, ERRORS_KEPT)
          finish(base, id, 'cancelled', now, nil)
        end

        -- Releases a waiting job whose dependencies all finished: queued with its made input, or,
        -- for a join, succeeded with it as its result. Returns the new state.
        local function release_waiting(base, id, now)
          local job = base .. K.job .. id
          local f = redis.call('HMGET', job, 'input_from', 'deps_total', 'join', 'input', 'priority')
          local input = made_input(base, id, f[1], tonumber(f[2]), f[4])
          redis.call('ZREM', base .. K.waiting, id)
          if f[3] == '1' then
            finish(base, id, 'succeeded', now, nil, 'result', input)
            return 'succeeded'
          end
          redis.call('HSET', job, 'state', 'queued', 'input', input, 'due_ms', I(now), 'released', '1')
          pending_add_all(base, {id}, {tonumber(f[5])})
          wake(base, 1)
          return 'queued'
        end

        -- After an outcome is recorded or changed (`failed_index`, `failure`: a failure just
        -- recorded; `scan`: look for any recorded failure): cancel (a failure under on_fail
        -- cancel), release (all known), or keep waiting. Returns the state.
        local function settle(base, id, now, failed_index, failure, scan)
          local job = base .. K.job .. id
          local f = redis.call('HMGET', job, 'state', 'on_fail', 'deps_total')
          if not f[1] then return nil end
          if f[1] ~= 'waiting' then return f[1] end
          local all_known = redis.call('HLEN', base .. K.dependencies .. id) >= tonumber(f[3])
          -- Asked, or all known: none may have failed (one recorded while the job was cancelled
          -- and then reopened would not have been seen).
          if not failed_index and f[2] == 'cancel' and (scan or all_known) then
            local raw = redis.call('HGETALL', base .. K.dependencies .. id)
            for k = 1, #raw, 2 do
              if string.sub(raw[k + 1], 1, 1) == 'e' and not failed_index then
                failed_index, failure = raw[k], string.sub(raw[k + 1], 2)
              end
            end
          end
          if failed_index and f[2] == 'cancel' then
            cancel_for(base, id, failed_index, failure, now)
            return 'cancelled'
          end
          if all_known then return release_waiting(base, id, now) end
          return 'waiting'
        end

        -- A dependency's outcome is no longer what was recorded (it was retried): a job cancelled
        -- because of it waits again, and its own dependents learn it through the relay. Returns
        -- whether it entered the relay.
        local function reopen(base, id, index, now)
          local job = base .. K.job .. id
          local f = redis.call('HMGET', job, 'state', 'dep_cancel', 'dependents', 'drop_ms')
          -- One past its retention is gone (to readers, and to a retry of its own): it stays so.
          if f[1] ~= 'cancelled' or f[2] ~= index or (f[4] and tonumber(f[4]) <= now) then return false end
          redis.call('ZREM', base .. K.cancelled, id)
          redis.call('HDEL', job, 'finished_ms', 'drop_ms', 'dep_cancel', 'error', 'cancel_requested')
          redis.call('HSET', job, 'state', 'waiting')
          redis.call('ZADD', base .. K.waiting, I(now), id)
          if f[3] then relay_add(base, id, now) end
          return f[3] ~= false
        end

        -- ARGV: parent id, reference ('<dependent id> <index>') pairs. Registers each dependent
        -- with a parent that has not succeeded (a failed, cancelled or expired one may be
        -- retried). Returns per pair {'live'}, {'o'|'e', payload} for a finished parent,
        -- {'e', '<id> gone'} for an unknown one, or {'full'} (at MAX_DEPENDENTS).
        local function depend(keys, args)
          local base = keys[1]
          local now = now_ms()
          local out = {}
          for i = 1, #args, 2 do
            local job = base .. K.job .. args[i]
            local f = redis.call('HMGET', job, 'state', 'drop_ms', 'dependents', 'dependents_n')
            local state = f[1] or nil
            if f[2] and tonumber(f[2]) <= now then state = nil end
            local n = tonumber(f[4] or '0')
            -- Failed, cancelled or expired: a retry of it resumes its dependents, so this one is
            -- registered too (while there is room), besides learning the outcome now.
            local registers = n < MAX_DEPENDENTS and state and state ~= 'succeeded'
            if registers then
              redis.call('HSET', job, 'dependents', f[3] and (f[3] .. '\n' .. args[i + 1]) or args[i + 1], 'dependents_n', I(n + 1))
            end
            if is_live(state) then
              out[#out + 1] = registers and {'live'} or {'full'}
            elseif state then
              local f = redis.call('HMGET', job, 'result', 'error')
              local kind, payload = outcome_of(args[i], state, f[1], f[2])
              out[#out + 1] = {kind, payload}
            else
              out[#out + 1] = {'e', args[i] .. ' gone'}
            end
          end
          return out
        end

        -- ARGV: 15 fields per job, then its known outcomes: id, task, input, priority,
        -- max_attempts, retention_ms, failed_retention_ms, parents, input_from, on_fail, join,
        -- workflow ('' none), headers ('' none), limit key ('' none), n, then n × {index, kind, payload}. Creates jobs that wait for their
        -- dependencies (registered with them before, by tern_depend). Returns {id, state} per job.
        local function wait(keys, args)
          local base = keys[1]
          local now, nows = clock()
          local out = {}
          local i = 1
          while i <= #args do
            local id, parents = args[i], args[i + 7]
            local job = base .. K.job .. id
            local deps = base .. K.dependencies .. id
            local total = select(2, string.gsub(parents, ' ', ' ')) + 1
            local fields = {'v', '1', 'id', id, 'task', args[i + 1], 'input', args[i + 2], 'priority', args[i + 3],
              'attempts', '0', 'max_attempts', args[i + 4], 'state', 'waiting', 'created_ms', nows,
              'retention_ms', args[i + 5], 'failed_retention_ms', args[i + 6], 'parents', parents, 'deps_total', I(total),
              'input_from', args[i + 8], 'on_fail', args[i + 9]}
            if args[i + 10] == '1' then fields[#fields + 1] = 'join' fields[#fields + 1] = '1' end
            if args[i + 11] ~= '' then fields[#fields + 1] = 'workflow' fields[#fields + 1] = args[i + 11] end
            if args[i + 12] ~= '' then fields[#fields + 1] = 'headers' fields[#fields + 1] = args[i + 12] end
            if args[i + 13] ~= '' then fields[#fields + 1] = 'lkey' fields[#fields + 1] = args[i + 13] end
            redis.call('HSET', job, unpack(fields))
            redis.call('PERSIST', deps)
            local n = tonumber(args[i + 14])
            for k = 0, n - 1 do
              local j = i + 15 + 3 * k
              redis.call('HSETNX', deps, args[j], args[j + 1] .. args[j + 2])
            end
            redis.call('ZADD', base .. K.waiting, nows, id)
            out[#out + 1] = {id, settle(base, id, now, nil, nil, true)}
            i = i + 15 + 3 * n
          end
          return out
        end

        -- ARGV: dependent id, index, kind ('o', 'e' or 'reopen'), payload quadruples: makes each
        -- dependent's record of a dependency match the dependency's current outcome. Returns the
        -- jobs this call added to the relay (dependents that finished or reopened here and have
        -- dependents on other queues), to drain next.
        resolve_one = function(base, id, index, kind, payload, now)
          local deps = base .. K.dependencies .. id
          local new = kind ~= 'reopen' and (kind .. payload) or nil
          -- The usual case, a first outcome, costs one HSETNX; otherwise compare with the old.
          local changed = new ~= nil and redis.call('HSETNX', deps, index, new) == 1
          local replaced = false
          if not changed then
            local old = redis.call('HGET', deps, index)
            if old and old ~= new then
              redis.call('HDEL', deps, index)
              reopen(base, id, index, now)
              replaced = true
              if new then
                redis.call('HSET', deps, index, new)
                changed = true
              end
            end
          end
          -- After a replaced outcome, another dependency's failure may be what decides.
          if (changed or replaced) and settle(base, id, now, kind == 'e' and index or nil, payload, replaced) == nil then
            redis.call('PEXPIRE', deps, ORPHAN_KEEP_MS) -- not created (yet)
          end
        end

        local function resolve(keys, args)
          local base = keys[1]
          local now = now_ms()
          for i = 1, #args, 4 do resolve_one(base, args[i], args[i + 1], args[i + 2], args[i + 3], now) end
          return CALL.relayed
        end

        -- ARGV: limit, min_age_ms, then ids (none: the oldest entries at least min_age_ms old).
        -- Returns {id, score, kind ('o', 'e', 'reopen'), payload, dependents} per relay entry.
        local function relay_take(keys, args)
          local base = keys[1]
          local now = now_ms()
          local ids = {}
          if #args > 2 then
            for i = 3, #args do ids[#ids + 1] = args[i] end
          else
            ids = redis.call('ZRANGEBYSCORE', base .. K.relay, '-inf', I(now - tonumber(args[2])), 'LIMIT', '0', args[1])
          end
          local out = {}
          for _, id in ipairs(ids) do
            local score = redis.call('ZSCORE', base .. K.relay, id)
            if score then
              -- Past its retention but not swept yet (the sweep waits for the relay): its outcome
              -- still stands for its dependents.
              local f = redis.call('HMGET', base .. K.job .. id, 'state', 'drop_ms', 'dependents', 'result', 'error')
              local state = f[1] or nil
              local kind, payload = 'e', id .. ' gone'
              if state and is_live(state) then
                kind, payload = 'reopen', ''
              elseif state then
                kind, payload = outcome_of(id, state, f[4], f[5])
              end
              out[#out + 1] = {id, score, kind, payload, f[3] or ''}
            end
          end
          return out
        end

        -- ARGV: id, score pairs. Removes relay entries that have not changed since they were taken.
        local function relay_done(keys, args)
          local base = keys[1]
          for i = 1, #args, 2 do
            if redis.call('ZSCORE', base .. K.relay, args[i]) == args[i + 1] then redis.call('ZREM', base .. K.relay, args[i]) end
          end
          return 1
        end

        -- Adds `expires_ms` (due + expires_after) to a job's fields, unless it never expires (-1).
        local function add_expiry(fields, due, expires_after)
          if expires_after >= 0 then
            fields[#fields + 1] = 'expires_ms'
            fields[#fields + 1] = I(due + expires_after)
          end
        end

        -- ARGV: the queue's cap on waiting jobs (-1 none), then 17 fields per job: id, task, input,
        -- priority, max_attempts, due_ms (-1 now, -2 after delay_ms), delay_ms, expires_after_ms
        -- (-1 never), retention_ms, idempotency hash ('' none), idempotency ttl ms, the request's
        -- fingerprint, failed_retention_ms, unique ('<a|u|d> <key>', '' none), the unique window ms,
        -- headers (a JSON object, '' none), limit key ('' none).
        -- An idempotency key holds '<id> <fingerprint>'. Returns {id, created (1 created, 0 the
        -- key's job, 2 refused: the queue is at its cap, 3 the key is held by another request, 4 the
        -- unique key's job, 5 the debounce key's job, given this input and a new due time), state}
        -- per job. A debounced job is due one window after its last enqueue.
        local function enqueue(keys, args)
          local base = keys[1]
          local now, nows = clock()
          local out = {}
          local ready, priorities, later = {}, {}, {}
          local cap = tonumber(args[1])
          local room = -1
          if cap >= 0 then
            room = cap - redis.call('ZCARD', base .. K.pending) - redis.call('ZCARD', base .. K.scheduled)
              - redis.call('ZCARD', base .. K.throttled)
          end
          for i = 2, #args, 17 do
            local id, idem, fingerprint, unique = args[i], args[i + 9], args[i + 11], args[i + 13]
            local existing = idem ~= '' and redis.call('GET', base .. K.idempotency .. idem)
            local holder, holder_state = nil, nil
            if not existing and unique ~= '' then holder, holder_state = unique_holder(base, unique, now) end
            if existing then
              local space = string.find(existing, ' ', 1, true)
              local held, status = existing, 0
              if space then
                held = string.sub(existing, 1, space - 1)
                if string.sub(existing, space + 1) ~= fingerprint then status = 3 end
              end
              local state = state_of(base .. K.job .. held, now)
              out[#out + 1] = {held, status, state or 'gone'}
            elseif unique ~= '' and holder and string.sub(unique, 1, 1) == 'd' then
              local due = now + tonumber(args[i + 14])
              local fields = {'input', args[i + 2], 'due_ms', I(due)}
              add_expiry(fields, due, tonumber(args[i + 7]))
              if args[i + 15] ~= '' then
                fields[#fields + 1] = 'headers'
                fields[#fields + 1] = args[i + 15]
              else
                redis.call('HDEL', base .. K.job .. holder, 'headers')
              end
              redis.call('HSET', base .. K.job .. holder, unpack(fields))
              later[#later + 1] = I(due)
              later[#later + 1] = holder
              out[#out + 1] = {holder, 5, 'scheduled'}
            elseif holder then
              out[#out + 1] = {holder, 4, holder_state or 'gone'}
            elseif cap >= 0 and room <= 0 then
              out[#out + 1] = {id, 2, 'refused'}
            else
              room = room - 1
              local priority = tonumber(args[i + 3])
              local due = tonumber(args[i + 5])
              if due == -1 then due = now elseif due == -2 then due = now + tonumber(args[i + 6]) end
              if string.sub(unique, 1, 1) == 'd' then due = now + tonumber(args[i + 14]) end
              local state = due > now and 'scheduled' or 'queued'
              local dues = due == now and nows or I(due)
              local keep, failed_keep = args[i + 8], args[i + 12]
              if tonumber(keep) < 1 then keep = '1' end
              if tonumber(failed_keep) < 1 then failed_keep = '1' end
              local fields = {'v', '1', 'id', id, 'task', args[i + 1], 'input', args[i + 2], 'priority', args[i + 3],
                'attempts', '0', 'max_attempts', args[i + 4], 'state', state, 'created_ms', nows, 'due_ms', dues,
                'retention_ms', keep, 'failed_retention_ms', failed_keep}
              add_expiry(fields, due, tonumber(args[i + 7]))
              if args[i + 15] ~= '' then
                fields[#fields + 1] = 'headers'
                fields[#fields + 1] = args[i + 15]
              end
              if args[i + 16] ~= '' then
                fields[#fields + 1] = 'lkey'
                fields[#fields + 1] = args[i + 16]
              end
              redis.call('HSET', base .. K.job .. id, unpack(fields))
              if idem ~= '' then
                redis.call('SET', base .. K.idempotency .. idem, id .. ' ' .. fingerprint, 'PX', I(math.max(1, tonumber(args[i + 10]))))
              end
              if unique ~= '' then
                redis.call('HSET', base .. K.job .. id, 'unique', unique)
                local lock = base .. K.unique .. string.sub(unique, 3)
                if string.sub(unique, 1, 1) == 'u' then
                  redis.call('SET', lock, id, 'PX', args[i + 14])
                else
                  redis.call('SET', lock, id)
                end
              end
              if state == 'queued' then
                ready[#ready + 1] = id
                priorities[#priorities + 1] = priority
              else
                later[#later + 1] = dues
                later[#later + 1] = id
              end
              out[#out + 1] = {id, 1, state}
            end
          end
          pending_add_all(base, ready, priorities)
          zadd_all(base .. K.scheduled, later)
          -- Idle workers wake for a scheduled job too, to wait for its due time instead.
          if #ready > 0 or #later > 0 then wake(base, math.max(#ready, 1)) end
          return out
        end

        -- ARGV: limit, worker, lease_ms, and 'flat' (optional). Returns {id, task, input, attempt,
        -- max_attempts, token, suspect, headers} per job; with 'flat', the same 8 values per job in
        -- one list, which costs Redis less than a table per job (workers before it ask for tables).
        local function claim(keys, args)
          local base = keys[1]
          local limit, worker, lease, flat = tonumber(args[1]), args[2], tonumber(args[3]), args[4] == 'flat'
          local now, nows = clock()
          promote_due(base, now, 1000)
          if redis.call('HGET', base .. K.meta, 'paused') == '1' then return {} end
          local L = load_limits(base)
          if L then promote_limited(base, now, L) end
          local out, leases, waits, claimed = {}, {}, {}, 0
          local deadline = I(now + lease)
          local batch = nil
          while claimed < limit do
            local popped = redis.call('ZPOPMIN', base .. K.pending, I(limit - claimed))
            if #popped == 0 then break end
            batch = batch or worker .. '/' .. I(redis.call('HINCRBY', base .. K.meta, 'token', 1)) .. '/'
            for i = 1, #popped, 2 do
              local id = popped[i]
              local job = base .. K.job .. id
              -- The limit fields only when the queue has limits: each field read costs the claim.
              local f = L and redis.call('HMGET', job, 'task', 'input', 'attempts', 'max_attempts', 'expires_ms', 'state', 'suspect', 'due_ms', 'headers', 'lkey', 'thr')
                or redis.call('HMGET', job, 'task', 'input', 'attempts', 'max_attempts', 'expires_ms', 'state', 'suspect', 'due_ms', 'headers')
              if f[6] == 'queued' then
                if f[5] and tonumber(f[3]) == 0 and tonumber(f[5]) < now then
                  finish(base, id, 'expired', now, nil)
                elseif L and not limit_admit(base, L, id, f[1], f[10], f[11] == '1', now) then
                  -- Held back by a limit: another job may run instead.
                else
                  local attempt = tonumber(f[3]) + 1
                  local token = batch .. I(claimed)
                  redis.call('HSET', job, 'state', 'running', 'attempts', I(attempt), 'started_ms', nows,
                    'worker', worker, 'token', token)
                  leases[#leases + 1] = deadline
                  leases[#leases + 1] = id
                  local suspect, headers = f[7] == '1' and 1 or 0, f[9] or ''
                  if flat then
                    local n = #out
                    out[n + 1], out[n + 2], out[n + 3], out[n + 4] = id, f[1], f[2], attempt
                    out[n + 5], out[n + 6], out[n + 7], out[n + 8] = tonumber(f[4]), token, suspect, headers
                  else
                    out[#out + 1] = {id, f[1], f[2], attempt, tonumber(f[4]), token, suspect, headers}
                  end
                  claimed = claimed + 1
                  if attempt == 1 and f[8] then waits[#waits + 1] = math.max(0, now - tonumber(f[8])) end
                end
              end
            end
          end
          zadd_all(base .. K.active, leases)
          record_latency(base, now, waits)
          return out
        end

        -- ARGV: lease_ms, then id, token pairs. Returns {lost ids, ids whose cancellation was asked}.
        local function heartbeat(keys, args)
          local base = keys[1]
          local deadline = I(now_ms() + tonumber(args[1]))
          local lost, cancels, leases = {}, {}, {}
          for i = 2, #args, 2 do
            local id, token = args[i], args[i + 1]
            local f = redis.call('HMGET', base .. K.job .. id, 'token', 'state', 'cancel_requested')
            if f[1] ~= token or f[2] ~= 'running' then
              lost[#lost + 1] = id
            else
              leases[#leases + 1] = deadline
              leases[#leases + 1] = id
              if f[3] == '1' then cancels[#cancels + 1] = id end
            end
          end
          zadd_all(base .. K.active, leases, 'XX')
          return {lost, cancels}
        end

        -- ARGV: id, token, result triplets. Returns 1 per job (2 when its dependents on other
        -- queues, or a dependent's own, need the relay drained; 1 again for a repeat of a
        -- completion that was done), or 0 for a stale token. Dependents
        -- on this queue get the job's output in this call.
        local function complete(keys, args)
          local base = keys[1]
          local now, nows = clock()
          local out, done, finished = {}, {}, {}
          for i = 1, #args, 3 do
            local id = args[i]
            local job = base .. K.job .. id
            local f = redis.call('HMGET', job, 'token', 'state', 'retention_ms', 'unique', 'dependents', 'held')
            if f[1] == args[i + 1] and f[2] == 'running' then
              unlock(base, id, f[4])
              release_slots(base, id, f[6], now)
              local drop = I(now + tonumber(f[3] or '86400000'))
              redis.call('HSET', job, 'state', 'succeeded', 'finished_ms', nows, 'drop_ms', drop, 'result', args[i + 2])
              done[#done + 1] = id
              finished[#finished + 1] = drop
              finished[#finished + 1] = id
              local relayed = #CALL.relayed
              if f[5] then notify(base, id, f[5], 'o', args[i + 2], now) end
              out[#out + 1] = #CALL.relayed > relayed and 2 or 1
            elseif f[1] == args[i + 1] and f[2] == 'succeeded' then
              -- This very completion again (its reply was lost, the worker retried): done already,
              -- and the relay drained by the caller if it has not been yet.
              out[#out + 1] = redis.call('ZSCORE', base .. K.relay, id) and 2 or 1
            else
              redis.call('HINCRBY', base .. K.meta, 'stale_writes', 1)
              out[#out + 1] = 0
            end
          end
          if #done > 0 then
            redis.call('ZREM', base .. K.active, unpack(done))
            redis.call('PUBLISH', base .. EVENTS, 'succeeded ' .. table.concat(done, ' '))
            count_minute(base, now, 'succeeded', #done)
          end
          zadd_all(base .. K.succeeded, finished)
          return out
        end

        -- ARGV: id, token, message, retry_delay_ms (-1: fail for good), failed cap, errors kept.
        -- Returns the new state, or 0 for a stale token.
        local function fail(keys, args)
          local base, id = keys[1], args[1]
          local job = base .. K.job .. id
          if not token_matches(base, job, args[2]) then return 0 end
          local now = now_ms()
          record_error(job, tonumber(redis.call('HGET', job, 'attempts')), args[3], now, tonumber(args[6]))
          redis.call('ZREM', base .. K.active, id)
          release_slots(base, id, redis.call('HGET', job, 'held'), now)
          if redis.call('HGET', job, 'cancel_requested') == '1' then
            -- Cancellation was asked while it ran: the failure stops it for good.
            finish(base, id, 'cancelled', now, nil)
            return 'cancelled'
          end
          local delay = tonumber(args[4])
          if delay >= 0 then
            local due = I(now + delay)
            redis.call('HSET', job, 'state', 'retrying', 'due_ms', due)
            redis.call('ZADD', base .. K.scheduled, due, id)
            wake(base) -- an idle worker then waits for the retry's due time
            redis.call('PUBLISH', base .. EVENTS, 'retrying ' .. id)
            return 'retrying'
          end
          finish(base, id, 'failed', now, nil)
          cap_failed(base, tonumber(args[5]))
          return 'failed'
        end

        -- ARGV: id, token. The worker stopped the job after a cancel request. Returns 1 or 0.
        local function cancelled(keys, args)
          local base, id = keys[1], args[1]
          local job = base .. K.job .. id
          if not token_matches(base, job, args[2]) then return 0 end
          redis.call('ZREM', base .. K.active, id)
          local now = now_ms()
          release_slots(base, id, redis.call('HGET', job, 'held'), now)
          finish(base, id, 'cancelled', now, nil)
          return 1
        end

        -- ARGV: id. Returns the state after the call, or false for an unknown id. A running job is
        -- marked; its worker stops it and reports `cancelled`.
        local function cancel(keys, args)
          local base, id = keys[1], args[1]
          local job = base .. K.job .. id
          local now = now_ms()
          local state = state_of(job, now)
          if not state then return false end
          if state == 'queued' then
            -- A job held back by a limit stays in its bucket's list, which skips it.
            redis.call('ZREM', base .. K.pending, id)
            redis.call('ZREM', base .. K.throttled, id)
          elseif state == 'scheduled' or state == 'retrying' then
            redis.call('ZREM', base .. K.scheduled, id)
          elseif state == 'waiting' then
            redis.call('ZREM', base .. K.waiting, id)
          elseif state == 'running' then
            redis.call('HSET', job, 'cancel_requested', '1')
            return 'running'
          else
            return state
          end
          finish(base, id, 'cancelled', now, nil)
          return 'cancelled'
        end

        -- ARGV: id, token pairs. Returns jobs to the queue at once, without using up an attempt.
        local function release(keys, args)
          local base = keys[1]
          local ids, priorities = {}, {}
          for i = 1, #args, 2 do
            local id = args[i]
            local job = base .. K.job .. id
            if token_matches(base, job, args[i + 1]) then
              redis.call('ZREM', base .. K.active, id)
              release_slots(base, id, redis.call('HGET', job, 'held'), now_ms())
              if redis.call('HGET', job, 'cancel_requested') == '1' then
                -- Cancellation was asked while it ran: released means stopped, so it is cancelled.
                finish(base, id, 'cancelled', now_ms(), nil)
              else
              redis.call('HINCRBY', job, 'attempts', -1)
              redis.call('HSET', job, 'state', 'queued')
              redis.call('HDEL', job, 'token', 'worker')
              ids[#ids + 1] = id
              priorities[#priorities + 1] = tonumber(redis.call('HGET', job, 'priority'))
              end
            end
          end
          pending_add_all(base, ids, priorities)
          if #ids > 0 then wake(base, #ids) end
          return #ids
        end

        -- ARGV: id, token, reason, max_crashes, failed cap, errors kept, shared ('1': the process
        -- ran other jobs too). The process running the job died: the error is recorded and, unless
        -- the crash is only suspected (shared, and the job not yet a suspect), its crash count
        -- rises; at max_crashes the job fails ('worker_crashed: <reason>'), else it is queued again
        -- at once without using an attempt. Returns the new state, or 0 for a stale token.
        local function crashed(keys, args)
          local base, id = keys[1], args[1]
          local job = base .. K.job .. id
          if not token_matches(base, job, args[2]) then return 0 end
          local now = now_ms()
          -- A crash in a process that ran other jobs too is charged to none of them: each becomes a
          -- suspect, which workers run alone from then on, so its next crash is its own.
          local charged = args[7] ~= '1' or redis.call('HGET', job, 'suspect') == '1'
          local crashes = tonumber(redis.call('HGET', job, 'crashes') or '0')
          local message = 'worker_crashed: ' .. args[3]
          if charged then
            crashes = redis.call('HINCRBY', job, 'crashes', 1)
          else
            redis.call('HSET', job, 'suspect', 1)
            message = message .. ' (the process ran other jobs too: not counted; the job runs alone from now on)'
          end
          record_error(job, tonumber(redis.call('HGET', job, 'attempts')), message, now, tonumber(args[6]))
          redis.call('ZREM', base .. K.active, id)
          release_slots(base, id, redis.call('HGET', job, 'held'), now)
          redis.call('HDEL', job, 'token', 'worker')
          if crashes >= tonumber(args[4]) or redis.call('HGET', job, 'cancel_requested') == '1' then
            local state = redis.call('HGET', job, 'cancel_requested') == '1' and 'cancelled' or 'failed'
            finish(base, id, state, now, nil)
            if state == 'failed' then cap_failed(base, tonumber(args[5])) end
            return state
          end
          redis.call('HINCRBY', job, 'attempts', -1)
          redis.call('HSET', job, 'state', 'queued')
          pending_add_all(base, {id}, {tonumber(redis.call('HGET', job, 'priority'))})
          wake(base, 1)
          return 'queued'
        end

        -- ARGV: id, token, value, message. Returns 1 or 0.
        local function progress(keys, args)
          local base, id = keys[1], args[1]
          local job = base .. K.job .. id
          if not token_matches(base, job, args[2]) then return 0 end
          redis.call('HSET', job, 'progress', args[3], 'progress_message', args[4])
          redis.call('PUBLISH', base .. EVENTS, 'progress ' .. id)
          return 1
        end

        -- ARGV: limit, failed cap, errors kept. Returns jobs whose lease expired to the queue (or
        -- fails them when no attempt is left), promotes due jobs, deletes up to `limit` finished
        -- jobs per terminal state whose retention has passed, and repairs the active set. Returns
        -- {requeued, failed, promoted, repaired, dropped}.
        local function reap(keys, args)
          local base = keys[1]
          local limit = tonumber(args[1])
          local now = now_ms()
          local promoted = promote_due(base, now, limit)
          -- Without limits, jobs still held back (the last limit was deleted) are let go.
          promote_limited(base, now, load_limits(base) or {})
          local failed, repaired = 0, 0
          local ids, priorities = {}, {}
          local expired = redis.call('ZRANGEBYSCORE', base .. K.active, '-inf', I(now), 'LIMIT', '0', I(limit))
          for _, id in ipairs(expired) do
            local job = base .. K.job .. id
            local f = redis.call('HMGET', job, 'state', 'attempts', 'max_attempts', 'priority', 'cancel_requested', 'held')
            redis.call('ZREM', base .. K.active, id)
            -- A lost lease gives its limit slots back.
            release_slots(base, id, f[6], now)
            if f[1] ~= 'running' then
              repaired = repaired + 1
            else
              redis.call('HINCRBY', base .. K.meta, 'lost_leases', 1)
              redis.call('HINCRBY', job, 'lost', 1)
              record_error(job, tonumber(f[2]), 'lease expired: the worker stopped reporting', now, tonumber(args[3]))
              redis.call('HDEL', job, 'token')
              if f[5] == '1' then
                finish(base, id, 'cancelled', now, nil)
              elseif tonumber(f[2]) >= tonumber(f[3]) then
                finish(base, id, 'failed', now, nil)
                cap_failed(base, tonumber(args[2]))
                failed = failed + 1
              else
                redis.call('HSET', job, 'state', 'queued')
                ids[#ids + 1] = id
                priorities[#priorities + 1] = tonumber(f[4])
              end
            end
          end
          pending_add_all(base, ids, priorities)
          if #ids > 0 then wake(base, #ids) end
          local dropped = 0
          local relaying = math.min(redis.call('ZCARD', base .. K.relay), limit)
          for _, state in ipairs({'succeeded', 'failed', 'cancelled', 'expired'}) do
            -- Looks past the jobs it leaves, so that they never hold the others back.
            local gone = redis.call('ZRANGEBYSCORE', base .. HOLDING[state], '-inf', I(now), 'LIMIT', '0', I(limit + relaying))
            if relaying > 0 then
              -- A job whose dependents have not learnt its outcome yet stays until they have (for
              -- an hour at most: an entry older than that is stuck, and its job goes anyway).
              local kept = {}
              for _, id in ipairs(gone) do
                local score = redis.call('ZSCORE', base .. K.relay, id)
                if #kept < limit and (not score or tonumber(score) < now - RELAY_STUCK_MS) then kept[#kept + 1] = id end
              end
              gone = kept
            end
            if #gone > 0 then
              local jobs = {}
              for _, id in ipairs(gone) do
                jobs[#jobs + 1] = base .. K.job .. id
                jobs[#jobs + 1] = base .. K.dependencies .. id
              end
              redis.call('UNLINK', unpack(jobs))
              redis.call('ZREM', base .. HOLDING[state], unpack(gone))
              dropped = math.max(dropped, #gone)
            end
          end
          return {#ids, failed, promoted, repaired, dropped}
        end

        -- ARGV: 'job', id  or  'failed', limit. Puts failed, cancelled or expired jobs back in
        -- their queue as new (attempts 0; the error history stays). For 'job' returns the state after
        -- the call (unchanged unless it was finished), or false for an unknown id; for 'failed'
        -- returns how many failed jobs were retried, oldest first.
        local function retry(keys, args)
          local base = keys[1]
          local ids = {}
          local now, nows = clock()
          if args[1] == 'job' then
            local state = state_of(base .. K.job .. args[2], now)
            if not state then return false end
            if state ~= 'failed' and state ~= 'cancelled' and state ~= 'expired' then return state end
            -- Cancelled because a job it depends on failed: retrying that job resumes this one.
            if redis.call('HEXISTS', base .. K.job .. args[2], 'dep_cancel') == 1 then return state end
            ids[1] = args[2]
          else
            ids = redis.call('ZRANGE', base .. K.failed, '0', I(tonumber(args[2]) - 1))
          end
          local requeued, priorities, waiting = {}, {}, {}
          for _, id in ipairs(ids) do
            local job = base .. K.job .. id
            local f = redis.call('HMGET', job, 'state', 'priority', 'drop_ms')
            if not f[1] or (f[3] and tonumber(f[3]) <= now) then
              -- Past its retention: the sweep deletes it (dropped now, as the sweep would).
              redis.call('UNLINK', job, base .. K.dependencies .. id)
              redis.call('ZREM', base .. K.failed, id)
            else
              redis.call('ZREM', base .. HOLDING[f[1]], id)
              redis.call('PERSIST', job) -- jobs finished by Tern before 2026-12 carry a TTL
              redis.call('HDEL', job, 'finished_ms', 'drop_ms', 'result', 'error', 'cancel_requested', 'expires_ms', 'token',
                'worker', 'progress', 'progress_message', 'started_ms', 'thr')
              local g = redis.call('HMGET', job, 'unique', 'dependents', 'parents', 'released')
              relock(base, id, g[1], now)
              if g[2] then relay_add(base, id, now) end
              if g[3] and not g[4] then
                -- Cancelled before its dependencies released it: it waits for them again.
                redis.call('HSET', job, 'state', 'waiting', 'attempts', '0')
                redis.call('ZADD', base .. K.waiting, nows, id)
                waiting[#waiting + 1] = id
              else
                redis.call('HSET', job, 'state', 'queued', 'attempts', '0', 'due_ms', nows)
                requeued[#requeued + 1] = id
                priorities[#priorities + 1] = tonumber(f[2])
              end
            end
          end
          pending_add_all(base, requeued, priorities)
          if #requeued > 0 then wake(base, #requeued) end
          local state = 'queued'
          for _, id in ipairs(waiting) do state = settle(base, id, now, nil, nil, true) end
          if args[1] == 'job' then return state end
          return #requeued + #waiting
        end

        -- ARGV: id. Deletes a finished job (succeeded, failed, cancelled or expired) before its
        -- retention ends: its hash, its dependencies' hash and its entry in its state's set.
        -- Returns {1, state} when it deleted the job, {0, state} for a job that has not finished
        -- (left as it is), or {} when there is no such job.
        local function delete(keys, args)
          local base, id = keys[1], args[1]
          local job = base .. K.job .. id
          local state = state_of(job, now_ms())
          if not state then return {} end
          if is_live(state) then return {0, state} end
          redis.call('ZREM', base .. HOLDING[state], id)
          redis.call('UNLINK', job, base .. K.dependencies .. id)
          return {1, state}
        end

        -- ARGV: id. Makes a scheduled or retrying job due now: `queued`, behind the jobs of its
        -- priority already queued, with `due_ms` now. Returns {1, state before} when it did, {0,
        -- state} for a job in another state (left as it is), or {} when there is no such job.
        local function promote(keys, args)
          local base, id = keys[1], args[1]
          local job = base .. K.job .. id
          local now, nows = clock()
          local state = state_of(job, now)
          if not state then return {} end
          if (state ~= 'scheduled' and state ~= 'retrying') or redis.call('ZREM', base .. K.scheduled, id) == 0 then
            return {0, state}
          end
          redis.call('HSET', job, 'state', 'queued', 'due_ms', nows)
          pending_add_all(base, {id}, {tonumber(redis.call('HGET', job, 'priority'))})
          wake(base, 1)
          return {1, state}
        end

        -- ARGV: state, limit. Deletes up to `limit` jobs of the queue in `state` (not `running`:
        -- those are cancelled through their workers), oldest first in the state's order. A waiting
        -- job (queued, scheduled, retrying) is gone at once, like one past its retention. Returns how
        -- many were deleted.
        local function purge(keys, args)
          local base, state, limit = keys[1], args[1], tonumber(args[2])
          local set = HOLDING[state]
          if not set or state == 'running' then return redis.err_reply('ERR tern_purge: cannot purge ' .. tostring(state)) end
          local gone, offset = {}, 0
          -- The scheduled set holds scheduled and retrying jobs: take only those in `state`,
          -- looking at no more than 10 × limit entries per call.
          while #gone < limit and offset < 10 * limit do
            local ids = redis.call('ZRANGE', base .. set, I(offset), I(offset + limit - 1))
            if #ids == 0 then break end
            for _, id in ipairs(ids) do
              if #gone < limit and (set ~= HOLDING.scheduled or redis.call('HGET', base .. K.job .. id, 'state') == state) then
                gone[#gone + 1] = id
              end
            end
            if set ~= HOLDING.scheduled then break end
            offset = offset + limit
          end
          -- Queued jobs held back by a limit go too (their buckets' lists skip what is gone).
          if state == 'queued' and #gone < limit then
            for _, id in ipairs(redis.call('ZRANGE', base .. K.throttled, '0', I(limit - #gone - 1))) do gone[#gone + 1] = id end
          end
          if #gone == 0 then return 0 end
          local jobs, told = {}, {}
          local now = now_ms()
          for _, id in ipairs(gone) do
            local job = base .. K.job .. id
            local f = redis.call('HMGET', job, 'unique', 'dependents')
            if is_live(state) then unlock(base, id, f[1]) end
            -- A finished job's dependents have its outcome already: only a live one's are told.
            if f[2] and is_live(state) then told[#told + 1] = {id, f[2]} end
            jobs[#jobs + 1] = job
            jobs[#jobs + 1] = base .. K.dependencies .. id
          end
          redis.call('UNLINK', unpack(jobs))
          -- Its dependents learn that it is gone: those on this queue now, the others through the
          -- relay, which reads them from a stub of the hash (no state: gone to every reader) that
          -- expires in a day.
          for _, entry in ipairs(told) do
            local relayed = #CALL.relayed
            notify(base, entry[1], entry[2], 'e', entry[1] .. ' gone', now)
            if #CALL.relayed > relayed then
              redis.call('HSET', base .. K.job .. entry[1], 'dependents', entry[2])
              redis.call('PEXPIRE', base .. K.job .. entry[1], 86400000)
            end
          end
          redis.call('ZREM', base .. set, unpack(gone))
          if state == 'queued' then redis.call('ZREM', base .. K.throttled, unpack(gone)) end
          return #gone
        end

        -- ARGV: schedule, tick_ms, mark_ms, overlap ('allow'|'skip'), id, task, input, priority,
        -- max_attempts, delay_ms, retention_ms, failed_retention_ms, expires_after_ms (-1 or
        -- absent: never), headers (stored JSON; empty or absent: none) and the limit key (empty or
        -- absent: none). Emits one tick of a schedule at most once: the schedule's mark
        -- (`schedule:<name>` hash, field `mark`) only grows, and a tick at or below it is refused. On success the mark becomes max(tick, mark_ms). Returns {status, job id}:
        -- 'emitted' (the new job), 'duplicate' (already emitted: the last job), 'overlap' (skipped
        -- because the schedule's last job has not finished; the mark still moves).
        -- tick_ms 'now' runs the schedule now, outside its ticks: the job's tick is Redis time, the
        -- mark is left as it is, and an overlap skip moves nothing.
        local function schedule(keys, args)
          local base = keys[1]
          local state = base .. K.schedule .. args[1]
          local now = now_ms()
          local manual = args[2] == 'now'
          local tick = manual and now or tonumber(args[2])
          local mark = not manual and math.max(tick, tonumber(args[3])) or nil
          local f = redis.call('HMGET', state, 'mark', 'job')
          if not manual and f[1] and tonumber(f[1]) >= tick then return {'duplicate', f[2] or ''} end
          if args[4] == 'skip' and f[2] then
            local last = state_of(base .. K.job .. f[2], now)
            if last == 'queued' or last == 'scheduled' or last == 'retrying' or last == 'running' then
              if mark then redis.call('HSET', state, 'mark', mark) end
              return {'overlap', f[2]}
            end
          end
          local id, priority = args[5], tonumber(args[8])
          local due = now + math.max(0, tonumber(args[10]))
          local job_state = due > now and 'scheduled' or 'queued'
          redis.call('HSET', base .. K.job .. id, 'v', 1, 'id', id, 'task', args[6], 'input', args[7],
            'priority', priority, 'attempts', 0, 'max_attempts', args[9], 'state', job_state, 'created_ms', now,
            'due_ms', due, 'retention_ms', math.max(1, tonumber(args[11])),
            'failed_retention_ms', math.max(1, tonumber(args[12])), 'schedule', args[1], 'tick_ms', tick)
          if args[13] and tonumber(args[13]) >= 0 then
            redis.call('HSET', base .. K.job .. id, 'expires_ms', I(due + tonumber(args[13])))
          end
          if args[14] and args[14] ~= '' then redis.call('HSET', base .. K.job .. id, 'headers', args[14]) end
          if args[15] and args[15] ~= '' then redis.call('HSET', base .. K.job .. id, 'lkey', args[15]) end
          if job_state == 'queued' then
            pending_add_all(base, {id}, {priority})
          else
            redis.call('ZADD', base .. K.scheduled, due, id)
          end
          wake(base, 1)
          if mark then
            redis.call('HSET', state, 'mark', mark, 'job', id, 'tick', tick)
          else
            redis.call('HSET', state, 'job', id, 'tick', tick)
          end
          return {'emitted', id}
        end

        -- KEYS: the hash of stored schedules. ARGV: name, the definition as read, its replacement.
        -- Replaces the definition only if it is still the one read (not changed or deleted
        -- meanwhile): 1, else 0.
        local function schedule_swap(keys, args)
          if redis.call('HGET', keys[1], args[1]) ~= args[2] then return 0 end
          redis.call('HSET', keys[1], args[1], args[3])
          return 1
        end

        -- Each call starts with no dependents being resolved and nothing relayed.
        local function entry(f)
          return function(keys, args)
            CALL.depth = 0
            if #CALL.relayed > 0 then CALL.relayed = {} end
            return f(keys, args)
          end
        end

        redis.register_function('tern_enqueue', entry(enqueue))
        redis.register_function('tern_claim', entry(claim))
        redis.register_function('tern_heartbeat', entry(heartbeat))
        redis.register_function('tern_complete', entry(complete))
        redis.register_function('tern_fail', entry(fail))
        redis.register_function('tern_cancelled', entry(cancelled))
        redis.register_function('tern_cancel', entry(cancel))
        redis.register_function('tern_release', entry(release))
        redis.register_function('tern_progress', entry(progress))
        redis.register_function('tern_reap', entry(reap))
        redis.register_function('tern_retry', entry(retry))
        redis.register_function('tern_crashed', entry(crashed))
        redis.register_function('tern_schedule', entry(schedule))
        redis.register_function('tern_purge', entry(purge))
        redis.register_function('tern_delete', entry(delete))
        redis.register_function('tern_promote', entry(promote))
        redis.register_function('tern_depend', entry(depend))
        redis.register_function('tern_wait', entry(wait))
        redis.register_function('tern_resolve', entry(resolve))
        redis.register_function('tern_relay_take', entry(relay_take))
        redis.register_function('tern_relay_done', entry(relay_done))
        redis.register_function('tern_limit', entry(limit))
        redis.register_function('tern_schedule_swap', schedule_swap)
        """#
}
