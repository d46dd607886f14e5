-- cluster_spec.lua -- cachert on a Redis Cluster (3 primaries + 3
-- replicas on loopback, node timeout 1000 ms: spec/cluster_helpers.lua):
-- keys spread over every primary, hash tags, mget/mset across slots, the
-- cluster-wide clear with an exact count and no KEYS, MOVED after a manual
-- slot move, ASK and resharding under load, a primary SIGKILLed under load
-- from 100 tasks (only its slots on memory meanwhile), the whole cluster
-- down (CLUSTERDOWN), a clear while a primary is down, TLS with a password,
-- the environment and URL settings, and a cluster down at connect.

local helpers = require "helpers"
local cluster = require "cluster_helpers"
local sched = require "cachert"

local in_task, wait_for = helpers.in_task, helpers.wait_for

local function manager(topo, opts)
    local o = { cluster_nodes = { topo.addrs[1], topo.addrs[2] }, namespace = "cs:",
                log_level = "error" }
    for k, v in pairs(opts or {}) do o[k] = v end
    return require("cache").new(o)
end

-- The value of `key` as the cluster holds it, asked of a live node
-- (redis-cli -c follows MOVED).
local function raw_get(topo, key)
    for _, node in ipairs(topo.nodes) do
        if helpers.process_alive(node.pid) then
            return (cluster.cli(node.port, "-c --raw GET " .. key):gsub("\n$", ""))
        end
    end
end

-- Keys in the node on `port`'s own keyspace.
local function dbsize(port)
    return tonumber((cluster.cli(port, "DBSIZE"):match("%d+")))
end

-- Starts a cluster for a describe's setup and runs fn() there; when fn
-- fails the cluster is stopped first (busted runs no teardown after a
-- failed setup).
local function start_then(fn)
    local topo = cluster.start()
    local ok, err = pcall(fn, topo)
    if not ok then
        cluster.stop(topo)
        error(err, 0)
    end
    return topo
end

