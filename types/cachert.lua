---@meta cachert
-- LuaLS type stubs for `require "cachert"`, the scheduler (declarations
-- only). spec/types_spec.lua checks every public function is declared.

---A task started by cachert.spawn.
---@class cachert.Task
local Task = {}

---Waits for the task; returns fn's results, or re-raises its error.
---@return ...
function Task:join() end

---The options of cachert.serve_metrics.
---@class cachert.MetricsOptions
---@field host? string a numeric IPv4 or IPv6 address (default "127.0.0.1")
---@field port integer 0 to 65535; 0: any free port
---@field timeout? number seconds to receive a request, then to send the answer (default 5)
---@field path? string the path served (default "/metrics")

---A metrics endpoint started by cachert.serve_metrics.
---@class cachert.MetricsServer
---@field host string the bound address
---@field port integer the bound port (the one chosen for port 0)
---@field url string e.g. "http://127.0.0.1:9145/metrics"
---@field closed boolean true after close()
local MetricsServer = {}

---Stops listening and closes every open connection. Idempotent.
function MetricsServer:close() end

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

---Serves cache.metrics() at GET /metrics on the event loop, never keeping
---the process alive; closes in the exit phase. nil and a message when the
---address cannot be bound.
---@param options cachert.MetricsOptions|string options, or "HOST:PORT" ("[::1]:PORT")
---@return cachert.MetricsServer? server
---@return string? err
function cachert.serve_metrics(options) end

return cachert
