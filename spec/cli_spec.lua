-- cli_spec.lua -- the inspection commands of the cachert executable
-- (`cachert get/keys/clear/stats/help`, lua/cachert/cli.lua), run as
-- subprocesses of the built executable against a real redis-server: the
-- values a cachert process wrote, printed as Lua literals; keys with
-- patterns, escapes and --limit; a clear of 20,000 keys that leaves the
-- others, with its progress line on a terminal (script(1) gives it one)
-- and not otherwise; stats; the exit codes (1 not found, 2 usage, 3 Redis
-- unusable: a closed port, a wrong password); configuration by the
-- environment, .env and --url / --namespace; a Redis Cluster.

local helpers = require "helpers"
local cluster = require "cluster_helpers"

local sh = helpers.sh
local BIN = helpers.cachert_bin()

-- A scratch directory per run: scripts, .env files, captured output.
local dir

local function write_file(path, text)
    local f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
end

local function read_file(path)
    local f = io.open(path, "rb")
    if not f then return "" end
    local s = f:read("*a")
    f:close()
    return s
end

local function shell_quote(s)
    return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- Variables a developer's shell may hold that would change the commands.
local CLEAN_ENV = "env -u REDIS_URL -u REDIS_HOST -u REDIS_PORT -u REDIS_PASSWORD "
    .. "-u REDIS_USERNAME -u REDIS_DB -u CACHE_NAMESPACE -u REDIS_SENTINELS "
    .. "-u REDIS_SENTINEL_MASTER -u REDIS_CLUSTER -u REDIS_CLUSTER_NODES -u REDIS_TLS "
    .. "-u CACHE_NEAR_MAX_ITEMS "

-- Runs `cachert args...` in `dir` with the environment assignments `env`
-- (a string, "" for none); returns exit status, stdout, stderr.
local function cachert(env, ...)
    local args = {}
    for i, a in ipairs { ... } do args[i] = shell_quote(a) end
    local cmd = ("cd %s && %s %s %s %s >%s/out 2>%s/err </dev/null"):format(
        dir, CLEAN_ENV, env, BIN, table.concat(args, " "), dir, dir)
    local _, status = sh(cmd)
    return status, read_file(dir .. "/out"), read_file(dir .. "/err")
end

-- Runs a Lua script with the cachert executable (the writer of values).
local function run_script(env, source)
    write_file(dir .. "/script.lua", source)
    local out, status = sh(("cd %s && %s %s %s script.lua"):format(dir, CLEAN_ENV, env, BIN))
    assert(status == 0, out)
    return out
end

