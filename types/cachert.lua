---@meta cachert
-- LuaLS type stubs for `require "cachert"`, the scheduler (declarations
-- only). spec/types_spec.lua checks every public function is declared.

---A task started by cachert.spawn.
---@class cachert.Task
local Task = {}

---Waits for the task; returns fn's results, or re-raises its error.
---@return ...
function Task:join() end

---@class cachert
local cachert = {}

cachert._VERSION = "0.1.0"

---Starts fn(...) as a new task; it first runs on the next scheduler round.
---@param fn function
---@param ... any
---@return cachert.Task
function cachert.spawn(fn, ...) end

---Suspends the running task (or drives the loop outside tasks) for seconds.
---@param seconds number fractions allowed
function cachert.sleep(seconds) end

---Monotonic time in seconds.
---@return number
function cachert.now() end

---Runs fn(...) as a task and drives the loop until every task has finished
---(for plain luajit; the cachert executable runs scripts as tasks).
---@param fn function
---@param ... any
---@return ...
function cachert.run(fn, ...) end

---Registers fn to run once when the program ends (cachert executable).
---@param fn fun()
function cachert.at_exit(fn) end

---The running task, or nil outside tasks.
---@return cachert.Task?
function cachert.current() end

---Low level: suspends the running task until cachert.wake(task, ...).
---@return ...
function cachert.suspend() end

---Low level: makes a suspended task ready; suspend() returns `...`.
---@param task cachert.Task
---@param ... any
function cachert.wake(task, ...) end

---Low level: waits until the loop reports id (a timer or request id).
---@param id number
function cachert.wait(id) end

return cachert
