-- spec/runtime_spec.lua -- the cachert executable (command line, arg,
-- exit codes, the prompt) and the scheduler of require "cachert" (spawn,
-- join, sleep, now). Runs under luajit and under cachert.

local sched = require "cachert"
local helpers = require "helpers"
local in_task = helpers.in_task

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

-- Scripts run in the background (signals): they get a fresh directory as
-- `...`, put(name, text) and get(name) for files in it, and ready(), which
-- writes the process's PID to "pid" once the script is where the test
-- wants to interrupt it.
local PRELUDE = [[
local DIR = ...
-- Written under another name, then renamed: a reader polling for the file
-- sees it whole or not at all, never created and still empty.
local function put(name, text)
    local path = DIR .. "/" .. name
    local f = assert(io.open(path .. ".tmp", "wb"))
    f:write(text)
    f:close()
    assert(os.rename(path .. ".tmp", path))
end
local function get(name)
    local f = io.open(DIR .. "/" .. name, "rb")
    if not f then return nil end
    local text = f:read("*a")
    f:close()
    return text
end
local function ready()
    local stat = assert(io.open("/proc/self/stat")):read("*l")
    put("pid", stat:match("^%d+"))
end
]]

-- Starts PRELUDE .. text under cachert in the background; its stdout and
-- stderr go to the files "out" and "err", and its exit status to "status"
-- once it has exited. `signals` are env(1) options: by default SIGINT,
-- SIGTERM and SIGHUP get their default action (a shell's background job
-- would have SIGINT ignored). Returns the job { dir = }.
local function start(text, signals)
    local dir = helpers.sh("mktemp -d /tmp/cachert-runtime-XXXXXX"):gsub("%s+$", "")
    local path = write_file(dir .. "/script.lua", PRELUDE .. text)
    local d = quote(dir)
    os.execute(("(env %s %s %s %s >%s/out 2>%s/err; echo $? >%s/status.tmp; "
                .. "mv %s/status.tmp %s/status) </dev/null >/dev/null 2>&1 &")
        :format(signals or "--default-signal=INT,TERM,HUP", quote(CACHERT),
                quote(path), d, d, d, d, d, d))
    return { dir = dir }
end

-- The contents of the job's file `name`, or nil.
local function job_file(job, name)
    local f = io.open(job.dir .. "/" .. name, "rb")
    if not f then return nil end
    local text = f:read("*a")
    f:close()
    return text
end

-- Waits (at most `seconds`) for the job's file `name`; returns its text.
local function wait_file(job, name, seconds)
    local deadline = sched.now() + seconds
    local text = job_file(job, name)
    while text == nil and sched.now() < deadline do
        helpers.sh("sleep 0.02")
        text = job_file(job, name)
    end
    return text
end

-- Sends SIG<name> to the job, once its script called ready().
local function signal(job, name)
    job.pid = job.pid or tonumber((assert(wait_file(job, "pid", 10), "the script never got ready")))
    helpers.sh("kill -" .. name .. " " .. job.pid)
end

-- The job's exit status, waiting at most `seconds`; nil if still running.
local function exit_status(job, seconds)
    return tonumber(wait_file(job, "status", seconds))
end

-- Kills the job if it still runs, and removes its directory.
local function cleanup(job)
    if not job then return end
    job.pid = job.pid or tonumber(job_file(job, "pid"))
    if job.pid and not job_file(job, "status") and helpers.process_alive(job.pid) then
        helpers.sh("kill -KILL " .. job.pid)
    end
    helpers.sh("rm -rf " .. quote(job.dir))
