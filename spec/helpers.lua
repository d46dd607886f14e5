-- spec/helpers.lua -- loaded by busted before the specs (see .busted).
-- Points package.cpath at the build under test, and provides a throwaway
-- redis-server on a free loopback port (stopped by PID) and a way to run a
-- function as a cachert task under both luajit and the cachert executable.

local build = os.getenv("CACHERT_BUILD_DIR") or "./build"
package.cpath = build .. "/lua/?.so;" .. package.cpath

local H = {}

-- Specs pick random ports, and ctest runs one spec under luajit and under
-- cachert side by side: each process seeds from the kernel, so the two
-- never walk the same sequence of ports (os.time() is the same for both).
do
    local f = io.open("/dev/urandom", "rb")
    local bytes = f and f:read(4) or ""
    if f then f:close() end
    local seed = os.time() % 65536
    for i = 1, #bytes do seed = (seed * 256 + bytes:byte(i)) % 2147483647 end
    math.randomseed(seed)
end

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

-- Prefix for redis-server and redis-cli: under the sanitizer build the
-- specs run with the sanitizer runtime in LD_PRELOAD (for luajit); the
-- Redis tools must not load it (leak reports would mix with their output).
H.NO_PRELOAD = "env -u LD_PRELOAD "
local NO_PRELOAD = H.NO_PRELOAD

-- Reads a whole file, or "" when it cannot be opened.
local function slurp(path)
    local f = io.open(path, "rb")
    if not f then return "" end
    local text = f:read("*a")
    f:close()
    return text
end

-- Starts redis-server for `server` (port, dir, args) and waits until it
-- answers PING (not LOADING). Returns true, or false when the port was
-- taken, or raises when the server does not come up.
local function launch(server)
    local listen = ("--port %d"):format(server.port)
    if server.tls then
        local c = server.tls
        listen = ("--port 0 --tls-port %d --tls-cert-file %s/server.pem "
            .. "--tls-key-file %s/server.key --tls-ca-cert-file %s/ca.pem --tls-auth-clients %s")
            :format(server.port, c, c, c, server.auth_clients and "yes" or "no")
    end
    local cmd = (NO_PRELOAD .. "redis-server --bind 127.0.0.1 %s --save '' --appendonly no "
        .. "--daemonize yes --dir %s --pidfile %s/redis.pid --logfile %s/redis.log %s")
        :format(listen, server.dir, server.dir, server.dir, server.args)
    os.remove(server.dir .. "/redis.pid")
    sh(cmd)
    for _ = 1, 200 do
        local out = sh((NO_PRELOAD .. "redis-cli %s -p %d %s ping")
            :format(server.cli_tls, server.port, server.auth))
        if out:match("PONG") then
            local f = io.open(server.dir .. "/redis.pid")
            server.pid = f and f:read("*n")
            if f then f:close() end
            return true
        end
        if slurp(server.dir .. "/redis.log"):match("Address already in use") then
            return false
        end
        sh("sleep 0.05")
    end
    error("could not start redis-server (see " .. server.dir .. "/redis.log)")
end

--- TLS mode (CACHERT_SPEC_TLS=1, the lua.tls ctest entry): every server
-- H.start_redis starts speaks TLS only, with certificates spec/tls_certs.sh
-- made for this run, server.cli talks TLS, and H.manager_maker's managers
-- connect with tls = { ca_file = <the test CA> }: the same specs, over TLS.
H.TLS = os.getenv("CACHERT_SPEC_TLS") == "1"

local certs_dir
--- The directory of this run's test certificates (made on first use,
-- removed at exit): ca.pem, server.pem/key, client.pem/key, ...
function H.tls_certs()
    if not certs_dir then
        local dir = sh("mktemp -d /tmp/cachert-certs-XXXXXX"):gsub("%s+$", "")
        local out, status = sh("sh spec/tls_certs.sh " .. dir)
        assert(status == 0, "spec/tls_certs.sh failed: " .. out)
        certs_dir = dir
        -- removed when the state closes (Lua 5.1 runs __gc of userdata only)
        local guard = newproxy(true)
        getmetatable(guard).__gc = function() sh("rm -rf " .. dir) end
        H._certs_guard = guard
    end
    return certs_dir
