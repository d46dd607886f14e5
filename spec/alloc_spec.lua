-- spec/alloc_spec.lua -- the scheduler switches tasks without allocating
-- (lua/cachert.lua: no closure, table or packed arguments per suspend,
-- wake, resume or poll), and a GET allocates nothing on the Lua heap
-- beyond its value. Counted with collectgarbage("count") while the GC is
-- stopped: bytes, not time. The bounds leave room for JIT traces compiled
-- meanwhile and a few tables grown once, and are a small fraction of what
-- one table or closure per switch would cost over the loops below (a
-- table is 56 bytes and more). Also the behaviours the allocation-free
-- structures must keep: wake's argument counts, FIFO order past the ready
-- queue's first size, ids reported before anyone waits, more ids waited
-- for at once than the scheduler has slots for. Runs under luajit and
-- under cachert.

local sched = require "cachert"
local core = require "cache.core"
local cache = require "cache"
local helpers = require "helpers"
local in_task = helpers.in_task

-- Bytes the Lua heap grew by while fn() ran with the GC stopped. fn may
-- return a later start mark (collectgarbage("count") in KB, taken once its
-- warm-up is over); the count then runs from there.
local function allocated(fn)
    collectgarbage("collect")
    collectgarbage("stop")
    local kb0 = collectgarbage("count")
    local ok, mark, kb1 = pcall(fn)
    local kb_end = collectgarbage("count")
    collectgarbage("restart")
    assert(ok, mark)
    return ((kb1 or kb_end) - (mark or kb0)) * 1024
end

-- The smallest of `tries` counts: a stray task left by an earlier spec that
-- happens to run meanwhile cannot fail the test, a scheduler that
-- allocates per switch fails every try.
local function least_allocated(tries, fn)
    local least = math.huge
    for _ = 1, tries do
        least = math.min(least, allocated(fn))
    end
    return least
end

-- Two tasks that wake each other `n` times: each round trip is two
-- suspends, two wakes (with two arguments and with one) and two resumes.
local function ping_pong(n)
    local a, b
    a = sched.spawn(function()
        local sum = 0
        for i = 1, n do
            local x, y = sched.suspend()
            sum = sum + x + y
            sched.wake(b, i)
        end
        return sum
    end)
    b = sched.spawn(function()
        local sum = 0
        for i = 1, n do
            sched.wake(a, i, 1)
            sum = sum + sched.suspend()
        end
        return sum
    end)
    local sa, sb = a:join(), b:join()
    assert(sa == n * (n + 1) / 2 + n and sb == n * (n + 1) / 2, "wrong wake arguments")
end

-- `ntasks` tasks that each call step() `warm` times, then `n` times more;
-- returns the heap size (KB) when the last of them began its `n` calls and
-- when the last one ended, for allocated().
local function marked_tasks(ntasks, warm, n, step)
    local warmed, left, mark, kb1 = 0, ntasks, nil, nil
    local tasks = {}
    for t = 1, ntasks do
        tasks[t] = sched.spawn(function()
            for _ = 1, warm do step() end
            warmed = warmed + 1
            if warmed == ntasks then mark = collectgarbage("count") end
            for _ = 1, n do step() end
            left = left - 1
            if left == 0 then kb1 = collectgarbage("count") end
        end)
    end
    for t = 1, ntasks do tasks[t]:join() end
    return mark, kb1
end

describe("the scheduler's allocations", function()
    it("are none per suspend, wake and resume", function()
        in_task(function()
            ping_pong(2000)     -- compiles the traces
            local bytes = least_allocated(3, function() ping_pong(20000) end)
            -- (measured: ~3 KB; one table per switch would be 80,000 x 56
            -- bytes and more, the old scheduler took 17 MB)
            assert.is_true(bytes < 32 * 1024, ("%d bytes for 20,000 round trips"):format(bytes))
        end)
    end)

    it("are none per sleep(0), the loop's poll included, with 50 tasks", function()
        in_task(function()
            local bytes = least_allocated(3, function()
                return marked_tasks(50, 50, 200, function() sched.sleep(0) end)
            end)
            -- (measured: 6-13 KB, whatever the number of sleeps; one table per sleep
            -- would be 560 KB, the old scheduler took 5 MB)
            assert.is_true(bytes < 64 * 1024, ("%d bytes for 10,000 sleeps"):format(bytes))
        end)
    end)

    it("are none per memory-store get beyond the value, slices included", function()
        in_task(function()
            local c = cache.new{ max_items = 100 }
            local value = ("v"):rep(64)
            assert.is_true(c:set("k", value))
            local n = 0
            for _ = 1, 2000 do if c:get("k") == value then n = n + 1 end end
            -- the value's string is interned already: a get finds it
            local bytes = least_allocated(3, function()
                for _ = 1, 50000 do
                    if c:get("k") == value then n = n + 1 end
                end
            end)
            assert.are.equal(2000 + 3 * 50000, n)
            assert.is_true(bytes < 8 * 1024, ("%d bytes for 50,000 gets"):format(bytes))
        end)
    end)
end)

