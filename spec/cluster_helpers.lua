-- spec/cluster_helpers.lua -- a private Redis Cluster for a spec: 6 nodes
-- on loopback, 3 primaries with one replica each. The same recipe as
-- spec/c/cluster_fixture.h: each redis-server on a random data port and a
-- random bus port (--cluster-port: the default, port + 10000, may be taken
-- or out of range), node timeout 1000 ms, its own temp directory for
-- nodes.conf; `redis-cli --cluster create ... --cluster-replicas 1
-- --cluster-yes` joins them; ready when every node says cluster_state:ok
-- and lists 6 online nodes in CLUSTER SHARDS. Every process is stopped by
-- its PID (helpers.stop_process). TLS and a password on request
-- (C.start{ tls = true, password = "..." }).

local helpers = require "helpers"

local sh, NO_PRELOAD, poll = helpers.sh, helpers.NO_PRELOAD, helpers.poll

local C = {}

C.NODES = 6
C.PRIMARIES = 3
C.SLOT_COUNT = 16384
C.READY_SECONDS = 30

-- Wall-clock milliseconds (for the start-up times a spec may print).
local function now_ms()
    return tonumber((sh("date +%s%3N"):match("%d+")))
end

-- `s` as one single-quoted shell word.
local function quote(s)
    return "'" .. s:gsub("'", "'\\''") .. "'"
end

--- Runs redis-cli on 127.0.0.1:port with `args` (shell words, as typed);
-- returns its output. Add "-c" to follow MOVED/ASK, "--raw" for bare
-- values.
-- port -> the redis-cli options a node needs (TLS, password)
local cli_flags = {}

function C.cli(port, args)
    return (sh(("%sredis-cli %s -p %d %s"):format(NO_PRELOAD, cli_flags[port] or "", port,
                                                  args)))
end
local cli = C.cli

local NODE_ARGS = "--cluster-enabled yes --cluster-config-file nodes.conf "
    .. "--cluster-node-timeout 1000 --repl-diskless-sync-delay 0 "
    .. "--repl-ping-replica-period 1 --save '' --appendonly no --daemonize no"

-- The arguments of a node on `port` (TLS only: the data port is the TLS
-- port, the bus and replication speak TLS too; a password for clients and
-- between the nodes).
local function node_args(port, opts)
    local args
    if opts.tls then
        local certs = helpers.tls_certs()
        args = ("--port 0 --tls-port %d --tls-cluster yes --tls-replication yes "
                .. "--tls-cert-file %s/server.pem --tls-key-file %s/server.key "
                .. "--tls-ca-cert-file %s/ca.pem --tls-auth-clients no ")
            :format(port, certs, certs, certs)
    else
        args = ("--port %d "):format(port)
    end
    if opts.password then
        args = args .. ("--requirepass %s --masterauth %s "):format(opts.password,
                                                                    opts.password)
    end
    return args
end

-- The redis-cli options for a node started with `opts`.
local function client_flags(opts)
    local flags = ""
    if opts.tls then flags = ("--tls --cacert %s/ca.pem "):format(helpers.tls_certs()) end
    if opts.password then
        flags = flags .. ("-a %s --no-auth-warning "):format(opts.password)
    end
    return flags
end

local function launch(node)
    node.pid = helpers.start_process(
        ("%sredis-server --bind 127.0.0.1 %s--cluster-port %d --dir %s %s")
            :format(NO_PRELOAD, node.args, node.bus_port, node.dir, NODE_ARGS),
        node.dir .. "/redis.log")
end

-- Starts one node in a fresh directory; returns { port=, bus_port=, pid=,
-- dir=, args= }.
local function start_node(opts)
    local dir = sh("mktemp -d /tmp/cachert-cluster-XXXXXX"):gsub("%s+$", "")
    for _ = 1, 20 do
        local port = math.random(20000, 60000)
        local bus = math.random(20000, 60000)
        if bus ~= port then
            local node = { port = port, bus_port = bus, dir = dir,
                           args = node_args(port, opts) }
            cli_flags[port] = client_flags(opts)
            launch(node)
            local pid = node.pid
            -- ours, not another server already on the port (specs run in
            -- parallel): the answer must name our process
            local function ours()
                return cli(port, "INFO server"):match("process_id:(%d+)") == tostring(pid)
            end
            if poll(function()
                    return not helpers.process_alive(pid) or ours()
                end, 5) and helpers.process_alive(pid) and ours() then
                return node
            end
            helpers.stop_process(pid) -- a port was taken: try others
            os.remove(dir .. "/nodes.conf")
        end
    end
    error("could not start a cluster node (see " .. dir .. "/redis.log)")
end