end

--- The `tls` option for a manager of `server` (nil for a plain server).
function H.tls_option(server)
    return server.tls and { ca_file = server.tls .. "/ca.pem" } or nil
end

--- The same as environment variable assignments for a shell command line
-- ("" for a plain server).
function H.tls_env(server)
    return server.tls and ("REDIS_TLS=yes REDIS_TLS_CA_FILE=%s/ca.pem "):format(server.tls) or ""
end

--- Starts a private redis-server on 127.0.0.1 and a free port, persistence
-- off (unless `extra_args` turn it on: later arguments win), files in a
-- fresh temp directory. Returns { port=, pid=, dir=, cli=function(args) ->
-- output }. Stop it with H.stop_redis(server). `opts.password` is passed
-- to redis-cli (server.cli and the start-up PING); the server needs its
-- own --requirepass in extra_args. `opts.tls` true or false overrides TLS
-- mode (H.TLS) for this server; `opts.tls_auth_clients` makes a TLS server
-- require client certificates (server.cli then presents client.pem).
local function start_server(extra_args, opts)
    opts = opts or {}
    local dir = sh("mktemp -d /tmp/cachert-redis-XXXXXX"):gsub("%s+$", "")
    local auth = opts.password
        and ("-a '" .. opts.password .. "' --no-auth-warning") or ""
    local use_tls = opts.tls
    if use_tls == nil then use_tls = H.TLS end
    local certs = use_tls and H.tls_certs()
    local cli_tls = certs and ("--tls --cacert %s/ca.pem"):format(certs) or ""
    if certs and opts.tls_auth_clients then
        cli_tls = cli_tls .. (" --cert %s/client.pem --key %s/client.key"):format(certs, certs)
    end
    for _ = 1, 20 do
        local server = { port = math.random(20000, 60000), dir = dir,
                         args = extra_args or "", auth = auth, tls = certs,
                         cli_tls = cli_tls, auth_clients = opts.tls_auth_clients }
        if launch(server) then
            function server.cli(args)
                return (sh((NO_PRELOAD .. "redis-cli %s -p %d %s %s"):format(cli_tls, server.port,
                                                                             auth, args)))
            end
            return server
        end
    end
    error("could not start redis-server (see " .. dir .. "/redis.log)")
end

--- Sentinel mode (CACHERT_SPEC_SENTINEL=1, the lua.sentinel ctest
-- entry): H.start_redis starts a whole Sentinel topology (a primary, a
-- replica, three sentinels: spec/sentinel_helpers.lua) and returns its
-- primary, and H.manager_maker's managers find it through the sentinels.
-- Servers with their own logins (--requirepass, --user: the sentinels
-- would need them too) and those started with opts.standalone stay plain;
-- a manager given its own host, port or url connects as told.
H.SENTINEL = os.getenv("CACHERT_SPEC_SENTINEL") == "1"

--- Cluster mode (CACHERT_SPEC_CLUSTER=1, the lua.cluster ctest entry):
-- H.start_redis starts a 3 + 3 Redis Cluster (spec/cluster_helpers.lua)
-- and returns a stand-in server whose cli() acts on the whole cluster;
-- managers get its nodes as cluster_nodes. The same exceptions as for
-- Sentinel stay plain.
H.CLUSTER = os.getenv("CACHERT_SPEC_CLUSTER") == "1"

function H.start_redis(extra_args, opts)
    local args = extra_args or ""
    local plain = (opts and opts.standalone) or args:match("requirepass")
        or args:match("%-%-user")
    if H.CLUSTER and not plain then
        -- the spec's server arguments (--enable-debug-command, --databases)
        -- are for a standalone server: DEBUG POPULATE is emulated and a
        -- cluster has database 0 only
        local cluster = require "cluster_helpers"
        return cluster.as_server(cluster.start())
    end
    if H.SENTINEL and not (opts and opts.standalone)
        and not args:match("requirepass") and not args:match("%-%-user") then
        local topo = require("sentinel_helpers").start(args)
        local primary = topo.primary
        primary.topology = topo
        return primary
    end
    return start_server(extra_args, opts)
