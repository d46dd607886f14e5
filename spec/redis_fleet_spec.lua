-- redis_fleet_spec.lua -- "No stale data, in a fleet" (DESIGN.md): several
-- processes share one Redis, and one of them loses it for a while.
--
-- 1. Two real processes and a proxy cut. Process A is a `cachert` child
--    process (an agent running the chunks this spec drops in its directory)
--    that reaches Redis through a socat proxy; process B is this spec,
--    connected directly. The proxy is killed (A alone loses Redis), A and
--    B write the same keys in both orders, A deletes a key and clears a
--    pattern that B wrote before the cut, and the proxy comes back. After
--    A's recovery nobody reads A's outage values, Redis holds B's value or
--    nothing, B's old values are gone, A's memory store is empty, and
--    MONITOR shows A sent no SET of a remembered value (only UNLINK/SCAN).
-- 2. The replay does not stall writers and applies every pattern in one
--    SCAN pass. 500,000 keys, an outage (SIGSTOP) with 20 clear patterns,
--    then recovery while a task keeps writing: no set waits much longer
--    than the command timeout (0.25 s; the replay lasts over a second),
--    the replay takes about 500 SCAN calls (COUNT 1000), not 20 passes,
--    exactly the matching keys are gone, and the key written during the
--    replay holds its last value or nothing.
--
-- Each scenario runs once in its describe's setup and its `it`s check one
-- observation each. Every wait is bounded and reports what it waited for;
-- servers, proxies and child processes are stopped by PID in teardown.

local helpers = require "helpers"
local cache = require "cache"
local core = require "cache.core"
local sched = require "cachert"

local in_task, wait_for = helpers.in_task, helpers.wait_for

local RECOVERY_DEADLINE = 15   -- seconds; the pool's backoff is capped at 5 s

-- The bytes Redis holds under `key`, or nil when it has none.
local raw_get, slurp = helpers.raw_get, helpers.slurp

local start_agent = require("agent_helpers").start

-- -- 1. Two processes, a proxy cut ----------------------------------------

