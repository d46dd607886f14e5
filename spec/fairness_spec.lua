-- spec/fairness_spec.lua -- cache calls answered by the memory store let
-- the loop run (lua/cachert.lua, "Fairness"): a task made only of them
-- cannot starve timers, other tasks or a manager's reconnects. Runs under
-- luajit and under cachert.

local cache = require "cache"
local sched = require "cachert"
local helpers = require "helpers"
local in_task = helpers.in_task

-- The bound that keeps a failing run from hanging: a loop that starves
-- the others stops by itself after this many seconds.
local HARD_STOP = 5

-- Spawns a task that runs `step()` until `stop()` is true or HARD_STOP
-- seconds have passed, and a task that sleeps 0.2 s; returns how long the
-- sleeper took to wake (HARD_STOP or more when it was starved) and how
-- many steps ran.
local function sleeper_against(step)
    local t0, woke_after, steps = sched.now(), nil, 0
    local busy = sched.spawn(function()
        while woke_after == nil and sched.now() - t0 < HARD_STOP do
            step()
            steps = steps + 1
        end
    end)
    local sleeper = sched.spawn(function()
        sched.sleep(0.2)
        woke_after = sched.now() - t0
    end)
    busy:join()
    sleeper:join()
    return woke_after, steps
end

describe("fairness of memory-store calls", function()
    it("wakes a sleeping task while another only calls set and get", function()
        in_task(function()
            local c = cache.new()
            local woke_after, steps = sleeper_against(function()
                c:set("k", "v")
                c:get("k")
            end)
            assert.is_true(woke_after < 2, ("woke after %.2f s"):format(woke_after))
            assert.is_true(steps > 0)
        end)
    end)

    it("wakes a sleeping task while another only gets cached hits", function()
        in_task(function()
            local c = cache.new()
            local f = c:cached(60, "fair")(function(x) return x * 2 end)
            f(21)
            local woke_after = sleeper_against(function() f(21) end)
            assert.is_true(woke_after < 2, ("woke after %.2f s"):format(woke_after))
        end)
    end)

    it("wakes a sleeping task while another only stores tables", function()
        in_task(function()
            local c = cache.new()
            local woke_after = sleeper_against(function()
                c:set("t", { 1, 2, 3 })
                c:delete("t")
            end)
            assert.is_true(woke_after < 2, ("woke after %.2f s"):format(woke_after))
        end)
    end)

    it("wakes a sleeping task on time while another only calls get", function()
        in_task(function()
            local c = cache.new()
            c:set("k", "v")
            local woke_after = sleeper_against(function() c:get("k") end)
            -- slices are ~2 ms: the sleeper is late by far less than 50 ms
            assert.is_true(woke_after < 0.25, ("woke after %.3f s"):format(woke_after))
        end)
    end)

    it("lets two busy tasks take turns", function()
        in_task(function()
            local c = cache.new()
            local t0, counts, done = sched.now(), { 0, 0 }, false
            local function busy(i)
                return sched.spawn(function()
                    while not done and sched.now() - t0 < HARD_STOP do
                        c:get("k")
                        counts[i] = counts[i] + 1
                    end
                end)
            end
            local a, b = busy(1), busy(2)
            local stopper = sched.spawn(function()
                sched.sleep(0.1)
                done = true
            end)
            a:join(); b:join(); stopper:join()
            assert.is_true(counts[1] > 0 and counts[2] > 0,
                           ("counts %d and %d"):format(counts[1], counts[2]))
            assert.is_true(sched.now() - t0 < 2)
        end)
    end)

    it("never yields to a coroutine of the script's own", function()
        in_task(function()
            local c = cache.new()
            local iter = coroutine.wrap(function()
                local t0 = sched.now()
                while sched.now() - t0 < 0.02 do   -- ten slices
                    c:set("k", "v")
                    c:get("k")
                end
                return "finished"
            end)
            assert.are.equal("finished", iter())
        end)
    end)

    it("keeps working across a C call that cannot yield", function()
        in_task(function()
            local c = cache.new()
            local keys = {}
            for i = 1, 2000 do
                keys[i] = "k" .. i
                c:set(keys[i], (i * 7919) % 2000)
            end
            local t0 = sched.now()
            -- table.sort calls the comparator from C: no yield can cross it
            while sched.now() - t0 < 0.01 do
                table.sort(keys, function(x, y) return c:get(x) < c:get(y) end)
            end
            assert.are.equal(0, c:get(keys[1]))
        end)
    end)
end)

describe("fairness with a Redis server #redis", function()
    local server

    lazy_teardown(function()
        helpers.stop_redis(server)
    end)

    it("reconnects in the background while a task only uses the memory store", function()
        in_task(function()
            -- given a manager whose Redis was down at connect
            server = helpers.start_redis()
            local port = server.port
            helpers.kill_redis(server)
            local c = cache.new { host = "127.0.0.1", port = port, timeout = 0.5 }
            assert.is_false(c:connect())
            helpers.restart_redis(server)
            -- when a task only calls the memory store
            local t0 = sched.now()
            while not c:stats().using_redis and sched.now() - t0 < 10 do
                c:set("k", "v")
                c:get("k")
            end
            -- then the background retry got to run and found Redis
            assert.is_true(c:stats().using_redis)
            c:disconnect()
        end)
    end)
end)