end

-- True while the process `pid` exists and is not a zombie (a daemonized
-- server is reaped by whoever adopted it, maybe late). Reads /proc rather
-- than running ps, which can hang under the sanitizers' LD_PRELOAD.
local function alive(pid)
    local stat = slurp("/proc/" .. pid .. "/stat")
    local state = stat:match("^%d+ %b() (%a)")
    return state ~= nil and state ~= "Z" and state ~= "X"
end

--- Seconds after which a server stopped with SIGSTOP is continued anyway.
H.STOP_WATCHDOG_SECONDS = 20

--- Sends `signal` (default KILL) to the server. For KILL, TERM and INT it
-- waits (bounded) until the process is gone; the server keeps its port and
-- directory for H.restart_redis. CONT just sends the signal; STOP also
-- arms a watchdog that continues it after STOP_WATCHDOG_SECONDS.
function H.kill_redis(server, signal)
    signal = signal or "KILL"
    assert(server.pid, "kill_redis: the server is not running")
    sh(("kill -%s %d"):format(signal, server.pid))
    if signal == "STOP" then
        -- A watchdog: a scenario whose own bounds failed (a command timeout
        -- that never fires) gets its server back, and fails on what it
        -- observed instead of hanging the suite.
        sh(("(sleep %d; kill -CONT %d) >/dev/null 2>&1 &"):format(
            H.STOP_WATCHDOG_SECONDS, server.pid))
    end
    if signal == "KILL" or signal == "TERM" or signal == "INT" then
        for _ = 1, 200 do
            if not alive(server.pid) then break end
            sh("sleep 0.02")
        end
        server.pid = nil
    end
end

--- Starts the server again on the same port, directory and arguments
-- (after H.kill_redis): with persistence on, it reloads its data.
function H.restart_redis(server)
    assert(not server.pid, "restart_redis: the server is still running")
    for _ = 1, 50 do
        if launch(server) then return server end
        sh("sleep 0.1")    -- the port is still held (TIME_WAIT is not it)
    end
    error("could not restart redis-server on port " .. server.port)
end

--- Stops the server by PID (resuming it first if it was SIGSTOPped) and
-- removes its directory. Safe to call twice or after kill_redis.
function H.stop_redis(server)
    if not server then return end
    -- a whole topology (Sentinel, Cluster) stands behind the server object
    for field, module in pairs { topology = "sentinel_helpers", cluster = "cluster_helpers" } do
        local topo = server[field]
        if topo then
            server[field] = nil
            require(module).stop(topo)
            return
        end
    end
    if server.pid then
        sh("kill -CONT " .. server.pid .. "; kill " .. server.pid)
        for _ = 1, 100 do
            if not alive(server.pid) then break end
            sh("sleep 0.05")
        end
        if alive(server.pid) then sh("kill -KILL " .. server.pid) end
        server.pid = nil
    end
    if server.dir and server.dir:match("^/tmp/cachert%-redis%-") then
        sh("rm -rf " .. server.dir)
    end
    server.dir = nil
end

--- The cachert executable under test.
function H.cachert_bin()
    local dir = build
    if dir:sub(1, 1) ~= "/" then
        dir = (sh("pwd"):gsub("%s+$", "")) .. "/" .. dir
    end
    return dir .. "/cachert"
end

--- Waits (yielding to other tasks) until cond() is true or `seconds` have
-- passed; returns cond()'s last result.
function H.wait_for(cond, seconds)
    local sched = require "cachert"
    local deadline = sched.now() + (seconds or 5)
    local v = cond()
    while not v and sched.now() < deadline do
        sched.sleep(0.05)
        v = cond()
    end
    return v
end