describe("the scheduler's allocations with a Redis server #redis", function()
    local manager, disconnect_all = helpers.manager_maker { timeout = 2 }
    local server
    setup(function() server = helpers.start_redis() end)
    teardown(function()
        disconnect_all()
        helpers.stop_redis(server)
    end)

    it("are none per GET beyond the value, from 10 tasks", function()
        in_task(function()
            local c = manager(server)
            assert.is_true(c:connect())
            local value = ("r"):rep(64)
            assert.is_true(c:set("alloc:k", value))
            local before = c:stats()
            local bad = 0
            local bytes = least_allocated(3, function()
                return marked_tasks(10, 20, 500, function()
                    if c:get("alloc:k") ~= value then bad = bad + 1 end
                end)
            end)
            local after = c:stats()
            assert.are.same({ 0, 3 * 10 * 520, true },
                            { bad, after.hits - before.hits, after.using_redis })
            -- (measured: ~6 KB; one table per GET would be 280 KB, the old
            -- scheduler took 2.5 MB)
            assert.is_true(bytes < 64 * 1024, ("%d bytes for 5,000 GETs"):format(bytes))
        end)
    end)
end)

describe("the allocation-free scheduler", function()
    local function pack(...)
        return { n = select("#", ...), ... }
    end

    it("hands wake's arguments to suspend, their count kept", function()
        in_task(function()
            local got = {}
            local t = sched.spawn(function()
                for i = 1, 5 do got[i] = pack(sched.suspend()) end
            end)
            local cases = {
                pack(), pack(nil), pack(1, nil), pack(nil, nil, nil), pack("a", false, 3, nil),
            }
            for i = 1, #cases do
                while t:status() ~= "waiting" do sched.sleep(0) end
                sched.wake(t, unpack(cases[i], 1, cases[i].n))
            end
            t:join()
            assert.are.same(cases, got)
        end)
    end)

    it("hands spawn's arguments to the task, their count kept", function()
        in_task(function()
            local cases = { pack(), pack(nil), pack(1, nil), pack(1, 2, 3, nil) }
            for i = 1, #cases do
                local t = sched.spawn(function(...) return pack(...) end,
                                      unpack(cases[i], 1, cases[i].n))
                assert.are.same(cases[i], t:join())
            end
        end)
    end)

    it("runs tasks in the order they became ready, past the queue's first size", function()
        in_task(function()
            local log, tasks = {}, {}
            for i = 1, 300 do
                tasks[i] = sched.spawn(function()
                    log[#log + 1] = i
                    sched.sleep(0)
                    log[#log + 1] = 300 + i
                end)
            end
            for i = 1, 300 do tasks[i]:join() end
            local want = {}
            for i = 1, 600 do want[i] = i end
            assert.are.same(want, log)
        end)
    end)

    it("returns at once from wait for an id the loop reported before", function()
        in_task(function()
            local id = core.timer(0)
            sched.sleep(0.02)       -- the timer fires meanwhile: nobody waits for it yet
            local t0 = sched.now()
            sched.wait(id)
            assert.is_true(sched.now() - t0 < 0.01)
        end)
    end)

    it("wakes every task when more ids are waited for than it has slots", function()
        in_task(function()
            -- a long sleep holds a slot; 2,500 later ids wrap around the slots
            -- and collide with it and with each other
            local long = sched.spawn(function() sched.sleep(0.2) return "long" end)
            local tasks, woke = {}, 0
            for i = 1, 2500 do
                tasks[i] = sched.spawn(function()
                    sched.sleep(i % 2 == 0 and 0.01 or 0)
                    woke = woke + 1
                end)
            end
            for i = 1, 2500 do tasks[i]:join() end
            assert.are.same({ 2500, "long" }, { woke, long:join() })
        end)
    end)

    it("rejects a wait for something that is not an id", function()
        local _, err = pcall(sched.wait, "1")
        assert.are.equal("wait: id must be a number", err)
    end)
end)