describe("cachert on a Redis Cluster #redis", function()
    local topo

    setup(function()
        topo = cluster.start()
    end)

    teardown(function()
        cluster.stop(topo)
    end)

    it("spreads one workload's keys over every primary", function()
        local c = manager(topo)
        in_task(function()
            assert.is_true(c:connect())
            for i = 1, 300 do
                assert.is_true(c:set("spread:" .. i, { n = i }, 0))
            end
            for i = 1, 300 do
                assert.are.same({ n = i }, c:get("spread:" .. i))
            end
            local st = c:stats()
            assert.is_true(st.using_redis)
            assert.are.equal(3, st.cluster.nodes)
            assert.are.equal(3, st.cluster.nodes_up)
            assert.are.equal(0, st.cluster.slots_on_memory)
            assert.are.equal(0, st.errors)
        end)
        for _, port in ipairs(topo.primaries) do
            local n = dbsize(port)
            assert.is_true(n > 50, ("primary %d holds %d keys of 300"):format(port, n))
        end
        c:disconnect()
    end)

    it("keeps keys with one hash tag on one slot, as CLUSTER KEYSLOT says", function()
        local c = manager(topo)
        in_task(function()
            assert.is_true(c:connect())
            for _, k in ipairs { "{user42}.name", "{user42}.mail", "{user42}" } do
                assert.is_true(c:set(k, k, 0))
            end
        end)
        local slot = cluster.slot_of(topo, "cs:{user42}.name")
        assert.are.equal(cluster.slot_of(topo, "{user42}"), slot)
        local port
        for _, p in ipairs(topo.primaries) do
            local keys = cluster.cli(p, "--raw CLUSTER GETKEYSINSLOT " .. slot .. " 10")
            if keys:match("cs:{user42}") then
                port = p
                assert.are.equal(3, select(2, keys:gsub("cs:{user42}", "")))
            end
        end
        assert.truthy(port, "no primary holds slot " .. slot)
        c:disconnect()
    end)

    it("splits mget / mset across slots and nodes, holes kept in order", function()
        local c = manager(topo)
        in_task(function()
            assert.is_true(c:connect())
            local map = {}
            for i = 1, 40 do map["m" .. i] = i * 10 end
            assert.is_true(c:mset(map, 60))
            local keys = { n = 42 }
            for i = 1, 42 do
                if i % 7 ~= 0 then keys[i] = "m" .. i end
            end
            local out = c:mget(keys)
            assert.are.equal(42, out.n)
            for i = 1, 42 do
                if i % 7 == 0 or i > 40 then
                    assert.is_nil(out[i], "hole or missing key " .. i)
                else
                    assert.are.equal(i * 10, out[i])
                end
            end
        end)
        assert.matches("^1", cluster.cli(topo.nodes[1].port, "-c --raw EXISTS cs:m20"))
        c:disconnect()
    end)

    it("clears a pattern on every primary with an exact count and no KEYS", function()
        local c = manager(topo, { namespace = "" })
        for _, p in ipairs(topo.primaries) do cluster.cli(p, "CONFIG RESETSTAT") end
        local n = 100000
        in_task(function()
            assert.is_true(c:connect())
            local tasks = {}
            for t = 1, 50 do
                tasks[t] = sched.spawn(function()
                    for i = t, n, 50 do
                        assert(c:set("big:" .. i, i, 0))
                    end
                end)
            end
            for _, task in ipairs(tasks) do task:join() end
            assert.is_true(c:set("other:1", 1, 0))
            assert.are.equal(n, c:clear("big:*"))
            assert.are.equal(1, c:get("other:1"))
            assert.is_nil(c:get("big:77"))
        end)
        for _, p in ipairs(topo.primaries) do
            local stats = cluster.cli(p, "INFO commandstats")
            assert.is_nil(stats:match("cmdstat_keys:"), "KEYS ran on " .. p)
            assert.truthy(stats:match("cmdstat_scan:"), "no SCAN on " .. p)
        end
        c:disconnect()
    end)

    -- cachert on a script, configured by the environment only
    local function run(env, script)
        return helpers.sh(("env %s CACHE_EXIT_FLUSH_TIMEOUT=0 %s %s"):format(
            env, helpers.cachert_bin(), script))
    end

    it("runs examples/cluster.lua with REDIS_CLUSTER_NODES", function()
        local out, code = run("REDIS_CLUSTER_NODES=" .. table.concat(topo.addrs, ","),
                              "examples/cluster.lua")
        assert.are.equal(0, code, out)
        assert.matches("connected to redis:\ttrue", out, 1, true)
        assert.matches("user 42: Ada, lua c", out, 1, true)
        assert.matches("hits: 10, misses: 4, hit rate: 71.43%, backend: redis", out, 1, true)
        assert.matches("cluster: 3 primaries, 3 up, 0 slots on memory", out, 1, true)
        -- the tagged keys share a primary
        assert.matches("^1", cluster.cli(topo.nodes[1].port,
                                         "-c --raw EXISTS 'example:cluster:user:{42}:name'"))
    end)

    it("connects with a redis+cluster:// URL and with REDIS_CLUSTER=yes", function()
        local script = "-e 'local c = require \"cache\"; print(c.connect(), "
            .. "c.stats().cluster.nodes)'"
        local url = "redis+cluster://" .. table.concat(topo.addrs, ",", 2, 3)
        local out, code = run(("REDIS_URL='%s'"):format(url), script)
        assert.are.equal(0, code, out)
        assert.are.equal("true\t3\n", out)
        out, code = run(("REDIS_CLUSTER=yes REDIS_HOST=127.0.0.1 REDIS_PORT=%d")
                        :format(topo.nodes[4].port), script)
        assert.are.equal(0, code, out)
        assert.are.equal("true\t3\n", out)
    end)

    it("refuses a db other than 0, saying why", function()
        local out, code = run(("REDIS_URL='redis+cluster://%s/2'"):format(topo.addrs[1]),
                              "-e 'require(\"cache\").connect()'")
        assert.are_not.equal(0, code)
        assert.matches("must be 0 (Redis Cluster has only database 0)", out, 1, true)
    end)

    it("follows MOVED after a slot is moved by hand", function()
        local c = manager(topo)
        local key = "cs:moving"
        local slot = cluster.slot_of(topo, key)
        in_task(function()
            assert.is_true(c:connect())
            assert.is_true(c:set("moving", "before", 0))
        end)
        -- the owner and another primary, by their node ids
        local function owner_port()
            for _, p in ipairs(topo.primaries) do
                if cluster.cli(p, "--raw CLUSTER COUNTKEYSINSLOT " .. slot):match("^1") then
                    return p
                end
            end
        end
        local from = owner_port()
        local to
        for _, p in ipairs(topo.primaries) do if p ~= from then to = p; break end end
        local from_id = cluster.cli(from, "--raw CLUSTER MYID"):gsub("%s+$", "")
        local to_id = cluster.cli(to, "--raw CLUSTER MYID"):gsub("%s+$", "")
        cluster.cli(to, ("CLUSTER SETSLOT %d IMPORTING %s"):format(slot, from_id))
        cluster.cli(from, ("CLUSTER SETSLOT %d MIGRATING %s"):format(slot, to_id))
        -- during the migration (before the key moves): ASK for new keys of
        -- the slot is possible; the existing key is still read from `from`
        in_task(function()
            assert.are.equal("before", c:get("moving"))
        end)
        cluster.cli(from, ("MIGRATE 127.0.0.1 %d %s 0 5000"):format(to, key))
        in_task(function()
            -- the key is gone from `from`: ASK to `to`
            assert.are.equal("before", c:get("moving"))
            assert.is_true(c:set("moving", "during", 0))
        end)
        for _, p in ipairs(topo.primaries) do
            cluster.cli(p, ("CLUSTER SETSLOT %d NODE %s"):format(slot, to_id))
        end
        in_task(function()
            assert.are.equal("during", c:get("moving"))
            assert.is_true(c:set("moving", "after", 0))
            local st = c:stats()
            assert.are.equal(0, st.errors, st.last_error)
            assert.is_true(st.using_redis)
        end)
        assert.are.equal(to, owner_port())
        assert.are.equal("after", c:get("moving"))
        c:disconnect()
    end)
end)

