-- cache/metrics.lua -- every live manager's stats() in the Prometheus text
-- exposition format 0.0.4 (cache.metrics), and the HTTP endpoint that
-- serves it on the event loop (cachert.serve_metrics, cachert --metrics).
--
-- Families come from one table (FAMILIES): one # HELP and one # TYPE line
-- each, then one sample per manager that has the field, in creation order.
-- Every sample carries namespace="..." and manager="...": "default" for the
-- module-level manager, else the manager's creation number in this process,
-- so two managers of one namespace never make the same series. A family
-- whose field no manager has is left out entirely. last_error (free text)
-- is not exported.
--
-- The server is C (src/httpd.c) on the scheduler's loop; it never keeps
-- the process alive. When requests wait for an answer the loop reports the
-- server's id, and the scheduler's poll calls the handler below, which
-- renders once for every request waiting and hands the text to C.

local core = require "cache.core"

local type, error, tostring, pairs, ipairs, pcall, floor, huge =
    type, error, tostring, pairs, ipairs, pcall, math.floor, math.huge
local concat, sort, format = table.concat, table.sort, string.format

local _M = {}

local PREFIX = "cachert_"

-- { stats field (a.b: field b of table a), kind, help, metric name when
-- it is not the field's }: counters get _total; using_redis is 0 or 1;
-- backend is an info family (the value is a label, the sample 1).
local FAMILIES = {
    { "hits", "counter", "Lookups that found a value (near-cache hits included)." },
    { "misses", "counter", "Lookups that found nothing." },
    { "sets", "counter", "Values stored (set, mset, results stored by cached)." },
    { "deletes", "counter", "Keys removed by delete and clear." },
    { "errors", "counter", "Backend failures (Redis errors and timeouts, values too large, "
                            .. "values that could not be decoded)." },
    { "reconnects", "counter", "Switches back to Redis after having used it." },
    { "journal_overflows", "counter",
      "Recoveries that found the outage journal overflowed (namespace cleared in Redis)." },
    { "evictions", "counter", "Memory-store entries dropped to respect max_items / max_memory." },
    { "expired", "counter", "Memory-store entries removed because their TTL passed." },
    { "invalidations", "counter", "Keys Redis said changed (client-side caching), plus flushes." },
    { "near_hits", "counter", "Lookups answered by the near cache." },
    { "near_evictions", "counter", "Near-cache entries dropped to respect its limits." },
    { "stale_served", "counter", "cached calls answered with a value past its ttl (stale_ttl)." },
    { "keys", "gauge", "Entries in the memory store." },
    { "memory_bytes", "gauge", "Bytes of the memory store (keys, encoded values, overhead)." },
    { "max_items", "gauge", "The memory store's entry limit (0: none)." },
    { "max_memory", "gauge", "The memory store's byte limit (0: none).", "max_memory_bytes" },
    { "near_keys", "gauge", "Values the near cache holds." },
    { "hit_rate", "gauge", "hits / (hits + misses) since the manager was created (0 to 1).",
      "hit_ratio" },
    { "using_redis", "gauge", "1 while Redis serves the calls, 0 while the memory store does." },
    { "backend", "info", "The backend serving the calls, as the backend label.",
      "backend_info" },
    { "cluster.nodes", "gauge", "Redis Cluster primaries in the slot map.", "cluster_nodes" },
    { "cluster.nodes_up", "gauge", "Redis Cluster primaries connected.", "cluster_nodes_up" },
    { "cluster.slots_on_memory", "gauge",
      "Redis Cluster slots served from the memory store.", "cluster_slots_on_memory" },
}

-- stats() fields deliberately not exported as families.
local NOT_EXPORTED = { namespace = "a label", last_error = "free text",
                       cluster = "its fields are" }

-- The metric name of a family.
local function metric_name(f)
    local base = f[4] or f[1]
    return PREFIX .. base .. (f[2] == "counter" and "_total" or "")
end

-- Label values: backslash, double quote and newline escaped.
local function label_value(s)
    return (s:gsub("[\\\"\n]", { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }))
end

-- HELP text: backslash and newline escaped.
local function help_text(s)
    return (s:gsub("[\\\n]", { ["\\"] = "\\\\", ["\n"] = "\\n" }))
end

-- A sample value: integers exactly, other numbers in the fewest digits that
-- read back the same.
local function number(v)
    if v == floor(v) and v > -1e14 and v < 1e14 then
        return tostring(v)      -- "%.14g": exact, and faster than format
    end
    if v ~= v then return "NaN" end
    if v == huge then return "+Inf" end
    if v == -huge then return "-Inf" end
    if v == floor(v) and v > -2^53 and v < 2^53 then
        return format("%d", v)
    end
    local s = format("%.15g", v)
    if tonumber(s) ~= v then s = format("%.17g", v) end
    return s
end

-- The field `path` ("a" or "a.b") of stats table `s`, or nil.
local function field(s, path)
    local a, b = path:match("^([%w_]+)%.([%w_]+)$")
    if a then
        local t = s[a]
        return type(t) == "table" and t[b] or nil
    end
    return s[path]
end

-- The managers in creation order, with their labels and stats; a manager
-- whose stats() raises (closed under our feet) is skipped.
local function snapshot(live, default)
    local list = {}
    for m, seq in pairs(live) do
        list[#list + 1] = { m = m, seq = seq }
    end
    sort(list, function(a, b) return a.seq < b.seq end)
    local out = {}
    for _, e in ipairs(list) do
        local ok, s = pcall(e.m.stats, e.m)
        if ok then
            local id = e.m == default and "default" or tostring(e.seq)
            out[#out + 1] = {
                stats = s,
                open = format('{namespace="%s",manager="%s"', label_value(s.namespace or ""), id),
            }
        end
    end
    return out
end

--- The text of cache.metrics(): `live` maps each manager to its creation
-- number; `default` is the module-level manager, or nil.
function _M.render(live, default)
    local managers = snapshot(live, default)
    -- Lines go into `buf` piece by piece; one concat at the end copies once.
    local buf, n = {}, 0
    for _, f in ipairs(FAMILIES) do
        local name, kind, path = metric_name(f), f[2], f[1]
        local header = false
        for _, e in ipairs(managers) do
            local v = field(e.stats, path)
            local text
            if kind == "info" then
                if type(v) == "string" then
                    text = format(',%s="%s"} 1\n', path, label_value(v))
                end
            elseif type(v) == "boolean" then
                text = v and "} 1\n" or "} 0\n"
            elseif type(v) == "number" then
                text = "} " .. number(v) .. "\n"
            end
            if text then
                if not header then
                    header = true
                    buf[n + 1] = format("# HELP %s %s\n# TYPE %s %s\n", name, help_text(f[3]),
                                        name, kind == "info" and "gauge" or kind)
                    n = n + 1
                end
                buf[n + 1], buf[n + 2], buf[n + 3] = name, e.open, text
                n = n + 3
            end
        end
    end
    return concat(buf, "", 1, n)
end

--- The families: an array of { field =, name =, type = } (type "counter"
-- or "gauge"; the info family is a gauge), and the stats() fields not
-- exported (field -> why), for docs and specs.
function _M.families()
    local out = {}
    for i, f in ipairs(FAMILIES) do
        out[i] = { field = f[1], name = metric_name(f),
                   type = f[2] == "info" and "gauge" or f[2], help = f[3] }
    end
    local skipped = {}
    for k, v in pairs(NOT_EXPORTED) do skipped[k] = v end
    return out, skipped
end

-- The endpoint -----------------------------------------------------------------

local CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
local DEFAULT_TIMEOUT = 5

local server_mt = { __name = "cachert.MetricsServer" }
server_mt.__index = server_mt

--- Stops listening and closes every open connection. Idempotent.
function server_mt:close()
    if getmetatable(self) ~= server_mt then
        error("bad self in close: expected a metrics server (use s:close())", 2)
    end
    if self._ud then
        require("cachert")._listen(self._id, nil)
        core.httpd_close(self._ud)
        self._ud = nil
        self.closed = true
    end
end

server_mt.__tostring = function(self)
    return ("cachert.MetricsServer (%s%s)"):format(self.url, self.closed and ", closed" or "")
end

-- "HOST:PORT" or "[IPV6]:PORT" -> host, port; nil when malformed.
local function split_address(text)
    local host, port = text:match("^%[([%x:%.]+)%]:(%d+)$")
    if not host then
        host, port = text:match("^([^:%[%]]+):(%d+)$")
    end
    return host, tonumber(port)
end

-- The options, checked; raises naming what is wrong at `level`.
local function check_options(opts, level)
    if type(opts) == "string" then
        local host, port = split_address(opts)
        if not host then
            error(("metrics address must be HOST:PORT (e.g. 127.0.0.1:9145 or [::1]:9145), "
                   .. "got '%s'"):format(opts), level)
        end
        opts = { host = host, port = port }
    elseif type(opts) ~= "table" then
        error("options must be a table { host =, port = } or a \"HOST:PORT\" string, got "
              .. type(opts), level)
    end
    for k in pairs(opts) do
        if k ~= "host" and k ~= "port" and k ~= "timeout" and k ~= "path" then
            error("unknown metrics server option '" .. tostring(k) .. "'", level)
        end
    end
    local host = opts.host == nil and "127.0.0.1" or opts.host
    if type(host) ~= "string" or host == "" then
        error("host must be a numeric IP address string, got " .. tostring(host), level)
    end
    local port = opts.port
    if type(port) ~= "number" or port ~= floor(port) or port < 0 or port > 65535 then
        error("port must be an integer from 0 to 65535 (0: any free port), got "
              .. tostring(port), level)
    end
    local timeout = opts.timeout == nil and DEFAULT_TIMEOUT or opts.timeout
    if type(timeout) ~= "number" or not (timeout > 0 and timeout <= 86400) then
        error("timeout must be a number of seconds > 0 (at most 86400), got "
              .. tostring(timeout), level)
    end
    local path = opts.path == nil and "/metrics" or opts.path
    if type(path) ~= "string" or not path:match("^/[%w%-%._~/]*$") then
        error("path must be a string starting with / (letters, digits, - . _ ~ /), got "
              .. tostring(path), level)
    end
    return host, port, timeout, path
end

--- Listens on opts.host:opts.port (host default "127.0.0.1", a numeric
-- IPv4 or IPv6 address; port 0: any free port) and answers GET opts.path
-- (default "/metrics") with cache.metrics(). `opts` may also be the string
-- "HOST:PORT" ("[::1]:9145" for IPv6). opts.timeout (seconds, default 5)
-- bounds receiving a request, and then sending the answer. Returns the
-- server ({ host =, port =, url =, close = }), or nil and a message when
-- the address cannot be bound. The server never keeps the process alive,
-- and closes in the exit phase (cachert.at_exit) if not before.
function _M.serve(opts, level)
    level = level or 2
    local host, port, timeout, path = check_options(opts, level + 1)
    local cache = require "cache"
    local cachert = require "cachert"
    local ud, id = core.httpd_listen(host, port, timeout, path)
    if not ud then
        return nil, id
    end
    local bound_host, bound_port = core.httpd_address(ud)
    local shown = bound_host:find(":", 1, true) and "[" .. bound_host .. "]" or bound_host
    local server = setmetatable({
        host = bound_host, port = bound_port,
        url = ("http://%s:%d%s"):format(shown, bound_port, path),
        closed = false, _ud = ud, _id = id,
    }, server_mt)
    local render = cache.metrics
    cachert._listen(id, function()
        if core.httpd_waiting(ud) == 0 then    -- they all went away
            core.httpd_respond(ud, 200, "")
            return
        end
        local ok, text = pcall(render)
        if ok then
            core.httpd_respond(ud, 200, text, CONTENT_TYPE)
        else
            -- An error object whose __tostring raises must not leave the
            -- requests unanswered.
            local said_ok, said = pcall(tostring, text)
            core.httpd_respond(ud, 500, "cache.metrics() failed: "
                .. (said_ok and type(said) == "string" and said or "(error object)") .. "\n")
        end
    end)
    cachert.at_exit(function() server:close() end)
    return server
end

return _M
