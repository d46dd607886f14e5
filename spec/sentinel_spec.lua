-- sentinel_spec.lua -- a manager configured with sentinels under load from
-- 100 tasks while the primary fails over: SIGKILL of the primary, and
-- SENTINEL FAILOVER. Each scenario runs once in its describe's setup
-- (inside a task) and its `it`s check one outcome each: no task raises, no
-- task reads a value other than its model's, the manager comes back on the
-- promoted replica, where writes land and where keys deleted during the
-- switch stay deleted. The measured time from the trigger to the manager
-- using Redis again is printed. Every process is stopped by PID.

local helpers = require "helpers"
local topology = require "sentinel_helpers"
local cache = require "cache"
local core = require "cache.core"
local sched = require "cachert"

local in_task, wait_for = helpers.in_task, helpers.wait_for

local RECOVERY_DEADLINE = 15

-- Runs the scenario: 100 tasks set, delete and read their own keys (a
-- model says what each must hold; false: deleted) while `trigger(topo)`
-- fails the primary over. Returns what it observed.
local function run_scenario(topo, trigger, name)
    local r = {}
    local c = cache.new { sentinels = topo.addrs, sentinel_master = topology.MASTER,
                          namespace = "sn:", timeout = 0.5, command_timeout = 0.5,
                          pool_size = 4, tls = helpers.tls_option(topo.primary) }
    r.manager = c
    r.connected = c:connect()
    in_task(function()
        local load = helpers.start_model_load(c, r, 100, 2)
        sched.sleep(0.5)
        r.ops_before = r.ops
        local reconnects = c:stats().reconnects
        local t0 = sched.now()
        trigger(topo)
        -- the switch: the manager leaves Redis and comes back on it (it
        -- may be off Redis for milliseconds only: count the reconnect)
        r.back = wait_for(function()
            local st = c:stats()
            return st.using_redis and st.reconnects > reconnects
                and topology.master_port(topo) == topo.replica.port
        end, RECOVERY_DEADLINE)
        r.went_down = c:stats().reconnects > reconnects
        r.seconds = sched.now() - t0
        r.phase = "r"        -- writes after the switch go to new keys
        sched.sleep(0.5)
        helpers.stop_model_load(load, r)
        r.after_set = c:set("after:switch", "new", 0)
    end)
    print(("%s: back on Redis (the promoted replica) %.2f s after the trigger; "
           .. "%d operations"):format(name, r.seconds, r.ops))
    return r
end

local function scenario(name, trigger)
    describe(name .. " under load from 100 tasks #redis", function()
        local topo, r

        setup(function()
            topo = topology.start()
            r = run_scenario(topo, trigger, name)
        end)

        teardown(function()
            if r and r.manager then r.manager:disconnect() end
            topology.stop(topo)
        end)

        it("was connected through the sentinels", function()
            assert.is_true(r.connected)
            assert.is_true(r.ops_before > 100)
        end)

        it("went to memory and came back on the promoted replica", function()
            assert.is_true(r.went_down)
            assert.is_true(r.back)
            assert.are.equal("master", topology.role(topo.replica))
        end)

        it("raises nothing in any task", function()
            assert.are.same({}, r.task_errors)
        end)

        it("never reads a value other than the last one written", function()
            assert.are.same({}, r.stale_reads)
        end)

        it("writes after the switch to the new primary", function()
            assert.is_true(r.after_set)
            assert.are.equal(core.encode("new"),
                             helpers.raw_get(topo.replica, "sn:after:switch"))
        end)

        it("keeps every key as last written, or missing; deleted keys stay deleted",
           function()
            local wrong, deleted = {}, 0
            for key, v in pairs(r.model) do
                local got, found = r.manager:get(key)
                local raw = helpers.raw_get(topo.replica, "sn:" .. key)
                if v == false then
                    deleted = deleted + 1
                    if found or raw ~= nil then
                        wrong[#wrong + 1] = key .. " should be deleted, got "
                            .. tostring(got) .. " / " .. tostring(raw)
                    end
                elseif found and got ~= v then
                    wrong[#wrong + 1] = ("%s: want %s, got %s"):format(key, v, tostring(got))
                elseif raw ~= nil and raw ~= core.encode(v) then
                    wrong[#wrong + 1] = ("%s: want %s, Redis has %q"):format(key, v, raw)
                end
            end
            assert.are.same({}, wrong)
            assert.is_true(deleted > 0)
        end)
    end)
end

scenario("SIGKILL of the Sentinel primary", function(topo)
    helpers.kill_redis(topo.primary, "KILL")
end)

scenario("SENTINEL FAILOVER", function(topo)
    local out = topology.cli(topo.sentinels[1].port, "SENTINEL FAILOVER " .. topology.MASTER)
    assert(out:match("OK"), out)
end)

describe("Sentinel settings from the environment #redis", function()
    local topo

    setup(function() topo = topology.start() end)
    teardown(function() topology.stop(topo) end)

    local function run(env, script)
        return helpers.sh(("%s%s %s"):format(helpers.tls_env(topo.primary) .. env,
                                             helpers.cachert_bin(), script))
    end

    it("runs examples/sentinel.lua with REDIS_SENTINELS and REDIS_SENTINEL_MASTER", function()
        local out, code = run(("REDIS_SENTINELS=%s REDIS_SENTINEL_MASTER=%s ")
                              :format(table.concat(topo.addrs, ","), topology.MASTER),
                              "examples/sentinel.lua")
        assert.are.equal(0, code, out)
        assert.matches("connected to redis:\ttrue", out, 1, true)
        assert.matches("hits: 8, misses: 4, hit rate: 66.67%, backend: redis", out, 1, true)
        -- the values are on the primary the sentinels named
        assert.are.equal("1\n", topo.primary.cli("EXISTS example:sentinel:profile:1"))
    end)

    it("reports TLS settings that cannot be loaded, without hanging connect()", function()
        -- the files are readable (config checks that) but the key is not
        -- the certificate's: OpenSSL refuses them when the round starts
        local certs = helpers.tls_certs()
        local out, code = helpers.sh(("timeout -s KILL 20 env REDIS_SENTINELS=%s "
            .. "REDIS_SENTINEL_MASTER=%s "
            .. "REDIS_TLS=yes REDIS_TLS_CA_FILE=%s/ca.pem REDIS_TLS_CERT_FILE=%s/client.pem "
            .. "REDIS_TLS_KEY_FILE=%s/server.key CACHE_EXIT_FLUSH_TIMEOUT=0 %s -e "
            .. "'local c = require \"cache\"; print(c.connect(), c.stats().last_error)'")
            :format(table.concat(topo.addrs, ","), topology.MASTER, certs, certs, certs,
                    helpers.cachert_bin()))
        assert.are.equal(0, code, out)
        assert.matches("false\tTLS error: TLS: ", out, 1, true)
    end)

    it("connects with a redis+sentinel:// URL naming the master and the db", function()
        local url = ("redis+sentinel://%s/%s/2"):format(table.concat(topo.addrs, ","),
                                                        topology.MASTER)
        local out, code = run(("REDIS_URL='%s' "):format(url), "-e '"
            .. "local c = require \"cache\"; print(c.connect()); c.set(\"u\", 1)'")
        assert.are.equal(0, code, out)
        assert.are.equal("true\n", out)
        assert.are.equal("1\n", topo.primary.cli("-n 2 EXISTS u"))
    end)
end)