describe("a Redis Cluster primary SIGKILLed under load from 100 tasks #redis", function()
    local topo, r

    setup(function()
        topo = start_then(function(t)
            topo = t
            r = {}
            local c = manager(topo)
            r.manager = c
            r.connected = c:connect()
            in_task(function()
                local load = helpers.start_model_load(c, r, 100, 2)
                sched.sleep(0.5)
                -- the victim: the primary holding key t1:k1's slot
                local slot = cluster.slot_of(topo, "cs:t1:k1")
                for _, node in ipairs(topo.nodes) do
                    if cluster.cli(node.port, "--raw ROLE"):match("^master")
                        and cluster.cli(node.port, "--raw CLUSTER COUNTKEYSINSLOT " .. slot)
                            :match("^1") then
                        r.victim = node
                    end
                end
                assert(r.victim, "no primary holds slot " .. slot)
                local owners = cluster.slot_owners(topo.nodes[1].port == r.victim.port
                                                   and topo.nodes[2].port or topo.nodes[1].port)
                local t0 = sched.now()
                helpers.sh("kill -KILL " .. r.victim.pid)
                -- meanwhile: only the victim's slots on memory
                r.partial = wait_for(function()
                    local cl = c:stats().cluster
                    return cl.slots_on_memory > 0
                end, 5)
                local cl = c:stats().cluster
                r.slots_on_memory = cl.slots_on_memory
                r.using_redis = c:stats().using_redis
                -- keys written now: those of the healthy primaries are in Redis
                -- at once, the victim's wait in memory for the replica; while
                -- only the victim's slots are on memory (later the others may
                -- answer CLUSTERDOWN until the replica is promoted: theirs go
                -- to memory too)
                -- (a brief CLUSTERDOWN outage of a healthy primary may also
                -- start and end meanwhile: its recovery counts a reconnect)
                local function victim_only()
                    return c:stats().cluster.slots_on_memory == r.slots_on_memory
                end
                r.written, r.misplaced = 0, {}
                for i = 1, 30 do
                    if not victim_only() then break end
                    local key, v = "healthy:" .. i, "during" .. i
                    local reconnects = c:stats().reconnects
                    assert(c:set(key, v, 0))
                    r.written = r.written + 1
                    local owner = owners[cluster.key_slot("cs:" .. key)]
                    local healthy = owner ~= r.victim.port
                    -- asked of its owner (a node on the way may answer
                    -- CLUSTERDOWN while the cluster agrees on the failure:
                    -- then nothing is known)
                    local raw = healthy and cluster.cli(owner, "--raw GET cs:" .. key)
                        or raw_get(topo, "cs:" .. key)
                    local in_redis = raw:find(v, 1, true) ~= nil
                    local steady = victim_only() and c:stats().reconnects == reconnects
                        and not (healthy and raw:match("CLUSTERDOWN"))
                    if steady and healthy ~= in_redis then
                        r.misplaced[#r.misplaced + 1] = ("%s (%s primary) %s in Redis"):format(
                            key, healthy and "healthy" or "lost", in_redis and "is" or "is not")
                    end
                    local got = c:get(key)
                    -- (once the outage ends, its keys are invalidated: a miss)
                    if got ~= v and steady and victim_only()
                        and c:stats().reconnects == reconnects then
                        r.misplaced[#r.misplaced + 1] = key .. " does not read back"
                    end
                end
                r.back = wait_for(function()
                    local st = c:stats().cluster
                    return st.slots_on_memory == 0 and st.nodes_up == 3
                end, 20)
                r.seconds = sched.now() - t0
                r.phase = "r"
                sched.sleep(0.5)
                helpers.stop_model_load(load, r)
                r.after_set = c:set("after:kill", "new", 0)
            end)
            print(("cluster: back on Redis (the promoted replica) %.2f s after SIGKILL; "
                   .. "%d operations; %d slots on memory meanwhile; %d keys written "
                   .. "then checked"):format(r.seconds, r.ops, r.slots_on_memory or -1,
                                             r.written or -1))
        end)
    end)

    teardown(function()
        if r and r.manager then r.manager:disconnect() end
        cluster.stop(topo)
    end)

    it("raises no error in any task and reads no wrong value", function()
        assert.is_true(r.connected)
        assert.are.same({}, r.task_errors)
        assert.are.same({}, r.stale_reads)
        assert.is_true(r.ops > 1000, "only " .. r.ops .. " operations")
    end)

    it("serves only the lost primary's slots from memory meanwhile", function()
        assert.is_true(r.partial)
        assert.is_true(r.using_redis)
        assert.is_true(r.slots_on_memory > 0 and r.slots_on_memory < 16384,
                       r.slots_on_memory .. " slots on memory")
        assert.is_true(r.written >= 5, "the outage ended too soon to write")
        assert.are.same({}, r.misplaced)
    end)

    it("is back on the promoted replica within seconds, nothing stale", function()
        assert.is_true(r.back, "still partly on memory")
        assert.is_true(r.seconds < 15, r.seconds .. " s")
        assert.is_true(r.after_set)
        assert.are.equal("new", raw_get(topo, "cs:after:kill"):match("new"))
        -- every key of the load as the model says, read from Redis
        for key, v in pairs(r.model) do
            local got = r.manager:get(key)
            if v == false then
                assert.is_nil(got, key)
            else
                assert.is_true(got == nil or got == v, key .. ": " .. tostring(got))
            end
        end
    end)
end)

