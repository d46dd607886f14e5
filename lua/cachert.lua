--- The task scheduler: spawn / join / sleep / now on the libuv loop of
-- cache.core. The guide is docs/runtime.md.
-- @module cachert

-- Tasks are coroutines. A task that waits (sleep, join, a single-flight
-- wait) yields a private sentinel and is resumed later by the run loop,
-- which alternates between resuming ready tasks and polling the loop for
-- fired timers. libuv callbacks never call into Lua: they only queue ids.
-- Outside any task (plain luajit, the top level of a script run by luajit)
-- the waiting calls drive the loop themselves, so they simply block.
--
-- Fairness: memory-store calls never wait, so the cache module calls
-- _tick() on each; every CHECK_EVERY ticks the clock is read, and once
-- SLICE_MS have passed since the loop was last polled the running task
-- yields, to be resumed in the next round. Timers, other tasks and the
-- engines' reconnects keep running under a task made only of cache calls.
--
-- Switching tasks allocates nothing: the ready queue is a ring buffer,
-- a waiting task is filed under its id in a fixed array of slots, wake's
-- arguments stay in the task's fields (a table only beyond two), resume
-- hands co_resume's results to a plain function, and the loop's poll fills
-- the same ids table each time. A GET over Redis then allocates only its
-- value (bench/w3_get.lua reports the bytes per GET; spec/alloc_spec.lua
-- holds the bound).
--
-- The end (the executable only): _exit() runs the at_exit hooks as tasks
-- of a new epoch; tasks of earlier epochs are never resumed again. A
-- signal, which the loop reports as a negative id, ends the run of the
-- main task the same way.

local core = require "cache.core"
local util = require "cache.util"
local ffi = require "ffi"
local pack, is_callable = util.pack, util.is_callable

local coroutine, type, error, tostring, pcall = coroutine, type, error, tostring, pcall
local unpack, tonumber, select, getmetatable = unpack, tonumber, select, getmetatable
local core_poll = core.poll
local co_create, co_resume, co_yield, co_status =
    coroutine.create, coroutine.resume, coroutine.yield, coroutine.status
local traceback = debug.traceback

local _M = { _VERSION = "0.1.0" }

local WAIT = {}                 -- yielded by a task that waits to be woken
local YIELD = {}                -- yielded by a task that lets the loop run
local EARLY = {}                -- filed under an id reported before anyone waited
local current                   -- the running task, nil outside tasks
local live = 0                  -- tasks of this epoch spawned and not finished
local next_id = 0
local unobserved = {}           -- failed tasks nobody has joined (yet)
-- An unjoined failure is printed at the end of the round after the one it
-- failed in, or before the loop blocks if that comes first: by then the
-- tasks its failure woke have run, so a task that spawned several and
-- joins them one by one has joined every one that failed meanwhile, and
-- none of those is reported.
local to_report = {}            -- failed unjoined tasks not yet printed
local round = 0                 -- run_ready rounds so far
local epoch = 1                 -- see _exit
local hooks = {}                -- at_exit functions, in registration order
local exiting = false           -- _exit has begun
local signalled                 -- the first signal's number, once reported
local listeners = {}            -- id -> fn: ids reported again and again (_listen)

-- A private name for clock_gettime, so that a script's own cdef of it
-- (with its own struct timespec) cannot clash with this one.
if not pcall(ffi.typeof, "cachert_timespec") then
    ffi.cdef [[
typedef struct cachert_timespec { long tv_sec; long tv_nsec; } cachert_timespec;
int cachert_clock_gettime(int clock, cachert_timespec *ts) __asm__("clock_gettime");
]]
end
local C, CLOCK_MONOTONIC = ffi.C, 1
local timespec = ffi.new("cachert_timespec")

-- Milliseconds on the monotonic clock (~20 ns, no C API call).
local function clock_ms()
    C.cachert_clock_gettime(CLOCK_MONOTONIC, timespec)
    return tonumber(timespec.tv_sec) * 1000 + tonumber(timespec.tv_nsec) * 1e-6
end

