-- metrics_spec.lua -- cache.metrics() (the Prometheus text exposition
-- format), cachert.serve_metrics and `cachert --metrics HOST:PORT`: the
-- text itself, then a server in this process (clients run as background
-- processes while the spec's task waits, so the loop keeps serving), then
-- a cachert process scraped with curl and checked with promtool.

local helpers = require "helpers"
local cache = require "cache"
local cachert = require "cachert"
local metrics = require "cache.metrics"

local sh, in_task, wait_for = helpers.sh, helpers.in_task, helpers.wait_for
local NO_PRELOAD = helpers.NO_PRELOAD

local function tool(name, package)
    local _, status = sh("command -v " .. name)
    assert(status == 0, ("%s is needed (Debian package %s: make deps-test)"):format(name, package))
end
tool("curl", "curl")
tool("promtool", "prometheus")
tool("python3", "python3")

local tmp = sh("mktemp -d /tmp/cachert-metrics-XXXXXX"):gsub("%s+$", "")
local function tmpfile(name) return tmp .. "/" .. name end
local function write(path, text)
    local f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
end

-- The samples of an exposition text: samples[name][labels] = value (labels
-- as written between the braces), and the # TYPE of each family.
local function parse(text)
    local samples, types, helps = {}, {}, {}
    for line in text:gmatch("[^\n]+") do
        local name, kind = line:match("^# TYPE (%S+) (%S+)$")
        if name then
            assert(types[name] == nil, "second # TYPE for " .. name)
            types[name] = kind
        elseif line:match("^# HELP ") then
            local hname = line:match("^# HELP (%S+) ")
            assert(helps[hname] == nil, "second # HELP for " .. hname)
            helps[hname] = true
        else
            local n, labels, value = line:match("^([%w_]+){(.*)} (%S+)$")
            assert(n, "not a sample line: " .. line)
            assert(types[n], "sample before its # TYPE: " .. line)
            samples[n] = samples[n] or {}
            assert(samples[n][labels] == nil, "duplicate series: " .. line)
            samples[n][labels] = tonumber(value)
        end
    end
    return samples, types, helps
end


local function label_value(s)
    return (s:gsub("[\\\"\n]", { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }))
end

-- The manager label of the newest manager of namespace `ns` in `text`
-- (an older one of an earlier test may not be collected yet).
local function manager_label(text, ns)
    local escaped = label_value(ns):gsub("%p", "%%%0")
    local newest
    for m in text:gmatch('cachert_sets_total{namespace="' .. escaped .. '",manager="(%d+)"}') do
        if not newest or tonumber(m) > tonumber(newest) then newest = m end
    end
    return newest
end

local function labels(ns, manager)
    return ('namespace="%s",manager="%s"'):format(label_value(ns), manager)
end

-- promtool check metrics on `text`: its output and exit status.
local function promtool(text)
    local path = tmpfile("promtool.txt")
    write(path, text)
    return sh(NO_PRELOAD .. "promtool check metrics < " .. path)
end

local function hex(s)
    return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

-- Background clients: the spec's task waits for them with cachert.sleep,
-- so a server in this process keeps answering meanwhile.
local bg_count = 0
local function background(cmd)
    bg_count = bg_count + 1
    local out = tmpfile("bg" .. bg_count .. ".out")
    local pid = helpers.start_process(NO_PRELOAD .. cmd, out)
    return { pid = pid, out = out }
end

local function finish(job, seconds)
    local done = wait_for(function() return not helpers.process_alive(job.pid) end,
                          seconds or 10)
    if not done then helpers.stop_process(job.pid) end
    assert(done, "a client did not finish in time: " .. helpers.slurp(job.out))
    return helpers.slurp(job.out)
end

-- pyenv's python3 shim takes half a second to start: the system one first.
local PYTHON = select(2, sh("test -x /usr/bin/python3")) == 0 and "/usr/bin/python3" or "python3"
local PROBE = PYTHON .. " spec/http_probe.py"

-- A raw request through spec/http_probe.py: status, closed, elapsed, text.
local function parse_probe(out)
    local status, closed, elapsed = out:match("^status=(%S+) closed=(%S+) elapsed=(%S+)")
    assert(status, "probe output: " .. out)
    return status, closed == "yes", tonumber(elapsed), out
end

local function curl_cmd(url, extra)
    return ("curl -sS -m 10 -D %s %s '%s'"):format("-", extra or "", url)
end

teardown(function()
    if tmp:match("^/tmp/cachert%-metrics%-") then sh("rm -rf " .. tmp) end
end)

describe("cache.metrics", function()
    it("gives each family one # HELP and one # TYPE line, counters named *_total", function()
        local c = cache.new { namespace = "fam:" }
        c:set("a", 1)
        local text = cache.metrics()
        local samples, types, helps = parse(text)
        assert.are.equal("counter", types.cachert_hits_total)
        assert.are.equal("gauge", types.cachert_keys)
        assert.are.equal("gauge", types.cachert_hit_ratio)
        assert.are.equal("gauge", types.cachert_backend_info)
        for name, kind in pairs(types) do
            assert(helps[name], "no # HELP for " .. name)
            assert.are.equal(kind == "counter", name:match("_total$") ~= nil, name)
            assert(name:match("^cachert_[a-z_]+$"), name)
        end
        local l = labels("fam:", manager_label(text, "fam:"))
        assert.are.equal(1, samples.cachert_sets_total[l])
        assert.are.equal(0, samples.cachert_using_redis[l])
        assert.are.equal(1, samples.cachert_backend_info[l .. ',backend="memory"'])
    end)

    it("passes promtool check metrics", function()
        local c = cache.new { namespace = "lint:", near = true }
        c:set("a", { 1, 2 })
        c:get("a")
        c:get("b")
        local out, status = promtool(cache.metrics())
        assert.are.equal("", out)
        assert.are.equal(0, status)
    end)

    it("escapes backslash, double quote and newline in the namespace label", function()
        local ns = 'odd"ns\\x\ny:'
        local c = cache.new { namespace = ns }
        c:set("k", 1)
        local text = cache.metrics()
        assert.truthy(text:find('namespace="odd\\"ns\\\\x\\ny:"', 1, true))
        local samples = parse(text)
        local l = labels(ns, manager_label(text, ns))
        assert.are.equal(1, samples.cachert_sets_total[l])
        assert.are.equal("", (promtool(text)))
    end)

    it("labels the default manager manager=\"default\", its empty namespace \"\"", function()
        cache.set("metrics:default", 1)
        local samples = parse(cache.metrics())
        assert.truthy(samples.cachert_sets_total['namespace="",manager="default"'] >= 1)
    end)

    it("counts gets and sets: the counters increase", function()
        local c = cache.new { namespace = "count:" }
        local function value(name)
            local text = cache.metrics()
            return parse(text)[name][labels("count:", manager_label(text, "count:"))]
        end
        assert.are.equal(0, value("cachert_hits_total"))
        c:set("a", 1)
        c:get("a")
        c:get("a")
        c:get("missing")
        assert.are.equal(1, value("cachert_sets_total"))
        assert.are.equal(2, value("cachert_hits_total"))
        assert.are.equal(1, value("cachert_misses_total"))
        assert.are.equal(1, value("cachert_keys"))
        assert.are.equal(2 / 3, value("cachert_hit_ratio"))
        c:delete("a")
        assert.are.equal(1, value("cachert_deletes_total"))
    end)

    it("keeps two managers of one namespace apart by the manager label", function()
        local a = cache.new { namespace = "twin:" }
        local b = cache.new { namespace = "twin:" }
        a:set("x", 1)
        b:set("x", 1)
        b:set("y", 1)
        local samples = parse(cache.metrics())     -- raises on a duplicate series
        local values = {}      -- (a repeated run may still see earlier twins)
        for l, v in pairs(samples.cachert_sets_total) do
            if l:match('^namespace="twin:"') then values[v] = true end
        end
        assert.is_true(values[1])
        assert.is_true(values[2])
    end)

    it("lists managers in creation order, families in a fixed order", function()
        local first = cache.new { namespace = "order:" }
        local second = cache.new { namespace = "order:" }
        first:set("a", 1)
        second:set("a", 1)
        local text = cache.metrics()
        local seen = {}
        for m in text:gmatch('cachert_sets_total{namespace="order:",manager="(%d+)"}') do
            seen[#seen + 1] = tonumber(m)
        end
        assert.are.equal(2, #seen)
        assert.truthy(seen[1] < seen[2])
        local families = {}
        for name in text:gmatch("# TYPE (%S+)") do families[#families + 1] = name end
        assert.are.equal("cachert_hits_total", families[1])
        assert.are.equal(text, cache.metrics())    -- nothing changed: the same text
    end)

    it("leaves out a field a manager's stats() lacks, the family's HELP once", function()
        local with = cache.new { namespace = "cl:" }
        local without = cache.new { namespace = "nocl:" }
        local stats = cache.Manager.stats
        with.stats = function(self)   -- as on a Redis Cluster
            local s = stats(self)
            s.cluster = { nodes = 3, nodes_up = 2, slots_on_memory = 5461 }
            return s
        end
        without.stats = function(self)
            local s = stats(self)
            s.near_hits = nil
            return s
        end
        local text = cache.metrics()
        local samples = parse(text)
        local lw = labels("cl:", manager_label(text, "cl:"))
        local lo = labels("nocl:", manager_label(text, "nocl:"))
        assert.are.equal(3, samples.cachert_cluster_nodes[lw])
        assert.are.equal(2, samples.cachert_cluster_nodes_up[lw])
        assert.are.equal(5461, samples.cachert_cluster_slots_on_memory[lw])
        assert.is_nil(samples.cachert_cluster_nodes[lo])
        assert.is_nil(samples.cachert_near_hits_total[lo])
        assert.are.equal(0, samples.cachert_near_hits_total[lw])
        local _, count = text:gsub("# HELP cachert_cluster_nodes ", "")
        assert.are.equal(1, count)
        assert.are.equal("", (promtool(text)))
    end)

    it("exports every stats() field, or says why not", function()
        local families, skipped = metrics.families()
        local exported = {}
        for _, f in ipairs(families) do exported[f.field:match("^[%w_]+")] = true end
        local s = cache.new { near = true }:stats()
        for k in pairs(s) do
            assert(exported[k] or skipped[k], "stats field " .. k .. " is not in cache.metrics")
        end
    end)

    it("writes integers exactly and ratios in full", function()
        local c = cache.new { namespace = "num:", max_memory = 2 ^ 40 }
        c:set("a", 1)
        c:get("a")
        c:get("b")
        c:get("c")
        local text = cache.metrics()
        local l = labels("num:", manager_label(text, "num:"))
        assert.truthy(text:find("cachert_max_memory_bytes{" .. l .. "} 1099511627776\n", 1, true))
        assert.truthy(text:find("cachert_hit_ratio{" .. l .. "} 0.333333333333333", 1, true))
    end)

    it("drops a manager once it is garbage", function()
        do
            local gone = cache.new { namespace = "gone:" }
            gone:set("a", 1)
        end
        assert.truthy(cache.metrics():find('namespace="gone:"', 1, true))
        collectgarbage()
        collectgarbage()
        assert.falsy(cache.metrics():find('namespace="gone:"', 1, true))
    end)
end)

describe("cachert.serve_metrics", function()
    it("rejects malformed options, naming them", function()
        assert.has_error(function() cachert.serve_metrics() end,
            'options must be a table { host =, port = } or a "HOST:PORT" string, got nil')
        assert.has_error(function() cachert.serve_metrics { port = 70000 } end,
            "port must be an integer from 0 to 65535 (0: any free port), got 70000")
        assert.has_error(function() cachert.serve_metrics { port = 0, bind = "x" } end,
            "unknown metrics server option 'bind'")
        assert.has_error(function() cachert.serve_metrics("localhost") end,
            "metrics address must be HOST:PORT (e.g. 127.0.0.1:9145 or [::1]:9145), "
            .. "got 'localhost'")
        assert.has_error(function() cachert.serve_metrics { port = 0, timeout = 0 } end,
            "timeout must be a number of seconds > 0 (at most 86400), got 0")
    end)

    it("returns nil and a message for a host that is not an address", function()
        local s, err = cachert.serve_metrics { host = "localhost", port = 0 }
        assert.is_nil(s)
        assert.are.equal("cannot listen on localhost:0: the host must be a numeric IPv4 or "
                         .. "IPv6 address", err)
    end)

    it("returns nil and a message naming the address when it is taken", function()
        local s = assert(cachert.serve_metrics { port = 0 })
        local again, err = cachert.serve_metrics { host = "127.0.0.1", port = s.port }
        s:close()
        assert.is_nil(again)
        assert.are.equal(("cannot listen on 127.0.0.1:%d: address already in use")
                         :format(s.port), err)
    end)

    it("serves GET /metrics on an ephemeral port until closed", function()
        in_task(function()
            local c = cache.new { namespace = "serve:" }
            c:set("k", "v")
            local s = assert(cachert.serve_metrics { port = 0 })
            assert.are.equal("127.0.0.1", s.host)
            assert.truthy(s.port > 0)
            assert.are.equal(("http://127.0.0.1:%d/metrics"):format(s.port), s.url)
            local out = finish(background(curl_cmd(s.url)))
            assert.truthy(out:find("^HTTP/1.1 200 OK\r\n"))
            assert.truthy(out:find("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n",
                                   1, true))
            assert.truthy(out:find("\r\nConnection: close\r\n", 1, true))
            local body = out:match("\r\n\r\n(.*)$")
            assert.are.equal(tonumber(out:match("Content%-Length: (%d+)")), #body)
            assert.truthy(body:find('cachert_sets_total{namespace="serve:"', 1, true))
            -- a client half-way through its request when the server closes
            local half = background(("%s 127.0.0.1 %d %s 5"):format(
                PROBE, s.port, hex("GET /metrics HTTP/1.1\r\n")))
            assert(wait_for(function()
                return sh("cat /proc/net/tcp"):find(("0100007F:%04X 0100007F:%%x+ 01")
                                                   :format(s.port)) ~= nil
            end, 5), "the client did not connect")
            s:close()
            s:close()                               -- idempotent
            local status, closed, elapsed = parse_probe(finish(half))
            assert.are.equal("none", status)
            assert.is_true(closed)
            assert.truthy(elapsed < 4)
            assert.is_true(s.closed)
            out = finish(background(curl_cmd(s.url)))
            assert.truthy(out:find("Couldn't connect", 1, true) or out:find("refused", 1, true),
                          out)
        end)
    end)

    it("drops a client that never finishes its request after the timeout", function()
        in_task(function()
            local s = assert(cachert.serve_metrics { port = 0, timeout = 0.3 })
            local job = background(("%s 127.0.0.1 %d %s 5"):format(
                PROBE, s.port, hex("GET /metrics HTTP/1.1\r\nHost: x\r\n")))
            local status, closed, elapsed = parse_probe(finish(job))
            s:close()
            assert.are.equal("408", status)
            assert.is_true(closed)
            assert.truthy(elapsed >= 0.25 and elapsed < 3, elapsed)
        end)
    end)

    it("does not keep the loop running: run() returns while it listens", function()
        if cachert.current() then
            -- under the executable the spec is the main task: the process
            -- case is in `cachert --metrics` below
            local s = assert(cachert.serve_metrics { port = 0 })
            s:close()
            return
        end
        local s
        local started = cachert.now()
        cachert.run(function()
            s = assert(cachert.serve_metrics { port = 0 })
            cachert.sleep(0.05)
        end)
        assert.truthy(cachert.now() - started < 1)
        s:close()
    end)

    it("keeps a task ticking every 10 ms on time while 300 managers are scraped", function()
        in_task(function()
            local managers = {}
            for i = 1, 300 do
                managers[i] = cache.new { namespace = ("tick%03d:"):format(i) }
                managers[i]:set("k", i)
            end
            local started = cachert.now()
            local rendered = #cache.metrics()
            local render_s = cachert.now() - started
            local s = assert(cachert.serve_metrics { port = 0 })
            local running, gaps = true, {}
            local ticker = cachert.spawn(function()
                local last = cachert.now()
                while running do
                    cachert.sleep(0.01)
                    local now = cachert.now()
                    gaps[#gaps + 1] = { from = last, gap = now - last }
                    last = now
                end
            end)
            -- two clients, 8 scrapes each, one after the other
            local jobs = {}
            for i = 1, 2 do
                jobs[i] = background(("sh -c 'for i in 1 2 3 4 5 6 7 8; do "
                    .. "curl -sS -m 10 %s | wc -c; done'"):format(s.url))
            end
            local launched = cachert.now()   -- starting them blocked this process
            for i = 1, 2 do
                local sizes = 0
                for size in finish(jobs[i]):gmatch("%d+") do
                    assert.truthy(tonumber(size) >= rendered, size .. " bytes")
                    sizes = sizes + 1
                end
                assert.are.equal(8, sizes)
            end
            running = false
            ticker:join()
            s:close()
            local worst, counted = 0, 0
            for _, g in ipairs(gaps) do
                if g.from >= launched then
                    worst, counted = math.max(worst, g.gap), counted + 1
                end
            end
            -- Each scrape costs one render on the loop: the ticker waits at
            -- most about that long, plus scheduling noise (2 shared cores).
            assert.truthy(counted > 0)
            assert.truthy(worst < 0.01 + render_s * 3 + 0.1,
                          ("worst tick gap %.3f s, a render %.3f s"):format(worst, render_s))
            assert.are.equal(300, #managers)    -- alive (in the text) until here
        end)
    end)
end)

-- A cachert process running SCRIPT with --metrics: cache work for a few
-- seconds (arg: seconds, redis port or "memory").
local SCRIPT = [[
local cache, cachert = require "cache", require "cachert"
local seconds, port = tonumber(arg[1]), tonumber(arg[2])
local c = cache.new { namespace = "app:", host = "127.0.0.1", port = port or 6379 }
if port then assert(c:connect(), "redis") end
local other = cache.new { namespace = "app:" }      -- same namespace, another manager
local deadline = cachert.now() + seconds
local i = 0
while cachert.now() < deadline do
    i = i + 1
    c:set("k" .. i % 50, i)
    c:get("k" .. i % 100)
    other:set("x", i)
    cachert.sleep(0.005)
end
print("done", i)
]]

describe("cachert --metrics HOST:PORT", function()
    local script = tmpfile("work.lua")
    local procs = {}

    setup(function() write(script, SCRIPT) end)
    after_each(function()
        for _, p in ipairs(procs) do helpers.stop_process(p.pid) end
        procs = {}
    end)

    local function listening(host, port)
        return helpers.slurp("/proc/net/tcp"):find(
            ("%s:%04X 00000000:0000 0A"):format(host, port), 1, true) ~= nil
    end

    -- Starts the script with --metrics 127.0.0.1:<a free port> for
    -- `seconds`; returns { pid, port, url, out, status_file } once it
    -- answers a scrape. With `want_status`, through a shell that writes the
    -- exit status to status_file (pid is then the shell's); otherwise pid
    -- is cachert's own (after_each stops it: SIGTERM ends it gracefully).
    local function start(seconds, redis_port, want_status)
        for _ = 1, 10 do
            local port = math.random(20000, 60000)
            if not listening("0100007F", port) then
                local p = { port = port, url = ("http://127.0.0.1:%d/metrics"):format(port),
                            out = tmpfile("proc" .. port .. ".out"),
                            status_file = tmpfile("proc" .. port .. ".status") }
                local cmd = ("'%s' --metrics 127.0.0.1:%d '%s' %s %s"):format(
                    helpers.cachert_bin(), port, script, seconds, redis_port or "memory")
                if want_status then
                    cmd = ("sh -c \"%s; echo \\$? > '%s'\""):format(cmd, p.status_file)
                end
                p.pid = helpers.start_process(cmd, p.out)
                procs[#procs + 1] = p
                local up = helpers.poll(function()
                    local _, status = sh(NO_PRELOAD .. "curl -s -o /dev/null -m 2 " .. p.url)
                    return status == 0 or not helpers.process_alive(p.pid)
                end, 10)
                if up and helpers.process_alive(p.pid) then return p end
                if not helpers.slurp(p.out):find("address already in use", 1, true) then
                    error("cachert --metrics did not serve: " .. helpers.slurp(p.out))
                end
            end
        end
        error("no free port found")
    end

    local function scrape(url)
        local out, status = sh(NO_PRELOAD .. curl_cmd(url))
        assert.are.equal(0, status, out)
        local body = out:match("\r\n\r\n(.*)$")
        return body, out
    end

    local function hits(body)
        local samples = parse(body)
        local total = 0
        for l, v in pairs(samples.cachert_sets_total) do
            if l:match('^namespace="app:"') then total = total + v end
        end
        return total, samples
    end

    local function scrapes_move(p, backend)
        local first = scrape(p.url)
        sh("sleep 0.5")
        local second, raw = scrape(p.url)
        assert.truthy(raw:find("^HTTP/1.1 200 OK\r\n"))
        for _, body in ipairs { first, second } do
            local out, status = promtool(body)
            assert.are.equal("", out)
            assert.are.equal(0, status)
        end
        local before = hits(first)
        local after, samples = hits(second)
        assert.truthy(after > before, ("sets %d then %d"):format(before, after))
        local n = 0
        for l in pairs(samples.cachert_backend_info) do
            if l:match('^namespace="app:"') then
                n = n + 1
                if l:match('manager="1"') then
                    assert.truthy(l:find('backend="' .. backend .. '"', 1, true), l)
                end
            end
        end
        assert.are.equal(2, n)
    end

    it("serves scrapes that promtool accepts, the values moving (memory store)", function()
        local p = start(30)
        scrapes_move(p, "memory")
    end)

    it("serves scrapes that promtool accepts, the values moving (redis) #redis", function()
        local server = helpers.start_redis(nil, { standalone = true, tls = false })
        local ok, err = pcall(function()
            local p = start(30, server.port)
            scrapes_move(p, "redis")
            local samples = parse((scrape(p.url)))
            assert.are.equal(1, samples.cachert_using_redis['namespace="app:",manager="1"'])
        end)
        helpers.stop_redis(server)
        assert(ok, err)
    end)

    it("answers bad requests with their status, and closes", function()
        local p = start(30)
        local function probe(request)
            local out = sh(("%s%s 127.0.0.1 %d %s 5"):format(NO_PRELOAD, PROBE, p.port,
                                                                hex(request)))
            local status, closed, _, text = parse_probe(out)
            assert.is_true(closed, "connection left open after: " .. text)
            return status, text
        end
        assert.are.equal("404", (probe("GET /other HTTP/1.1\r\nHost: x\r\n\r\n")))
        local status, text = probe("POST /metrics HTTP/1.1\r\nHost: x\r\n"
                                   .. "Content-Length: 5000\r\n\r\n" .. ("x"):rep(5000))
        assert.are.equal("405", status)
        assert.truthy(text:find("\r\nAllow: GET, HEAD\r\n", 1, true))
        assert.are.equal("400", (probe("GARBAGE\r\n\r\n")))
        assert.are.equal("400", (probe("GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n")))
        assert.are.equal("400", (probe("GET /metrics HTTP/1.1\r\n\r\n")))     -- no Host
        assert.are.equal("400", (probe("GET /metrics HTTP/1.1\r\nHost: a\0b\r\n\r\n")))
        assert.are.equal("505", (probe("GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n")))
        assert.are.equal("431", (probe("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: "
                                       .. ("a"):rep(9000) .. "\r\n\r\n")))
        -- and the good ones: HTTP/1.0 without Host, HEAD without a body
        status, text = probe("GET /metrics?x=1 HTTP/1.0\r\n\r\n")
        assert.are.equal("200", status)
        assert.truthy(text:find("\nHTTP/1.0 200 OK\r\n"))
        status, text = probe("HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert.are.equal("200", status)
        assert.truthy(text:find("Content%-Length: [1-9]"))
        assert.are.equal("", text:match("\r\n\r\n(.*)$"))
        -- a HEAD gets no body with an error either
        status, text = probe("HEAD /other HTTP/1.1\r\nHost: x\r\n\r\n")
        assert.are.equal("404", status)
        assert.truthy(text:find("Content%-Length: [1-9]"))
        assert.are.equal("", text:match("\r\n\r\n(.*)$"))
        status, text = probe("HEAD /metrics HTTP/2.0\r\nHost: x\r\n\r\n")
        assert.are.equal("505", status)
        assert.are.equal("", text:match("\r\n\r\n(.*)$"))
        -- curl's view of the same
        local out = sh(NO_PRELOAD .. "curl -s -o /dev/null -w '%{http_code}' -X POST " .. p.url)
        assert.are.equal("405", out)
        out = sh(NO_PRELOAD .. "curl -s -o /dev/null -w '%{http_code}' "
                 .. p.url:gsub("/metrics$", "/"))
        assert.are.equal("404", out)
    end)

    it("binds only the address it was given", function()
        local p = start(30)
        local _, status = sh(NO_PRELOAD .. "curl -s -o /dev/null -m 2 " .. p.url)
        assert.are.equal(0, status)
        -- 127.0.0.2 is loopback too on Linux: nothing listens there
        local out
        out, status = sh(("%scurl -s -o /dev/null -m 2 http://127.0.0.2:%d/metrics")
                         :format(NO_PRELOAD, p.port))
        assert.are.equal(7, status, out)                    -- could not connect
        assert.truthy(listening("0100007F", p.port))
        assert.falsy(helpers.slurp("/proc/net/tcp"):find(
            ("00000000:%04X 00000000:0000 0A"):format(p.port), 1, true))
        assert.falsy(helpers.slurp("/proc/net/tcp6"):find(("%04X"):format(p.port)
            .. " 00000000000000000000000000000000:0000 0A", 1, true))
    end)

    it("serves an IPv6 address given as [::1]:PORT", function()
        if not helpers.slurp("/proc/net/if_inet6"):find("00000000000000000000000000000001", 1,
                                                        true) then
            pending("no IPv6 loopback on this machine")
            return
        end
        local port = math.random(20000, 60000)
        local out_file = tmpfile("v6.out")
        local pid = helpers.start_process(("'%s' --metrics '[::1]:%d' '%s' 30 memory")
            :format(helpers.cachert_bin(), port, script), out_file)
        procs[#procs + 1] = { pid = pid }
        local url = ("http://[::1]:%d/metrics"):format(port)
        local ok = helpers.poll(function()
            local _, status = sh(NO_PRELOAD .. "curl -g -s -o /dev/null -m 2 " .. url)
            return status == 0
        end, 10)
        assert(ok, "no answer on " .. url .. ": " .. helpers.slurp(out_file))
        local _, status = sh(("%scurl -s -o /dev/null -m 2 http://127.0.0.1:%d/metrics")
                             :format(NO_PRELOAD, port))
        assert.are.equal(7, status)                         -- not dual-stack
    end)

    it("exits by itself when the script ends, a client still connected", function()
        local p = start(4, nil, true)
        -- a client that sends half a request and waits
        local job = helpers.start_process(("%s%s 127.0.0.1 %d %s 20"):format(
            NO_PRELOAD, PROBE, p.port, hex("GET /metrics HTTP/1.1\r\n")), tmpfile("half.out"))
        procs[#procs + 1] = { pid = job }
        local exited = helpers.poll(function() return not helpers.process_alive(p.pid) end, 12)
        assert.is_true(exited)
        assert.are.equal("0", (helpers.slurp(p.status_file):gsub("%s+", "")))
        assert.truthy(helpers.slurp(p.out):find("^done\t%d+\n$"), helpers.slurp(p.out))
        -- the client saw the connection close with the process
        assert(helpers.poll(function() return not helpers.process_alive(job) end, 5))
        local status, closed = parse_probe(helpers.slurp(tmpfile("half.out")))
        assert.is_true(closed)
        assert.are.equal("none", status)
    end)

    it("refuses a malformed address, exit status 1", function()
        for _, bad in ipairs { "9145", "127.0.0.1", "127.0.0.1:", "127.0.0.1:99999",
                               "[::1]", "::1:9145", "host name:80" } do
            local out, status = sh(("'%s' --metrics '%s' -e 'print(1)'")
                                   :format(helpers.cachert_bin(), bad))
            assert.are.equal(1, status, bad)
            assert.truthy(out:find("^cachert: %-%-metrics "), out)
            assert.falsy(out:find("\n1\n", 1, true))        -- nothing ran
        end
        local out, status = sh(("'%s' --metrics"):format(helpers.cachert_bin()))
        assert.are.equal(1, status)
        assert.truthy(out:find("'--metrics' needs an argument", 1, true))
    end)

    it("refuses an address in use, naming it, exit status 1", function()
        local p = start(30)
        local out, status = sh(("'%s' --metrics 127.0.0.1:%d -e 'print(1)'")
                               :format(helpers.cachert_bin(), p.port))
        assert.are.equal(1, status)
        assert.are.equal(("cachert: --metrics 127.0.0.1:%d: cannot listen on 127.0.0.1:%d: "
                          .. "address already in use\n"):format(p.port, p.port), out)
    end)

    it("is listed in --help, and takes --metrics=HOST:PORT too", function()
        local out = sh(("'%s' --help"):format(helpers.cachert_bin()))
        assert.truthy(out:find("--metrics HOST:PORT", 1, true))
        local status
        out, status = sh(("'%s' --metrics=127.0.0.1:0 -e \"print(require('cache')"
                          .. ".metrics() ~= nil)\""):format(helpers.cachert_bin()))
        assert.are.equal(0, status, out)
        assert.are.equal("true\n", out)
    end)
end)