describe("a Redis Cluster with every node down at connect #redis", function()
    it("falls back to memory like a single server, and says why", function()
        local c = require("cache").new { cluster_nodes = { "127.0.0.1:1", "127.0.0.1:2" },
                                         connect_timeout = 0.5, log_level = "off" }
        in_task(function()
            assert.is_false(c:connect())
            local st = c:stats()
            assert.is_false(st.using_redis)
            assert.matches("no node answers", st.last_error)
            assert.is_true(c:set("k", "v", 0))
            assert.are.equal("v", c:get("k"))
        end)
        c:disconnect()
    end)
end)

-- The node ids of the primaries, by port.
local function primary_ids(topo)
    local ids = {}
    for _, p in ipairs(cluster.primary_ports(topo)) do
        ids[p] = cluster.cli(p, "--raw CLUSTER MYID"):gsub("%s+$", "")
    end
    return ids
end

-- Runs `move(topo)` while 100 tasks write, delete and read through one
-- manager; returns the load's record.
local function under_load(topo, namespace, move)
    local r = {}
    local c = manager(topo, { namespace = namespace })
    r.manager = c
    r.connected = c:connect()
    in_task(function()
        local load = helpers.start_model_load(c, r, 100, 2)
        sched.sleep(0.3)
        local t0 = sched.now()
        move(topo, r)
        r.seconds = sched.now() - t0
        sched.sleep(0.3)
        helpers.stop_model_load(load, r)
    end)
    return r
