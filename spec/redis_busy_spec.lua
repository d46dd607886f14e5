-- redis_busy_spec.lua -- a server that is busy but answering is not
-- declared lost. 10,000 tasks, 3% of them clearing a pattern (each clear a
-- loop of SCAN round trips over a 20,000-key keyspace) and the others
-- writing and reading 1 KB values, all at once on one manager with a
-- command timeout of 0.3 s: replies come later than the timeout after
-- their command was issued (queued behind the other tasks' pipelined
-- commands), yet the server never stays silent that long, so there is no
-- error and no switch to the memory store. The command timeout bounds the
-- server's silence, not a command's wait. Every wait is bounded; the
-- server is stopped by PID in teardown.

local helpers = require "helpers"
local cache = require "cache"
local sched = require "cachert"

local in_task, wait_for = helpers.in_task, helpers.wait_for

local TASKS = 10000
local CLEAR_EVERY = 33           -- task i clears when i % 33 == 0: 3%
local PAIRS = 3                  -- set + get pairs per other task
local KEYSPACE = 20000           -- DEBUG POPULATE: ~20 SCAN calls a clear
local COMMAND_TIMEOUT = 0.3
local DEADLINE = 120             -- seconds for the whole run, a bound only

describe("when 10,000 tasks keep a healthy server busy, 3% of them clearing #redis", function()
    local server, c
    local r = {}

    setup(function()
        server = helpers.start_redis("--enable-debug-command yes")
        assert(server.cli("DEBUG POPULATE " .. KEYSPACE):match("OK"))
        c = cache.new { host = "127.0.0.1", port = server.port, timeout = 2,
                        command_timeout = COMMAND_TIMEOUT, pool_size = 10 }
        r.connected = c:connect()
        r.wrong, r.raised, r.clears, r.slowest = 0, {}, 0, 0
        r.left_redis = false
        in_task(function()
            local pad = ("x"):rep(1000)
            local finished = 0
            local t0 = sched.now()
            -- how long one operation took, from the call to its result
            local function timed(fn, ...)
                local t1 = sched.now()
                local a, b = fn(...)
                local took = sched.now() - t1
                if took > r.slowest then r.slowest = took end
                return a, b
            end
            local monitor = sched.spawn(function()
                while finished < TASKS and sched.now() - t0 < DEADLINE do
                    if not c:stats().using_redis then r.left_redis = true end
                    sched.sleep(0.01)
                end
            end)
            for i = 1, TASKS do
                sched.spawn(function()
                    local ok, err = pcall(function()
                        if i % CLEAR_EVERY == 0 then
                            local n = timed(c.clear, c, ("t%d:*"):format(i))
                            assert(type(n) == "number", "clear gave " .. tostring(n))
                            r.clears = r.clears + 1
                            return
                        end
                        for n = 1, PAIRS do
                            local key, value = ("t%d:%d"):format(i, n), i .. pad
                            timed(c.set, c, key, value)
                            local got, found = timed(c.get, c, key)
                            if got ~= value or not found then
                                r.wrong = r.wrong + 1
                                r.first_wrong = r.first_wrong or key
                            end
                        end
                    end)
                    if not ok and #r.raised < 5 then r.raised[#r.raised + 1] = err end
                    finished = finished + 1
                end)
            end
            r.all_finished = wait_for(function() return finished == TASKS end, DEADLINE)
            r.seconds = sched.now() - t0
            monitor:join()
        end)
        r.stats = c:stats()
    end)

    teardown(function()
        if c then c:disconnect() end
        helpers.stop_redis(server)
    end)

    it("runs every task to the end", function()
        assert.is_true(r.connected)
        assert.is_true(r.all_finished, ("%.1f s"):format(r.seconds or -1))
        assert.are.same({}, r.raised)
        assert.are.equal(math.floor(TASKS / CLEAR_EVERY), r.clears)
    end)

    it("keeps replies waiting longer than the command timeout (the premise)", function()
        assert.is_true(r.slowest > COMMAND_TIMEOUT,
                       ("the slowest operation took %.3f s"):format(r.slowest))
    end)

    it("counts no error and never leaves Redis", function()
        assert.are.equal(0, r.stats.errors, tostring(r.stats.last_error))
        assert.is_true(r.stats.using_redis)
        assert.is_false(r.left_redis)
        assert.are.equal(0, r.stats.reconnects)
    end)

    it("reads back from Redis what every task wrote", function()
        assert.are.equal(0, r.wrong, "first: " .. tostring(r.first_wrong))
        assert.are.equal(KEYSPACE + (TASKS - math.floor(TASKS / CLEAR_EVERY)) * PAIRS,
                         tonumber(server.cli("DBSIZE"):match("%d+")))
    end)
end)
