-- spec/helpers.lua -- loaded by busted before the specs (see .busted).
-- Points package.cpath at the build under test, and provides a throwaway
-- redis-server on a free loopback port (stopped by PID) and a way to run a
-- function as a cachert task under both luajit and the cachert executable.

local build = os.getenv("CACHERT_BUILD_DIR") or "./build"
package.cpath = build .. "/lua/?.so;" .. package.cpath

local H = {}

-- Runs a shell command; returns its output (stdout and stderr) and its
-- exit status. LuaJIT's popen:close() does not report the status, so the
-- command prints it on a last line of its own.
local function sh(cmd)
    local p = assert(io.popen("(" .. cmd .. ") 2>&1; echo \"__status=$?\""))
    local out = p:read("*a")
    p:close()
    local body, code = out:match("^(.-)__status=(%d+)%s*$")
    return body or out, tonumber(code) or 1
end
H.sh = sh

-- Runs fn(...) inside a cachert task: under the cachert executable the spec
-- already runs in the main task; under plain luajit cachert.run drives the
-- loop until fn and every task it spawned have finished.
function H.in_task(fn, ...)
    local cachert = require "cachert"
    if cachert.current() then
        return fn(...)
    end
    return cachert.run(fn, ...)
end

--- Starts a private redis-server on 127.0.0.1 and a free port, persistence
-- off, files in a fresh temp directory. Returns { port=, pid=, dir=,
-- cli=function(args) -> output }. Stop it with H.stop_redis(server).
function H.start_redis(extra_args)
    local dir = sh("mktemp -d /tmp/cachert-redis-XXXXXX"):gsub("%s+$", "")
    math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)"), 16) % 100000)
    for _ = 1, 20 do
        local port = math.random(20000, 60000)
        local cmd = ("redis-server --bind 127.0.0.1 --port %d --save '' --appendonly no "
            .. "--daemonize yes --dir %s --pidfile %s/redis.pid --logfile %s/redis.log %s")
            :format(port, dir, dir, dir, extra_args or "")
        sh(cmd)
        for _ = 1, 100 do
            local out = sh(("redis-cli -p %d ping"):format(port))
            if out:match("PONG") then
                local f = io.open(dir .. "/redis.pid")
                local pid = f and f:read("*n")
                if f then f:close() end
                local server = { port = port, pid = pid, dir = dir }
                function server.cli(args)
                    return (sh(("redis-cli -p %d %s"):format(port, args)))
                end
                return server
            end
            local log = io.open(dir .. "/redis.log")
            local text = log and log:read("*a") or ""
            if log then log:close() end
            if text:match("Address already in use") then break end
            sh("sleep 0.05")
        end
    end
    error("could not start redis-server (see " .. dir .. "/redis.log)")
end

function H.stop_redis(server)
    if server and server.pid then
        sh("kill " .. server.pid)
        for _ = 1, 100 do
            local _, code = sh("kill -0 " .. server.pid)
            if code ~= 0 then break end
            sh("sleep 0.05")
        end
        sh("rm -rf " .. server.dir)
        server.pid = nil
    end
end

package.loaded["spec.helpers"] = H
package.loaded["helpers"] = H
return H
