-- spec/agent_helpers.lua -- another real process for the multi-process
-- specs: a `cachert` child process (an agent) that runs the Lua chunks a
-- spec drops in its directory, one after the other, and answers each.
--
--   local a = require("agent_helpers").start()
--   a:call([[ c = cache.new{...}; return c:connect() ]])  --> true
--   a:stop()
--
-- Chunks share an environment (globals persist: `c` above), with `cache`
-- and `cachert` preloaded. A chunk that raises, or no answer in time,
-- fails the caller with the agent's trace and stderr.

local helpers = require "helpers"

local sh, wait_for, slurp = helpers.sh, helpers.wait_for, helpers.slurp

local M = {}

local function write_file(path, text)
    local f = assert(io.open(path .. ".tmp", "wb"))
    f:write(text)
    f:close()
    assert(os.rename(path .. ".tmp", path))   -- readers never see half a file
end

-- The agent runs cmd.1, cmd.2, ... from its directory, in order, each as a
-- chunk (in an environment that keeps its globals, so `c` persists), and
-- writes what the chunk returned (or its error) to res.N as Lua text, and
-- a line per command to `trace`. It exits after a chunk returns "quit", or
-- after 60 s without a command.
local AGENT = [=[
local cachert = require "cachert"
local dir = assert(arg[1])
local env = setmetatable({ cache = require "cache", cachert = cachert },
                         { __index = _G })

local function ser(v)
    local t = type(v)
    if t == "string" then
        return ("%q"):format(v)
    elseif t == "number" then
        return ("%.17g"):format(v)
    elseif t == "table" then
        local parts = {}
        for k, x in pairs(v) do
            parts[#parts + 1] = "[" .. ser(k) .. "]=" .. ser(x)
        end
        return "{" .. table.concat(parts, ",") .. "}"
    end
    return tostring(v)
end

local function append(path, text)
    local f = assert(io.open(path, "ab"))
    f:write(text)
    f:close()
end

local n, idle_since = 1, cachert.now()
while cachert.now() - idle_since < 60 do
    local f = io.open(dir .. "/cmd." .. n, "rb")
    if f then
        local src = f:read("*a")
        f:close()
        local chunk, err = loadstring(src, "=cmd." .. n)
        local out
        if chunk then
            setfenv(chunk, env)
            out = { pcall(chunk) }
            out.n = table.maxn(out)
        else
            out = { false, err, n = 2 }
        end
        local text = "return " .. ser(out)
        local tmp = dir .. "/res." .. n .. ".tmp"
        append(tmp, text)
        assert(os.rename(tmp, dir .. "/res." .. n))
        append(dir .. "/trace", ("%.3f cmd.%d: %s\n  -> %s\n"):format(
            cachert.now(), n, src:gsub("%s+", " "), text))
        n, idle_since = n + 1, cachert.now()
        if out[2] == "quit" then break end
    else
        cachert.sleep(0.01)
    end
end
]=]

local Agent = {}
Agent.__index = Agent

function M.start()
    local dir = sh("mktemp -d /tmp/cachert-fleet-XXXXXX"):gsub("%s+$", "")
    local a = setmetatable({ dir = dir, n = 0 }, Agent)
    write_file(dir .. "/agent.lua", AGENT)
    a.pid = helpers.start_process(("'%s' '%s/agent.lua' '%s'"):format(
        helpers.cachert_bin(), dir, dir), dir .. "/stderr")
    return a
end

-- What the agent did so far, for failure messages.
function Agent:log()
    return "\n-- agent trace:\n" .. slurp(self.dir .. "/trace")
        .. "-- agent stderr:\n" .. slurp(self.dir .. "/stderr")
end

-- Runs the Lua source `src` in process A; returns what it returned. A
-- chunk that raises, or no answer within `seconds`, fails the scenario.
--- Hands the Lua source `src` to the agent without waiting (several
-- agents can then run at once); Agent:result() waits for its answer.
function Agent:send(src)
    self.n = self.n + 1
    self.pending = src
    write_file(self.dir .. "/cmd." .. self.n, src)
end

--- What the last chunk sent returned. A chunk that raises, or no answer
-- within `seconds` (default 10), fails the caller.
function Agent:result(seconds)
    local res = self.dir .. "/res." .. self.n
    local answered = wait_for(function()
        local f = io.open(res)
        if f then f:close() end
        return f ~= nil or not helpers.process_alive(self.pid)
    end, seconds or 10)
    local text = slurp(res)
    assert(answered and text ~= "", ("process A did not answer cmd.%d (%s) in time%s")
        :format(self.n, self.pending, self:log()))
    local out = assert(loadstring(text))()
    assert(out[1], ("process A failed cmd.%d (%s): %s%s"):format(
        self.n, self.pending, tostring(out[2]), self:log()))
    return unpack(out, 2, out.n)
end

--- Runs the Lua source `src` in the agent; returns what it returned.
function Agent:call(src, seconds)
    self:send(src)
    return self:result(seconds)
end

function Agent:stop()
    if self.pid and helpers.process_alive(self.pid) then
        pcall(self.call, self, "if c then c:disconnect() end return 'quit'", 5)
        wait_for(function() return not helpers.process_alive(self.pid) end, 2)
        helpers.stop_process(self.pid)
    end
    self.pid = nil
    if self.dir:match("^/tmp/cachert%-fleet%-") then sh("rm -rf " .. self.dir) end
end

M.write_file = write_file

return M