--- Polls cond() with plain sleeps (so it works outside tasks too: set-up
-- of topologies) until it is true or `seconds` pass; returns its last
-- result.
function H.poll(cond, seconds)
    for _ = 1, math.ceil(seconds / 0.05) do
        if cond() then return true end
        sh("sleep 0.05")
    end
    return cond()
end

-- -- Background processes and a TCP proxy (spec/redis_fleet_spec.lua) ------

--- True while the process `pid` exists and is not a zombie.
H.process_alive = alive

-- The process group of `pid` (field 5 of /proc/<pid>/stat), or nil.
local function pgrp(pid)
    local stat = slurp("/proc/" .. pid .. "/stat")
    return tonumber(stat:match("^%d+ %b() %a %d+ (%d+)"))
end

--- Starts the shell command `cmd` in the background, stdin from /dev/null
-- and stdout and stderr appended to the file `log`; returns its PID (the
-- command's own when `cmd` is a simple command: the shell execs it).
-- End it with H.stop_process(pid).
function H.start_process(cmd, log)
    local out = sh(("%s </dev/null >>'%s' 2>&1 & echo \"pid=$!\""):format(cmd, log))
    return (assert(tonumber(out:match("pid=(%d+)")), "no PID from: " .. out))
end

--- Stops the process `pid` (one this spec started): SIGTERM, then SIGKILL
-- after `seconds` (default 2). Returns once it is gone. Safe to call for a
-- process that has already exited.
function H.stop_process(pid, seconds)
    if not pid or not alive(pid) then return end
    sh("kill -TERM " .. pid)
    for _ = 1, math.ceil((seconds or 2) / 0.02) do
        if not alive(pid) then return end
        sh("sleep 0.02")
    end
    sh("kill -KILL " .. pid)
    for _ = 1, 100 do
        if not alive(pid) then return end
        sh("sleep 0.02")
    end
end

-- True when something listens on 127.0.0.1:port (read from /proc/net/tcp,
-- so checking makes no connection).
local function listening(port)
    local needle = ("0100007F:%04X 00000000:0000 0A"):format(port)
    return slurp("/proc/net/tcp"):find(needle, 1, true) ~= nil
end

-- Starts socat for `proxy` on proxy.port and waits until it listens.
-- Returns true, or false when it exited at once (the port is taken).
local function launch_proxy(proxy)
    local pid = H.start_process(
        ("%ssetsid socat TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork TCP:127.0.0.1:%d")
            :format(NO_PRELOAD, proxy.port, proxy.target), "/dev/null")
    for _ = 1, 250 do
        if not alive(pid) then return false end
        if listening(proxy.port) and pgrp(pid) == pid then
            proxy.pid = pid
            return true
        end
        sh("sleep 0.02")
    end
    sh("kill -KILL " .. pid)
    error(("socat did not listen on port %d (process group %s)"):format(
        proxy.port, tostring(pgrp(pid))))
end

--- Starts a TCP proxy on 127.0.0.1, on a free port, to 127.0.0.1:target
-- (socat, forking one process per connection). It runs in a process group
-- of its own, led by proxy.pid, so H.stop_proxy ends the listener and
-- every connection through it. Returns { port=, pid=, target= }.
function H.start_proxy(target)
    for _ = 1, 20 do
        local proxy = { port = math.random(20000, 60000), target = target }
        if not listening(proxy.port) and launch_proxy(proxy) then return proxy end
    end
    error("could not start a proxy to port " .. target)
end

--- Kills the proxy's process group (the listener and every connection it
-- forked: both ends see their connections close) and waits until the
-- listener is gone. The proxy keeps its port for H.restart_proxy. Safe to
-- call twice.
function H.stop_proxy(proxy)
    if not proxy or not proxy.pid then return end
    assert(pgrp(proxy.pid) == proxy.pid or not alive(proxy.pid),
           "stop_proxy: the proxy does not lead its process group")
    sh("kill -KILL -" .. proxy.pid)
    for _ = 1, 250 do
        if not alive(proxy.pid) and not listening(proxy.port) then break end
        sh("sleep 0.02")
    end
    proxy.pid = nil
end

