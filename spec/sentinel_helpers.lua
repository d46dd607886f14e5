-- spec/sentinel_helpers.lua -- a private Sentinel topology for a spec: a
-- primary, a replica and three redis-sentinel processes on loopback, each
-- sentinel with a fresh config file in its own temp directory. Every
-- process is stopped by its PID (helpers.stop_redis, helpers.stop_process).
-- The same recipe as spec/c/sentinel_fixture.h (see there for why the
-- sentinels start only once the replica's link is up).

local helpers = require "helpers"

local sh, NO_PRELOAD = helpers.sh, helpers.NO_PRELOAD

local S = {}

S.MASTER = "mymaster"
S.SETTLE_SECONDS = 20

local poll = helpers.poll

-- In TLS mode (helpers.TLS) every process of the topology speaks TLS
-- only: the data nodes, replication (tls-replication) and the sentinels.
local function tls_cli()
    return helpers.TLS and ("--tls --cacert %s/ca.pem"):format(helpers.tls_certs()) or ""
end

local function cli(port, args)
    return (sh(("%sredis-cli %s -p %d %s"):format(NO_PRELOAD, tls_cli(), port, args)))
end
S.cli = cli

local function start_sentinel(primary_port)
    local dir = sh("mktemp -d /tmp/cachert-sentinel-XXXXXX"):gsub("%s+$", "")
    for _ = 1, 20 do
        local port = math.random(20000, 60000)
        local conf = dir .. "/sentinel.conf"
        local f = assert(io.open(conf, "w"))
        if helpers.TLS then
            local c = helpers.tls_certs()
            f:write(("port 0\ntls-port %d\ntls-cert-file %s/server.pem\n"
                     .. "tls-key-file %s/server.key\ntls-ca-cert-file %s/ca.pem\n"
                     .. "tls-auth-clients no\ntls-replication yes\n"):format(port, c, c, c))
        else
            f:write(("port %d\n"):format(port))
        end
        f:write(("bind 127.0.0.1\ndaemonize no\nlogfile \"\"\ndir %s\n"
                 .. "sentinel monitor %s 127.0.0.1 %d 2\n"
                 .. "sentinel down-after-milliseconds %s 1000\n"
                 .. "sentinel failover-timeout %s 3000\n")
                :format(dir, S.MASTER, primary_port, S.MASTER, S.MASTER))
        f:close()
        local pid = helpers.start_process(NO_PRELOAD .. "redis-sentinel " .. conf,
                                          dir .. "/sentinel.log")
        if poll(function()
                return not helpers.process_alive(pid) or cli(port, "ping"):match("PONG")
            end, 5) and helpers.process_alive(pid) then
            return { port = port, pid = pid, dir = dir }
        end
        helpers.stop_process(pid)
    end
    error("could not start redis-sentinel (see " .. dir .. "/sentinel.log)")
end

-- Every sentinel sees the master, 1 replica and the 2 other sentinels.
local function settled(topo)
    for _, s in ipairs(topo.sentinels) do
        local out = cli(s.port, "--raw SENTINEL master " .. S.MASTER)
        if out:match("num%-slaves\n(%d+)") ~= "1"
            or out:match("num%-other%-sentinels\n(%d+)") ~= "2" then
            return false
        end
    end
    return true
end

--- Starts the topology (`extra_args` for both data nodes). Returns
-- { primary=, replica= (helpers.start_redis servers), sentinels =
-- { {port=, pid=, dir=}, ... }, addrs = {"127.0.0.1:p", ...} }; stop it
-- with S.stop(topo).
function S.start(extra_args)
    local topo = { sentinels = {}, addrs = {} }
    local args = "--repl-diskless-sync-delay 0 " .. (extra_args or "")
    if helpers.TLS then args = args .. " --tls-replication yes" end
    local plain = { standalone = true }
    topo.primary = helpers.start_redis(args, plain)
    topo.replica = helpers.start_redis(("%s --replicaof 127.0.0.1 %d")
                                       :format(args, topo.primary.port), plain)
    assert(poll(function()
        return topo.replica.cli("INFO replication"):match("master_link_status:up")
    end, S.SETTLE_SECONDS), "the replica did not sync")
    for i = 1, 3 do
        topo.sentinels[i] = start_sentinel(topo.primary.port)
        topo.addrs[i] = "127.0.0.1:" .. topo.sentinels[i].port
    end
    assert(poll(function() return settled(topo) end, S.SETTLE_SECONDS),
           "the sentinels did not settle")
    return topo
end

--- The port sentinel `i` (default 1) names for the master, or nil.
function S.master_port(topo, i)
    local out = cli(topo.sentinels[i or 1].port,
                    "--raw SENTINEL get-master-addr-by-name " .. S.MASTER)
    return tonumber(out:match("\n(%d+)\n"))
end

--- The first line of ROLE on `server` ("master", "slave").
function S.role(server)
    return (server.cli("--raw ROLE"):match("^(%a+)"))
end

function S.stop(topo)
    if not topo then return end
    for _, s in ipairs(topo.sentinels) do
        helpers.stop_process(s.pid)
        if s.dir:match("^/tmp/cachert%-sentinel%-") then sh("rm -rf " .. s.dir) end
    end
    helpers.stop_redis(topo.replica)
    helpers.stop_redis(topo.primary)
end

return S