-- A memory-store call takes ~50-500 ns: 128 of them between two clock
-- reads cost ~0.2 ns a call and still notice a slice's end within a
-- fraction of a millisecond (a few ms for calls that encode big tables).
local CHECK_EVERY = 128
local SLICE_MS = 2
local countdown = CHECK_EVERY
local slice_end = clock_ms() + SLICE_MS -- the running task yields after it

-- The monotonic clock (ms) as last read: after each poll of the loop and
-- every CHECK_EVERY cache calls. The near cache judges expiry by it (so a
-- hit costs no clock read), asking the clock itself only near an expiry:
-- its values are as fresh as the loop turn, like its invalidations.
local loop_clock = { ms = clock_ms() }
_M._clock = loop_clock
_M._clock_ms = clock_ms

local task_mt = {}
task_mt.__index = task_mt

-- The running task, when the code runs in the task's own coroutine. In a
-- coroutine of the script's own inside a task (an iterator, say), a yield
-- would reach that coroutine's resumer, not the scheduler: there waiting
-- calls drive the loop instead, as outside tasks.
local co_running = coroutine.running
local function running_task()
    if current and co_running() == current.co then
        return current
    end
    return nil
end

-- The ready queue: a ring buffer ready[1..ready_cap] holding ready_count
-- tasks from ready_head on. It doubles when full and never shrinks, so
-- queueing allocates nothing once it has room for the most tasks ready at
-- once. (A table indexed by an ever-growing counter would sit in the hash
-- part and be rehashed, i.e. reallocated, every few dozen tasks.)
local ready_cap, ready_head, ready_count = 64, 1, 0
local ready = {}
for i = 1, ready_cap do ready[i] = false end

local function enqueue(task)
    if ready_count == ready_cap then
        local bigger = {}
        for i = 1, ready_cap do
            bigger[i] = ready[(ready_head + i - 2) % ready_cap + 1]
        end
        for i = ready_cap + 1, 2 * ready_cap do bigger[i] = false end
        ready, ready_head, ready_cap = bigger, 1, 2 * ready_cap
    end
    ready[(ready_head + ready_count - 1) % ready_cap + 1] = task
    ready_count = ready_count + 1
end

local function dequeue()
    local task = ready[ready_head]
    ready[ready_head] = false
    ready_head = ready_head % ready_cap + 1
    ready_count = ready_count - 1
    return task
end

-- Who waits for which id (a timer's or a request's): a task, the flag
-- table of a wait outside tasks, or EARLY for an id the loop reported
-- before anyone waited for it. Id `id` goes to slot id % SLOTS + 1 of two
-- fixed arrays; ids are handed out in sequence, so the slots of the ids
-- out at one time rarely collide, and an id whose slot is taken goes to
-- the `spill` table instead (a hash, which may reallocate).
local SLOTS = 1024
local slot_id, slot_who, spill = {}, {}, {}
for i = 1, SLOTS do slot_id[i], slot_who[i] = false, false end

local function put_waiter(id, who)
    local s = id % SLOTS + 1
    if slot_id[s] == false then
        slot_id[s], slot_who[s] = id, who
    else
        spill[id] = who
    end
end

-- Removes and returns what is filed under `id` (nil: nothing).
local function take_waiter(id)
    local s = id % SLOTS + 1
    if slot_id[s] == id then
        local who = slot_who[s]
        slot_id[s], slot_who[s] = false, false
        return who
    end
    local who = spill[id]
    if who ~= nil then
        spill[id] = nil
    end
    return who
end

local wake