end

-- Every key of the load reads as its model says, from Redis; with
-- `lost_ok`, a key may also be missing (Redis itself lost it: a primary
-- restarted empty), never old.
local function assert_model(r, lost_ok)
    in_task(function()
        for key, v in pairs(r.model) do
            local got = r.manager:get(key)
            if v == false or (lost_ok and got == nil) then
                assert.is_nil(got, key)
            else
                assert.are.equal(v, got, key)
            end
        end
    end)
end

describe("slots migrating under load from 100 tasks #redis", function()
    local topo

    setup(function() topo = cluster.start() end)
    teardown(function() cluster.stop(topo) end)

    it("follows ASK while the keys of a busy slot move one by one", function()
        local key = "ask:t1:k1" -- written, deleted and read by the load
        local slot = cluster.slot_of(topo, key)
        local r = under_load(topo, "ask:", function(_, rec)
            local ids = primary_ids(topo)
            local from, to
            for p in pairs(ids) do
                if cluster.cli(p, "--raw CLUSTER COUNTKEYSINSLOT " .. slot):match("^[1-9]") then
                    from = p
                end
            end
            for p in pairs(ids) do if p ~= from then to = p end end
            assert(from and to, "no owner found for slot " .. slot)
            cluster.cli(to, "CONFIG RESETSTAT")
            rec.to = to
            cluster.cli(to, ("CLUSTER SETSLOT %d IMPORTING %s"):format(slot, ids[from]))
            cluster.cli(from, ("CLUSTER SETSLOT %d MIGRATING %s"):format(slot, ids[to]))
            -- key by key, with the load running in between
            for _ = 1, 20 do
                local keys = cluster.cli(from, "--raw CLUSTER GETKEYSINSLOT " .. slot .. " 1")
                local k = keys:match("[^\n]+")
                if not k then break end
                cluster.cli(from, ("MIGRATE 127.0.0.1 %d %s 0 5000"):format(to, k))
                sched.sleep(0.05)
            end
            sched.sleep(0.2) -- new keys now land on `to` through ASK
            for _, p in ipairs(cluster.primary_ports(topo)) do
                cluster.cli(p, ("CLUSTER SETSLOT %d NODE %s"):format(slot, ids[to]))
            end
        end)
        r.manager:disconnect()
        assert.is_true(r.connected)
        assert.are.same({}, r.task_errors)
        assert.are.same({}, r.stale_reads)
        local st = r.manager:stats()
        assert.are.equal(0, st.errors, st.last_error)
        -- the importing node saw ASKING: the ASK path was taken
        local asking = cluster.cli(r.to, "INFO commandstats"):match("cmdstat_asking:calls=(%d+)")
        assert.is_true(tonumber(asking or 0) > 0, "no ASKING reached the importing node")
    end)

    it("reshards 1,500 slots with redis-cli --cluster reshard", function()
        local r = under_load(topo, "reshard:", function()
            local ids = primary_ids(topo)
            local ports = cluster.primary_ports(topo)
            local out, status = helpers.sh(("%stimeout 120 redis-cli --cluster reshard "
                .. "127.0.0.1:%d --cluster-from %s --cluster-to %s --cluster-slots 1500 "
                .. "--cluster-yes --cluster-pipeline 20 2>&1"):format(helpers.NO_PRELOAD,
                ports[1], ids[ports[1]], ids[ports[2]]))
            assert(status == 0, "reshard failed: " .. out)
        end)
        print(("reshard of 1,500 slots under load: %.2f s, %d operations"):format(
            r.seconds, r.ops))
        assert.is_true(r.connected)
        assert.are.same({}, r.task_errors)
        assert.are.same({}, r.stale_reads)
        local st = r.manager:stats()
        assert.are.equal(0, st.errors, st.last_error)
        assert.are.equal(0, st.cluster.slots_on_memory)
        assert_model(r)
        r.manager:disconnect()
    end)
end)

