-- tls_spec.lua -- TLS through the Lua API against real TLS-only
-- redis-servers (certificates from spec/tls_certs.sh, made per run): the
-- ways to turn it on (tls = true | table, rediss://, REDIS_TLS*), mutual
-- TLS, and every failure named in stats().last_error and the log: wrong
-- CA, host name mismatch, missing client certificate, a plaintext server
-- on a TLS connection and the reverse, verification turned off. The whole
-- API and failover suites also run over TLS (the lua.tls ctest entry).

local helpers = require "helpers"
local cache = require "cache"
local sched = require "cachert"

local sh, in_task = helpers.sh, helpers.in_task

local new_manager, disconnect_all = helpers.manager_maker {
    timeout = 1, connect_timeout = 1, command_timeout = 1, pool_size = 2,
    exit_flush_timeout = 0.1 }

-- A manager with exactly `opts` for TLS: none unless they say so.
local function manager(opts)
    local o = { tls = false }
    for k, v in pairs(opts) do o[k] = v end
    return new_manager({ port = 0 }, o)
end

-- Collects what cache.on_log receives while fn runs (in a task).
local function logged(fn)
    local got = {}
    cache.on_log(function(level, msg) got[#got + 1] = level .. ": " .. msg end)
    local ok, err = pcall(in_task, fn)
    in_task(sched.sleep, 0.05)
    cache.on_log(nil)
    assert(ok, err)
    return table.concat(got, "\n")
end

describe("TLS #redis", function()
    local server, mtls, plain, certs

    setup(function()
        certs = helpers.tls_certs()
        server = helpers.start_redis(nil, { tls = true })
        mtls = helpers.start_redis(nil, { tls = true, tls_auth_clients = true })
        plain = helpers.start_redis(nil, { tls = false })
    end)

    teardown(function()
        disconnect_all()
        helpers.stop_redis(server)
        helpers.stop_redis(mtls)
        helpers.stop_redis(plain)
    end)

    after_each(disconnect_all)

    local function ca() return certs .. "/ca.pem" end

    it("works with tls = { ca_file }, verifying the IP address 127.0.0.1", function()
        local c = manager { host = "127.0.0.1", port = server.port, tls = { ca_file = ca() } }
        assert.is_true(c:connect())
        assert.is_true(c:set("k", { 1, 2, "three" }))
        assert.are.same({ 1, 2, "three" }, c:get("k"))
        assert.is_true(c:stats().using_redis)
        -- the bytes are really in the TLS server
        assert.are.equal("1\n", server.cli("EXISTS k"))
    end)

    it("verifies the DNS name localhost", function()
        local c = manager { host = "localhost", port = server.port, tls = { ca_file = ca() } }
        assert.is_true(c:connect())
        assert.is_true(c:set("dns", "ok"))
        assert.are.equal("ok", c:get("dns"))
    end)

    it("turns on with a rediss:// URL and REDIS_TLS_CA_FILE", function()
        local out, code = sh(("REDIS_URL='rediss://127.0.0.1:%d/0' REDIS_TLS_CA_FILE=%s %s -e "
            .. "'local c = require \"cache\"; print(c.connect(), c.stats().backend)'")
            :format(server.port, ca(), helpers.cachert_bin()))
        assert.are.equal(0, code, out)
        assert.are.equal("true\tredis\n", out)
    end)

    it("turns on with REDIS_TLS=yes", function()
        local out, code = sh(("REDIS_HOST=127.0.0.1 REDIS_PORT=%d REDIS_TLS=yes "
            .. "REDIS_TLS_CA_FILE=%s %s -e "
            .. "'local c = require \"cache\"; print(c.connect())'")
            :format(server.port, ca(), helpers.cachert_bin()))
        assert.are.equal(0, code, out)
        assert.are.equal("true\n", out)
    end)

    it("refuses a server whose certificate another CA signed", function()
        local c = manager { host = "127.0.0.1", port = server.port,
                            tls = { ca_file = certs .. "/other-ca.pem" } }
        local log = logged(function() assert.is_false(c:connect()) end)
        local err = c:stats().last_error
        assert.matches("TLS", err, 1, true)
        assert.matches("certificate verify failed", err, 1, true)
        assert.matches("certificate verify failed", log, 1, true)
        -- and the cache still works, on the memory store
        assert.is_true(c:set("m", 1))
        assert.are.equal(1, c:get("m"))
    end)

    it("refuses a certificate for another host name (server_name)", function()
        local c = manager { host = "127.0.0.1", port = server.port,
                            tls = { ca_file = ca(), server_name = "wrong.example" } }
        assert.is_false(c:connect())
        assert.matches("hostname mismatch", c:stats().last_error, 1, true)
    end)

    it("accepts server_name naming the certificate's host", function()
        local c = manager { host = "127.0.0.1", port = server.port,
                            tls = { ca_file = ca(), server_name = "localhost" } }
        assert.is_true(c:connect())
    end)

    it("with verify = false, connects anyway and says so in the log", function()
        local c = manager { host = "127.0.0.1", port = server.port,
                            tls = { ca_file = certs .. "/other-ca.pem", verify = false } }
        local log = logged(function() assert.is_true(c:connect()) end)
        assert.matches("verification is off", log, 1, true)
    end)

    it("does mutual TLS with a client certificate", function()
        local c = manager { host = "127.0.0.1", port = mtls.port,
                            tls = { ca_file = ca(), cert_file = certs .. "/client.pem",
                                    key_file = certs .. "/client.key" } }
        assert.is_true(c:connect())
        assert.is_true(c:set("m", "tls"))
        assert.are.equal("tls", c:get("m"))
    end)

    it("says a client certificate is missing when the server requires one", function()
        local c = manager { host = "127.0.0.1", port = mtls.port, tls = { ca_file = ca() } }
        assert.is_false(c:connect())
        assert.matches("client certificate", c:stats().last_error, 1, true)
    end)

    it("names a CA file that cannot be read", function()
        local ok, err = pcall(function()
            local c = manager { host = "127.0.0.1", port = server.port,
                                tls = { ca_file = certs .. "/missing.pem" } }
            return c:connect()
        end)
        assert.is_false(ok)
        assert.matches("missing.pem", err, 1, true)
    end)

    it("says a plaintext server does not answer TLS", function()
        local c = manager { host = "127.0.0.1", port = plain.port, connect_timeout = 0.3,
                            tls = { ca_file = ca() } }
        assert.is_false(c:connect())
        assert.matches("does not speak TLS", c:stats().last_error, 1, true)
    end)

    it("runs examples/tls.lua on the TLS server", function()
        local out, code = sh(("REDIS_URL='rediss://127.0.0.1:%d/0' REDIS_TLS_CA_FILE=%s "
            .. "%s examples/tls.lua"):format(server.port, ca(), helpers.cachert_bin()))
        assert.are.equal(0, code, out)
        assert.matches("connected to redis:\ttrue", out)
        assert.matches("hits: 2, misses: 1, hit rate: 66.67%, backend: redis", out, 1, true)
        assert.are.equal("1\n", server.cli("EXISTS 'example:tls:quote:ACME'"))
    end)

    it("hints at TLS when a plain connection reaches a TLS server", function()
        local c = manager { host = "127.0.0.1", port = server.port }
        assert.is_false(c:connect())
        assert.matches("rediss://", c:stats().last_error, 1, true)
    end)
end)