local function finish(task, ok, ...)
    live = live - 1
    if ok then
        task.state = "done"
        task.results = pack(...)
    else
        local err = ...
        task.state = "failed"
        task.err = err
        task.trace = traceback(task.co, tostring(err))
        if #task.joiners == 0 then
            unobserved[task] = true
            if not task.watched then
                task.failed_round = round
                to_report[#to_report + 1] = task
            end
        end
    end
    task.co = nil
    for _, joiner in ipairs(task.joiners) do
        wake(joiner)
    end
    task.joiners = nil
end

-- What resume does with co_resume's results: a function of its own, not a
-- closure made per resume.
local function after_resume(task, prev, ok, ...)
    current = prev
    if co_status(task.co) == "dead" then
        finish(task, ok, ...)
    elseif ... == YIELD then
        wake(task)              -- it only let the loop run: ready again
    else
        task.state = "waiting"
    end
end

local function resume(task, ...)
    local prev = current
    current = task
    task.state = "running"
    after_resume(task, prev, co_resume(task.co, ...))
end

-- Prints the error of each task in to_report that failed before round
-- `before` and is still not joined; keeps the others for later.
local function report_unobserved(before)
    local keep = {}
    for i = 1, #to_report do
        local task = to_report[i]
        if task.failed_round >= before then
            keep[#keep + 1] = task
        elseif unobserved[task] then
            io.stderr:write("cachert: error in ", tostring(task), ": ",
                            task.trace, "\n")
        end
    end
    to_report = keep
end

local function run_ready()
    -- Only the tasks ready now: those they wake run in the next round, after
    -- the loop has been polled once.
    round = round + 1
    for _ = 1, ready_count do
        local task = dequeue()
        -- wake's (or spawn's) arguments, cleared so the task does not keep
        -- them alive
        local n, a1, a2, args = task.nargs, task.a1, task.a2, task.args
        task.a1, task.a2, task.args = nil, nil, nil
        if task.epoch ~= epoch then     -- started before _exit: never again
            n = -1
        end
        if n == 0 then
            resume(task)
        elseif n == 1 then
            resume(task, a1)
        elseif n == 2 then
            resume(task, a1, a2)
        elseif n > 2 then
            resume(task, unpack(args, 1, n))
        end
    end
    if #to_report > 0 then
        report_unobserved(round)
    end
end

local ids = {}                  -- core.poll fills it, every time
local function poll(block)
    local n, pending = core_poll(block, ids)
    local now = clock_ms()
    loop_clock.ms = now
    slice_end = now + SLICE_MS
    for i = 1, n do
        local id = ids[i]
        if id < 0 then
            signalled = signalled or -id   -- a signal (src/evloop.h)
        elseif listeners[id] then
            listeners[id]()        -- a server's requests: answered here
        else
            local who = take_waiter(id)
            if who == nil then
                put_waiter(id, EARLY)   -- its waiter has not called wait() yet
            elseif getmetatable(who) == task_mt then
                wake(who)
            else
                who.done = true    -- a wait outside tasks
            end
        end
    end
    return n, pending
end

-- Runs tasks and the loop until done() is true or nothing can progress.
-- Returns false when it stopped because every remaining task is blocked.
local function run_until(done)
    while not done() do
        run_ready()
        if done() then break end
        local has_ready = ready_count > 0
        if not has_ready and #to_report > 0 then
            report_unobserved(math.huge)    -- nothing can join them first
        end
        local woken, pending = poll(not has_ready)
        if not has_ready and woken == 0 and pending == 0 then
            return false
        end
    end
    return true
end

local function new_id()
    next_id = next_id + 1
    return next_id
end

-- Public API --------------------------------------------------------------

--- Starts `fn(...)` as a new task; it first runs on the next scheduler
-- round. An error in a task nobody joins is printed when the task fails.
-- @tparam function fn
-- @param ... its arguments
-- @treturn Task
function _M.spawn(fn, ...)
    if not is_callable(fn) then
        error("spawn: fn must be callable", 2)
    end
    -- a1, a2, args: the arguments of the next resume (nargs of them: in a1
    -- and a2 up to two, packed in args beyond), set by spawn and wake. Made
    -- here (false until set) so that wake only ever changes their values.
    local task = setmetatable({
        id = new_id(), state = "ready", joiners = {}, nargs = 0,
        a1 = false, a2 = false, args = false,
        co = co_create(function(...) return fn(...) end), epoch = epoch,
    }, task_mt)
    local n = select("#", ...)
    task.nargs = n
    if n <= 2 then
        task.a1, task.a2 = ...
    else
        task.args = pack(...)
    end
    live = live + 1
    enqueue(task)
    return task
end

--- A task made by `spawn`.
-- @type Task

--- Waits for the task to finish (drives the loop when called outside
-- tasks).
-- @return fn's results
-- @raise fn's error, re-raised; a deadlock (nothing can finish the task)
-- @function Task:join
function task_mt:join()
    if getmetatable(self) ~= task_mt then
        error("join: expected a task", 2)
    end
    local me = running_task()
    if self == current then
        error("join: a task cannot join itself", 2)
    end
    if self.state ~= "done" and self.state ~= "failed" then
        if me then
            local joiners = self.joiners
            joiners[#joiners + 1] = me
            _M.suspend()
        elseif not run_until(function()
                   return self.state == "done" or self.state == "failed"
               end) then
            error("join: deadlock, the task can never finish", 2)
        end
    end
    if self.state == "failed" then
        unobserved[self] = nil
        error(self.err, 0)
    end
    local r = self.results
    return unpack(r, 1, r.n)
end

--- The task's state.
-- @treturn string "ready", "running", "waiting", "done" or "failed"
-- @function Task:status
function task_mt:status()
    return self.state
end

task_mt.__tostring = function(self)
    return "cachert.task " .. self.id
end

--- Time and waiting.
-- @section time

--- Suspends the running task for `seconds` (fractions allowed, rounded up
-- to the millisecond); blocks when called outside tasks.
-- @tparam number seconds >= 0
function _M.sleep(seconds)
    if type(seconds) ~= "number" or seconds ~= seconds then
        error("sleep: seconds must be a number", 2)
    end
    if seconds < 0 then
        error("sleep: seconds must be >= 0", 2)
    end
    _M.wait(core.timer(seconds))
end

--- Low level: waits until the loop reports `id` (an id cache.core returned
-- for a timer or a request): suspends the running task, or drives the loop
-- when called outside tasks.
-- @tparam number id
function _M.wait(id)
    if type(id) ~= "number" then
        error("wait: id must be a number", 2)
    end
    if take_waiter(id) == EARLY then
        return
    end
    local me = running_task()
    if me then
        put_waiter(id, me)
        co_yield(WAIT)
    else
        local flag = { done = false }
        put_waiter(id, flag)
        if not run_until(function() return flag.done end) then
            error("wait: deadlock, nothing will report " .. id, 2)
        end
    end
end

-- Low level: fn() is called from the loop's poll each time it reports
-- `id` (not in a task: it must not wait, and must not raise), until
-- _listen(id, nil). For sources that wake the scheduler without keeping it
-- running, as the metrics endpoint (cache.metrics) does.
function _M._listen(id, fn)
    listeners[id] = fn
end

--- Metrics.
-- @section metrics

--- Serves `cache.metrics()` at `GET /metrics` (or `path`) over HTTP on the loop
-- (docs/metrics.md). The server never keeps the program alive; it closes
-- at exit or with `server:close()`.
-- @tparam table|string opts `host` (a numeric address; default "127.0.0.1"),
-- `port` (0: an ephemeral port), `timeout` (seconds a client has to send
-- its request; default 5), `path` (default "/metrics")
-- @treturn table the server (`server.host`, `server.port`, `server:close()`),
-- or nil and a message (e.g. the address is in use)
-- @raise a malformed option, naming it
function _M.serve_metrics(opts)
    return require("cache.metrics").serve(opts, 3)
end

--- Monotonic time in seconds (a float).
-- @treturn number
-- @function now
_M.now = core.now

--- The running task.
-- @treturn Task|nil nil outside tasks
function _M.current()
    return running_task()
end

--- Low level: suspends the running task until `wake(task, ...)` is called.
-- @return wake's extra arguments
-- @raise outside a task
function _M.suspend()
    if not running_task() then
        error("suspend: not inside a task", 2)
    end
    return co_yield(WAIT)
end

--- Low level: makes a task suspended by `suspend()` ready again.
-- @tparam Task task
-- @param ... what its `suspend()` returns
function wake(task, ...)
    local n = select("#", ...)
    task.nargs = n
    if n <= 2 then
        task.a1, task.a2 = ...      -- no table for the common cases
    else
        task.args = pack(...)
    end
    task.state = "ready"
    enqueue(task)
end
_M.wake = wake

-- Yields the running task to the loop once the slice is over. Only in the
-- task's own coroutine: in a coroutine of the script's own, or across a C
-- call (a table.sort comparator, say), it does nothing.
local function slice_over()
    local now = clock_ms()
    loop_clock.ms = now
    if now < slice_end then
        return
    end
    slice_end = now + SLICE_MS  -- also paces the attempts that cannot yield
    if running_task() then
        pcall(co_yield, YIELD)  -- fails only across a C call boundary
    end
end

-- Called by the cache module on every call that the memory store answers
-- (see Fairness at the top), so it stays cheap: a counter, and a clock
-- read every CHECK_EVERY calls.
function _M._tick()
    countdown = countdown - 1
    if countdown == 0 then
        countdown = CHECK_EVERY
        slice_over()
    end
end

--- The end of the program.
-- @section program

--- Registers `fn` to run once when the program ends, under the cachert
-- executable: after the main task and every task it spawned have
-- finished, on os.exit, after an uncaught error, or after a first SIGINT,
-- SIGTERM or SIGHUP. Hooks run last registered first, one at a time, each
-- as a task (they may sleep and call cache functions that wait); an error
-- in one is printed and the next one runs. Tasks started before the end
-- are not resumed again. Hooks must bound their own waits; a second
-- signal exits at once. Under plain luajit nothing runs them (luajit has
-- no end of program that could drive the loop).
-- @tparam function fn called with no arguments, as a task
function _M.at_exit(fn)
    if not is_callable(fn) then
        error("at_exit: fn must be callable", 2)
    end
    hooks[#hooks + 1] = fn
end

--- Runs `fn(...)` as a task and drives the loop until every task has
-- finished. For plain luajit (the cachert executable already runs scripts
-- as tasks).
-- @tparam function fn
-- @param ... its arguments
-- @return fn's results
-- @raise fn's error
function _M.run(fn, ...)
    local task = _M.spawn(fn, ...)
    task.watched = true         -- its error is raised, not printed
    local ok = run_until(function() return live == 0 end)
    report_unobserved(math.huge)
    if not ok and task.state ~= "done" and task.state ~= "failed" then
        error("run: deadlock, " .. live .. " task(s) wait for nothing", 2)
    end
    return task:join()
end

-- The cachert executable's entry point: runs `fn(...)` as the main task
-- until every task has finished, the main task failed or a signal came.
-- Returns the exit status: 0; 1 after printing the traceback of an error
-- nobody caught (a spawned task's was printed when it failed); 128 + N
-- after signal N.
function _M._main(fn, ...)
    local main = _M.spawn(fn, ...)
    main.watched = true
    local ok = run_until(function()
        return live == 0 or main.state == "failed" or signalled ~= nil
    end)
    report_unobserved(math.huge)
    local status = 0
    if signalled then
        return 128 + signalled
    elseif main.state == "failed" then
        unobserved[main] = nil
        io.stderr:write("cachert: ", main.trace, "\n")
        status = 1
    elseif not ok then
        io.stderr:write("cachert: deadlock: ", live,
                        " task(s) are waiting and nothing can wake them\n")
        status = 1
    end
    if next(unobserved) then
        unobserved = {}
        status = 1
    end
    return status
end

-- The executable's exit phase, once (main.c calls it at the end and from
-- os.exit; from a hook, os.exit returns here at once). Tasks started
-- before it are never resumed again (the epoch changes); the hooks run,
-- last registered first, until they have finished or nothing can
-- progress. Returns the exit status: `status`, except 128 + N after
-- signal N, and 1 instead of 0 when a hook failed (unless `keep`: an
-- explicit os.exit code stands).
function _M._exit(status, keep)
    if exiting then
        return status
    end
    exiting = true
    epoch, live = epoch + 1, 0
    local failed = false
    if #hooks > 0 then
        local runner = _M.spawn(function()
            while #hooks > 0 do
                local hook = table.remove(hooks)
                local t = _M.spawn(hook)
                if not pcall(t.join, t) then
                    failed = true
                    io.stderr:write("cachert: error in at_exit hook: ", t.trace, "\n")
                end
            end
        end)
        if not run_until(function()
                return runner.state == "done" or runner.state == "failed"
            end) then
            failed = true
            io.stderr:write("cachert: an at_exit hook waits for something",
                            " that never comes\n")
        end
    end
    report_unobserved(math.huge)
    if signalled then
        return 128 + signalled
    end
    return (failed and status == 0 and not keep) and 1 or status
end

return _M