--- Starts the proxy again on the same port (after H.stop_proxy).
function H.restart_proxy(proxy)
    assert(not proxy.pid, "restart_proxy: the proxy is still running")
    for _ = 1, 50 do
        if launch_proxy(proxy) then return proxy end
        sh("sleep 0.1")
    end
    error("could not restart the proxy on port " .. proxy.port)
end

H.slurp = slurp

--- The bytes Redis holds under `key` in `db` (default 0), or nil when it
-- has none: redis-cli prints a bulk reply raw, plus one newline, when its
-- output is not a terminal.
function H.raw_get(server, key, db)
    local n = ("-n %d --raw "):format(db or 0)
    if server.cli(n .. ("EXISTS '%s'"):format(key)) ~= "1\n" then return nil end
    return (server.cli(n .. ("GET '%s'"):format(key)):sub(1, -2))
end

--- Returns manager(server, opts), which makes a manager of `server` with
-- `defaults` overridden by `opts`, and disconnect_all(), which disconnects
-- every manager made so far (for after_each / teardown).
function H.manager_maker(defaults)
    local made = {}
    local function manager(server, opts)
        local o = { host = "127.0.0.1", port = server.port }
        o.tls = H.tls_option(server)
        local own = opts and (opts.host or opts.port or opts.url)
        if server.topology and not own then
            o.sentinels = server.topology.addrs
            o.sentinel_master = require("sentinel_helpers").MASTER
        elseif server.cluster and not own then
            o.cluster_nodes = server.cluster.addrs
        end
        for k, v in pairs(defaults) do o[k] = v end
        for k, v in pairs(opts or {}) do o[k] = v end
        local c = require("cache").new(o)
        made[#made + 1] = c
        return c
    end
    local function disconnect_all()
        for i = #made, 1, -1 do
            pcall(made[i].disconnect, made[i])
            made[i] = nil
        end
    end
    return manager, disconnect_all
end

--- A load that checks itself: `count` tasks (call inside a task) set,
-- delete and read their own keys on manager `c` until H.stop_model_load,
-- each read checked against a model: r.model[key] is the last value
-- written (false: deleted). Keys are "t<task>:<r.phase><n % 5>" (the
-- caller may change r.phase, e.g. after an outage); of every 10 operations
-- 4 are sets, `deletes` deletes, the rest gets. Counts r.ops and records
-- r.stale_reads and r.task_errors (anything raised). Returns the load.
function H.start_model_load(c, r, count, deletes)
    r.model, r.stale_reads, r.task_errors, r.ops = r.model or {}, {}, {}, 0
    r.phase = r.phase or "k"
    local model = r.model
    local load = { running = true, tasks = {} }
    local sched = require "cachert"
    for t = 1, count do
        load.tasks[t] = sched.spawn(function()
            local n = 0
            while load.running do
                n = n + 1
                local key = ("t%d:%s%d"):format(t, r.phase, n % 5)
                local dice = (n * 7 + t) % 10
                local ok, err = pcall(function()
                    if dice < 4 then
                        local v = ("v%d-%d"):format(t, n)
                        c:set(key, v, 0)
                        model[key] = v
                    elseif dice < 4 + deletes then
                        c:delete(key)
                        model[key] = false
                    else
                        local v, found = c:get(key)
                        if found and v ~= model[key] then
                            r.stale_reads[#r.stale_reads + 1] =
                                ("%s: got %s, model %s"):format(
                                    key, tostring(v), tostring(model[key]))
                        end
                    end
                end)
                r.ops = r.ops + 1
                if not ok then r.task_errors[#r.task_errors + 1] = err end
                sched.sleep(0.002)
            end
        end)
    end
    return load
end

--- Stops the load and joins its tasks; a task that raised is recorded in
-- r.task_errors.
function H.stop_model_load(load, r)
    load.running = false
    for _, task in ipairs(load.tasks) do
        local ok, err = pcall(task.join, task)
        if not ok then r.task_errors[#r.task_errors + 1] = err end
    end
end

package.loaded["spec.helpers"] = H
package.loaded["helpers"] = H
return H
