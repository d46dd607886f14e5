-- near_spec.lua -- the near cache (DESIGN.md "Near cache (L1)"): decoded
-- values of Redis hits kept in the process, coherent with Redis through
-- client-side caching over RESP2, with several real processes on one
-- redis-server.
--
-- The reader is this spec's process (managers with `near` on); the writer
-- is another real process (spec/agent_helpers.lua) with its own manager on
-- the same server. Every wait is bounded; servers, proxies and the agent
-- are stopped by PID in teardown.

local helpers = require "helpers"
local agents = require "agent_helpers"
local cache = require "cache"
local sched = require "cachert"

local in_task, wait_for, sh = helpers.in_task, helpers.wait_for, helpers.sh

-- Near hits so far of manager `m`.
local function near_hits(m)
    return m:stats().near_hits
end

describe("near cache, one server, another process writing #redis #near", function()
    local server, writer
    local made = {}

    local function reader(opts, port)
        local o = { host = "127.0.0.1", port = port or server.port,
                    near = { max_items = 1000 }, command_timeout = 0.5 }
        for k, v in pairs(opts or {}) do o[k] = v end
        local m = cache.new(o)
        made[#made + 1] = m
        assert.is_true(m:connect())
        return m
    end

    -- Runs `src` in the writer process (its manager is `c`).
    local function write(src)
        return writer:call(src)
    end

    setup(function()
        server = helpers.start_redis("--enable-debug-command local", { standalone = true })
        writer = agents.start()
        assert(writer:call(([[
            c = cache.new { host = "127.0.0.1", port = %d }
            return c:connect()]]):format(server.port)))
    end)

    teardown(function()
        for _, m in ipairs(made) do pcall(m.disconnect, m) end
        if writer then writer:stop() end
        helpers.stop_redis(server)
    end)

    after_each(function()
        for _, m in ipairs(made) do pcall(m.disconnect, m) end
        made = {}
        server.cli("FLUSHALL")
    end)

    it("serves a hot key from the process, and tracking is on every data connection",
       function()
        in_task(function()
            local r = reader({ pool_size = 3 })
            assert(write([[return c:set("hot", "v1", 0)]]))
            assert.are.same({ "v1", true }, { r:get("hot") })      -- from Redis, kept
            local calls = server.cli("INFO commandstats"):match("cmdstat_get:calls=(%d+)")
            for _ = 1, 100 do
                assert.are.equal("v1", r:get("hot"))
            end
            local s = r:stats()
            assert.are.equal(100, s.near_hits)
            assert.are.equal(1, s.near_keys)
            assert.is_true(s.hits >= 101)
            -- not one more GET reached the server
            assert.are.equal(calls, server.cli("INFO commandstats")
                                        :match("cmdstat_get:calls=(%d+)"))
            -- three data connections redirect to one subscriber
            local list = server.cli("CLIENT LIST")
            local sub = list:match("id=(%d+)[^\n]*flags=P[^\n]*cmd=subscribe")
            assert.is_not_nil(sub, list)
            local redirected = 0
            for line in list:gmatch("[^\n]+") do
                if line:match("flags=t ") and line:match("redir=" .. sub .. " ") then
                    redirected = redirected + 1
                end
            end
            assert.are.equal(3, redirected, list)
        end)
    end)

    it("sees another process's write right after its invalidation arrives", function()
        in_task(function()
            local r = reader()
            assert(write([[return c:set("k", "v1", 0)]]))
            assert.are.equal("v1", r:get("k"))
            assert.are.equal("v1", r:get("k"))
            assert.are.equal(1, near_hits(r))
            local inv0 = r:stats().invalidations
            -- a task reads the key every millisecond; once the invalidation
            -- has been counted, the very next read must not be the old value
            local seen_at, stale_after_inv, old_after_new = nil, 0, 0
            local done = false
            local poller = sched.spawn(function()
                local t_end = sched.now() + 5
                while not done and sched.now() < t_end do
                    local inv = r:stats().invalidations
                    local v = r:get("k")
                    if v == "v2" and not seen_at then seen_at = sched.now() end
                    if inv > inv0 and v ~= "v2" then stale_after_inv = stale_after_inv + 1 end
                    if seen_at and v ~= "v2" then old_after_new = old_after_new + 1 end
                    sched.sleep(0.001)
                end
            end)
            local written_at = write([[
                assert(c:set("k", "v2", 0))
                return cachert.now()]])
            assert.is_true(wait_for(function() return seen_at ~= nil end, 5))
            sched.sleep(0.1)
            done = true
            poller:join()
            assert.are.equal(0, stale_after_inv)
            assert.are.equal(0, old_after_new)
            local delay_ms = (seen_at - written_at) * 1000
            print(("\nnear cache: another process's write seen %.2f ms after its SET "
                   .. "returned (reader polling every 1 ms)"):format(delay_ms))
            assert.is_true(delay_ms < 1000, delay_ms)
            assert.is_true(r:stats().invalidations > inv0)
        end)
    end)

    it("with a namespace, tracks the whole prefix (BCAST) on the subscriber alone",
       function()
        in_task(function()
            local r = reader({ namespace = "app:", pool_size = 2 })
            local inv0 = r:stats().invalidations
            -- keys the reader never read: told all the same under its prefix
            assert(write([[return c:set("app:unread", "x", 0)]]))
            assert.is_true(wait_for(function()
                return r:stats().invalidations > inv0 end, 5))
            local inv1 = r:stats().invalidations
            assert(write([[return c:set("other:unread", "x", 0)]]))
            assert(write([[return c:set("app:unread2", "x", 0)]]))
            assert.is_true(wait_for(function()
                return r:stats().invalidations > inv1 end, 5))
            -- the key outside the prefix was not told: exactly one more
            assert.are.equal(inv1 + 1, r:stats().invalidations)
            -- and the near cache is coherent for a key read through it
            assert(write([[return c:set("app:x", "v1", 0)]]))
            assert.are.equal("v1", r:get("x"))
            assert.are.equal("v1", r:get("x"))
            assert.are.equal(1, near_hits(r))
            assert(write([[return c:set("app:x", "v2", 0)]]))
            assert.is_true(wait_for(function() return r:get("x") == "v2" end, 5))
            -- BCAST: the data connections themselves track nothing
            local list = server.cli("CLIENT LIST")
            assert.is_nil(list:match("flags=t "), list)
            assert.is_not_nil(list:match("flags=PtB"), list)
        end)
    end)

    it("without a namespace, is told only of keys it read", function()
        in_task(function()
            local r = reader()
            local inv0 = r:stats().invalidations
            assert(write([[return c:set("never-read", "x", 0)]]))
            assert(write([[return c:set("read", "x", 0)]]))
            r:get("read")
            assert(write([[return c:set("read", "y", 0)]]))
            assert.is_true(wait_for(function()
                return r:stats().invalidations > inv0 end, 5))
            sched.sleep(0.05)
            assert.are.equal(inv0 + 1, r:stats().invalidations)
        end)
    end)

    it("never serves the old value after its subscriber is killed", function()
        in_task(function()
            local r = reader()
            assert(write([[return c:set("k", "v1", 0)]]))
            r:get("k")
            assert.are.equal("v1", r:get("k"))
            assert.are.equal(1, near_hits(r))
            local killed = server.cli("CLIENT KILL TYPE pubsub")
            assert.are.equal("1\n", killed)
            assert(write([[return c:set("k", "v2", 0)]]))
            -- from here on: never v1 (RESP2 says nothing: the reader saw
            -- its subscriber's socket close and flushed)
            local wrong = {}
            local t_end = sched.now() + 1.5
            while sched.now() < t_end do
                local v = r:get("k")
                if v ~= "v2" then wrong[#wrong + 1] = tostring(v) end
                sched.sleep(0.005)
            end
            assert.are.same({}, wrong)
            -- tracking came back: a new subscriber, and hits are kept again
            assert.matches("sub=1", server.cli("CLIENT LIST TYPE pubsub"))
            local h = near_hits(r)
            assert.is_true(wait_for(function()
                r:get("k")
                return near_hits(r) > h
            end, 5))
            assert(write([[return c:set("k", "v3", 0)]]))
            assert.is_true(wait_for(function() return r:get("k") == "v3" end, 5))
        end)
    end)

    it("notices a subscriber cut off without a reset (no answer to its PING)", function()
        in_task(function()
            -- the reader goes through a proxy; SIGSTOP of the proxy freezes
            -- every connection without closing any
            local proxy = helpers.start_proxy(server.port)
            local ok, err = pcall(function()
                local r = reader({ command_timeout = 0.3 }, proxy.port)
                assert(write([[return c:set("k", "v1", 0)]]))
                r:get("k")
                assert.are.equal("v1", r:get("k"))
                assert.are.equal(1, near_hits(r))
                sh("kill -STOP -" .. proxy.pid)
                -- the subscriber's PING (every second) goes unanswered: the
                -- near cache is flushed within about 1 s + the timeout
                local flushed = wait_for(function()
                    return r:stats().near_keys == 0 end, 4)
                sh("kill -CONT -" .. proxy.pid)
                assert.is_true(flushed)
            end)
            sh("kill -CONT -" .. proxy.pid)
            helpers.stop_proxy(proxy)
            assert(ok, err)
        end)
    end)

    it("forgets everything on FLUSHALL", function()
        in_task(function()
            local r = reader()
            assert(write([[return c:set("a", 1, 0) and c:set("b", 2, 0)]]))
            r:get("a"); r:get("b")
            assert.are.equal(1, r:get("a"))
            assert.are.equal(2, r:stats().near_keys)
            server.cli("FLUSHALL")
            assert.is_true(wait_for(function() return r:stats().near_keys == 0 end, 5))
            assert.are.same({ nil, false }, { r:get("a") })
            assert.are.same({ nil, false }, { r:get("b") })
        end)
    end)

    it("expires a value with its TTL, even when Redis says nothing", function()
        in_task(function()
            -- no active expiry: Redis tells nobody until the key is touched
            server.cli("DEBUG SET-ACTIVE-EXPIRE 0")
            local ok, err = pcall(function()
                local r = reader()
                assert(write([[return c:set("ttl", "short", 0.3)]]))
                assert.are.equal("short", r:get("ttl"))
                assert.are.equal("short", r:get("ttl"))
                assert.are.equal(1, near_hits(r))
                sched.sleep(0.35)
                local h = near_hits(r)
                assert.are.same({ nil, false }, { r:get("ttl") })
                assert.are.equal(h, near_hits(r))
            end)
            server.cli("DEBUG SET-ACTIVE-EXPIRE 1")
            assert(ok, err)
        end)
    end)

    it("drops a key Redis evicted under maxmemory", function()
        in_task(function()
            local r = reader()
            assert(write([[return c:set("victim", "old", 0)]]))
            r:get("victim")
            assert.are.equal("old", r:get("victim"))
            assert.are.equal(1, near_hits(r))
            local used = tonumber(server.cli("INFO memory"):match("used_memory:(%d+)"))
            server.cli(("CONFIG SET maxmemory %d"):format(used + 2 * 1024 * 1024))
            server.cli("CONFIG SET maxmemory-policy allkeys-lru")
            local ok, err = pcall(function()
                -- the reader's hits never touch the key in Redis: it is the
                -- least recently used one there
                local evicted = write([[
                    local big = string.rep("x", 20000)
                    for i = 1, 2000 do
                        c:set("filler:" .. i, big, 0)
                        if i % 50 == 0 and not c:exists("victim") then return true end
                    end
                    return not c:exists("victim")]])
                assert.is_true(evicted)
                assert.is_true(wait_for(function()
                    return select(2, r:get("victim")) == false end, 5))
            end)
            server.cli("CONFIG SET maxmemory 0")
            assert(ok, err)
        end)
    end)

    it("never keeps a GET reply that raced with an invalidation of its key", function()
        in_task(function()
            -- a proxy holds every server reply that carries the old value
            -- for 0.5 s; the invalidation (on the subscriber's connection)
            -- passes at once, so it arrives between the GET and its reply
            local port = math.random(20000, 60000)
            local log = os.tmpname()
            local pid = helpers.start_process(
                ("%spython3 spec/delay_proxy.py %d %d OLDMARK 0.5")
                    :format(helpers.NO_PRELOAD, port, server.port), log)
            local ok, err = pcall(function()
                assert(wait_for(function() return helpers.slurp(log):match("ready") end, 10),
                       helpers.slurp(log))
                local r = reader({ pool_size = 1, command_timeout = 3 }, port)
                assert(write([[return c:set("race", "OLDMARK-1", 0)]]))
                local reply_at
                local getter = sched.spawn(function()
                    local v = r:get("race")
                    reply_at = sched.now()
                    return v
                end)
                sched.sleep(0.1)       -- the GET is out, its reply held
                local inv0 = r:stats().invalidations
                assert(write([[return c:set("race", "new-2", 0)]]))
                assert.is_true(wait_for(function()
                    return r:stats().invalidations > inv0 end, 5))
                assert.is_nil(reply_at)    -- the invalidation came first
                -- the reply is the value at read time, returned but not kept
                assert.are.equal("OLDMARK-1", getter:join())
                assert.are.equal(0, r:stats().near_keys)
                assert.are.equal("new-2", r:get("race"))
                assert.are.equal("new-2", r:get("race"))
            end)
            helpers.stop_process(pid)
            os.remove(log)
            assert(ok, err)
        end)
    end)

    it("flushes on an outage and reads what others wrote meanwhile after it", function()
        in_task(function()
            local proxy = helpers.start_proxy(server.port)
            local ok, err = pcall(function()
                local r = reader({ timeout = 1 }, proxy.port)
                assert(write([[return c:set("o", "before", 0)]]))
                r:get("o")
                assert.are.equal("before", r:get("o"))
                assert.are.equal(1, near_hits(r))
                local wrong = {}
                local function check()
                    local v = r:get("o")
                    if v == "before" then wrong[#wrong + 1] = sched.now() end
                end
                helpers.stop_proxy(proxy)
                assert(write([[return c:set("o", "during", 0)]]))
                assert.is_true(wait_for(function()
                    check()
                    return not r:stats().using_redis
                end, 5))
                assert.are.equal(0, r:stats().near_keys)
                check()
                helpers.restart_proxy(proxy)
                assert.is_true(wait_for(function()
                    check()
                    return r:stats().using_redis
                end, 15))
                assert.are.equal("during", r:get("o"))
                check()
                assert.are.same({}, wrong)
                -- and kept again once tracking is back
                local h = near_hits(r)
                assert.is_true(wait_for(function()
                    r:get("o")
                    return near_hits(r) > h
                end, 5))
            end)
            helpers.stop_proxy(proxy)
            assert(ok, err)
        end)
    end)

    it("returns tables as fresh copies", function()
        in_task(function()
            local r = reader()
            assert(r:set("t", { list = { 1, 2 }, name = "n" }, 0))
            local first = r:get("t")
            first.list[1] = 99
            first.name = nil
            local second = r:get("t")
            second.list[2] = 77
            local third = r:get("t")
            assert.are.same({ list = { 1, 2 }, name = "n" }, third)
            assert.is_true(near_hits(r) >= 1)
            assert.are_not.equal(second, third)
        end)
    end)

    it("updates its own writes at once (set, delete, clear, mset)", function()
        in_task(function()
            local r = reader()
            assert(r:set("own", "a", 0))
            r:get("own")
            assert.are.equal("a", r:get("own"))
            assert(r:set("own", "b", 0))
            assert.are.equal("b", r:get("own"))
            r:get("own")
            assert(r:delete("own"))
            assert.are.same({ nil, false }, { r:get("own") })
            assert(r:mset({ own = "c", p1 = "x" }, 0))
            assert.are.equal("c", r:get("own"))
            r:get("p1")
            assert.are.equal("x", r:get("p1"))
            assert.are.equal(1, r:clear("p*"))
            assert.are.same({ nil, false }, { r:get("p1") })
            local got = r:mget({ "own", "missing" })
            assert.are.same({ "c", n = 2 }, got)
        end)
    end)

    it("keeps cached() hits in the process and drops them when another process deletes",
       function()
        in_task(function()
            local r = reader()
            local calls = 0
            local f = r:cached(60, "fn")(function(x)
                calls = calls + 1
                return "value:" .. x, { x = x }
            end)
            local v, t = f(1)
            assert.are.equal("value:1", v)
            assert.are.same({ x = 1 }, t)
            f(1)                    -- from Redis: kept
            local h = near_hits(r)
            for _ = 1, 10 do
                v, t = f(1)
                assert.are.equal("value:1", v)
                t.x = 5             -- a fresh copy each time
            end
            assert.are.same({ x = 1 }, select(2, f(1)))
            assert.are.equal(1, calls)
            assert.is_true(near_hits(r) >= h + 10)
            assert(write([[return c:delete(cache.key("fn", 1))]]))
            assert.is_true(wait_for(function()
                f(1)
                return calls == 2
            end, 5))
        end)
    end)
end)

describe("near cache over Sentinel #redis #near #sentinel", function()
    local topology = require "sentinel_helpers"
    local topo, r, w

    setup(function()
        topo = topology.start()
    end)

    teardown(function()
        if r then pcall(r.disconnect, r) end
        if w then pcall(w.disconnect, w) end
        topology.stop(topo)
    end)

    it("stays coherent across a failover", function()
        in_task(function()
            local opts = { sentinels = topo.addrs, sentinel_master = topology.MASTER,
                           command_timeout = 0.5, tls = helpers.tls_option(topo.primary) }
            local ro = { near = { max_items = 100 } }
            for k, v in pairs(opts) do ro[k] = v end
            r = cache.new(ro)
            w = cache.new(opts)
            assert.is_true(r:connect())
            assert.is_true(w:connect())
            assert(w:set("s", "v1", 0))
            r:get("s")
            assert.are.equal("v1", r:get("s"))
            assert.are.equal(1, near_hits(r))
            assert(w:set("s", "v2", 0))
            assert.is_true(wait_for(function() return r:get("s") == "v2" end, 5))
            r:get("s")
            local out = topology.cli(topo.sentinels[1].port,
                                     "SENTINEL FAILOVER " .. topology.MASTER)
            assert(out:match("OK"), out)
            -- never v1; after the switch, the new primary's value
            local wrong = {}
            assert.is_true(wait_for(function()
                local v = r:get("s")
                if v == "v1" then wrong[#wrong + 1] = v end
                return topology.master_port(topo) == topo.replica.port
                    and r:stats().using_redis and w:stats().using_redis
                    and w:set("s", "v3", 0) and r:get("s") == "v3"
            end, 20))
            assert.are.same({}, wrong)
            -- tracking on the new primary: a hit is kept, then invalidated
            local h = near_hits(r)
            assert.is_true(wait_for(function()
                r:get("s")
                return near_hits(r) > h
            end, 5))
            assert(w:set("s", "v4", 0))
            assert.is_true(wait_for(function() return r:get("s") == "v4" end, 5))
        end)
    end)
end)

describe("near cache over Redis Cluster #redis #near #cluster", function()
    local cluster = require "cluster_helpers"
    local topo, r, w

    setup(function()
        topo = cluster.start()
    end)

    teardown(function()
        if r then pcall(r.disconnect, r) end
        if w then pcall(w.disconnect, w) end
        cluster.stop(topo)
    end)

    it("has one subscriber per primary and sees writes on every node", function()
        in_task(function()
            r = cache.new { cluster_nodes = topo.addrs, near = { max_items = 1000 } }
            w = cache.new { cluster_nodes = topo.addrs }
            assert.is_true(r:connect())
            assert.is_true(w:connect())
            local keys = {}
            for i = 1, 30 do keys[i] = "ck:" .. i end
            for _, k in ipairs(keys) do assert(w:set(k, "v1", 0)) end
            for _, k in ipairs(keys) do r:get(k) end
            local h = near_hits(r)
            for _, k in ipairs(keys) do assert.are.equal("v1", r:get(k)) end
            assert.are.equal(h + #keys, near_hits(r))
            for _, port in ipairs(topo.primaries) do
                assert.matches("sub=1", cluster.cli(port, "CLIENT LIST TYPE pubsub"))
            end
            -- keys on every primary
            local owners = {}
            for _, k in ipairs(keys) do
                owners[cluster.slot_owners(topo.primaries[1])[cluster.key_slot(k)]] = true
            end
            local n = 0
            for _ in pairs(owners) do n = n + 1 end
            assert.are.equal(#topo.primaries, n)
            for _, k in ipairs(keys) do assert(w:set(k, "v2", 0)) end
            assert.is_true(wait_for(function()
                for _, k in ipairs(keys) do
                    if r:get(k) ~= "v2" then return false end
                end
                return true
            end, 5))
        end)
    end)
end)