local function lines(text)
    local t = {}
    for l in text:gmatch("([^\n]*)\n") do t[#t + 1] = l end
    return t
end

local function sorted(t)
    table.sort(t)
    return t
end

setup(function()
    dir = sh("mktemp -d /tmp/cachert-cli-XXXXXX"):gsub("%s+$", "")
end)

teardown(function()
    if dir and dir:match("^/tmp/cachert%-cli%-") then sh("rm -rf " .. dir) end
end)

describe("cachert's command line", function()
    it("lists the commands in --help", function()
        local status, out = cachert("", "--help")
        assert.are.equal(0, status)
        for _, s in ipairs { "get KEY", "keys PATTERN", "clear PATTERN", "stats",
                             "cachert -- get" } do
            assert.is_truthy(out:find(s, 1, true), s)
        end
    end)

    it("prints a command's help with `help COMMAND` and `COMMAND --help`", function()
        local status, out = cachert("", "help", "keys")
        assert.are.equal(0, status)
        assert.matches("usage: cachert keys", out)
        assert.matches("%-%-limit N", out)
        status, out = cachert("", "get", "--help")
        assert.are.equal(0, status)
        assert.matches("usage: cachert get", out)
        assert.matches("%-%-url URL", out)
        status, out = cachert("", "help")
        assert.are.equal(0, status)
        assert.matches("Exit status: 0 success, 1 not found", out)
    end)

    describe("usage errors exit 2 with the usage on stderr", function()
        for _, case in ipairs {
            { { "get" }, "get takes one KEY, got 0" },
            { { "get", "a", "b" }, "get takes one KEY, got 2" },
            { { "clear" }, "clear takes one PATTERN, got 0" },
            { { "clear", "" }, "PATTERN must not be empty" },
            { { "keys", "--limit", "x", "*" }, "--limit must be a whole number" },
            { { "keys", "--limit" }, "option '--limit' needs a value" },
            { { "get", "--bogus", "k" }, "unknown option '--bogus'" },
            { { "stats", "extra" }, "stats takes no argument, got 1" },
            { { "help", "nope" }, "no command named 'nope'" },
        } do
            it(table.concat(case[1], " "), function()
                local status, out, err = cachert("", unpack(case[1]))
                assert.are.equal(2, status)
                assert.are.equal("", out)
                assert.is_truthy(err:find(case[2], 1, true), err)
                assert.matches("usage: cachert", err)
            end)
        end
    end)

    it("runs a script named like a command given as ./get or after --", function()
        write_file(dir .. "/get", "print('the script ran', ...)\n")
        local status, out = cachert("", "./get", "x")
        assert.are.equal(0, status)
        assert.are.equal("the script ran\tx\n", out)
        status, out = cachert("", "--", "get", "y")
        assert.are.equal(0, status)
        assert.are.equal("the script ran\ty\n", out)
    end)

    it("exits 3 naming the address when nothing listens there", function()
        -- a port that was just free: a server started and stopped
        local s = helpers.start_redis(nil, { standalone = true })
        local port = s.port
        helpers.stop_redis(s)
        local addr = "127.0.0.1:" .. port
        for _, cmd in ipairs { { "get", "k" }, { "keys", "*" }, { "clear", "*" }, { "stats" } } do
            local args = { unpack(cmd) }
            table.insert(args, 2, "--url")
            table.insert(args, 3, "redis://" .. addr)
            local status, out, err = cachert("", unpack(args))
            assert.are.equal(3, status, cmd[1])
            assert.are.equal("", out)      -- never the empty memory store
            assert.is_truthy(err:find("cannot use Redis at " .. addr, 1, true), err)
            assert.matches("connection refused", err)
        end
    end)

    it("exits 2 for a malformed setting, naming it", function()
        local status, _, err = cachert("REDIS_PORT=seventy", "stats")
        assert.are.equal(2, status)
        assert.matches("REDIS_PORT", err)
    end)
end)

describe("cachert get/keys/clear/stats #redis", function()
    local server, url

    setup(function()
        server = helpers.start_redis(nil, { standalone = true })
        url = "redis://127.0.0.1:" .. server.port
    end)

    teardown(function()
        helpers.stop_redis(server)
    end)

    before_each(function()
        server.cli("FLUSHALL")
        os.remove(dir .. "/.env")
    end)

    local function env()
        return "REDIS_URL=" .. url
    end

    describe("get", function()
        before_each(function()
            run_script(env(), [[
                local c = require("cache").new { namespace = "app:" }
                assert(c:connect())
                c:set("str", "line\nquote\" tab\t\0\255 é €", 0)
                c:set("tbl", { b = { 1, 2, 3 }, a = "x", [10] = true, ["two words"] = 1.5,
                               nested = { deep = { k = "v" }, list = { { 1 }, {} } } }, 0)
                c:set("int", 2^53 + 2, 0)
                c:set("neg", -42, 0)
                c:set("float", 0.1, 0)
                c:set("third", 1 / 3, 0)
                c:set("negzero", -0.0, 0)
                c:set("inf", -math.huge, 0)
                c:set("nilv", nil, 0)
                c:set("yes", true, 0)
                c:set("no", false, 0)
                c:set("ttl", "soon", 60)
                local f = c:cached(0, "fn")(function(x) return x, nil, "z" end)
                f(7)
            ]])
        end)

        local cases = {
            { "str", [["line\nquote\" tab\t\x00\xFF é €"]] },
            { "tbl", table.concat({
                "{",
                "  [10] = true,",
                '  a = "x",',
                "  b = { 1, 2, 3 },",
                "  nested = {",
                "    deep = { k = \"v\" },",
                "    list = {",
                "      { 1 },",
                "      {},",
                "    },",
                "  },",
                '  ["two words"] = 1.5,',
                "}" }, "\n") },
            { "int", "9007199254740994" },
            { "neg", "-42" },
            { "float", "0.1" },
            { "third", "0.3333333333333333" },
            { "negzero", "-0.0" },
            { "inf", "-math.huge" },
            { "nilv", "nil" },
            { "yes", "true" },
            { "no", "false" },
        }
        for _, case in ipairs(cases) do
            it("prints " .. case[1] .. " as a Lua literal", function()
                local status, out, err = cachert(env(), "get", "--namespace", "app:", case[1])
                assert.are.equal(0, status, err)
                assert.are.equal(case[2] .. "\n-- ttl: no expiry\n", out)
                assert.are.equal("", err)
            end)
        end

        it("prints text that reads back as the same value", function()
            local _, out = cachert(env(), "get", "--namespace", "app:", "tbl")
            local value = assert(loadstring("return " .. out))()
            assert.are.same({ b = { 1, 2, 3 }, a = "x", [10] = true, ["two words"] = 1.5,
                              nested = { deep = { k = "v" }, list = { { 1 }, {} } } }, value)
            _, out = cachert(env(), "get", "--namespace", "app:", "str")
            assert.are.equal("line\nquote\" tab\t\0\255 é €", loadstring("return " .. out)())
        end)

        it("shows the time to live", function()
            local status, out = cachert(env(), "get", "--namespace", "app:", "ttl")
            assert.are.equal(0, status)
            local seconds = tonumber(out:match('^"soon"\n%-%- ttl: ([%d.]+) s\n$'))
            assert.is_truthy(seconds, out)
            assert.is_true(seconds > 50 and seconds <= 60, out)
        end)

        it("prints a cached function's several results", function()
            local status, out = cachert(env(), "get", "--namespace", "app:", "fn:7")
            assert.are.equal(0, status)
            assert.are.equal("-- 3 values (a cached function's results)\n7,\nnil,\n\"z\"\n"
                             .. "-- ttl: no expiry\n", out)
        end)

        it("exits 1 for a missing key, with a message on stderr", function()
            local status, out, err = cachert(env(), "get", "--namespace", "app:", "nope")
            assert.are.equal(1, status)
            assert.are.equal("", out)
            assert.are.equal("cachert: nope: not found\n", err)
        end)

        it("applies CACHE_NAMESPACE, and --namespace over it", function()
            local status, out = cachert(env() .. " CACHE_NAMESPACE=app:", "get", "neg")
            assert.are.equal(0, status)
            assert.matches("^%-42\n", out)
            status = cachert(env() .. " CACHE_NAMESPACE=other:", "get", "neg")
            assert.are.equal(1, status)
            status, out = cachert(env() .. " CACHE_NAMESPACE=other:", "get",
                                  "--namespace", "app:", "neg")
            assert.are.equal(0, status)
            assert.matches("^%-42\n", out)
            status = cachert(env(), "get", "neg")                 -- no namespace
            assert.are.equal(1, status)
            status, out = cachert(env(), "get", "app:neg")        -- the whole key
            assert.are.equal(0, status)
            assert.matches("^%-42\n", out)
        end)

        it("reads REDIS_URL from .env, and --url beats the environment", function()
            write_file(dir .. "/.env", "REDIS_URL=" .. url .. "\nCACHE_NAMESPACE=app:\n")
            local status, out = cachert("", "get", "neg")
            assert.are.equal(0, status)
            assert.matches("^%-42\n", out)
            status, out = cachert("REDIS_URL=redis://127.0.0.1:1", "get", "--url", url,
                                  "--namespace", "app:", "neg")
            assert.are.equal(0, status)
            assert.matches("^%-42\n", out)
        end)

        it("shows a value another client wrote as its escaped bytes", function()
            sh(("printf 'ab\\377\\000c\\n' | %s redis-cli -p %d -x SET app:raw")
               :format(helpers.NO_PRELOAD, server.port))
            local status, out, err = cachert(env(), "get", "--namespace", "app:", "raw")
            assert.are.equal(0, status, err)
            assert.are.equal("-- not a cachert value (not MessagePack): its 6 bytes as they are\n"
                             .. '"ab\\xFF\\x00c\\n"\n-- ttl: no expiry\n', out)
        end)

        it("exits 3 for a wrong password, naming the address", function()
            local s = helpers.start_redis("--requirepass right", { password = "right" })
            local addr = "127.0.0.1:" .. s.port
            local status, out, err = cachert("", "get", "--url", "redis://:wrong@" .. addr, "k")
            helpers.stop_redis(s)
            assert.are.equal(3, status)
            assert.are.equal("", out)
            assert.is_truthy(err:find("cannot use Redis at " .. addr, 1, true), err)
            assert.matches("refused the login", err)
            assert.is_falsy(err:find("wrong", 1, true))             -- no password shown
        end)
    end)

    describe("keys", function()
        before_each(function()
            run_script(env(), [[
                local c = require("cache").new { namespace = "app:" }
                assert(c:connect())
                for _, k in ipairs { "k:1", "k:2", "k:3", "k:10", "other", "with space",
                                     "bin\1\255", '"quoted', "é" } do
                    c:set(k, 1)
                end
            ]])
            server.cli("SET outside 1")
        end)

        it("lists the matching keys of the namespace, one a line", function()
            local status, out, err = cachert(env(), "keys", "--namespace", "app:", "k:*")
            assert.are.equal(0, status)
            assert.are.same({ "k:1", "k:10", "k:2", "k:3" }, sorted(lines(out)))
            assert.are.equal("", err)
        end)

        it("follows Redis glob semantics", function()
            local _, out = cachert(env(), "keys", "--namespace", "app:", "k:[12]")
            assert.are.same({ "k:1", "k:2" }, sorted(lines(out)))
            _, out = cachert(env(), "keys", "--namespace", "app:", "k:?0")
            assert.are.same({ "k:10" }, lines(out))
        end)

        it("quotes keys that would not print as themselves", function()
            local _, out = cachert(env(), "keys", "--namespace", "app:", "*")
            assert.are.same(sorted { "k:1", "k:2", "k:3", "k:10", "other", "with space",
                                     '"bin\\x01\\xFF"', '"\\"quoted"', "é" },
                            sorted(lines(out)))
        end)

        it("stops at --limit and says so on stderr", function()
            local status, out, err = cachert(env(), "keys", "--namespace", "app:",
                                             "--limit", "2", "*")
            assert.are.equal(0, status)
            assert.are.equal(2, #lines(out))
            assert.matches("stopped at %-%-limit 2 keys", err)
            status, out, err = cachert(env(), "keys", "--namespace=app:", "--limit=0", "*")
            assert.are.equal(0, status)
            assert.are.equal(9, #lines(out))
            assert.are.equal("", err)
            status, out, err = cachert(env(), "keys", "--namespace", "app:", "--limit", "9", "*")
            assert.are.equal(0, status)
            assert.are.equal(9, #lines(out))
            assert.are.equal("", err)
        end)

        it("lists every key of the database without a namespace", function()
            local _, out = cachert(env(), "keys", "out*")
            assert.are.same({ "outside" }, lines(out))
        end)

        it("takes a pattern that starts with - after --", function()
            run_script(env(), [[
                local c = require("cache").new()
                assert(c:connect())
                c:set("-dash", 1)
            ]])
            local status, out = cachert(env(), "keys", "--", "-d*")
            assert.are.equal(0, status)
            assert.are.same({ "-dash" }, lines(out))
        end)
    end)

    describe("clear", function()
        local function seed(n)
            run_script(env(), ([[
                local c = require("cache").new { namespace = "app:" }
                assert(c:connect())
                local map = {}
                for i = 1, %d do map["bulk:" .. i] = i end
                for i = 1, 100 do map["keep:" .. i] = i end
                assert(c:mset(map, 0))
            ]]):format(n))
            server.cli("SET bulk:outside 1")          -- outside the namespace
        end

        local function dbsize()
            return tonumber((server.cli("DBSIZE"):match("%d+")))
        end

        it("deletes exactly the matching keys and prints the count", function()
            seed(20000)
            assert.are.equal(20101, dbsize())
            local status, out, err = cachert(env(), "clear", "--namespace", "app:", "bulk:*")
            assert.are.equal(0, status, err)
            assert.are.equal("deleted 20000 keys\n", out)
            assert.are.equal("", err)                -- not a terminal: no progress
            assert.are.equal(101, dbsize())
            assert.are.equal("1", (server.cli("EXISTS bulk:outside"):match("%d")))
            assert.are.equal("1", (server.cli("EXISTS app:keep:100"):match("%d")))
            status, out = cachert(env(), "clear", "--namespace", "app:", "bulk:*")
            assert.are.equal(0, status)
            assert.are.equal("deleted 0 keys\n", out)
        end)

        it("shows a progress line on a terminal", function()
            seed(20000)
            -- (a sanitizer runtime preloaded is for cachert, not for script)
            local preload = os.getenv("LD_PRELOAD")
            preload = preload and ("LD_PRELOAD=" .. shell_quote(preload)) or ""
            local cmd = ("cd %s && %s %s %s %s clear --namespace app: 'bulk:*'"):format(
                dir, CLEAN_ENV, preload, env(), BIN)
            -- script(1) runs it on a pseudo-terminal and copies what it shows
            local out, status = sh(("%s script -qfec %s /dev/null"):format(
                helpers.NO_PRELOAD, shell_quote(cmd)))
            assert.are.equal(0, status, out)
            assert.matches("\r\27%[Kclear bulk:%*: %d+ matched, %d+ deleted, %d+ keys/s", out)
            assert.matches("20000 matched, 20000 deleted", out)
            assert.matches("deleted 20000 keys\r?\n$", out)
            assert.are.equal(101, dbsize())
        end)
    end)

    describe("stats", function()
        before_each(function()
            run_script(env(), [[
                local c = require("cache").new { namespace = "app:" }
                assert(c:connect())
                for i = 1, 5 do c:set("s" .. i, i) end
                c:get("s1")
                c:get("missing")
            ]])
            server.cli("SET outside 1")
        end)

        local function fields(text)
            local t = {}
            for k, v in text:gmatch("([%w_.]+): ([^\n]*)\n") do t[k] = v end
            return t
        end

        it("prints the server's and the namespace's figures", function()
            local status, out, err = cachert(env(), "stats", "--namespace", "app:")
            assert.are.equal(0, status, err)
            local f = fields(out)
            assert.are.equal("127.0.0.1:" .. server.port, f.address)
            assert.are.equal("standalone", f.backend)
            assert.matches("^%d+%.%d+", f.redis_version)
            assert.are.equal("app:", f.namespace)
            assert.are.equal("5", f.keys)
            assert.is_true(tonumber(f.used_memory_bytes) > 0)
            assert.is_true(tonumber(f.keyspace_hits) >= 1)
            assert.is_true(tonumber(f.keyspace_misses) >= 1)
            assert.is_true(tonumber(f.connected_clients) >= 1)
            assert.are.equal("true", f["manager.using_redis"])
            assert.are.equal("redis", f["manager.backend"])
        end)

        it("counts the whole database without a namespace", function()
            local _, out = cachert(env(), "stats")
            assert.are.equal("6", fields(out).keys)
        end)

        it("prints one JSON object with --json", function()
            local status, out = cachert(env(), "stats", "--json", "--namespace", "app:")
            assert.are.equal(0, status)
            assert.matches('^{.*}\n$', out)
            assert.matches('"backend": "standalone"', out)
            assert.matches('"keys": 5,', out)
            assert.matches('"manager": {[^}]*"using_redis": true', out)
        end)
    end)
end)

describe("cachert keys/clear/stats on a Redis Cluster #redis", function()
    local topo, url

    setup(function()
        topo = cluster.start()
        url = ("redis+cluster://%s,%s"):format(topo.addrs[1], topo.addrs[2])
    end)

    teardown(function()
        cluster.stop(topo)
    end)

    it("lists and clears the keys of every primary", function()
        run_script("REDIS_URL=" .. url, [[
            local c = require("cache").new { namespace = "cl:" }
            assert(c:connect())
            local map = {}
            for i = 1, 3000 do map["c:" .. i] = i end
            for i = 1, 50 do map["d:" .. i] = i end
            assert(c:mset(map, 0))
        ]])
        local env = "REDIS_URL=" .. url .. " CACHE_NAMESPACE=cl:"
        local status, out = cachert(env, "keys", "--limit", "0", "c:*")
        assert.are.equal(0, status)
        local keys = lines(out)
        assert.are.equal(3000, #keys)
        local primaries = topo.primaries
        for _, port in ipairs(primaries) do     -- the keys really were spread
            assert.is_true(tonumber((cluster.cli(port, "DBSIZE"):match("%d+"))) > 0)
        end
        local err
        status, out, err = cachert(env, "clear", "c:*")
        assert.are.equal(0, status, err)
        assert.are.equal("deleted 3000 keys\n", out)
        status, out = cachert(env, "keys", "--limit", "0", "*")
        assert.are.equal(0, status)
        assert.are.equal(50, #lines(out))
        status, out = cachert(env, "stats")
        assert.are.equal(0, status)
        assert.matches("\nbackend: cluster\n", out)
        assert.matches("\nprimaries: " .. #primaries .. "\n", out)
        assert.matches("\nkeys: 50\n", out)
    end)

    -- Last: it kills a primary. Its slots stay without an owner (its replica
    -- may not fail over, the others keep serving theirs), so a manager
    -- serves those slots from the memory store: a command must say it
    -- cannot see them (exit 3), never "not found" from the empty store.
    it("fails (exit 3) while a primary's slots are served from memory", function()
        local victim = topo.primaries[1]
        local key
        for i = 1, 1000 do      -- a key the victim owns
            local k = "cl:victim:" .. i
            if cluster.slot_owners(victim)[cluster.slot_of(topo, k)] == victim then
                key = k
                break
            end
        end
        assert.truthy(key)
        local replica = cluster.replica_of(topo, victim)
        cluster.cli(replica.port, "CONFIG SET cluster-replica-no-failover yes")
        for _, node in ipairs(topo.nodes) do
            cluster.cli(node.port, "CONFIG SET cluster-require-full-coverage no")
        end
        cluster.cli(victim, "SET " .. key .. " x")
        helpers.stop_process(cluster.node_at(topo, victim).pid)
        local env = "REDIS_URL=" .. url .. " CACHE_NAMESPACE=cl:"
        local status, out, err = cachert(env, "get", key:sub(#"cl:" + 1))
        assert.are.equal(3, status, out .. err)
        -- "<n> slots ... have no primary up", or, when connect itself
        -- gave up on the Cluster, "cannot use Redis at ...": both name it
        assert.matches("127%.0%.0%.1:%d+", err)
        assert.is_nil(err:find("not found", 1, true))
        status, out, err = cachert(env, "keys", "*")
        assert.are.equal(3, status, out .. err)
    end)
end)