describe("two processes, one cut off from Redis by a proxy #redis #fleet", function()
    local server, proxy, monitor_pid, a, b
    local r = {}            -- what the scenario observed
    local NS = "fleet:"
    local A_VALUE, B_VALUE, B_OLD = "A", "B", "B-old"

    -- A's view of `key`: value and found, in one table.
    local function a_get(key)
        local v, found = a:call(("return c:get(%q)"):format(key))
        return { v = v, found = found }
    end
    local function b_get(key)
        local v, found = b:get(key)
        return { v = v, found = found }
    end

    setup(function()
        in_task(function()
            local t0 = sched.now()
            server = helpers.start_redis()
            proxy = helpers.start_proxy(server.port)
            b = cache.new { host = "127.0.0.1", port = server.port, namespace = NS,
                            timeout = 1, command_timeout = 0.3 }
            r.b_connected = b:connect()
            a = start_agent()
            r.a_connected = a:call(([[
                c = cache.new { host = "127.0.0.1", port = %d, namespace = %q,
                                timeout = 1, command_timeout = 0.3, pool_size = 2 }
                return c:connect()]]):format(proxy.port, NS))

            -- before the cut: A writes k1 through the proxy; B writes k3
            -- and two grp: keys (its "old" values, A will remove them)
            assert(a:call(("return c:set('k1', 'A0', 0)")))
            assert(b:set("k3", B_OLD, 0))
            assert(b:set("grp:1", B_OLD, 0) and b:set("grp:2", B_OLD, 0))
            r.redis_k1_before = raw_get(server, NS .. "k1")

            -- the cut: A's TCP path dies; A notices (reads fail over to
            -- memory), bounded
            helpers.stop_proxy(proxy)
            r.a_using_redis_in_cut = a:call([[
                local deadline = cachert.now() + 5
                while c:stats().using_redis and cachert.now() < deadline do
                    c:get("probe")
                    cachert.sleep(0.05)
                end
                return c:stats().using_redis]])

            -- order 1: A writes k1 (memory), then B writes k1 (Redis)
            r.a_set_k1 = a:call(("return c:set('k1', %q, 0)"):format(A_VALUE))
            r.b_set_k1 = b:set("k1", B_VALUE, 0)
            -- order 2: B writes k2 (Redis), then A writes k2 (memory)
            r.b_set_k2 = b:set("k2", B_VALUE, 0)
            r.a_set_k2 = a:call(("return c:set('k2', %q, 0)"):format(A_VALUE))
            -- A deletes k3 and clears grp:*, which B wrote before the cut
            a:call("c:delete('k3') return true")
            a:call("return c:clear('grp:*')")
            r.a_in_cut = { k1 = a_get("k1"), k2 = a_get("k2"), k3 = a_get("k3"),
                           grp1 = a_get("grp:1") }
            r.b_in_cut = { k1 = b_get("k1"), k2 = b_get("k2"), k3 = b_get("k3"),
                           grp1 = b_get("grp:1") }

            -- every command Redis gets from now on, to see what A sends
            r.monitor_log = a.dir .. "/monitor"
            monitor_pid = helpers.start_process(("%sredis-cli -p %d MONITOR")
                :format(helpers.NO_PRELOAD, server.port), r.monitor_log)
            r.monitor_attached = wait_for(function()
                return server.cli("CLIENT LIST"):find("flags=O", 1, true) ~= nil
            end, 5)

            -- the proxy comes back on the same port; A recovers
            helpers.restart_proxy(proxy)
            r.a_recovered = a:call(([[
                local deadline = cachert.now() + %d
                while cachert.now() < deadline do
                    local s = c:stats()
                    if s.using_redis and s.reconnects >= 1 then return true end
                    cachert.sleep(0.05)
                end
                return false]]):format(RECOVERY_DEADLINE), RECOVERY_DEADLINE + 5)
            r.a_stats = a:call("return c:stats()")

            -- what everybody reads now
            r.a_after = { k1 = a_get("k1"), k2 = a_get("k2"), k3 = a_get("k3"),
                          grp1 = a_get("grp:1"), grp2 = a_get("grp:2") }
            r.b_after = { k1 = b_get("k1"), k2 = b_get("k2"), k3 = b_get("k3"),
                          grp1 = b_get("grp:1"), grp2 = b_get("grp:2") }
            r.redis_after = {}
            for _, k in ipairs { "k1", "k2", "k3", "grp:1", "grp:2" } do
                r.redis_after[k] = raw_get(server, NS .. k) or false
            end
            r.redis_keys = server.cli("--scan")
            sched.sleep(0.1)        -- MONITOR's output is flushed
            r.monitor = slurp(r.monitor_log)
            r.a_log = a:log()
            r.seconds = sched.now() - t0
        end)
    end)

    teardown(function()
        if monitor_pid then helpers.stop_process(monitor_pid) end
        if a then a:stop() end
        if b then b:disconnect() end
        helpers.stop_proxy(proxy)
        helpers.stop_redis(server)
    end)

    -- The commands Redis received after the cut, from any client but the
    -- MONITOR itself, as lines.
    local function monitored(cmd)
        local lines = {}
        for line in r.monitor:gmatch("[^\n]+") do
            if line:find('] "' .. cmd .. '"', 1, true) then lines[#lines + 1] = line end
        end
        return lines
    end

    it("connects A through the proxy and B directly, both on Redis", function()
        assert.is_true(r.a_connected, r.a_log)
        assert.is_true(r.b_connected)
        assert.are.equal(core.encode("A0"), r.redis_k1_before)
    end)

    it("has A notice the cut and take its writes on the memory store", function()
        assert.is_false(r.a_using_redis_in_cut, r.a_log)
        assert.is_true(r.a_set_k1 and r.a_set_k2)
        assert.are.same({ v = A_VALUE, found = true }, r.a_in_cut.k1)
        assert.are.same({ v = A_VALUE, found = true }, r.a_in_cut.k2)
        assert.is_false(r.a_in_cut.k3.found)
        assert.is_false(r.a_in_cut.grp1.found)
    end)

    it("leaves B on Redis during the cut, where A's changes are not yet", function()
        assert.is_true(r.b_set_k1 and r.b_set_k2)
        assert.are.same({ v = B_VALUE, found = true }, r.b_in_cut.k1)
        assert.are.same({ v = B_VALUE, found = true }, r.b_in_cut.k2)
        assert.are.same({ v = B_OLD, found = true }, r.b_in_cut.k3)
        assert.are.same({ v = B_OLD, found = true }, r.b_in_cut.grp1)
    end)

    it("brings A back to Redis once the proxy is back", function()
        assert.is_true(r.monitor_attached, "MONITOR attached")
        assert.is_true(r.a_recovered, "A back on Redis within "
            .. RECOVERY_DEADLINE .. " s" .. r.a_log)
        assert.is_true(r.a_stats.reconnects >= 1)
    end)

    it("empties A's memory store on the switch", function()
        assert.is_true(r.a_recovered, r.a_log)
        assert.are.equal(0, r.a_stats.keys)
    end)

    -- B's value or a miss is right (A's UNLINK may have removed B's newer
    -- value: a miss is never stale); A's own outage value never is.
    local function b_or_miss(seen, who, key)
        assert.is_true(not seen.found or seen.v == B_VALUE,
            ("%s read %s = %s after A's recovery; want %q or a miss"):format(
                who, key, tostring(seen.v), B_VALUE))
    end

    local function redis_b_or_nothing(key)
        local held = r.redis_after[key]
        assert.is_true(held == false or held == core.encode(B_VALUE),
            ("Redis holds %q under %s; want B's value or nothing"):format(
                tostring(held), NS .. key))
    end

    it("order 1 (A wrote, then B): A reads B's value or a miss, never its own", function()
        assert.is_true(r.a_recovered, r.a_log)
        b_or_miss(r.a_after.k1, "A", "k1")
    end)

    it("order 1 (A wrote, then B): B reads its value or a miss; Redis never holds A's", function()
        assert.is_true(r.a_recovered, r.a_log)
        b_or_miss(r.b_after.k1, "B", "k1")
        redis_b_or_nothing("k1")
    end)

    it("order 2 (B wrote, then A): A's later outage write is never read as newer", function()
        assert.is_true(r.a_recovered, r.a_log)
        b_or_miss(r.a_after.k2, "A", "k2")
        b_or_miss(r.b_after.k2, "B", "k2")
        redis_b_or_nothing("k2")
    end)

    it("delete during the cut: nobody reads B's older value afterwards", function()
        assert.is_true(r.a_recovered, r.a_log)
        assert.is_false(r.a_after.k3.found, "A read k3 = " .. tostring(r.a_after.k3.v))
        assert.is_false(r.b_after.k3.found, "B read k3 = " .. tostring(r.b_after.k3.v))
        assert.is_false(r.redis_after.k3)
    end)

    it("clear during the cut: B's older grp: values are gone everywhere", function()
        assert.is_true(r.a_recovered, r.a_log)
        for _, k in ipairs { "grp1", "grp2" } do
            assert.is_false(r.a_after[k].found, "A read " .. k)
            assert.is_false(r.b_after[k].found, "B read " .. k)
        end
        assert.is_false(r.redis_after["grp:1"])
        assert.is_false(r.redis_after["grp:2"])
    end)

    it("has A send no SET after the cut: its journal replays as invalidation", function()
        assert.is_true(r.a_recovered, r.a_log)
        local sets = {}
        for _, line in ipairs(monitored("SET")) do
            -- the recovery's probe: SET <ns>cachert:probe "" XX PX 1
            if not line:find('"' .. NS .. 'cachert:probe"', 1, true) then
                sets[#sets + 1] = line
            end
        end
        assert.are.same({}, sets)
        local unlinked = table.concat(monitored("UNLINK"), "\n")
        for _, k in ipairs { "k1", "k2", "k3" } do
            assert.is_truthy(unlinked:find('"' .. NS .. k .. '"', 1, true),
                "A's replay UNLINKs " .. NS .. k .. "\n" .. r.monitor)
        end
        local scans = table.concat(monitored("SCAN"), "\n")
        assert.is_truthy(scans:find('"MATCH" "' .. NS .. 'grp:*"', 1, true),
            "A's replay SCANs for grp:*\n" .. r.monitor)
    end)

    it("leaves no value of A's outage anywhere in Redis", function()
        assert.is_true(r.a_recovered, r.a_log)
        local found = {}
        for key in r.redis_keys:gmatch("[^\n]+") do
            if raw_get(server, key) == core.encode(A_VALUE) then found[#found + 1] = key end
        end
        assert.are.same({}, found)
    end)

    it("runs in a few seconds", function()
        assert.is_true(r.seconds < 30, ("%.1f s"):format(r.seconds))
    end)
end)

-- -- 2. A long replay: writers, and one SCAN pass -------------------------

-- Redis glob matching (* ? [set] [^set] [a-z], no escapes), written apart
-- from the C matcher so it can check it.
local function glob(p, s)
    local byte = string.byte
    local pi, si, np, ns = 1, 1, #p, #s
    local star_p, star_s
    while si <= ns do
        local pc = byte(p, pi)
        if pc == 42 then                                    -- *
            star_p, star_s, pi = pi, si, pi + 1
        else
            local ok, nexti = false, pi + 1
            if pi <= np then
                local c = byte(s, si)
                if pc == 63 then                            -- ?
                    ok = true
                elseif pc == 91 then                        -- [
                    local i, neg = pi + 1, byte(p, pi + 1) == 94
                    if neg then i = i + 1 end
                    while byte(p, i) ~= 93 do
                        local lo = byte(p, i)
                        if byte(p, i + 1) == 45 and byte(p, i + 2) ~= 93 then
                            ok = ok or (c >= lo and c <= byte(p, i + 2))
                            i = i + 3
                        else
                            ok = ok or c == lo
                            i = i + 1
                        end
                    end
                    ok, nexti = ok ~= neg, i + 1
                else
                    ok = pc == c
                end
            end
            if ok then
                pi, si = nexti, si + 1
            elseif star_p then
                star_s = star_s + 1
                pi, si = star_p + 1, star_s
            else
                return false
            end
        end
    end
    while byte(p, pi) == 42 do pi = pi + 1 end
    return pi > np
end

describe("a journal replay over 500,000 keys #redis #fleet", function()
    local server, c
    local r = {}
    local KEYS = 500000             -- DEBUG POPULATE: fill:0 .. fill:499999
    -- The manager's command timeout: well below the replay's length (over
    -- a second here), so that a writer stalled until the end of the replay
    -- would wait several timeouts and fail the check.
    local TIMEOUT = 0.25
    local MARGIN = 0.35
    local SCAN_COUNT = 1000         -- the engine's SCAN COUNT hint
    local PATTERNS = {              -- 20 patterns, none a literal key
        "fill:*007", "fill:*123", "fill:*4?6", "fill:1?2?3?", "fill:[23]*999",
        "fill:*[05]55", "fill:4??42?", "fill:*31?7", "fill:?8?8?8", "fill:*2020",
        "fill:9*", "fill:*[^0-8]000", "fill:3[0-4]??[13579]", "fill:*77?77",
        "fill:12345?", "*:4242?", "fill:*5?5?5", "fill:2*8*8*8", "fill:*6666",
        "fill:1[0-9][0-9]0[0-9]1",
    }

    local function commandstat(name)
        local info = server.cli("INFO commandstats")
        return tonumber(info:match("cmdstat_" .. name .. ":calls=(%d+)")) or 0
    end

    setup(function()
        in_task(function()
            local t0 = sched.now()
            server = helpers.start_redis("--enable-debug-command yes")
            r.populated = server.cli("DEBUG POPULATE " .. KEYS .. " fill 10")
            r.dbsize_before = tonumber(server.cli("DBSIZE"))
            c = cache.new { host = "127.0.0.1", port = server.port, timeout = 1,
                            command_timeout = TIMEOUT, pool_size = 2 }
            r.connected = c:connect()
            assert(c:set("w", "old", 0))
            r.old_in_redis = raw_get(server, "w")
            server.cli("CONFIG RESETSTAT")

            -- the outage: the server stops; a read times out
            helpers.kill_redis(server, "STOP")
            c:get("probe")
            r.using_redis_in_outage = c:stats().using_redis
            r.cleared_in_outage = 0
            for _, p in ipairs(PATTERNS) do
                r.cleared_in_outage = r.cleared_in_outage + c:clear(p)
            end

            -- the server runs again; one task writes w and one reads it
            -- until the manager is back on Redis, then a little longer
            helpers.kill_redis(server, "CONT")
            local t_cont = sched.now()
            local done = false
            r.waits, r.last_written, r.stale_reads = {}, nil, {}
            r.sets_in_replay = 0
            local writer = sched.spawn(function()
                local i = 0
                while not done do
                    i = i + 1
                    local v = "v" .. i
                    local t = sched.now()
                    if not c:stats().using_redis then
                        r.sets_in_replay = r.sets_in_replay + 1
                    end
                    local ok, err = c:set("w", v, 0)
                    r.waits[#r.waits + 1] = sched.now() - t
                    assert(ok, err)
                    r.last_written = v
                    sched.sleep(0.01)
                end
            end)
            local reader = sched.spawn(function()
                while not done do
                    local v = c:get("w")
                    if v == "old" then r.stale_reads[#r.stale_reads + 1] = sched.now() - t_cont end
                    sched.sleep(0.005)
                end
            end)
            r.recovered = wait_for(function()
                local s = c:stats()
                return s.using_redis and s.reconnects >= 1
            end, 45)
            r.replay_seconds = sched.now() - t_cont
            sched.sleep(0.2)
            done = true
            r.writer_ok, r.writer_err = pcall(writer.join, writer)
            r.reader_ok, r.reader_err = pcall(reader.join, reader)
            r.stats = c:stats()
            r.w_after = { c:get("w") }
            r.w_in_redis = raw_get(server, "w")
            r.scan_calls = commandstat("scan")
            r.dbsize_after = tonumber(server.cli("DBSIZE"))

            -- what the patterns match, computed here
            r.gone, r.kept = {}, {}
            for i = 0, KEYS - 1 do
                local key = "fill:" .. i
                local hit = false
                for j = 1, #PATTERNS do
                    if glob(PATTERNS[j], key) then hit = true break end
                end
                local list = hit and r.gone or r.kept
                list[#list + 1] = key
            end
            r.seconds = sched.now() - t0
        end)
    end)

    teardown(function()
        if c then c:disconnect() end
        helpers.stop_redis(server)
    end)

    -- How many of `keys` (sampled: every step-th) Redis holds.
    local function exists_sample(keys, step)
        local held, asked = 0, 0
        local batch = {}
        local function flush()
            if #batch == 0 then return end
            held = held + tonumber(server.cli("EXISTS " .. table.concat(batch, " ")))
            asked, batch = asked + #batch, {}
        end
        for i = 1, #keys, step do
            batch[#batch + 1] = keys[i]
            if #batch == 500 then flush() end
        end
        flush()
        return held, asked
    end

    it("starts with 500,000 keys and a manager on Redis", function()
        assert.are.equal(KEYS, r.dbsize_before, r.populated)
        assert.is_true(r.connected)
        assert.are.equal(core.encode("old"), r.old_in_redis)
    end)

    it("serves the outage (20 clears) from the memory store", function()
        assert.is_false(r.using_redis_in_outage)
        assert.are.equal(0, r.cleared_in_outage)   -- nothing of fill: in memory
    end)

    it("recovers, after a replay longer than a set may wait", function()
        assert.is_true(r.recovered, "back on Redis within 45 s")
        -- else no writer could have been stalled, and the next check
        -- would prove nothing
        assert.is_true(r.replay_seconds > TIMEOUT + MARGIN,
            ("the replay took %.2f s"):format(r.replay_seconds))
    end)

    it("makes no set wait much longer than the command timeout", function()
        assert.is_true(r.writer_ok, tostring(r.writer_err))
        -- sets were issued while the replay ran, so a writer stalled until
        -- its end would show here
        assert.is_true(r.sets_in_replay >= 5, r.sets_in_replay .. " sets during the replay")
        local longest = 0
        for _, w in ipairs(r.waits) do longest = math.max(longest, w) end
        assert.is_true(longest < TIMEOUT + MARGIN,
            ("a set waited %.3f s (command timeout %g s)"):format(longest, TIMEOUT))
    end)


    it("applies the 20 patterns in one SCAN pass", function()
        -- one pass is about KEYS / COUNT calls (+1 for each recovery
        -- round's probe); a pass per pattern would be 20 times that
        local one_pass = KEYS / SCAN_COUNT
        assert.is_true(r.scan_calls >= 1, "the replay scanned")
        assert.is_true(r.scan_calls <= 1.5 * one_pass,
            ("%d SCAN calls for %d keys and COUNT %d: more than one pass")
                :format(r.scan_calls, KEYS, SCAN_COUNT))
    end)

    it("removes exactly the keys some pattern matches", function()
        assert.is_true(r.recovered)
        assert.is_true(#r.gone > 10000 and #r.kept > 400000,
            ("%d matched, %d not"):format(#r.gone, #r.kept))
        local extra = r.w_in_redis and 1 or 0
        assert.are.equal(#r.kept + extra, r.dbsize_after)
        local held, asked = exists_sample(r.gone, 7)
        assert.are.equal(0, held, ("%d of %d matching keys sampled remain"):format(held, asked))
        held, asked = exists_sample(r.kept, 97)
        assert.are.equal(asked, held, ("%d of %d other keys sampled remain"):format(held, asked))
    end)

    it("never serves the pre-outage value of the key written during the replay", function()
        assert.is_true(r.reader_ok, tostring(r.reader_err))
        assert.are.same({}, r.stale_reads)
        assert.are_not.equal("old", r.w_after[1])
        assert.are_not.equal(core.encode("old"), r.w_in_redis)
    end)

    it("leaves that key with its last written value or nothing", function()
        local v, found = r.w_after[1], r.w_after[2]
        assert.is_true(not found or v == r.last_written,
            ("get(w) = %s; last written %s"):format(tostring(v), tostring(r.last_written)))
        assert.is_true(r.w_in_redis == nil or r.w_in_redis == core.encode(r.last_written),
            ("Redis holds %q; last written %s"):format(tostring(r.w_in_redis), r.last_written))
    end)

    it("empties the memory store on the switch", function()
        assert.are.equal(0, r.stats.keys)
    end)

    it("runs within a minute", function()
        assert.is_true(r.seconds < 60, ("%.1f s"):format(r.seconds))
    end)
end)

-- A clear costs a pass over the keyspace. Were clears issued during a
-- replay journaled for another round (with its own pass), a steady stream
-- of them (cache.invalidate in a busy service) would keep the manager off
-- a healthy Redis for good, serving its outage values meanwhile.
describe("a journal replay under a steady stream of clears #redis #fleet", function()
    local server, c
    local r = {}

    setup(function()
        in_task(function()
            server = helpers.start_redis("--enable-debug-command yes")
            server.cli("DEBUG POPULATE 500000 fill 10")
            c = cache.new { host = "127.0.0.1", port = server.port, timeout = 1,
                            command_timeout = 0.25, pool_size = 2 }
            r.connected = c:connect()
            helpers.kill_redis(server, "STOP")
            c:get("probe")                  -- times out: the outage starts
            c:set("user:1", "outage", 0)
            c:clear("fill:*7")              -- the replay needs a full pass
            helpers.kill_redis(server, "CONT")
            local t_cont, done = sched.now(), false
            r.clears_in_replay = 0
            local clearer = sched.spawn(function()
                while not done do
                    if not c:stats().using_redis then
                        r.clears_in_replay = r.clears_in_replay + 1
                    end
                    c:clear("video:*")
                    sched.sleep(0.1)
                end
            end)
            local connecting = sched.spawn(function()
                local t = sched.now()
                c:connect()
                return sched.now() - t
            end)
            r.recovered = wait_for(function() return c:stats().using_redis end, 30)
            r.replay_seconds = sched.now() - t_cont
            done = true
            r.clearer_ok, r.clearer_err = pcall(clearer.join, clearer)
            r.connect_ok, r.connect_seconds = pcall(connecting.join, connecting)
            r.user1 = { c:get("user:1") }
        end)
    end)

    teardown(function()
        if c then c:disconnect() end
        helpers.stop_redis(server)
    end)

    it("has clears issued while the replay runs", function()
        assert.is_true(r.connected)
        assert.is_true(r.clearer_ok, tostring(r.clearer_err))
        assert.is_true(r.clears_in_replay >= 3, r.clears_in_replay .. " clears during the replay")
    end)

    it("finishes the replay and switches back to Redis", function()
        assert.is_true(r.recovered, "back on Redis within 30 s")
        assert.is_true(r.replay_seconds < 10, ("the replay took %.2f s"):format(r.replay_seconds))
        assert.is_true(r.connect_ok, tostring(r.connect_seconds))
        assert.is_true(r.connect_seconds < 10,
            ("connect() waited %.2f s"):format(r.connect_seconds))
    end)

    it("serves nothing of the outage afterwards", function()
        assert.are.same({ nil, false }, r.user1)
    end)
end)
