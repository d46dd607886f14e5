-- redis_failover_spec.lua -- Redis failing under a running script: killed
-- with SIGKILL under load from 100 tasks and restarted, stopped (SIGSTOP)
-- while keys are deleted, overwritten and cleared, slow (DEBUG SLEEP past
-- the command timeout), an outage journal that overflows, and the stderr
-- log line. Each scenario runs once in its describe's setup (inside a task)
-- and its `it`s check one outcome each. Every wait is bounded; every server
-- is stopped by PID in teardown.

local helpers = require "helpers"
local cache = require "cache"
local core = require "cache.core"
local sched = require "cachert"

local sh, in_task, wait_for = helpers.sh, helpers.in_task, helpers.wait_for

local RECOVERY_DEADLINE = 10   -- seconds; the backoff is capped at 5 s

local function manager(server, opts)
    local o = { host = "127.0.0.1", port = server.port, timeout = 0.5,
                command_timeout = 0.2, pool_size = 4, tls = helpers.tls_option(server) }
    for k, v in pairs(opts or {}) do o[k] = v end
    return cache.new(o)
end

local raw_get = helpers.raw_get

local function recovered(c)
    return function()
        local s = c:stats()
        return s.using_redis and s.reconnects >= 1
    end
end

describe("when Redis is killed with SIGKILL under load and restarted #redis", function()
    local server, c
    local r = {}        -- what the scenario observed

    setup(function()
        server = helpers.start_redis("--appendonly yes --appendfsync always")
        c = manager(server, { namespace = "fo:" })
        r.connected = c:connect()
        in_task(function()
            -- given: 100 tasks, each owning its keys, writing, deleting and
            -- reading them continuously; the model says what each key
            -- must hold (false: deleted). Once the server is restarted the
            -- tasks move to other keys (r*), so the k* keys keep what the
            -- outage left: the journal's replay must invalidate them.
            local load = helpers.start_model_load(c, r, 100, 1)
            -- when: the server is killed, stays down, and comes back
            sched.sleep(0.5)
            r.ops_before_kill = r.ops
            helpers.kill_redis(server, "KILL")
            sched.sleep(0.5)
            r.ops_in_outage = r.ops - r.ops_before_kill
            r.using_redis_in_outage = c:stats().using_redis
            r.phase = "r"
            helpers.restart_redis(server)
            -- the load goes on until the manager is back on Redis
            r.recovered_under_load = wait_for(recovered(c), RECOVERY_DEADLINE)
            sched.sleep(0.2)
            helpers.stop_model_load(load, r)
            r.recovered = wait_for(recovered(c), RECOVERY_DEADLINE)
        end)
    end)

    teardown(function()
        if c then c:disconnect() end
        helpers.stop_redis(server)
    end)

    it("was connected and working before the kill", function()
        assert.is_true(r.connected)
        assert.is_true(r.ops_before_kill > 100)
    end)

    it("keeps serving from memory during the outage", function()
        assert.is_false(r.using_redis_in_outage)
        assert.is_true(r.ops_in_outage > 100, r.ops_in_outage .. " operations")
    end)

    it("raises nothing in any task", function()
        assert.are.same({}, r.task_errors)
    end)

    it("never reads a value other than the last one written", function()
        assert.are.same({}, r.stale_reads)
    end)

    it("switches back to Redis while the load goes on", function()
        assert.is_true(r.recovered_under_load)
    end)

    it("counts the reconnect", function()
        assert.is_true(r.recovered)
        assert.is_true(c:stats().reconnects >= 1)
    end)

    -- The outage's writes are invalidated, never written back (another
    -- process may have written newer values): a key holds its last value
    -- or nothing.
    it("reads back every key as last written, or as a miss", function()
        assert.is_true(r.recovered)
        local wrong, misses = {}, 0
        for key, v in pairs(r.model) do
            local got, found = c:get(key)
            if v == false and found then
                wrong[#wrong + 1] = key .. " should be deleted, got " .. tostring(got)
            elseif v ~= false and found and got ~= v then
                wrong[#wrong + 1] = ("%s: want %s, got %s"):format(key, v, tostring(got))
            elseif v ~= false and not found then
                misses = misses + 1
            end
        end
        assert.are.same({}, wrong)
        assert.is_true(misses > 0, "the outage's writes were invalidated")
    end)

    it("leaves Redis holding the model's value or nothing for each key", function()
        assert.is_true(r.recovered)
        -- one MGET: the values are fixstr (no newline byte), nil is ""
        local keys = {}
        for key in pairs(r.model) do keys[#keys + 1] = key end
        table.sort(keys)
        local args = {}
        for i, key in ipairs(keys) do args[i] = "'fo:" .. key .. "'" end
        local lines = {}
        for line in server.cli("--raw MGET " .. table.concat(args, " "))
                     :gmatch("([^\n]*)\n") do
            lines[#lines + 1] = line
        end
        assert.are.equal(#keys, #lines)
        local wrong = {}
        for i, key in ipairs(keys) do
            local want = r.model[key] and core.encode(r.model[key]) or ""
            if lines[i] ~= want and lines[i] ~= "" then
                wrong[#wrong + 1] = ("%s: want %q, Redis has %q"):format(key, want, lines[i])
            end
        end
        assert.are.same({}, wrong)
    end)
end)

describe("when Redis is stopped (SIGSTOP) while keys change #redis", function()
    local server, c
    local r = {}

    setup(function()
        server = helpers.start_redis()
        c = manager(server)
        r.connected = c:connect()
        c:mset { d = "old", x = "old", p1 = 1, p2 = 2, q = 3 }
        helpers.kill_redis(server, "STOP")
        -- a read past the command timeout starts the outage
        local t0 = sched.now()
        r.probe = { c:get("probe", "dflt") }
        r.probe_seconds = sched.now() - t0
        r.using_redis_in_outage = c:stats().using_redis
        -- the changes, made on the memory store
        c:delete("d")
        c:set("x", "new")
        c:clear("p*")
        r.d_in_outage = { c:get("d") }
        r.x_in_outage = c:get("x")
        helpers.kill_redis(server, "CONT")
        r.recovered = in_task(wait_for, recovered(c), RECOVERY_DEADLINE)
    end)

    teardown(function()
        if c then c:disconnect() end
        helpers.stop_redis(server)
    end)

    it("answers the read that timed out from memory, in time", function()
        assert.is_true(r.connected)
        assert.are.same({ "dflt", false }, r.probe)
        assert.is_true(r.probe_seconds < 0.6, r.probe_seconds .. " s")
        assert.is_false(r.using_redis_in_outage)
    end)

    it("serves the outage's own changes during the outage", function()
        assert.are.same({ nil, false }, r.d_in_outage)
        assert.are.equal("new", r.x_in_outage)
    end)

    it("recovers once the server runs again", function()
        assert.is_true(r.recovered)
    end)

    it("does not serve a key deleted during the outage", function()
        assert.is_true(r.recovered)
        assert.are.same({ nil, false }, { c:get("d") })
        assert.is_nil(raw_get(server, "d"))
    end)

    it("invalidates the key written during the outage, never writes it back", function()
        assert.is_true(r.recovered)
        assert.are.same({ nil, false }, { c:get("x") })
        assert.is_nil(raw_get(server, "x"))
    end)

    it("clears in Redis what a clear('p*') during the outage matched", function()
        assert.is_true(r.recovered)
        assert.is_nil(raw_get(server, "p1"))
        assert.is_nil(raw_get(server, "p2"))
        assert.are.same({ nil, false }, { c:get("p1") })
        assert.are.equal(core.encode(3), raw_get(server, "q"))
    end)
end)

describe("when TTLs run during an outage #redis", function()
    local server, c
    local r = {}

    setup(function()
        server = helpers.start_redis()
        c = manager(server, { namespace = "ttl:" })
        r.connected = c:connect()
        c:mset({ short = "old", long = "old" }, 0)
        helpers.kill_redis(server, "STOP")
        c:get("probe")                          -- the outage starts
        r.using_redis_in_outage = c:stats().using_redis
        c:set("short", "new", 0.1)              -- expires during the outage
        c:set("long", "new", 5)
        sched.sleep(0.3)
        helpers.kill_redis(server, "CONT")
        r.recovered = in_task(wait_for, recovered(c), RECOVERY_DEADLINE)
    end)

    teardown(function()
        if c then c:disconnect() end
        helpers.stop_redis(server)
    end)

    it("recovers", function()
        assert.is_true(r.connected)
        assert.is_false(r.using_redis_in_outage)
        assert.is_true(r.recovered)
    end)

    it("invalidates a key written during the outage", function()
        assert.is_nil(raw_get(server, "ttl:long"))
        assert.are.same({ nil, false }, { c:get("long") })
    end)

    it("removes from Redis a key whose outage value expired", function()
        assert.is_nil(raw_get(server, "ttl:short"))
        assert.are.same({ nil, false }, { c:get("short") })
    end)
end)

describe("when Redis closes the connections itself (CLIENT KILL) #redis", function()
    local server, c
    local r = {}

    setup(function()
        server = helpers.start_redis()
        c = manager(server)
        r.connected = c:connect()
        c:set("k", "v")
        server.cli("CLIENT KILL TYPE normal")
        r.get = { pcall(c.get, c, "k") }
        r.set = { pcall(c.set, c, "k2", "v2") }
        r.recovered = in_task(wait_for, function()
            return c:stats().using_redis and c:stats().reconnects >= 1
        end, RECOVERY_DEADLINE)
    end)

    teardown(function()
        if c then c:disconnect() end
        helpers.stop_redis(server)
    end)

    it("raises nothing", function()
        assert.is_true(r.connected)
        assert.is_true(r.get[1], tostring(r.get[2]))
        assert.is_true(r.set[1], tostring(r.set[2]))
    end)

    it("reconnects and serves Redis's data again", function()
        assert.is_true(r.recovered)
        assert.are.equal("v", (c:get("k")))
        -- k2 was set on the memory store while the pool was down: the
        -- replay invalidated it rather than writing it back
        assert.are.same({ nil, false }, { c:get("k2") })
        assert.is_nil(raw_get(server, "k2"))
    end)
end)

describe("when a namespace is cleared during an outage #redis", function()
    local server, c
    local r = {}

    setup(function()
        server = helpers.start_redis()
        server.cli("MSET ns:a 1 ns:b 2 other:c 3")
        c = manager(server, { namespace = "ns:" })
        r.connected = c:connect()
        helpers.kill_redis(server, "STOP")
        c:get("probe")
        r.cleared = c:clear()
        c:set("after", "x")
        helpers.kill_redis(server, "CONT")
        r.recovered = in_task(wait_for, recovered(c), RECOVERY_DEADLINE)
    end)

    teardown(function()
        if c then c:disconnect() end
        helpers.stop_redis(server)
    end)

    it("clears the namespace's keys in Redis and nothing else", function()
        assert.is_true(r.connected)
        assert.is_true(r.recovered)
        assert.are.same({ nil, nil, "3" }, { raw_get(server, "ns:a"),
                                           raw_get(server, "ns:b"),
                                           raw_get(server, "other:c") })
    end)

    it("does not write back what was set after the clear", function()
        assert.is_nil(raw_get(server, "ns:after"))
        assert.are.same({ nil, false }, { c:get("after") })
    end)
end)

describe("when Redis stops in the middle of a clear #redis", function()
    local server, c
    local r = {}

    setup(function()
        server = helpers.start_redis("--enable-debug-command local")
        c = manager(server)
        r.connected = c:connect()
        server.cli("DEBUG POPULATE 100000 bulk 16")
        server.cli("SET keep 1")
        -- given: the server stops 50 ms into the clear (SCAN + UNLINK)
        sh(("(sleep 0.05; kill -STOP %d) >/dev/null 2>&1 &"):format(server.pid))
        r.cleared = { pcall(c.clear, c, "bulk:*") }
        r.using_redis_after = c:stats().using_redis
        helpers.kill_redis(server, "CONT")
        r.recovered = in_task(wait_for, recovered(c), RECOVERY_DEADLINE)
    end)

    teardown(function()
        if c then c:disconnect() end
        helpers.stop_redis(server)
    end)

    it("returns without raising", function()
        assert.is_true(r.connected)
        assert.is_true(r.cleared[1], tostring(r.cleared[2]))
        assert.is_false(r.using_redis_after)
    end)

    it("finishes the clear in Redis on recovery", function()
        assert.is_true(r.recovered)
        assert.are.equal("1\n", server.cli("--raw DBSIZE"))
        assert.are.equal("1", raw_get(server, "keep"))
    end)
end)

describe("when the server closes idle connections (timeout 1) #redis", function()
    local server, c

    setup(function()
        server = helpers.start_redis("--timeout 1")
    end)

    teardown(function()
        if c then c:disconnect() end
        helpers.stop_redis(server)
    end)

    it("still serves Redis's data after the connections were closed", function()
        c = manager(server)
        c:connect()
        c:set("k", "v")
        sched.sleep(2.2)                 -- the server drops idle clients
        assert.is_true(in_task(wait_for, function() return c:stats().using_redis end,
                               RECOVERY_DEADLINE))
        assert.are.equal("v", (c:get("k")))
        assert.are.equal(0, c:stats().errors)
    end)
end)

describe("when Redis is slower than the command timeout #redis", function()
    local server, c
    local r = {}

    setup(function()
        server = helpers.start_redis("--enable-debug-command local")
        c = manager(server, { command_timeout = 0.2 })
        r.connected = c:connect()
        c:set("k", "v")
        r.errors_before = c:stats().errors
        in_task(function()
            -- a separate client makes the server hold every client's
            -- commands for 1 s (returning at once itself)
            server.cli("CLIENT PAUSE 1000 ALL")
            local t0 = sched.now()
            r.get = { pcall(c.get, c, "k") }
            r.get_seconds = sched.now() - t0
            local s = c:stats()
            r.errors_after, r.using_redis_after = s.errors, s.using_redis
            r.last_error = s.last_error
            r.recovered = wait_for(recovered(c), RECOVERY_DEADLINE)
        end)
    end)

    teardown(function()
        if c then c:disconnect() end
        helpers.stop_redis(server)
    end)

    it("returns the get within about the timeout, without raising", function()
        assert.is_true(r.connected)
        assert.is_true(r.get[1], tostring(r.get[2]))
        assert.is_true(r.get_seconds < 0.5, r.get_seconds .. " s")
    end)

    it("counts an error and says it timed out", function()
        assert.is_true(r.errors_after >= r.errors_before + 1)
        assert.matches("no reply within", r.last_error or "")
    end)

    it("switches to the memory store", function()
        assert.is_false(r.using_redis_after)
    end)

    it("switches back once the server answers again", function()
        assert.is_true(r.recovered)
        assert.are.equal("v", (c:get("k")))
    end)
end)

describe("when the outage journal overflows #redis", function()
    local server, c
    local r = {}

    setup(function()
        server = helpers.start_redis()
        server.cli("SET other:keep 1")
        c = manager(server, { namespace = "j:", journal_max_keys = 10 })
        r.connected = c:connect()
        for i = 1, 50 do c:set("k" .. i, "old") end
        c:set("untouched", "old")
        helpers.kill_redis(server, "STOP")
        c:get("probe")                       -- times out: the outage starts
        r.using_redis_in_outage = c:stats().using_redis
        for i = 1, 50 do c:set("k" .. i, "new") end
        helpers.kill_redis(server, "CONT")
        r.recovered = in_task(wait_for, recovered(c), RECOVERY_DEADLINE)
    end)

    teardown(function()
        if c then c:disconnect() end
        helpers.stop_redis(server)
    end)

    it("recovers", function()
        assert.is_true(r.connected)
        assert.is_false(r.using_redis_in_outage)
        assert.is_true(r.recovered)
    end)

    it("counts one overflow", function()
        assert.are.equal(1, c:stats().journal_overflows)
    end)

    it("clears the manager's namespace in Redis", function()
        assert.is_nil(raw_get(server, "j:untouched"))
    end)

    it("writes none of the outage's values back", function()
        for i = 1, 50 do
            assert.is_nil(raw_get(server, "j:k" .. i), "j:k" .. i)
        end
    end)

    it("leaves keys outside the namespace alone", function()
        assert.are.equal("1", raw_get(server, "other:keep"))
    end)

    it("serves neither the old values nor the outage's after recovery", function()
        for i = 1, 50 do
            assert.are.same({ nil, false }, { c:get("k" .. i) }, "k" .. i)
        end
    end)
end)

describe("when the namespace clear after an overflow is refused, then allowed #redis", function()
    local server, c
    local r = {}

    setup(function()
        server = helpers.start_redis()
        c = manager(server, { namespace = "q:", journal_max_keys = 10 })
        r.connected = c:connect()
        c:set("stale", "old")
        server.cli("ACL SETUSER default -scan")     -- the clear will be refused
        helpers.kill_redis(server, "STOP")
        c:get("probe")                              -- times out: the outage starts
        c:delete("stale")
        for i = 1, 30 do c:set("k" .. i, "new") end -- overflows the journal
        helpers.kill_redis(server, "CONT")
        in_task(wait_for, function() return c:stats().errors > 1 end, RECOVERY_DEADLINE)
        r.stayed_on_memory = not c:stats().using_redis
        r.k1_on_memory = c:get("k1")
        server.cli("ACL SETUSER default +scan")
        r.recovered = in_task(wait_for, recovered(c), RECOVERY_DEADLINE)
    end)

    teardown(function()
        if c then c:disconnect() end
        helpers.stop_redis(server)
    end)

    it("stays on the memory store while the clear is refused", function()
        assert.is_true(r.connected)
        assert.is_true(r.stayed_on_memory)
    end)

    it("recovers once the clear is allowed", function()
        assert.is_true(r.recovered)
    end)

    it("does not serve the key deleted during the outage", function()
        assert.is_nil(raw_get(server, "q:stale"))
        assert.are.same({ nil, false }, { c:get("stale") })
    end)

    it("serves the outage's writes while on memory, nothing of them after", function()
        assert.are.same(r.k1_on_memory, "new")
        for i = 1, 30 do
            assert.are.same({ nil, false }, { c:get("k" .. i) }, "k" .. i)
        end
    end)
end)

describe("the outage log line #redis", function()
    local dir, server

    -- Runs `code` in a cachert subprocess; returns stdout and stderr.
    local function run(code, env, ...)
        local script = dir .. "/script.lua"
        local f = assert(io.open(script, "w"))
        f:write(code)
        f:close()
        local args = {}
        for i = 1, select("#", ...) do args[i] = "'" .. tostring((select(i, ...))) .. "'" end
        local out, status = sh(("%s%s %s %s 2>%s/stderr"):format(env, helpers.cachert_bin(),
            script, table.concat(args, " "), dir))
        local e = io.open(dir .. "/stderr")
        local err = e:read("*a")
        e:close()
        return out, err, status
    end

    local function count(text, pattern)
        local n = 0
        for _ in text:gmatch(pattern) do n = n + 1 end
        return n
    end

    local SCRIPT = [[
        local cache, sched = require "cache", require "cachert"
        local port, kill = tonumber(arg[1]), arg[2]
        local c = cache.new { host = "127.0.0.1", port = port, timeout = 0.5,
                              command_timeout = 0.2, pool_size = 2,
                              exit_flush_timeout = 0.1 }
        print(c:connect())
        if kill then os.execute("kill -9 " .. kill) end
        local t0 = sched.now()
        local i = 0
        while sched.now() - t0 < 1 do        -- retries at 0.1, 0.3, 0.7 s
            i = i + 1
            c:set("k" .. i, i)
            assert(c:get("k" .. i) == i)
            sched.sleep(0.01)
        end
        print(c:stats().using_redis)
    ]]

    setup(function()
        dir = sh("mktemp -d /tmp/cachert-log-XXXXXX"):gsub("%s+$", "")
    end)

    teardown(function()
        helpers.stop_redis(server)
        if dir and dir:match("^/tmp/cachert%-log%-") then sh("rm -rf " .. dir) end
    end)

    it("is written once for a server absent at start", function()
        server = helpers.start_redis()
        local port = server.port
        helpers.stop_redis(server)
        local out, err, status = run(SCRIPT, helpers.tls_env(server), port)
        assert.are.equal(0, status, err)
        assert.are.equal("false\nfalse\n", out)
        assert.are.equal(1, count(err, "cachert: redis unavailable"), err)
        -- and, at exit, the one warning about what the journal still owes
        assert.are.equal(1, count(err, "cachert: exiting with %d+ keys"), err)
        assert.are.equal(2, count(err, "\n"), err)
    end)

    it("is written once for a server lost mid-run", function()
        server = helpers.start_redis()
        local out, err, status = run(SCRIPT, helpers.tls_env(server), server.port, server.pid)
        server.pid = nil
        assert.are.equal(0, status, err)
        assert.are.equal("true\nfalse\n", out)
        assert.are.equal(1, count(err, "cachert: redis unavailable"), err)
        -- and, at exit, the one warning about what the journal still owes
        assert.are.equal(1, count(err, "cachert: exiting with %d+ keys"), err)
        assert.are.equal(2, count(err, "\n"), err)
    end)
end)