describe("a Redis Cluster down (CLUSTERDOWN) under load from 100 tasks #redis", function()
    local topo, r

    setup(function()
        topo = start_then(function(t)
            topo = t
            r = under_load(topo, "down:", function(_, rec)
                local victim = cluster.node_at(topo, topo.primaries[1])
                local replica = assert(cluster.replica_of(topo, victim.port), "no replica")
                helpers.sh("kill -KILL " .. victim.pid .. " " .. replica.pid)
                -- a healthy primary refuses every key once the cluster agrees
                local healthy = topo.primaries[2]
                rec.clusterdown = helpers.poll(function()
                    return cluster.cli(healthy, "GET x"):match("CLUSTERDOWN") ~= nil
                end, 15)
                rec.down_slots = wait_for(function()
                    return rec.manager:stats().cluster.slots_on_memory == cluster.SLOT_COUNT
                end, 5) and cluster.SLOT_COUNT or rec.manager:stats().cluster.slots_on_memory
                sched.sleep(0.5)
                local t0 = sched.now()
                cluster.restart_node(victim)
                rec.back = wait_for(function()
                    return rec.manager:stats().cluster.slots_on_memory == 0
                end, 30)
                rec.back_seconds = sched.now() - t0
            end)
            print(("CLUSTERDOWN: every slot on memory: %s; back on Redis %.2f s after "
                   .. "the primary's restart; %d operations"):format(tostring(r.down_slots),
                  r.back_seconds or -1, r.ops))
        end)
    end)

    teardown(function()
        if r and r.manager then r.manager:disconnect() end
        cluster.stop(topo)
    end)

    it("serves every slot from memory meanwhile, with no error in any task", function()
        assert.is_true(r.clusterdown, "the cluster never said CLUSTERDOWN")
        assert.are.equal(cluster.SLOT_COUNT, r.down_slots)
        assert.are.same({}, r.task_errors)
        assert.are.same({}, r.stale_reads)
    end)

    it("comes back to Redis when the cluster is up, nothing stale", function()
        assert.is_true(r.back, "still on memory")
        assert.is_true(r.manager:stats().using_redis)
        assert_model(r, true)
    end)
end)

describe("a Redis Cluster over TLS with a password #redis", function()
    local topo

    setup(function() topo = cluster.start { tls = true, password = "s3cret" } end)
    teardown(function() cluster.stop(topo) end)

    it("verifies every node's certificate and logs in to each", function()
        local c = manager(topo, { tls = { ca_file = topo.tls .. "/ca.pem" },
                                  password = "s3cret", namespace = "tls:" })
        in_task(function()
            assert.is_true(c:connect())
            for i = 1, 200 do assert.is_true(c:set("k" .. i, i, 0)) end
            for i = 1, 200, 13 do assert.are.equal(i, c:get("k" .. i)) end
            local st = c:stats()
            assert.are.equal(0, st.errors, st.last_error)
            assert.are.equal(3, st.cluster.nodes_up)
            assert.are.equal(200, c:clear("*"))
        end)
        for _, p in ipairs(topo.primaries) do
            assert.matches("cmdstat_unlink", cluster.cli(p, "INFO commandstats"))
        end
        c:disconnect()
    end)

    it("falls back to memory on a wrong password, saying so", function()
        local c = manager(topo, { tls = { ca_file = topo.tls .. "/ca.pem" },
                                  password = "wrong", connect_timeout = 1 })
        in_task(function()
            assert.is_false(c:connect())
            assert.matches("WRONGPASS", c:stats().last_error)
            assert.is_true(c:set("k", "v", 0))
            assert.are.equal("v", c:get("k"))
        end)
        c:disconnect()
    end)

    it("refuses a node whose certificate it cannot verify", function()
        local c = manager(topo, { tls = { ca_file = topo.tls .. "/other-ca.pem" },
                                  password = "s3cret", connect_timeout = 1 })
        in_task(function()
            assert.is_false(c:connect())
            assert.matches("certificate verify failed", c:stats().last_error)
        end)
        c:disconnect()
    end)
end)