-- The number of nodes with health "online" in CLUSTER SHARDS on `port`
-- (--raw prints the nested key, value pairs one per line).
local function online(port)
    local n = 0
    for _ in cli(port, "--raw CLUSTER SHARDS"):gmatch("\nhealth\nonline\n") do
        n = n + 1
    end
    return n
end

--- True when every node of `topo` says cluster_state:ok and sees all 6
-- nodes online.
function C.ready(topo)
    for _, node in ipairs(topo.nodes) do
        if not cli(node.port, "CLUSTER INFO"):match("cluster_state:ok")
            or online(node.port) ~= C.NODES then
            return false
        end
    end
    return true
end

--- The ports of the nodes whose ROLE is master right now, ascending.
function C.primary_ports(topo)
    local ports = {}
    for _, node in ipairs(topo.nodes) do
        if cli(node.port, "--raw ROLE"):match("^master") then
            ports[#ports + 1] = node.port
        end
    end
    table.sort(ports)
    return ports
end

--- Starts the cluster (see the top); opts.tls: every node TLS-only (the
-- certificates of helpers.tls_certs(), topo.tls their folder), bus and
-- replication included; opts.password: --requirepass and --masterauth. Returns { nodes = { {port=,
-- bus_port=, pid=, dir=}, ... }, addrs = {"127.0.0.1:p", ...},
-- primaries = { port, ... } (at start, ascending), create_ms=, ready_ms=
-- (from the first node's start) }; stop it with C.stop(topo), also after a
-- failed start (C.start stops what it started before raising).
function C.start(opts)
    opts = opts or {}
    local topo = { nodes = {}, addrs = {}, tls = opts.tls and helpers.tls_certs() or nil,
                   password = opts.password }
    local t0 = now_ms()
    local ok, err = pcall(function()
        for i = 1, C.NODES do
            topo.nodes[i] = start_node(opts)
            topo.addrs[i] = "127.0.0.1:" .. topo.nodes[i].port
        end
        local out, status = sh(("%stimeout 30 redis-cli %s--cluster create %s "
                                .. "--cluster-replicas 1 --cluster-yes")
                               :format(NO_PRELOAD, client_flags(opts),
                                       table.concat(topo.addrs, " ")))
        assert(status == 0, "redis-cli --cluster create failed: " .. out)
        topo.create_ms = now_ms() - t0
        assert(poll(function() return C.ready(topo) end, C.READY_SECONDS),
               "the cluster did not become ready")
        topo.ready_ms = now_ms() - t0
        topo.primaries = C.primary_ports(topo)
        assert(#topo.primaries == C.PRIMARIES,
               ("%d primaries, expected %d"):format(#topo.primaries, C.PRIMARIES))
    end)
    if not ok then
        C.stop(topo)
        error(err, 0)
    end
    return topo
end

--- The slot of `key` (a text key: it goes through the shell) as the
-- node on `port` (default the first node) computes it: CLUSTER KEYSLOT.
function C.slot_of(topo, key, port)
    local out = cli(port or topo.nodes[1].port, "CLUSTER KEYSLOT " .. quote(key))
    return (assert(tonumber(out:match("%d+")), "CLUSTER KEYSLOT: " .. out))
end

--- Starts `node` again (after a SIGKILL) on its ports and directory: its
-- nodes.conf keeps its identity and slots (its data is gone: no
-- persistence). Waits until it answers PING.
function C.restart_node(node)
    launch(node)
    assert(poll(function() return cli(node.port, "ping"):match("PONG") end, 10),
           "node " .. node.port .. " did not come back")
end

--- The node of `topo` listening on `port`.
function C.node_at(topo, port)
    for _, node in ipairs(topo.nodes) do
        if node.port == port then return node end
    end
end

--- The replica node of the primary on `port` (ROLE names its primary).
function C.replica_of(topo, port)
    for _, node in ipairs(topo.nodes) do
        local role = cli(node.port, "--raw ROLE")
        if role:match("^slave\n127%.0%.0%.1\n" .. port .. "\n") then return node end
    end
end

--- Stops every node by its PID and removes its directory. Safe to call
-- twice.
function C.stop(topo)
    if not topo then return end
    for _, node in ipairs(topo.nodes) do
        helpers.stop_process(node.pid)
        if node.dir and node.dir:match("^/tmp/cachert%-cluster%-") then
            sh("rm -rf " .. node.dir)
        end
        node.dir = nil
    end
end

-- CRC16-XMODEM slot of `key` (hash tags as Redis), for feeding keys to
-- their owners without a round trip per key.
local bit = require "bit"
local function key_slot(key)
    local s = key:find("{", 1, true)
    if s then
        local close = key:find("}", s + 1, true)
        if close and close > s + 1 then key = key:sub(s + 1, close - 1) end
    end
    local crc = 0
    for i = 1, #key do
        crc = bit.bxor(crc, bit.lshift(key:byte(i), 8))
        for _ = 1, 8 do
            if bit.band(crc, 0x8000) ~= 0 then
                crc = bit.band(bit.bxor(bit.lshift(crc, 1), 0x1021), 0xffff)
            else
                crc = bit.band(bit.lshift(crc, 1), 0xffff)
            end
        end
    end
    return crc % C.SLOT_COUNT
end
C.key_slot = key_slot

-- slot -> port of its owner, from CLUSTER SLOTS on `port`.
local function slot_owners(port)
    local owners = {}
    local out = cli(port, "--raw CLUSTER SLOTS")
    local lines = {}
    for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
    -- --raw prints each range as: start, end, ip, port, id, [replica ip,
    -- port, id ...]: read start, end and the primary's port
    local i = 1
    while i + 3 <= #lines do
        local lo, hi, ip, p = tonumber(lines[i]), tonumber(lines[i + 1]), lines[i + 2],
            tonumber(lines[i + 3])
        if lo and hi and ip and ip:match("^%d+%.%d+%.%d+%.%d+$") and p then
            for sl = lo, hi do owners[sl] = p end
            i = i + 4
        else
            i = i + 1
        end
    end
    return owners
end

--- The map as the node on `port` sees it: slot -> port of its primary.
C.slot_owners = slot_owners

--- How many slots the primary on `owner` holds, as the node on `port`
-- sees the map.
function C.slot_count(port, owner)
    local n = 0
    for _, p in pairs(slot_owners(port)) do
        if p == owner then n = n + 1 end
    end
    return n
end

-- Commands that act on one node's whole keyspace or settings: run on
-- every primary.
local NODE_WIDE = { CONFIG = true, INFO = true, FLUSHALL = true, FLUSHDB = true,
                    DBSIZE = true, ACL = true, DEBUG = true, CLIENT = true }

--- A stand-in for a standalone server (spec/helpers.lua's server object)
-- backed by the cluster: `port` is a primary's, and cli(args) runs a
-- keyed command through redis-cli -c, a node-wide one (CONFIG, INFO,
-- FLUSHALL, ACL, ...) on every primary (DBSIZE summed, outputs joined),
-- MSET as one SET per pair, and DEBUG POPULATE N prefix size as SETs fed
-- to each key's owner (redis-cli --pipe).
function C.as_server(topo)
    -- cli_tls: the flags specs put before their own redis-cli arguments
    local server = { port = topo.primaries[1], cluster = topo, cli_tls = "-c" }
    function server.cli(args)
        local flags, rest = args:match("^(%-%-[%w-]+%s+)(.*)$")
        flags, rest = flags or "", rest or args
        local word = rest:match("^(%S+)") or ""
        -- as started (no failover in the API specs): asking every node
        -- for its ROLE each time would add half a second under load
        local primaries = topo.primaries
        if word:upper() == "MSET" then
            local out = {}
            local parts = {}
            for w in rest:gmatch("%S+") do parts[#parts + 1] = w end
            for i = 2, #parts - 1, 2 do
                out[#out + 1] = cli(primaries[1], "-c SET " .. parts[i] .. " " .. parts[i + 1])
            end
            return table.concat(out)
        elseif word:upper() == "DEBUG" and rest:match("POPULATE") then
            local n, prefix, size = rest:match("POPULATE%s+(%d+)%s+(%S+)%s+(%d+)")
            n, size = tonumber(n), tonumber(size)
            local owners = slot_owners(primaries[1])
            local feeds = {}
            for i = 0, n - 1 do
                local key = prefix .. ":" .. i
                local val = ("value:" .. i):sub(1, size)
                local p = owners[key_slot(key)]
                feeds[p] = feeds[p] or {}
                local f = feeds[p]
                f[#f + 1] = ("*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n")
                    :format(#key, key, #val, val)
            end
            for p, f in pairs(feeds) do
                local file = os.tmpname()
                local fh = assert(io.open(file, "wb"))
                fh:write(table.concat(f))
                fh:close()
                sh(("%sredis-cli -p %d --pipe < %s"):format(NO_PRELOAD, p, file))
                os.remove(file)
            end
            return "OK"
        elseif NODE_WIDE[word:upper()] then
            local outs, sum = {}, 0
            for _, p in ipairs(primaries) do
                local out = cli(p, flags .. rest)
                outs[#outs + 1] = out
                sum = sum + (tonumber(out:match("%d+")) or 0)
            end
            if word:upper() == "DBSIZE" then return tostring(sum) .. "\n" end
            return table.concat(outs, "\n")
        end
        return cli(primaries[1], "-c " .. flags .. rest)
    end
    return server
end

return C
