-- spec/runtime_spec.lua -- the cachert executable (command line, arg,
-- exit codes, the prompt) and the scheduler of require "cachert" (spawn,
-- join, sleep, now). Runs under luajit and under cachert.

local sched = require "cachert"
local in_task = require("helpers").in_task

local function quote(s)
    return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- Specs run from the repository root.
local ROOT = (function()
    local p = assert(io.popen("pwd"))
    local dir = p:read("*l")
    p:close()
    return dir
end)()

local function absolute(path)
    return path:sub(1, 1) == "/" and path or ROOT .. "/" .. path
end

local BUILD = absolute(os.getenv("CACHERT_BUILD_DIR") or "./build")
local CACHERT = BUILD .. "/cachert"

local function slurp(path)
    local f = assert(io.open(path, "rb"))
    local s = f:read("*a")
    f:close()
    return s
end

local function write_file(path, text)
    local f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
    return path
end

-- Runs a shell command line; returns stdout, stderr and the exit status.
-- stdin is `input` piped in, or /dev/null.
local function run(cmdline, input)
    local err_path = os.tmpname()
    local stdin = " </dev/null"
    local in_path
    if input then
        in_path = write_file(os.tmpname(), input)
        stdin = ""
        cmdline = "cat " .. in_path .. " | " .. cmdline
    end
    local p = assert(io.popen("(" .. cmdline .. ")" .. stdin .. " 2>" .. err_path
                              .. "; echo \"<exit:$?>\""))
    local out = p:read("*a")
    p:close()
    local stderr = slurp(err_path)
    os.remove(err_path)
    if in_path then os.remove(in_path) end
    local code = tonumber(out:match("<exit:(%d+)>\n$"))
    return out:gsub("<exit:%d+>\n$", ""), stderr, code
end

-- Runs cachert with the arguments (each quoted).
local function cachert(args, input)
    local parts = { quote(CACHERT) }
    for i = 1, #args do parts[#parts + 1] = quote(args[i]) end
    return run(table.concat(parts, " "), input)
end

local function script(text)
    return write_file(os.tmpname() .. ".lua", text)
end

local VERSION_LINE = "cachert " .. sched._VERSION .. " -- " .. jit.version .. "\n"