end

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

        it("is 0 when a failed task is joined after it failed", function()
            local _, _, code = cachert { "-e", [[
                local c = require "cachert"
                local t = c.spawn(function() error("late join") end)
                c.sleep(0.01)
                assert(not pcall(t.join, t))]] }
            assert.are.equal(0, code)
        end)
    end)

    describe("errors in tasks nobody joins", function()
        local job

        after_each(function()
            cleanup(job)
            job = nil
        end)

        it("are printed when the task fails, while the main task still runs", function()
            -- given a task that fails at once and a main task that goes on
            job = start([[
                local cachert = require "cachert"
                cachert.spawn(function() error("lost") end)
                cachert.sleep(0.5)
                put("stderr while running", get("err"))
            ]])
            -- then stderr held the error before the main task finished
            assert.are.equal(1, exit_status(job, 10))
            local seen = job_file(job, "stderr while running")
            assert.are.same({ "lost", "stack traceback:" },
                            { seen:match("^cachert: error in cachert%.task %d+: [^\n]*: (lost)\n"),
                              seen:match("\n(stack traceback:)\n") })
        end)

        it("are printed once, not again at exit", function()
            local _, err, code = cachert { "-e", [[
                local c = require "cachert"
                c.spawn(function() error("once") end)
                c.sleep(0.05)]] }
            local _, count = err:gsub("cachert: error in", "")
            assert.are.same({ 1, 1 }, { count, code })
        end)

        it("are not printed for tasks a task joins one after another", function()
            assert.are.same({ "5 failed\n", "", 0 }, { cachert { "-e", [[
                local c = require "cachert"
                local tasks = {}
                for i = 1, 5 do
                    tasks[i] = c.spawn(function() c.sleep(0.01) error("e" .. i) end)
                end
                local failed = 0
                for i = 1, 5 do
                    if not pcall(tasks[i].join, tasks[i]) then failed = failed + 1 end
                end
                print(failed .. " failed")]] } })
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

    describe("cachert.at_exit", function()
        it("runs the hooks after every task, last registered first", function()
            assert.are.same({ "main\ntask\nhook 2\nhook 1\n", "", 0 }, { cachert { "-e", [[
                local c = require "cachert"
                c.at_exit(function() print("hook 1") end)
                c.at_exit(function() c.sleep(0.01) print("hook 2") end)
                c.spawn(function() c.sleep(0.02) print("task") end)
                print("main")]] } })
        end)

        it("runs each hook as a task that may call the cache", function()
            assert.are.same({ "true\tv\n", "", 0 }, { cachert { "-e", [[
                local c, cache = require "cachert", require "cache"
                c.at_exit(function()
                    cache.set("k", "v")
                    c.sleep(0.01)
                    print(c.current() ~= nil, (cache.get("k")))
                end)]] } })
        end)

        it("runs the hooks once, after the last -e chunk", function()
            assert.are.same({ "chunk 2\nhook\n", "", 0 }, { cachert {
                "-e", "require('cachert').at_exit(function() print('hook') end)",
                "-e", "print('chunk 2')" } })
        end)

        it("runs the hooks on os.exit, which keeps its code", function()
            assert.are.same({ "hook\n", "", 3 }, { cachert { "-e", [[
                local c = require "cachert"
                c.at_exit(function() c.sleep(0.01) print("hook") end)
                os.exit(3)
                print("not reached")]] } })
        end)

        it("does not resume other tasks after os.exit", function()
            assert.are.same({ "hook\n", "", 0 }, { cachert { "-e", [[
                local c = require "cachert"
                c.spawn(function() c.sleep(0.01) print("task") end)
                c.at_exit(function() c.sleep(0.05) print("hook") end)
                os.exit(0)]] } })
        end)

        it("runs the hooks after an uncaught error in the main task, exit status 1", function()
            local out, err, code = cachert { "-e", [[
                require("cachert").at_exit(function() print("hook") end)
                error("boom")]] }
            assert.are.same({ "hook\n", "cachert: (command line):2: boom", 1 },
                            { out, err:match("^[^\n]*"), code })
        end)

        it("prints a hook's error, runs the other hooks and exits 1", function()
            local out, err, code = cachert { "-e", [[
                local c = require "cachert"
                c.at_exit(function() print("first registered") end)
                c.at_exit(function() error("hook failed") end)]] }
            assert.are.same({ "first registered\n",
                              "cachert: error in at_exit hook: (command line):3: hook failed", 1 },
                            { out, err:match("^[^\n]*"), code })
        end)

        it("keeps os.exit's code when a hook fails", function()
            local _, _, code = cachert { "-e", [[
                require("cachert").at_exit(function() error("hook failed") end)
                os.exit(4)]] }
            assert.are.equal(4, code)
        end)

        it("exits at once with the code os.exit is given in a hook", function()
            assert.are.same({ "", "", 5 }, { cachert { "-e", [[
                local c = require "cachert"
                c.at_exit(function() print("not run") end)
                c.at_exit(function() os.exit(5) end)]] } })
        end)

        it("rejects a hook that is not callable", function()
            local _, err = pcall(sched.at_exit, 42)
            assert.are.equal("at_exit: fn must be callable", err)
        end)

        it("runs no hook under plain luajit", function()
            local env = ("LUA_PATH=%s LUA_CPATH=%s "):format(
                quote(ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;"),
                quote(BUILD .. "/lua/?.so;;"))
            local code = "local c = require 'cachert' "
                .. "c.run(function() c.at_exit(function() print('hook') end) end)"
            assert.are.same({ "", "", 0 }, { run(env .. "luajit -e " .. quote(code)) })
        end)
    end)

    describe("signals", function()
        local job

        after_each(function()
            cleanup(job)
            job = nil
        end)

        -- Sleeps in the main task; the exit hook records that it ran, and a
        -- finalizer that the Lua state was closed.
        local SLEEPER = [[
            local cachert = require "cachert"
            cachert.at_exit(function() cachert.sleep(0.01) put("hook", "ran") end)
            local p = newproxy(true)
            getmetatable(p).__gc = function() put("closed", "yes") end
            KEEP = p
            ready()
            cachert.sleep(30)
            put("main", "finished")
        ]]

        for _, case in ipairs { { "TERM", 143 }, { "INT", 130 }, { "HUP", 129 } } do
            it("end the run with status " .. case[2] .. " on SIG" .. case[1]
               .. " after the exit hooks, the state closed", function()
                job = start(SLEEPER)
                signal(job, case[1])
                assert.are.same({ case[2], "ran", "yes", nil, "" },
                                { exit_status(job, 10), job_file(job, "hook"),
                                  job_file(job, "closed"), job_file(job, "main"),
                                  job_file(job, "err") })
            end)
        end

        it("do not let pending tasks run again", function()
            job = start([[
                local cachert = require "cachert"
                local resumed = false
                cachert.spawn(function() cachert.sleep(0.3) resumed = true end)
                cachert.at_exit(function()
                    cachert.sleep(0.6)
                    put("hook", resumed and "task resumed" or "task stopped")
                end)
                ready()
                cachert.sleep(30)
            ]])
            signal(job, "TERM")
            assert.are.same({ 143, "task stopped" },
                            { exit_status(job, 10), job_file(job, "hook") })
        end)

        it("end the process at once on a second signal during a slow exit hook", function()
            job = start([[
                local cachert = require "cachert"
                cachert.at_exit(function()
                    put("hook", "started")
                    cachert.sleep(30)
                    put("hook", "finished")
                end)
                ready()
                cachert.sleep(30)
            ]])
            signal(job, "TERM")
            assert.are.equal("started", wait_file(job, "hook", 10))
            local t0 = sched.now()
            signal(job, "INT")
            assert.are.same({ 143, "started" }, { exit_status(job, 5), job_file(job, "hook") })
            assert.is_true(sched.now() - t0 < 5)
        end)

        it("stop a main task made only of cache calls on the first signal", function()
            job = start([[
                local cachert, cache = require "cachert", require "cache"
                cachert.at_exit(function() put("hook", "ran") end)
                ready()
                while true do
                    cache.set("k", "v")
                    cache.get("k")
                end
            ]])
            signal(job, "TERM")
            assert.are.same({ 143, "ran" }, { exit_status(job, 10), job_file(job, "hook") })
        end)

        it("end the process on a second signal while Lua never lets the loop run", function()
            job = start([[
                ready()
                while true do end
            ]])
            signal(job, "INT")
            helpers.sh("sleep 0.1")
            signal(job, "INT")
            assert.are.equal(130, exit_status(job, 5))
        end)

        it("leave a signal ignored at start ignored", function()
            job = start(SLEEPER, "--default-signal=INT,TERM --ignore-signal=HUP")
            signal(job, "HUP")
            assert.is_nil(exit_status(job, 0.3))
            signal(job, "TERM")
            assert.are.same({ 143, "ran" }, { exit_status(job, 10), job_file(job, "hook") })
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

describe("cachert.sleep(0)", function()
    it("yields once to the other tasks and returns", function()
        local order = {}
        helpers.in_task(function()
            local other = sched.spawn(function() order[#order + 1] = "other" end)
            order[#order + 1] = "before"
            sched.sleep(0)
            order[#order + 1] = "after"
            other:join()
        end)
        assert.are.same({ "before", "other", "after" }, order)
    end)
end)