describe("a clear while a Redis Cluster primary is down #redis", function()
    local topo

    setup(function() topo = cluster.start() end)
    teardown(function() cluster.stop(topo) end)

    it("clears the healthy primaries now and the lost one's keys on its replica later", function()
        local c = manager(topo, { namespace = "clr:" })
        in_task(function()
            assert.is_true(c:connect())
            for i = 1, 300 do assert.is_true(c:set("k" .. i, i, 0)) end
            assert.is_true(c:set("other", "stays", 0))
            local victim = cluster.node_at(topo, topo.primaries[1])
            helpers.sh("kill -KILL " .. victim.pid)
            local n = c:clear("k*")
            -- the lost primary holds about a third: not counted, not served
            assert.is_true(n > 100 and n < 300, n .. " keys cleared")
            assert.is_true(c:stats().cluster.slots_on_memory > 0)
            for i = 1, 300 do assert.is_nil(c:get("k" .. i), "k" .. i) end
            -- its replica takes over: the journaled clear runs there
            assert.is_true(wait_for(function()
                return c:stats().cluster.slots_on_memory == 0
            end, 20), "still partly on memory")
            for i = 1, 300 do assert.is_nil(c:get("k" .. i), "k" .. i .. " came back") end
            assert.are.equal("stays", c:get("other"))
        end)
        -- and in Redis itself: no k* left on any primary
        for _, p in ipairs(cluster.primary_ports(topo)) do
            local left = cluster.cli(p, "--raw SCAN 0 MATCH 'clr:k*' COUNT 1000")
            assert.is_nil(left:match("clr:k"), left)
        end
        c:disconnect()
    end)
end)

describe("a Redis Cluster with one shard down at connect #redis", function()
    local topo

    setup(function() topo = cluster.start() end)
    teardown(function() cluster.stop(topo) end)

    it("uses the primaries that answer and serves the lost shard from memory", function()
        -- the other primaries keep serving their slots while one shard
        -- (a primary and its replica) is gone
        for _, node in ipairs(topo.nodes) do
            cluster.cli(node.port, "CONFIG SET cluster-require-full-coverage no")
        end
        local victim = cluster.node_at(topo, topo.primaries[1])
        local replica = assert(cluster.replica_of(topo, victim.port))
        local seed = cluster.node_at(topo, topo.primaries[2])
        local lost = cluster.slot_count(seed.port, victim.port)
        helpers.sh("kill -KILL " .. victim.pid .. " " .. replica.pid)
        local c = manager(topo, { cluster_nodes = { "127.0.0.1:" .. seed.port },
                                  namespace = "part:", connect_timeout = 0.5 })
        in_task(function()
            assert.is_true(c:connect())
            local st = c:stats()
            assert.is_true(st.using_redis)
            assert.are.equal(3, st.cluster.nodes)
            assert.are.equal(2, st.cluster.nodes_up)
            assert.are.equal(lost, st.cluster.slots_on_memory)
            local in_redis = 0
            for i = 1, 60 do
                assert.is_true(c:set("k" .. i, "v" .. i, 0))
                assert.are.equal("v" .. i, c:get("k" .. i))
                if raw_get(topo, "part:k" .. i):find("v" .. i, 1, true) then
                    in_redis = in_redis + 1
                end
            end
            -- about two thirds in Redis, the rest in memory
            assert.is_true(in_redis > 20 and in_redis < 60, in_redis .. " of 60 in Redis")
            cluster.restart_node(victim)
            assert.is_true(wait_for(function()
                return c:stats().cluster.slots_on_memory == 0
            end, 30), "the shard never came back")
            for i = 1, 60 do
                local v = c:get("k" .. i)
                -- the lost shard's keys were invalidated there: a miss, never old
                assert.is_true(v == nil or v == "v" .. i, "k" .. i .. ": " .. tostring(v))
            end
            assert.are.equal(0, c:stats().errors, c:stats().last_error)
        end)
        c:disconnect()
    end)
end)