describe("cachert executable", function()
    describe("options", function()
        it("runs the chunk given with -e", function()
            assert.are.same({ "2\n", "", 0 }, { cachert { "-e", "print(1 + 1)" } })
        end)

        it("runs several -e chunks in order", function()
            assert.are.same({ "1\n2\n", "", 0 },
                            { cachert { "-e", "x = 1 print(x)", "-e", "print(x + 1)" } })
        end)

        it("prints the version with -v", function()
            assert.are.same({ VERSION_LINE, "", 0 }, { cachert { "-v" } })
        end)

        it("prints the version with --version, as with -v", function()
            assert.are.same({ VERSION_LINE, "", 0 }, { cachert { "--version" } })
        end)

        it("runs a script after --version, as after -v", function()
            assert.are.same({ VERSION_LINE .. "1\n", "", 0 },
                            { cachert { "--version", "-e", "print(1)" } })
        end)

        it("lists --version in the usage", function()
            local out = cachert { "--help" }
            assert.are.equal("  -v        Show version information (also --version).",
                             out:match("\n(  %-v [^\n]*)"))
        end)

        it("prints the usage with --help", function()
            local out, _, code = cachert { "--help" }
            assert.are.same({ "usage: cachert [options]... [script [args]...]", 0 },
                            { out:match("^[^\n]*"), code })
        end)

        it("prints the same usage with -h", function()
            assert.are.equal((cachert { "--help" }), (cachert { "-h" }))
        end)

        it("rejects an unknown option with exit status 1", function()
            local out, err, code = cachert { "-z" }
            assert.are.same({ "", "cachert: unrecognized option '-z'", 1 },
                            { out, err:match("^[^\n]*"), code })
        end)

        it("rejects -e without a chunk with exit status 1", function()
            local _, err, code = cachert { "-e" }
            assert.are.same({ "cachert: '-e' needs an argument", 1 },
                            { err:match("^[^\n]*"), code })
        end)

        it("requires the library given with -l into a global", function()
            assert.are.same({ "function\n", "", 0 },
                            { cachert { "-l", "cache", "-e", "print(type(cache.cached))" } })
        end)

        it("finds the cache module from another working directory", function()
            local out, err, code = run("cd /tmp && " .. quote(CACHERT)
                .. " -e " .. quote("print(type(require('cache').cached))"))
            assert.are.same({ "function\n", "", 0 }, { out, err, code })
        end)
    end)

    describe("scripts", function()
        local ARG_DUMP = [[
local lo, hi = 0, 0
for k in pairs(arg) do
    if k < lo then lo = k end
    if k > hi then hi = k end
end
for i = lo, hi do io.write(i, "=", arg[i], "\n") end
io.write("...=", table.concat({ ... }, ","), "\n")
]]

        it("sets arg as luajit does for a script with arguments", function()
            local path = script(ARG_DUMP)
            local expected = run("luajit " .. quote(path) .. " a 'b c' ''")
            local out = cachert { path, "a", "b c", "" }
            os.remove(path)
            assert.are.equal((expected:gsub("luajit", CACHERT)), out)
        end)

        it("sets arg as luajit does after options", function()
            local path = script(ARG_DUMP)
            local expected = run("luajit -e 'x = 1' -- " .. quote(path) .. " -v")
            local out = cachert { "-e", "x = 1", "--", path, "-v" }
            os.remove(path)
            assert.are.equal((expected:gsub("luajit", CACHERT)), out)
        end)

        it("passes the script's arguments as ...", function()
            local path = script("print(select('#', ...), ...)")
            local out = cachert { path, "x", "y" }
            os.remove(path)
            assert.are.equal("2\tx\ty\n", out)
        end)

        it("runs the script as a task", function()
            assert.are.equal("true\n",
                             (cachert { "-e", "print(require('cachert').current() ~= nil)" }))
        end)

        it("executes stdin as a script given -", function()
            assert.are.same({ "from stdin\ta\n", "", 0 },
                            { cachert({ "-", "a" }, "print('from stdin', ...)") })
        end)

        it("exits 1 naming a script that does not exist", function()
            local _, err, code = cachert { "/nonexistent/app.lua" }
            assert.are.same({ "cachert: cannot open /nonexistent/app.lua", 1 },
                            { err:match("^[^:]*: [^:]*"), code })
        end)

        it("exits 1 on a syntax error", function()
            local _, err, code = cachert { "-e", "x =" }
            assert.are.same({ "cachert: (command line):1: unexpected symbol near '<eof>'\n", 1 },
                            { err, code })
        end)
    end)

    describe("exit status", function()
        it("is 0 when the script succeeds", function()
            local _, _, code = cachert { "-e", "local x = 1" }
            assert.are.equal(0, code)
        end)

        it("is 1 after an uncaught error", function()
            local _, _, code = cachert { "-e", "error('boom')" }
            assert.are.equal(1, code)
        end)

        it("prints the message and a stack traceback of an uncaught error", function()
            local _, err = cachert { "-e", "error('boom')" }
            assert.are.equal("cachert: (command line):1: boom\nstack traceback:\n",
                             err:match("^[^\n]*\n[^\n]*\n"))
        end)

        it("prints a traceback for a non-string error", function()
            local _, err, code = cachert { "-e", "error({})" }
            assert.are.same({ "stack traceback:", 1 },
                            { err:match("\n(stack traceback:)\n"), code })
        end)

        it("is 1 after an error in a spawned task that is never joined", function()
            local _, _, code = cachert { "-e", [[
                local c = require "cachert"
                c.spawn(function() c.sleep(0.01) error("lost") end)]] }
            assert.are.equal(1, code)
        end)

        it("prints the traceback of an error in a task never joined", function()
            local _, err = cachert { "-e", [[
                local c = require "cachert"
                c.spawn(function() error("lost") end)]] }
            assert.are.same({ "(command line):2: lost", "stack traceback:" },
                            { err:match("^cachert: error in cachert%.task %d+: ([^\n]*)"),
                              err:match("\n(stack traceback:)\n") })
        end)

        it("is 0 when a failed task's error is caught by its joiner", function()
            assert.are.same({ "caught\n", "", 0 }, { cachert { "-e", [[
                local c = require "cachert"
                local t = c.spawn(function() error("lost") end)
                if not pcall(t.join, t) then print("caught") end]] } })
        end)

        it("is the status given to os.exit", function()
            local _, _, code = cachert { "-e", "os.exit(3)" }
            assert.are.equal(3, code)
        end)

        it("is 1 when every task waits for something that never comes", function()
            local _, err, code = cachert { "-e", "require('cachert').suspend()" }
            assert.are.same(
                { "cachert: deadlock: 1 task(s) are waiting and nothing can wake them\n", 1 },
                { err, code })
        end)
    end)

    describe("standard streams closed at start", function()
        local marker

        before_each(function()
            marker = os.tmpname()
            os.remove(marker)
        end)

        after_each(function()
            os.remove(marker)
        end)

        local function writes_marker(redirections)
            local code = "io.open(" .. ("%q"):format(marker) .. ", 'w'):write('ran')"
            local _, _, status = run(quote(CACHERT) .. " -e " .. quote(code) .. " " .. redirections)
            local f = io.open(marker)
            local text = f and f:read("*a")
            if f then f:close() end
            return { status, text }
        end

        for _, redirections in ipairs { "<&-", ">&-", "2>&-", "<&- >&- 2>&-" } do
            it("run the script with " .. redirections, function()
                assert.are.same({ 0, "ran" }, writes_marker(redirections))
            end)
        end

        it("let cache.core load under plain luajit with stdin closed", function()
            local env = ("LUA_PATH=%s LUA_CPATH=%s "):format(
                quote(ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;"),
                quote(BUILD .. "/lua/?.so;;"))
            local code = "local cache = require 'cache' cache.set('k', 'v') "
                .. "io.stderr:write((cache.get('k')))"
            local _, err, status = run(env .. "luajit -e " .. quote(code) .. " <&-")
            assert.are.same({ "v", 0 }, { err, status })
        end)
    end)

    describe("tasks", function()
        it("waits for every spawned task before exiting", function()
            assert.are.same({ "main done\nlate task\n", "", 0 }, { cachert { "-e", [[
                local c = require "cachert"
                c.spawn(function() c.sleep(0.05) print("late task") end)
                print("main done")]] } })
        end)

        it("waits for a task spawned by a task", function()
            local out = cachert { "-e", [[
                local c = require "cachert"
                c.spawn(function()
                    c.spawn(function() c.sleep(0.01) print("grandchild") end)
                end)]] }
            assert.are.equal("grandchild\n", out)
        end)
    end)

    describe("without a script", function()
        it("executes piped stdin as a script without a prompt, as luajit does", function()
            local input = "print('hi')\nprint(1 + 1)\n"
            local expected = run("luajit", input)
            assert.are.same({ expected, "", 0 }, { cachert({}, input) })
        end)

        it("exits 1 after an error in piped stdin", function()
            local _, err, code = cachert({}, "error('boom')\n")
            assert.are.same({ "cachert: stdin:1: boom", 1 }, { err:match("^[^\n]*"), code })
        end)

        it("prints an expression's value at the prompt given -i", function()
            local out = cachert({ "-i" }, "=1+1\n")
            assert.are.equal(VERSION_LINE .. "> 2\n> \n", out)
        end)

        it("prints a bare expression's values at the prompt", function()
            local out = cachert({ "-i" }, "1, nil, 'x'\n")
            assert.are.equal(VERSION_LINE .. "> 1\tnil\tx\n> \n", out)
        end)

        it("continues an incomplete statement on the next lines", function()
            local out = cachert({ "-i" }, "for i = 1, 2 do\nprint(i)\nend\n")
            assert.are.equal(VERSION_LINE .. "> >> >> 1\n2\n> \n", out)
        end)

        it("keeps the prompt going after an error", function()
            local out, err, code = cachert({ "-i" }, "error('boom')\n=2\n")
            assert.are.same({ VERSION_LINE .. "> > 2\n> \n", "cachert: stdin:1: boom", 0 },
                            { out, err:match("^[^\n]*"), code })
        end)

        it("keeps globals between statements at the prompt", function()
            local out = cachert({ "-i" }, "x = 41\n=x + 1\n")
            assert.are.equal(VERSION_LINE .. "> > 42\n> \n", out)
        end)
    end)
end)

describe("examples/redis_fallback.lua with a Redis server", function()
    local helpers = require "helpers"
    local server, out, code

    lazy_setup(function()
        server = helpers.start_redis()
        local _
        out, _, code = run(("REDIS_URL=redis://127.0.0.1:%d/0 %s %s")
            :format(server.port, quote(CACHERT), quote(ROOT .. "/examples/redis_fallback.lua")))
    end)

    lazy_teardown(function()
        helpers.stop_redis(server)
    end)

    it("serves every round from Redis", function()
        local backends = {}
        for backend in out:gmatch("round %d: backend (%a+)") do
            backends[#backends + 1] = backend
        end
        assert.are.same({ 0, { "redis", "redis", "redis" } }, { code, backends })
    end)

    it("reports Redis in its summary, taken before disconnect", function()
        assert.are.equal("using redis: true (backend: redis)",
                         out:match("using redis: %a+ %(backend: %a+%)"))
    end)
end)

describe("cachert scheduler", function()
    local function pack(...)
        return { n = select("#", ...), ... }
    end

    it("returns a task's results from join, trailing nils included", function()
        in_task(function()
            local t = sched.spawn(function(a, b) return a + b, nil end, 20, 22)
            assert.are.same({ n = 2, 42 }, pack(t:join()))
        end)
    end)

    it("returns the results again from a second join", function()
        in_task(function()
            local t = sched.spawn(function() return "r" end)
            t:join()
            assert.are.equal("r", t:join())
        end)
    end)

    it("re-raises a task's error from join as the same value", function()
        in_task(function()
            local e = { code = 7 }
            local t = sched.spawn(function() error(e) end)
            local _, err = pcall(t.join, t)
            assert.are.equal(e, err)
        end)
    end)

    it("runs a spawned task only when the spawner waits", function()
        in_task(function()
            local log = {}
            local t = sched.spawn(function() log[#log + 1] = "task" end)
            log[#log + 1] = "spawner"
            t:join()
            assert.are.same({ "spawner", "task" }, log)
        end)
    end)

    it("joins a task from plain luajit at the top level", function()
        local code = "local c = require 'cachert' "
            .. "local t = c.spawn(function(x) c.sleep(0.01) return x * 2 end, 21) "
            .. "print(t:join())"
        local env = ("LUA_PATH=%s LUA_CPATH=%s "):format(
            quote(ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;"),
            quote(BUILD .. "/lua/?.so;;"))
        assert.are.same({ "42\n", "", 0 }, { run(env .. "luajit -e " .. quote(code)) })
    end)

    it("sleeps for a fraction of a second", function()
        in_task(function()
            local t0 = sched.now()
            sched.sleep(0.05)
            local elapsed = sched.now() - t0
            assert.is_true(elapsed >= 0.049 and elapsed < 0.5, "slept " .. elapsed)
        end)
    end)

    it("lets other tasks run while one sleeps", function()
        in_task(function()
            local log = {}
            local a = sched.spawn(function() sched.sleep(0.03) log[#log + 1] = "slow" end)
            local b = sched.spawn(function() log[#log + 1] = "fast" end)
            a:join(); b:join()
            assert.are.same({ "fast", "slow" }, log)
        end)
    end)

    it("gives monotonic time that never goes back", function()
        local prev, back = sched.now(), 0
        for _ = 1, 10000 do
            local t = sched.now()
            if t < prev then back = back + 1 end
            prev = t
        end
        assert.are.equal(0, back)
    end)

    it("gives time in seconds with a fractional part", function()
        in_task(function()
            local t0 = sched.now()
            sched.sleep(0.01)
            local dt = sched.now() - t0
            assert.is_true(dt > 0.005 and dt < 0.5, "dt " .. dt)
        end)
    end)

    it("rejects a negative sleep", function()
        local _, err = pcall(sched.sleep, -1)
        assert.are.equal("sleep: seconds must be >= 0", err)
    end)

    it("rejects a sleep that is not a number", function()
        local _, err = pcall(sched.sleep, "1")
        assert.are.equal("sleep: seconds must be a number", err)
    end)

    it("rejects spawning something that is not callable", function()
        local _, err = pcall(sched.spawn, 42)
        assert.are.equal("spawn: fn must be callable", err)
    end)
end)
