-- exit_flush_spec.lua -- invalidations made during an outage do not
-- vanish at exit: a manager that connected once and holds an outage
-- journal waits up to CACHE_EXIT_FLUSH_TIMEOUT for Redis and replays it,
-- at the script's end, on os.exit and on a graceful signal; when Redis
-- does not answer in time it warns, naming what was not invalidated.
-- Each case runs a cachert process against a server the spec stops and
-- continues (SIGSTOP / SIGCONT) by PID.

local helpers = require "helpers"

local sh = helpers.sh

-- The script: connect, write "a" (Redis), stop the server, delete "a" and
-- clear "p*" (an outage: memory store, journaled), then `ending`.
local SCRIPT = [[
    local cache, sched = require "cache", require "cachert"
    local port, pid, ending, flush = tonumber(arg[1]), arg[2], arg[3], tonumber(arg[4])
    local c = cache.new { host = "127.0.0.1", port = port, command_timeout = 0.2,
                          exit_flush_timeout = flush }
    assert(c:connect(), "connected")
    c:mset { a = 1, p1 = 1 }
    os.execute("kill -STOP " .. pid)
    c:get("probe")                               -- times out: the outage
    c:delete("a")
    c:clear("p*")
    if ending:match("cont") then                 -- the server answers again soon
        os.execute("(sleep 0.3; kill -CONT " .. pid .. ") &")
    end
    if ending:match("disconnect") then c:disconnect() end
    if ending:match("exit") then os.exit(3) end
    if ending:match("signal") then
        print("waiting")
        io.stdout:flush()
        sched.sleep(30)
    end
]]

describe("the outage journal at exit #redis", function()
    local server, dir

    setup(function()
        server = helpers.start_redis()
        dir = sh("mktemp -d /tmp/cachert-exit-XXXXXX"):gsub("%s+$", "")
        local f = assert(io.open(dir .. "/script.lua", "w"))
        f:write(SCRIPT)
        f:close()
    end)

    teardown(function()
        helpers.kill_redis(server, "CONT")
        helpers.stop_redis(server)
        if dir and dir:match("^/tmp/cachert%-exit%-") then sh("rm -rf " .. dir) end
    end)

    before_each(function()
        helpers.kill_redis(server, "CONT")
        server.cli("FLUSHALL")
    end)

    -- Runs the script; returns exit status, stderr, seconds taken.
    local function now()
        return tonumber((sh("date +%s.%N")))
    end

    local function command(ending, flush)
        return ("%s %s/script.lua %d %d %s %s 2>%s/stderr >%s/stdout"):format(
            helpers.cachert_bin(), dir, server.port, server.pid, ending, flush,
            dir, dir)
    end

    local function run(ending, flush)
        local start = now()
        local _, status = sh(command(ending, flush))
        local took = now() - start
        helpers.kill_redis(server, "CONT")
        return status, helpers.slurp(dir .. "/stderr"), took
    end

    local function exists(key)
        return server.cli("--raw EXISTS " .. key) == "1\n"
    end

    it("replays the journal when Redis answers within the timeout", function()
        local status, err, took = run("cont", 5)
        assert.are.equal(0, status, err)
        assert.is_false(exists("a"))
        assert.is_false(exists("p1"))
        assert.is_nil(err:find("exiting with", 1, true), err)
        assert.is_true(took < 4, took .. " s")
    end)

    it("warns, naming what was not invalidated, when Redis stays silent", function()
        local status, err, took = run("stay", 1)
        assert.are.equal(0, status, err)
        assert.matches("exiting with 1 keys and 1 patterns changed during a Redis outage "
                       .. "and not invalidated there", err, 1, true)
        assert.matches("CACHE_EXIT_FLUSH_TIMEOUT = 1 s", err, 1, true)
        assert.is_true(took >= 0.9 and took < 3, took .. " s")
        assert.is_true(exists("a"))              -- honestly left behind
    end)

    it("does not wait with CACHE_EXIT_FLUSH_TIMEOUT = 0", function()
        local status, err, took = run("stay", 0)
        assert.are.equal(0, status, err)
        assert.matches("exiting with 1 keys and 1 patterns", err, 1, true)
        assert.is_true(took < 1.5, took .. " s")
    end)

    it("reconnects for it after a disconnect()", function()
        local status, err = run("cont-disconnect", 5)
        assert.are.equal(0, status, err)
        assert.is_false(exists("a"))
        assert.is_false(exists("p1"))
    end)

    it("replays it on os.exit, keeping the exit code", function()
        local status, err = run("cont-exit", 5)
        assert.are.equal(3, status, err)
        assert.is_false(exists("a"))
    end)

    it("replays it on SIGTERM, exiting 143", function()
        os.remove(dir .. "/code")
        -- a shell that waits for cachert records its exit status
        sh(("sh -c '%s & echo $! >%s/pid; wait $!; echo $? >%s/code' >/dev/null 2>&1 &")
            :format(command("cont-signal", 5), dir, dir))
        local function ready()
            return helpers.slurp(dir .. "/stdout"):find("waiting", 1, true) ~= nil
        end
        local function code() return tonumber(helpers.slurp(dir .. "/code")) end
        assert.is_true(helpers.wait_for(ready, 10), "the script reached its sleep")
        sh("sleep 0.5")                          -- the server answers again
        sh("kill -TERM " .. tonumber(helpers.slurp(dir .. "/pid")))
        assert.is_true(helpers.wait_for(code, 10) ~= nil, "exited within 10 s")
        assert.are.equal(143, code())
        assert.is_false(exists("a"))
        assert.is_nil(helpers.slurp(dir .. "/stderr"):find("exiting with", 1, true))
    end)

    it("does not wait for a memory-only manager", function()
        local f = assert(io.open(dir .. "/memory.lua", "w"))
        f:write('local c = require("cache").new{} c:set("a", 1) c:delete("a")')
        f:close()
        -- A wait would last the 10 s flush timeout: 5 s leaves room for a
        -- slow start (the sanitizer build on a loaded machine takes ~1 s).
        local start = now()
        local out, status = sh("CACHE_EXIT_FLUSH_TIMEOUT=10 " .. helpers.cachert_bin() .. " "
                               .. dir .. "/memory.lua")
        local took = now() - start
        assert.are.equal(0, status, out)
        assert.are.equal("", out)
        assert.is_true(took < 5, took .. " s")
    end)
end)
