-- config_spec.lua -- settings: explicit option > environment variable >
-- .env file > default; .env parsing; REDIS_URL; clear errors for malformed
-- values, naming the variable and where its value came from.

local helpers = require "helpers"
local config = require "cache.config"
local cache = require "cache"

-- A getenv that sees only `vars`.
local function env(vars)
    return function(name) return vars[name] end
end

local NO_ENV = env {}
local NO_FILE = "/nonexistent/cachert/.env"

-- What a URL must be, as errors say.
local URL_FORMS = "a redis[s]://[user:password@]host[:port][/db], "
    .. "redis+sentinel://[user:password@]host[:port][,host[:port]...]/master[/db] or "
    .. "redis[s]+cluster://[user:password@]host[:port][,host[:port]...][/0] URL"

-- Writes `text` to a fresh temp file and returns its path.
local tmpfiles = {}
local function dotenv(text)
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
    tmpfiles[#tmpfiles + 1] = path
    return path
end

local function remove_tmpfiles()
    for i = #tmpfiles, 1, -1 do
        os.remove(tmpfiles[i])
        tmpfiles[i] = nil
    end
end

-- Runs fn with os.getenv replaced by a lookup in `vars` (cache.new reads the
-- environment through os.getenv at call time); restores it also on error.
local function with_env(vars, fn)
    local real = os.getenv
    os.getenv = env(vars)           -- luacheck: ignore 122
    local ok, err = pcall(fn)
    os.getenv = real                -- luacheck: ignore 122
    if not ok then error(err, 0) end
end

-- The message a call raised, or nil. Config errors carry no position.
local function error_of(fn, ...)
    local ok, err = pcall(fn, ...)
    if ok then return nil end
    return err
end

describe("config.resolve", function()
    after_each(remove_tmpfiles)

    describe("precedence", function()
        it("takes an explicit option over the environment", function()
            local cfg = config.resolve({ default_ttl = 10 },
                                       env { CACHE_DEFAULT_TTL = "20" },
                                       dotenv "CACHE_DEFAULT_TTL=30\n")
            assert.are.equal(10, cfg.default_ttl)
        end)

        it("takes the environment over .env", function()
            local cfg = config.resolve(nil, env { CACHE_DEFAULT_TTL = "20" },
                                       dotenv "CACHE_DEFAULT_TTL=30\n")
            assert.are.equal(20, cfg.default_ttl)
        end)

        it("treats an empty environment value as unset, so .env applies", function()
            local cfg = config.resolve(nil, env { CACHE_DEFAULT_TTL = "" },
                                       dotenv "CACHE_DEFAULT_TTL=30\n")
            assert.are.equal(30, cfg.default_ttl)
        end)

        it("takes .env over the default", function()
            local cfg = config.resolve(nil, NO_ENV, dotenv "CACHE_DEFAULT_TTL=30\n")
            assert.are.equal(30, cfg.default_ttl)
        end)

        it("falls back to the default", function()
            local cfg = config.resolve(nil, NO_ENV, NO_FILE)
            assert.are.equal(300, cfg.default_ttl)
        end)

        it("records where each value came from", function()
            local path = dotenv "CACHE_MAX_ITEMS=5\n"
            local cfg = config.resolve({ default_ttl = 1 }, env { CACHE_NAMESPACE = "n:" }, path)
            local s = cfg.sources
            assert.are.same({ "option", "environment", path, "default" },
                            { s.default_ttl.kind, s.namespace.kind, s.max_items.kind,
                              s.max_memory.kind })
        end)

        it("applies to the Redis settings", function()
            local cfg = config.resolve({ host = "opt" }, env { REDIS_PORT = "7000" },
                                       dotenv "REDIS_DB=3\nREDIS_HOST=file\n")
            local r = config.redis(cfg)
            assert.are.same({ "opt", 7000, 3, 10, 20 },
                            { r.host, r.port, r.db, r.pool_size, r.timeout })
        end)

        it("uses the documented defaults", function()
            local cfg = config.resolve(nil, NO_ENV, NO_FILE)
            local r = config.redis(cfg)
            assert.are.same({ "localhost", 6379, 0, 10, 20, "", "msgpack" },
                            { r.host, r.port, r.db, r.pool_size, r.timeout,
                              cfg.namespace, cfg.codec })
        end)

        it("treats an empty value in .env as unset", function()
            local cfg = config.resolve(nil, NO_ENV, dotenv "REDIS_PASSWORD=\n")
            assert.is_nil(config.redis(cfg).password)
        end)

        it("does not raise when the .env file does not exist", function()
            assert.are.equal(300, config.resolve(nil, NO_ENV, NO_FILE).default_ttl)
        end)
    end)

    describe("options", function()
        it("raises for an unknown option", function()
            assert.are.equal("unknown option 'colour'",
                             error_of(config.resolve, { colour = 1 }, NO_ENV, NO_FILE))
        end)

        it("raises when the options are not a table", function()
            assert.are.equal("options must be a table",
                             error_of(config.resolve, 5, NO_ENV, NO_FILE))
        end)

        it("raises for a negative default_ttl option", function()
            assert.are.equal("option default_ttl must be a number of seconds >= 0, got -1",
                             error_of(config.resolve, { default_ttl = -1 }, NO_ENV, NO_FILE))
        end)

        it("raises for a non-string namespace option", function()
            assert.are.equal("option namespace must be a string, got 5",
                             error_of(config.resolve, { namespace = 5 }, NO_ENV, NO_FILE))
        end)
    end)

    describe("memory-store settings", function()
        it("raises for a malformed CACHE_DEFAULT_TTL naming the environment", function()
            assert.are.equal(
                "CACHE_DEFAULT_TTL must be a number of seconds >= 0, got 'abc' (from environment)",
                error_of(config.resolve, nil, env { CACHE_DEFAULT_TTL = "abc" }, NO_FILE))
        end)

        it("raises for a malformed CACHE_MAX_ITEMS naming the .env file", function()
            local path = dotenv "CACHE_MAX_ITEMS=-1\n"
            assert.are.equal(
                "CACHE_MAX_ITEMS must be an integer between 0 and 9007199254740992, got '-1' (from "
                .. path .. ")",
                error_of(config.resolve, nil, NO_ENV, path))
        end)

        it("raises for a CACHE_MAX_MEMORY without a known unit", function()
            assert.are.equal(
                "CACHE_MAX_MEMORY must be a byte size such as 1048576 or '256mb', "
                .. "got '2tb' (from environment)",
                error_of(config.resolve, nil, env { CACHE_MAX_MEMORY = "2tb" }, NO_FILE))
        end)

        it("raises for an unknown CACHE_CODEC", function()
            assert.are.equal("CACHE_CODEC must be 'msgpack', got 'json' (from environment)",
                             error_of(config.resolve, nil, env { CACHE_CODEC = "json" }, NO_FILE))
        end)

        it("rejects CACHE_MAX_ITEMS=1e300, naming the environment", function()
            assert.are.equal(
                "CACHE_MAX_ITEMS must be an integer between 0 and 9007199254740992, "
                .. "got '1e300' (from environment)",
                error_of(config.resolve, nil, env { CACHE_MAX_ITEMS = "1e300" }, NO_FILE))
        end)

        it("rejects a max_items option of 2^53 + 2", function()
            assert.are.equal(
                "option max_items must be an integer between 0 and 9007199254740992, "
                .. "got 9.007199254741e+15",
                error_of(config.resolve, { max_items = 2 ^ 53 + 2 }, NO_ENV, NO_FILE))
        end)

        it("accepts CACHE_MAX_ITEMS=9007199254740992", function()
            local cfg = config.resolve(nil, env { CACHE_MAX_ITEMS = "9007199254740992" }, NO_FILE)
            assert.are.equal(2 ^ 53, cfg.max_items)
        end)

        it("rejects a CACHE_MAX_MEMORY too large for the store, naming the .env file", function()
            local path = dotenv "CACHE_MAX_MEMORY=99999999999gb\n"
            assert.are.equal(
                "CACHE_MAX_MEMORY must be a byte size between 0 and 9007199254740992, "
                .. "got '99999999999gb' (from " .. path .. ")",
                error_of(config.resolve, nil, NO_ENV, path))
        end)

        it("rejects an infinite max_memory option", function()
            assert.are.equal(
                "option max_memory must be a byte size between 0 and 9007199254740992, got inf",
                error_of(config.resolve, { max_memory = math.huge }, NO_ENV, NO_FILE))
        end)

        it("rejects a max_memory option of 1e300", function()
            assert.are.equal(
                "option max_memory must be a byte size between 0 and 9007199254740992, "
                .. "got 1e+300",
                error_of(config.resolve, { max_memory = 1e300 }, NO_ENV, NO_FILE))
        end)

        it("rejects a CACHE_JOURNAL_MAX_KEYS over 100,000,000", function()
            assert.are.equal(
                "CACHE_JOURNAL_MAX_KEYS must be an integer between 1 and 100000000, "
                .. "got '100000001' (from environment)",
                error_of(config.resolve, nil, env { CACHE_JOURNAL_MAX_KEYS = "100000001" },
                         NO_FILE))
        end)

        it("rejects a huge journal_max_keys option", function()
            assert.are.equal(
                "option journal_max_keys must be an integer between 1 and 100000000, "
                .. "got 1e+20",
                error_of(config.resolve, { journal_max_keys = 1e20 }, NO_ENV, NO_FILE))
        end)

        it("accepts CACHE_JOURNAL_MAX_KEYS=100000000", function()
            local cfg = config.resolve(nil, env { CACHE_JOURNAL_MAX_KEYS = "100000000" }, NO_FILE)
            assert.are.equal(100000000, cfg.journal_max_keys)
        end)

        it("defaults CACHE_MAX_VALUE_BYTES to 512 MiB", function()
            assert.are.equal(536870912, config.resolve(nil, NO_ENV, NO_FILE).max_value_bytes)
        end)

        it("reads CACHE_MAX_VALUE_BYTES with a unit", function()
            local cfg = config.resolve(nil, env { CACHE_MAX_VALUE_BYTES = "64kb" }, NO_FILE)
            assert.are.equal(65536, cfg.max_value_bytes)
        end)

        it("takes a max_value_bytes option over CACHE_MAX_VALUE_BYTES", function()
            local cfg = config.resolve({ max_value_bytes = 1000 },
                                       env { CACHE_MAX_VALUE_BYTES = "64kb" }, NO_FILE)
            assert.are.same({ 1000, "option" },
                            { cfg.max_value_bytes, cfg.sources.max_value_bytes.kind })
        end)

        it("rejects a CACHE_MAX_VALUE_BYTES over 512mb", function()
            assert.are.equal(
                "CACHE_MAX_VALUE_BYTES must be a byte size between 1 and 536870912 (512mb), "
                .. "got '1gb' (from environment)",
                error_of(config.resolve, nil, env { CACHE_MAX_VALUE_BYTES = "1gb" }, NO_FILE))
        end)

        it("rejects a max_value_bytes option of 0", function()
            assert.are.equal(
                "option max_value_bytes must be a byte size between 1 and 536870912 (512mb), "
                .. "got 0",
                error_of(config.resolve, { max_value_bytes = 0 }, NO_ENV, NO_FILE))
        end)

        it("rejects a CACHE_MAX_VALUE_BYTES that is not a size", function()
            assert.are.equal(
                "CACHE_MAX_VALUE_BYTES must be a byte size such as 1048576 or '256mb', "
                .. "got 'lots' (from environment)",
                error_of(config.resolve, nil, env { CACHE_MAX_VALUE_BYTES = "lots" }, NO_FILE))
        end)

        it("reads CACHE_MAX_MEMORY=256mb as 256 MiB", function()
            local cfg = config.resolve(nil, NO_ENV, dotenv "CACHE_MAX_MEMORY=256mb\n")
            assert.are.equal(256 * 1024 * 1024, cfg.max_memory)
        end)

        it("accepts a fractional CACHE_DEFAULT_TTL", function()
            local cfg = config.resolve(nil, env { CACHE_DEFAULT_TTL = "0.25" }, NO_FILE)
            assert.are.equal(0.25, cfg.default_ttl)
        end)

        it("does not check Redis settings", function()
            local cfg = config.resolve(nil, env { REDIS_PORT = "abc" }, NO_FILE)
            assert.are.equal(300, cfg.default_ttl)
        end)
    end)
end)

describe("config.parse_bytes", function()
    for _, case in ipairs {
        { "256mb", 256 * 1024 ^ 2 }, { "256MB", 256 * 1024 ^ 2 }, { "64 mb", 64 * 1024 ^ 2 },
        { "1gb", 1024 ^ 3 }, { "1g", 1024 ^ 3 }, { "512kb", 512 * 1024 }, { "512k", 512 * 1024 },
        { "1048576", 1048576 }, { "100b", 100 }, { "1.5mb", 1.5 * 1024 ^ 2 }, { 4096, 4096 },
    } do
        it(("reads %q as %d bytes"):format(tostring(case[1]), case[2]), function()
            assert.are.equal(case[2], config.parse_bytes(case[1]))
        end)
    end

    for _, bad in ipairs { "2tb", "mb", "-1", "", "1 2 mb", "abc" } do
        it(("rejects %q"):format(bad), function()
            assert.is_nil(config.parse_bytes(bad))
        end)
    end

    it("rejects a negative number", function()
        assert.is_nil(config.parse_bytes(-1))
    end)

    it("rejects a fractional number", function()
        assert.is_nil(config.parse_bytes(1.5))
    end)
end)

describe("config.parse_dotenv", function()
    it("reads NAME=value lines", function()
        assert.are.same({ A = "1", B = "two" }, config.parse_dotenv("A=1\nB=two\n", "x.env"))
    end)

    it("skips blank lines and comment lines", function()
        assert.are.same({ A = "1" },
                        config.parse_dotenv("\n  \n# a comment\n   # indented\nA=1\n\n", "x.env"))
    end)

    it("strips a trailing comment as in the seed's example", function()
        assert.are.same({ CACHE_DEFAULT_TTL = "300" },
                        config.parse_dotenv("CACHE_DEFAULT_TTL=300  # 5 minutes\n", "x.env"))
    end)

    it("keeps a # that no whitespace precedes", function()
        assert.are.same({ A = "a#b" }, config.parse_dotenv("A=a#b\n", "x.env"))
    end)

    it("reads an empty value", function()
        assert.are.same({ A = "" }, config.parse_dotenv("A=\n", "x.env"))
    end)

    it("reads a value that starts with # as the value, as python-dotenv does", function()
        assert.are.same({ A = "# nothing", B = "# x" },
                        config.parse_dotenv("A=# nothing\nB=  # x\n", "x.env"))
    end)

    it("keeps an = inside the value", function()
        assert.are.same({ A = "b=c" }, config.parse_dotenv("A=b=c\n", "x.env"))
    end)

    it("allows spaces around =", function()
        assert.are.same({ A = "1" }, config.parse_dotenv("A = 1\n", "x.env"))
    end)

    it("strips double quotes, keeping # and spaces inside", function()
        assert.are.same({ A = " a # b " }, config.parse_dotenv('A=" a # b "\n', "x.env"))
    end)

    it("strips single quotes", function()
        assert.are.same({ A = "a b" }, config.parse_dotenv("A='a b'\n", "x.env"))
    end)

    it("allows a comment after a quoted value", function()
        assert.are.same({ A = "x" }, config.parse_dotenv('A="x"  # note\n', "x.env"))
    end)

    it("reads \\n and \\\" escapes inside double quotes", function()
        assert.are.same({ A = 'a\n"b"' }, config.parse_dotenv('A="a\\n\\"b\\""\n', "x.env"))
    end)

    it("reads a \\\\ escape inside double quotes as one backslash", function()
        assert.are.same({ A = "a\\n" }, config.parse_dotenv('A="a\\\\n"\n', "x.env"))
    end)

    it("closes a double quote at an escaped quote when no other follows", function()
        -- as python-dotenv's "((?:\\"|[^"])*)" does: A is abc and a backslash
        assert.are.same({ A = "abc\\" }, config.parse_dotenv('A="abc\\"\n', "x.env"))
    end)

    it("keeps backslashes inside single quotes", function()
        assert.are.same({ A = "a\\nb" }, config.parse_dotenv("A='a\\nb'\n", "x.env"))
    end)

    it("accepts an export prefix", function()
        assert.are.same({ A = "1" }, config.parse_dotenv("export A=1\n", "x.env"))
    end)

    it("accepts CRLF line endings", function()
        assert.are.same({ A = "1", B = "2" }, config.parse_dotenv("A=1\r\nB=2\r\n", "x.env"))
    end)

    it("reads a last line without a newline", function()
        assert.are.same({ A = "1" }, config.parse_dotenv("A=1", "x.env"))
    end)

    it("lets a later line override an earlier one", function()
        assert.are.same({ A = "2" }, config.parse_dotenv("A=1\nA=2\n", "x.env"))
    end)

    it("reports a line that is not NAME=value, naming file and line, and reads on", function()
        local vars, problems = config.parse_dotenv("A=1\n\nnot a setting\nB=2\n", "x.env")
        assert.are.same({ { A = "1", B = "2" },
                          { { name = "not", line = 3, where = "x.env:3",
                              reason = "unexpected text after the value" } } },
                        { vars, problems })
    end)

    it("reads a name that starts with a digit, as python-dotenv does", function()
        assert.are.same({ ["1A"] = "1" }, config.parse_dotenv("1A=1\n", "x.env"))
    end)

    it("reports an unterminated quote", function()
        local vars, problems = config.parse_dotenv('A=1\nB="open\n', "x.env")
        assert.are.same({ { A = "1" }, { { name = "B", line = 2, where = "x.env:2",
                                           reason = "unterminated quote" } } },
                        { vars, problems })
    end)

    it("reports text after a closing quote", function()
        local vars, problems = config.parse_dotenv('A="x"y\n', "x.env")
        assert.are.same({ {}, { { name = "A", line = 1, where = "x.env:1",
                                  reason = "unexpected text after the value" } } },
                        { vars, problems })
    end)

    describe("through config.resolve", function()
        after_each(remove_tmpfiles)

        it("reads the seed's .env example", function()
            local path = dotenv("REDIS_HOST=localhost\nREDIS_PORT=6379\nREDIS_DB=0\n"
                                .. "REDIS_PASSWORD=\nCACHE_DEFAULT_TTL=300  # 5 minutes\n")
            local cfg = config.resolve(nil, NO_ENV, path)
            local r = config.redis(cfg)
            assert.are.same({ "localhost", 6379, 0, nil, 300 },
                            { r.host, r.port, r.db, r.password, cfg.default_ttl })
        end)

        it("reads a name without = as unset, as python-dotenv does", function()
            local path = dotenv "# settings\nREDIS_HOST\n"
            assert.are.equal("localhost", config.redis(config.resolve(nil, NO_ENV, path)).host)
        end)
    end)
end)

describe("config.redis", function()
    after_each(remove_tmpfiles)

    describe("for a malformed value", function()
        it("names REDIS_PORT and the .env file it came from", function()
            local path = dotenv "REDIS_PORT=abc\n"
            local cfg = config.resolve(nil, NO_ENV, path)
            assert.are.equal("REDIS_PORT must be an integer between 1 and 65535, got 'abc' (from "
                             .. path .. ")", error_of(config.redis, cfg))
        end)

        it("names REDIS_DB and the environment", function()
            local cfg = config.resolve(nil, env { REDIS_DB = "99" }, NO_FILE)
            assert.are.equal("REDIS_DB must be an integer between 0 and 15, got '99' "
                             .. "(from environment)", error_of(config.redis, cfg))
        end)

        it("names an explicit option", function()
            local cfg = config.resolve({ port = "x" }, NO_ENV, NO_FILE)
            assert.are.equal("option port must be an integer between 1 and 65535, got 'x'",
                             error_of(config.redis, cfg))
        end)

        it("rejects a fractional port", function()
            local cfg = config.resolve({ port = 6379.5 }, NO_ENV, NO_FILE)
            assert.are.equal("option port must be an integer between 1 and 65535, got 6379.5",
                             error_of(config.redis, cfg))
        end)

        it("rejects a pool of 0 connections", function()
            local cfg = config.resolve(nil, env { REDIS_POOL_MAX_CONNECTIONS = "0" }, NO_FILE)
            assert.are.equal("REDIS_POOL_MAX_CONNECTIONS must be an integer between 1 and 10000, "
                             .. "got '0' (from environment)", error_of(config.redis, cfg))
        end)

        it("rejects a timeout of 0", function()
            local cfg = config.resolve(nil, env { REDIS_POOL_TIMEOUT = "0" }, NO_FILE)
            assert.are.equal("REDIS_POOL_TIMEOUT must be a number of seconds > 0 and <= 86400, "
                             .. "got '0' (from environment)", error_of(config.redis, cfg))
        end)

        it("rejects a REDIS_COMMAND_TIMEOUT beyond a day", function()
            local cfg = config.resolve(nil, env { REDIS_COMMAND_TIMEOUT = "1e300" }, NO_FILE)
            assert.are.equal("REDIS_COMMAND_TIMEOUT must be a number of seconds > 0 and <= 86400, "
                             .. "got '1e300' (from environment)", error_of(config.redis, cfg))
        end)

        it("rejects a timeout option beyond a day", function()
            local cfg = config.resolve({ timeout = 86401 }, NO_ENV, NO_FILE)
            assert.are.equal("option timeout must be a number of seconds > 0 and <= 86400, "
                             .. "got 86401", error_of(config.redis, cfg))
        end)

        it("accepts a timeout of a day", function()
            local cfg = config.resolve({ timeout = 86400 }, NO_ENV, NO_FILE)
            assert.are.equal(86400, config.redis(cfg).timeout)
        end)
    end)

    describe("with REDIS_URL", function()
        local function redis_of(url, vars)
            local getenv = env(vars or {})
            return config.redis(config.resolve({ url = url }, getenv, NO_FILE))
        end

        it("gives way to an explicit option above the URL's level", function()
            local r = config.redis(config.resolve({ port = 6390 },
                env { REDIS_URL = "redis://h:1/0" }, NO_FILE))
            assert.are.same({ "h", 6390 }, { r.host, r.port })
        end)

        it("overrides a variable at its own or a lower level", function()
            local r = config.redis(config.resolve(nil,
                env { REDIS_URL = "redis://h:1/0", REDIS_PORT = "7000" },
                dotenv "REDIS_HOST=other\n"))
            assert.are.same({ "h", 1 }, { r.host, r.port })
        end)

        it("reads host, port and db", function()
            local r = redis_of "redis://cache.example.com:6380/2"
            assert.are.same({ "cache.example.com", 6380, 2 }, { r.host, r.port, r.db })
        end)

        it("reads user and password", function()
            local r = redis_of "redis://app:s3cret@h:6379/0"
            assert.are.same({ "app", "s3cret" }, { r.username, r.password })
        end)

        it("reads a password without a user", function()
            local r = redis_of "redis://:s3cret@h"
            assert.are.same({ nil, "s3cret" }, { r.username, r.password })
        end)

        it("splits user info at the last @", function()
            local r = redis_of "redis://app:p@ss@h"
            assert.are.same({ "p@ss", "h" }, { r.password, r.host })
        end)

        it("decodes percent-escapes in the password", function()
            local r = redis_of "redis://app:p%40ss%3Aw@h"
            assert.are.equal("p@ss:w", r.password)
        end)

        it("reads a bracketed IPv6 host", function()
            local r = redis_of "redis://[::1]:6380"
            assert.are.same({ "::1", 6380 }, { r.host, r.port })
        end)

        it("overrides REDIS_HOST and REDIS_PORT", function()
            local r = redis_of("redis://h:6380", { REDIS_HOST = "other", REDIS_PORT = "7000" })
            assert.are.same({ "h", 6380 }, { r.host, r.port })
        end)

        it("gives a part it leaves out the default, not REDIS_PORT", function()
            local r = redis_of("redis://h", { REDIS_PORT = "7000", REDIS_DB = "5" })
            assert.are.same({ 6379, 0 }, { r.port, r.db })
        end)

        it("ignores a malformed REDIS_PORT it overrides", function()
            local r = redis_of("redis://h:6380", { REDIS_PORT = "abc" })
            assert.are.equal(6380, r.port)
        end)

        it("leaves REDIS_POOL_MAX_CONNECTIONS in force", function()
            local r = redis_of("redis://h", { REDIS_POOL_MAX_CONNECTIONS = "3" })
            assert.are.equal(3, r.pool_size)
        end)

        it("raises for another scheme, naming REDIS_URL and its source", function()
            local cfg = config.resolve(nil, env { REDIS_URL = "http://h" }, NO_FILE)
            assert.are.equal("REDIS_URL must be " .. URL_FORMS
                             .. ", got 'http://h' (from environment)", error_of(config.redis, cfg))
        end)

        it("raises for a db out of range, naming REDIS_URL and its source", function()
            local cfg = config.resolve(nil, env { REDIS_URL = "redis://h/99" }, NO_FILE)
            assert.are.equal("db in REDIS_URL must be an integer between 0 and 15, got '99' "
                             .. "(from environment)", error_of(config.redis, cfg))
        end)

        it("raises for a bad port in a url option, naming the option", function()
            local cfg = config.resolve({ url = "redis://h:x" }, NO_ENV, NO_FILE)
            assert.are.equal("port in option url must be an integer between 1 and 65535, "
                             .. "got 'x'", error_of(config.redis, cfg))
        end)
    end)
end)

describe("a manager's configuration", function()
    it("does not check Redis settings in cache.new", function()
        assert.has_no.errors(function() cache.new { port = "x" } end)
    end)

    it("raises for a malformed port at connect", function()
        local c = cache.new { port = "x" }
        assert.has_error(function() c:connect() end,
                         "option port must be an integer between 1 and 65535, got 'x'")
    end)

    it("raises for a malformed port at the line that called connect", function()
        local c = cache.new { port = "x" }
        local line = debug.getinfo(1, "l").currentline + 1
        local ok, err = pcall(function() c:connect() end)
        assert.are.same({ false, "config_spec.lua:" .. line .. ": option port must be an "
                                 .. "integer between 1 and 65535, got 'x'" },
                        { ok, err:match("[^/]*$") })
    end)

    it("raises at connect for REDIS_DB=99 in the environment", function()
        with_env({ REDIS_DB = "99" }, function()
            local c = cache.new()
            assert.has_error(function() c:connect() end,
                             "REDIS_DB must be an integer between 0 and 15, got '99' "
                             .. "(from environment)")
        end)
    end)

    it("raises in cache.new for a malformed CACHE_DEFAULT_TTL", function()
        with_env({ CACHE_DEFAULT_TTL = "soon" }, function()
            assert.has_error(function() cache.new() end,
                             "CACHE_DEFAULT_TTL must be a number of seconds >= 0, got 'soon' "
                             .. "(from environment)")
        end)
    end)

    it("takes its limits from the environment", function()
        local s
        with_env({ CACHE_MAX_ITEMS = "7", CACHE_MAX_MEMORY = "1mb" }, function()
            s = cache.new():stats()
        end)
        assert.are.same({ 7, 1024 * 1024 }, { s.max_items, s.max_memory })
    end)

    it("raises in cache.new for CACHE_MAX_ITEMS=1e300, before the store is made", function()
        with_env({ CACHE_MAX_ITEMS = "1e300" }, function()
            assert.has_error(function() cache.new() end,
                             "CACHE_MAX_ITEMS must be an integer between 0 and 9007199254740992, "
                             .. "got '1e300' (from environment)")
        end)
    end)

    it("passes max_value_bytes to cache.core as the fifth argument of new", function()
        -- given: a spy on core.new, which the module looks up at each call
        local core = require "cache.core"
        local real, args = core.new, nil
        core.new = function(...)
            args = { ... }
            return real(...)
        end
        -- when
        local ok, err = pcall(cache.new, { max_value_bytes = "1mb", journal_max_keys = 7 })
        core.new = real
        -- then
        assert(ok, err)
        assert.are.same({ 7, 1048576 }, { args[4], args[5] })
    end)

    it("takes its namespace from the environment", function()
        local c
        with_env({ CACHE_NAMESPACE = "env:" }, function() c = cache.new() end)
        assert.are.equal("env:", c:stats().namespace)
    end)

    it("prefers an option to the environment", function()
        local c
        with_env({ CACHE_NAMESPACE = "env:" }, function() c = cache.new { namespace = "opt:" } end)
        assert.are.equal("opt:", c:stats().namespace)
    end)

    describe("from a .env file in the working directory", function()
        local dir, out

        lazy_setup(function()
            -- given: a directory with a .env, and the interpreter running this spec
            dir = helpers.sh("mktemp -d /tmp/cachert-config-XXXXXX"):gsub("%s+$", "")
            local f = assert(io.open(dir .. "/.env", "wb"))
            f:write("# cachert settings\nCACHE_NAMESPACE=fromfile:  # trailing comment\n"
                    .. "REDIS_PORT=abc\n")
            f:close()
            local cwd = helpers.sh("pwd"):gsub("%s+$", "")
            local function abs(p) return p:sub(1, 1) == "/" and p or cwd .. "/" .. p end
            local lua = arg[-1] or "luajit"
            if lua:find("/") then lua = abs(lua) end
            local build = abs(os.getenv("CACHERT_BUILD_DIR") or "build")
            local script = "local c = require('cache').new() "
                .. "io.write(c:stats().namespace, '\\n') "
                .. "io.write(select(2, pcall(c.connect, c)))"
            -- when
            out = helpers.sh(("cd %s && env -u REDIS_PORT -u CACHE_NAMESPACE "
                .. "LUA_PATH='%s/lua/?.lua;%s/lua/?/init.lua;;' LUA_CPATH='%s/lua/?.so;;' "
                .. "%s -e %q"):format(dir, cwd, cwd, build, lua, script))
        end)

        lazy_teardown(function()
            if dir then helpers.sh("rm -rf " .. dir) end
        end)

        it("reads settings from it", function()
            assert.are.equal("fromfile:", out:match("^[^\n]*"))
        end)

        it("names it when a value is malformed", function()
            assert.are.equal("REDIS_PORT must be an integer between 1 and 65535, got 'abc' "
                             .. "(from .env)", out:match("\n([^\n]*)$"))
        end)
    end)
end)

describe("numbers (issue 7 item 11)", function()
    after_each(remove_tmpfiles)

    local function redis_error(vars)
        return error_of(config.redis, config.resolve(nil, env(vars), NO_FILE))
    end

    describe("an integer setting from the environment or .env", function()
        for _, bad in ipairs { "0x1c44", "1e3", " 7236 ", "7236 ", "+7236", "7236.0", "",
                               "-0", "0X1C44", "7_236", "inf", "nan" } do
            it(("rejects REDIS_PORT=%q, naming the variable"):format(bad), function()
                if bad == "" then return end        -- an empty value is unset
                assert.are.equal(("REDIS_PORT must be an integer between 1 and 65535, "
                                  .. "got '%s' (from environment)"):format(bad),
                                 redis_error { REDIS_PORT = bad })
            end)
        end

        it("rejects REDIS_DB=1.0 (a string)", function()
            assert.are.equal("REDIS_DB must be an integer between 0 and 15, got '1.0' "
                             .. "(from environment)", redis_error { REDIS_DB = "1.0" })
        end)

        it("rejects CACHE_MAX_ITEMS=0x10 in .env when the manager is created", function()
            local path = dotenv "CACHE_MAX_ITEMS=0x10\n"
            assert.are.equal("CACHE_MAX_ITEMS must be an integer between 0 and "
                             .. "9007199254740992, got '0x10' (from " .. path .. ")",
                             error_of(config.resolve, nil, NO_ENV, path))
        end)

        it("rejects CACHE_MAX_ITEMS=1e400", function()
            assert.are.equal("CACHE_MAX_ITEMS must be an integer between 0 and "
                             .. "9007199254740992, got '1e400' (from environment)",
                             error_of(config.resolve, nil, env { CACHE_MAX_ITEMS = "1e400" },
                                      NO_FILE))
        end)

        it("rejects CACHE_MAX_ITEMS=9007199254740993, which a double rounds to 2^53", function()
            assert.are.equal("CACHE_MAX_ITEMS must be an integer between 0 and "
                             .. "9007199254740992, got '9007199254740993' (from environment)",
                             error_of(config.resolve, nil,
                                      env { CACHE_MAX_ITEMS = "9007199254740993" }, NO_FILE))
        end)

        it("rejects CACHE_JOURNAL_MAX_KEYS=1e3", function()
            assert.are.equal("CACHE_JOURNAL_MAX_KEYS must be an integer between 1 and "
                             .. "100000000, got '1e3' (from environment)",
                             error_of(config.resolve, nil,
                                      env { CACHE_JOURNAL_MAX_KEYS = "1e3" }, NO_FILE))
        end)

        it("accepts decimal digits, leading zeros included", function()
            local r = config.redis(config.resolve(nil, env { REDIS_PORT = "06380",
                REDIS_DB = "15", REDIS_POOL_MAX_CONNECTIONS = "3" }, NO_FILE))
            assert.are.same({ 6380, 15, 3 }, { r.port, r.db, r.pool_size })
        end)

        it("checks a port in REDIS_URL the same way", function()
            assert.are.equal("port in REDIS_URL must be an integer between 1 and 65535, "
                             .. "got '0x1c44' (from environment)",
                             redis_error { REDIS_URL = "redis://h:0x1c44" })
        end)

        it("checks a string option the same way", function()
            local cfg = config.resolve({ port = "1e3" }, NO_ENV, NO_FILE)
            assert.are.equal("option port must be an integer between 1 and 65535, got '1e3'",
                             error_of(config.redis, cfg))
        end)
    end)

    describe("an integer option given as a Lua number", function()
        it("accepts db = 1.0 as the integer 1", function()
            assert.are.equal(1, config.redis(config.resolve({ db = 1.0 }, NO_ENV, NO_FILE)).db)
        end)

        it("rejects db = 1.5", function()
            assert.are.equal("option db must be an integer between 0 and 15, got 1.5",
                             error_of(config.redis, config.resolve({ db = 1.5 }, NO_ENV,
                                                                   NO_FILE)))
        end)

        it("rejects a NaN pool_size", function()
            assert.are.equal("option pool_size must be an integer between 1 and 10000, got nan",
                             error_of(config.redis, config.resolve({ pool_size = 0 / 0 },
                                                                   NO_ENV, NO_FILE)))
        end)
    end)

    describe("a number of seconds from the environment or .env", function()
        for _, bad in ipairs { "0x10", " 5", "5 ", "+5", "1e2", "inf", "nan", "5s" } do
            it(("rejects CACHE_DEFAULT_TTL=%q"):format(bad), function()
                assert.are.equal(("CACHE_DEFAULT_TTL must be a number of seconds >= 0, "
                                  .. "got '%s' (from environment)"):format(bad),
                                 error_of(config.resolve, nil,
                                          env { CACHE_DEFAULT_TTL = bad }, NO_FILE))
            end)
        end

        for _, case in ipairs { { "5", 5 }, { "0.25", 0.25 }, { ".5", 0.5 }, { "2.", 2 },
                                { "007", 7 } } do
            it(("reads CACHE_DEFAULT_TTL=%q as %s"):format(case[1], case[2]), function()
                local cfg = config.resolve(nil, env { CACHE_DEFAULT_TTL = case[1] }, NO_FILE)
                assert.are.equal(case[2], cfg.default_ttl)
            end)
        end

        it("rejects REDIS_COMMAND_TIMEOUT=0x1", function()
            assert.are.equal("REDIS_COMMAND_TIMEOUT must be a number of seconds > 0 and "
                             .. "<= 86400, got '0x1' (from environment)",
                             redis_error { REDIS_COMMAND_TIMEOUT = "0x1" })
        end)
    end)

    describe("a byte size", function()
        it("rejects CACHE_MAX_MEMORY=99999999999999gb (past 2^53 bytes)", function()
            assert.are.equal("CACHE_MAX_MEMORY must be a byte size between 0 and "
                             .. "9007199254740992, got '99999999999999gb' (from environment)",
                             error_of(config.resolve, nil,
                                      env { CACHE_MAX_MEMORY = "99999999999999gb" }, NO_FILE))
        end)

        it("rejects CACHE_MAX_MEMORY=9007199254740993, which a double rounds to 2^53", function()
            assert.are.equal("CACHE_MAX_MEMORY must be a byte size between 0 and "
                             .. "9007199254740992, got '9007199254740993' (from environment)",
                             error_of(config.resolve, nil,
                                      env { CACHE_MAX_MEMORY = "9007199254740993" }, NO_FILE))
        end)

        it("accepts CACHE_MAX_MEMORY=8388608gb, exactly 2^53 bytes", function()
            local cfg = config.resolve(nil, env { CACHE_MAX_MEMORY = "8388608gb" }, NO_FILE)
            assert.are.equal(2 ^ 53, cfg.max_memory)
        end)

        it("rejects a fraction of a byte, which used to become 0 (no limit)", function()
            assert.are.equal("CACHE_MAX_MEMORY must be a byte size such as 1048576 or "
                             .. "'256mb', got '0.5' (from environment)",
                             error_of(config.resolve, nil, env { CACHE_MAX_MEMORY = "0.5" },
                                      NO_FILE))
        end)

        it("rounds a fractional size with a unit up to whole bytes, never to 0", function()
            local cfg = config.resolve(nil, env { CACHE_MAX_MEMORY = "0.0001kb" }, NO_FILE)
            assert.are.equal(1, cfg.max_memory)
        end)

        it("rejects a hexadecimal size", function()
            assert.is_nil(config.parse_bytes("0x10"))
            assert.is_nil(config.parse_bytes("0x10kb"))
        end)
    end)

    describe("a password", function()
        it("is refused when it contains a NUL byte, without showing it", function()
            local err = error_of(config.redis, config.resolve({ password = "hunt\0er2" },
                                                              NO_ENV, NO_FILE))
            assert.are.equal("option password must not contain a NUL byte", err)
        end)

        it("is refused when REDIS_URL decodes to one with a NUL byte", function()
            local err = redis_error { REDIS_URL = "redis://u:hunt%00er2@h" }
            assert.are.equal("password in REDIS_URL must not contain a NUL byte "
                             .. "(from environment)", err)
        end)

        it("is refused from .env when it contains a NUL byte", function()
            local path = dotenv "REDIS_PASSWORD=hunt\0er2\n"
            local err = error_of(config.redis, config.resolve(nil, NO_ENV, path))
            assert.are.equal("REDIS_PASSWORD must not contain a NUL byte (from " .. path .. ")",
                             err)
        end)

        it("refuses a NUL byte in host and username too", function()
            assert.are.equal("option host must not contain a NUL byte",
                             error_of(config.redis, config.resolve({ host = "h\0x" }, NO_ENV,
                                                                   NO_FILE)))
            assert.are.equal("option username must not contain a NUL byte",
                             error_of(config.redis, config.resolve({ username = "u\0x" },
                                                                   NO_ENV, NO_FILE)))
        end)
    end)
end)

-- Runs `script` (Lua source) in a fresh interpreter like the one running
-- this spec (luajit or cachert), in directory `dir`, with cachert's modules
-- and the build under test; at most `limit` seconds (then it is killed
-- and the status is 124). Returns its output (stdout and stderr) and status.
local function run_lua(script, dir, limit, env_prefix)
    local cwd = helpers.sh("pwd"):gsub("%s+$", "")
    local function abs(p) return p:sub(1, 1) == "/" and p or cwd .. "/" .. p end
    local lua = arg[-1] or "luajit"
    if lua:find("/") then lua = abs(lua) end
    local build = abs(os.getenv("CACHERT_BUILD_DIR") or "build")
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write(script)
    f:close()
    local out, status = helpers.sh(("cd %s && %s timeout -s KILL %d env "
        .. "LUA_PATH='%s/lua/?.lua;%s/lua/?/init.lua;;' LUA_CPATH='%s/lua/?.so;;' %s %s")
        :format(dir or "/tmp", env_prefix or "", limit or 20, cwd, cwd, build, lua, path))
    os.remove(path)
    return out, status
end

describe("sub-millisecond timeouts (issue 7 item 5)", function()
    local function redis_of(opts, vars)
        return config.redis(config.resolve(opts, env(vars or {}), NO_FILE))
    end

    it("rounds timeout = 0.0004 and command_timeout = 0.0004 up to 1 ms", function()
        local r = redis_of { timeout = 0.0004, command_timeout = 0.0004,
                             connect_timeout = 0.0004 }
        assert.are.same({ 0.001, 0.001, 0.001 }, { r.timeout, r.command_timeout,
                                                   r.connect_timeout })
    end)

    it("rounds REDIS_COMMAND_TIMEOUT=0.0004 and REDIS_POOL_TIMEOUT=0.0001 up to 1 ms", function()
        local r = redis_of(nil, { REDIS_COMMAND_TIMEOUT = "0.0004",
                                  REDIS_POOL_TIMEOUT = "0.0001" })
        assert.are.same({ 0.001, 0.001 }, { r.timeout, r.command_timeout })
    end)

    it("hands cache.core no positive timeout that truncates to 0 ms", function()
        for _, t in ipairs { 1e-300, 5e-324, 0.0004, 0.000999999, 0.001, 0.0015, 0.25 } do
            local r = redis_of { timeout = t, command_timeout = t, connect_timeout = t }
            for _, name in ipairs { "timeout", "command_timeout", "connect_timeout" } do
                assert(math.floor(r[name] * 1000) >= 1,
                       ("%s = %s reaches cache.core as %s"):format(name, t, r[name]))
            end
        end
    end)

    it("keeps a timeout of 1 ms or more as it is", function()
        local r = redis_of { timeout = 0.0015, command_timeout = 2.5 }
        assert.are.same({ 0.0015, 2.5 }, { r.timeout, r.command_timeout })
    end)

    it("still rejects a timeout of 0", function()
        assert.are.equal("option command_timeout must be a number of seconds > 0 and "
                         .. "<= 86400, got 0",
                         error_of(config.redis, config.resolve({ command_timeout = 0 },
                                                               NO_ENV, NO_FILE)))
    end)

    it("gives up on a silent server instead of hanging", function()
        -- given: a server that accepts connections and never answers (a
        -- listening socket nobody reads), and 0.4 ms timeouts
        local script = [[
            local ffi = require "ffi"
            pcall(ffi.cdef, [=[
                int socket(int domain, int type, int protocol);
                int bind(int fd, const void *addr, unsigned int len);
                int listen(int fd, int backlog);
                int getsockname(int fd, void *addr, unsigned int *len);
            ]=])
            local fd = ffi.C.socket(2, 1, 0)
            local sa = ffi.new("uint8_t[16]")
            if ffi.abi("le") then sa[0] = 2 else sa[1] = 2 end
            sa[4], sa[5], sa[6], sa[7] = 127, 0, 0, 1
            assert(ffi.C.bind(fd, sa, 16) == 0 and ffi.C.listen(fd, 16) == 0)
            assert(ffi.C.getsockname(fd, sa, ffi.new("unsigned int[1]", 16)) == 0)
            local c = require("cache").new {
                host = "127.0.0.1", port = sa[2] * 256 + sa[3], pool_size = 1,
                timeout = 0.0004, connect_timeout = 0.0004, command_timeout = 0.0004 }
            io.write("connected: ", tostring(c:connect()), "\n")
        ]]
        -- when: connecting (killed after 10 s)
        local out, status = run_lua(script, nil, 10)
        -- then: connect gave up and returned false
        assert.are.same({ 0, "connected: false" }, { status, out:match("connected: %a+") })
    end)
end)

describe("REDIS_CONNECT_TIMEOUT (issue 7 item 6)", function()
    after_each(remove_tmpfiles)

    local function redis_of(opts, vars, path)
        return config.redis(config.resolve(opts, env(vars or {}), path or NO_FILE))
    end

    it("defaults to 2 seconds", function()
        assert.are.equal(2, redis_of().connect_timeout)
    end)

    it("is not REDIS_POOL_TIMEOUT, which stays accepted", function()
        local r = redis_of(nil, { REDIS_POOL_TIMEOUT = "20" })
        assert.are.same({ 2, 20 }, { r.connect_timeout, r.timeout })
    end)

    it("is read from the environment, .env and the connect_timeout option", function()
        assert.are.same({ 0.5, 3, 7 }, {
            redis_of(nil, { REDIS_CONNECT_TIMEOUT = "0.5" }).connect_timeout,
            redis_of(nil, nil, dotenv "REDIS_CONNECT_TIMEOUT=3\n").connect_timeout,
            redis_of({ connect_timeout = 7 }, { REDIS_CONNECT_TIMEOUT = "0.5" }).connect_timeout,
        })
    end)

    it("accepts a day", function()
        assert.are.equal(86400, redis_of { connect_timeout = 86400 }.connect_timeout)
    end)

    for _, case in ipairs {
        { { REDIS_CONNECT_TIMEOUT = "0" }, nil,
          "REDIS_CONNECT_TIMEOUT must be a number of seconds > 0 and <= 86400, got '0' "
          .. "(from environment)" },
        { { REDIS_CONNECT_TIMEOUT = "2s" }, nil,
          "REDIS_CONNECT_TIMEOUT must be a number of seconds > 0 and <= 86400, got '2s' "
          .. "(from environment)" },
        { {}, { connect_timeout = 86401 },
          "option connect_timeout must be a number of seconds > 0 and <= 86400, got 86401" },
        { {}, { connect_timeout = -1 },
          "option connect_timeout must be a number of seconds > 0 and <= 86400, got -1" },
    } do
        it("raises at connect for " .. case[3]:match("got [^ ]*"), function()
            local cfg = config.resolve(case[2], env(case[1]), NO_FILE)
            assert.are.equal(case[3], error_of(config.redis, cfg))
        end)
    end

    it("is handed to cache.core.connect as the settings field connect_timeout", function()
        -- given: a spy on core.connect, which the module looks up at each call
        local core = require "cache.core"
        local real, settings = core.connect, nil
        core.connect = function(engine, s)
            settings = s
            return real(engine, s)
        end
        -- when: connecting to a port where nothing listens
        local ok, err = pcall(function()
            local c = cache.new { host = "127.0.0.1", port = 1, connect_timeout = 0.75,
                                  timeout = 20 }
            c:connect()
            c:disconnect()
        end)
        core.connect = real
        -- then
        assert(ok, err)
        assert.are.same({ 0.75, 20 }, { settings.connect_timeout, settings.timeout })
    end)
end)

describe("CACHE_LOG_LEVEL and CACHE_EXIT_FLUSH_TIMEOUT", function()
    after_each(remove_tmpfiles)

    local function cfg_of(opts, vars, path)
        return config.resolve(opts, env(vars or {}), path or NO_FILE)
    end

    it("default to warn and 2 seconds", function()
        local cfg = cfg_of()
        assert.are.same({ "warn", 2 }, { cfg.log_level, cfg.exit_flush_timeout })
    end)

    for _, case in ipairs { { "error", "error" }, { "WARN", "warn" }, { "Info", "info" },
                            { "debug", "debug" }, { "OFF", "off" } } do
        it(("reads CACHE_LOG_LEVEL=%s as %s"):format(case[1], case[2]), function()
            assert.are.equal(case[2], cfg_of(nil, { CACHE_LOG_LEVEL = case[1] }).log_level)
        end)
    end

    it("reads them from .env, and options over the environment", function()
        local path = dotenv "CACHE_LOG_LEVEL=debug\nCACHE_EXIT_FLUSH_TIMEOUT=0.5\n"
        local from_file = cfg_of(nil, nil, path)
        local from_opts = cfg_of({ log_level = "Error", exit_flush_timeout = 0 },
                                 { CACHE_LOG_LEVEL = "info", CACHE_EXIT_FLUSH_TIMEOUT = "9" })
        assert.are.same({ "debug", 0.5, "error", 0 },
                        { from_file.log_level, from_file.exit_flush_timeout,
                          from_opts.log_level, from_opts.exit_flush_timeout })
    end)

    it("accept an exit flush timeout of an hour", function()
        assert.are.equal(3600, cfg_of(nil, { CACHE_EXIT_FLUSH_TIMEOUT = "3600" })
                                   .exit_flush_timeout)
    end)

    it("round a positive exit flush timeout below 1 ms up to 1 ms", function()
        assert.are.equal(0.001, cfg_of { exit_flush_timeout = 0.0004 }.exit_flush_timeout)
    end)

    for _, case in ipairs {
        { nil, { CACHE_LOG_LEVEL = "verbose" },
          "CACHE_LOG_LEVEL must be one of 'error', 'warn', 'info', 'debug', 'off', "
          .. "got 'verbose' (from environment)" },
        { { log_level = 5 }, nil,
          "option log_level must be one of 'error', 'warn', 'info', 'debug', 'off', got 5" },
        { nil, { CACHE_EXIT_FLUSH_TIMEOUT = "3601" },
          "CACHE_EXIT_FLUSH_TIMEOUT must be a number of seconds >= 0 and <= 3600, "
          .. "got '3601' (from environment)" },
        { nil, { CACHE_EXIT_FLUSH_TIMEOUT = "-1" },
          "CACHE_EXIT_FLUSH_TIMEOUT must be a number of seconds >= 0 and <= 3600, "
          .. "got '-1' (from environment)" },
        { { exit_flush_timeout = 0 / 0 }, nil,
          "option exit_flush_timeout must be a number of seconds >= 0 and <= 3600, got nan" },
    } do
        it("raise when the manager is created for " .. case[3]:match("got .*"), function()
            assert.are.equal(case[3], error_of(config.resolve, case[1], env(case[2] or {}),
                                               NO_FILE))
        end)
    end

    it("are kept on the manager's cfg", function()
        local c = cache.new { log_level = "DEBUG", exit_flush_timeout = 5 }
        assert.are.same({ "debug", 5 }, { c.cfg.log_level, c.cfg.exit_flush_timeout })
    end)

    it("raise in cache.new for CACHE_LOG_LEVEL=loud in the environment", function()
        with_env({ CACHE_LOG_LEVEL = "loud" }, function()
            assert.has_error(function() cache.new() end,
                             "CACHE_LOG_LEVEL must be one of 'error', 'warn', 'info', 'debug', "
                             .. "'off', got 'loud' (from environment)")
        end)
    end)
end)

describe("passwords stay out of messages and fields (issue 7 item 9)", function()
    after_each(remove_tmpfiles)

    local SECRET = "hunter2"

    -- Every string reachable from `t` (keys, values, metatables), with the
    -- path that reaches it.
    local function strings_in(t)
        local found, seen = {}, {}
        local function walk(v, path)
            if type(v) == "string" then
                found[#found + 1] = { path = path, s = v }
            elseif type(v) == "table" and not seen[v] then
                seen[v] = true
                for k, x in pairs(v) do
                    walk(k, path .. "[key]")
                    walk(x, path .. "." .. tostring(k))
                end
                walk(getmetatable(v), path .. "<mt>")
            end
        end
        walk(t, "manager")
        return found
    end

    local function assert_no_secret(t, secret)
        for _, f in ipairs(strings_in(t)) do
            assert(not f.s:find(secret, 1, true), f.path .. " shows the password: " .. f.s)
        end
    end

    local MALFORMED = {
        "REDIS://:hunter2@host", " redis://:hunter2@host", "rediss://:hunter2@host:x",
        "redis:/:hunter2@host", "redis//user:hunter2@host", "http://user:hunter2@host",
        "user:hunter2@host", ":hunter2@host", "hunter2@host", "redis://user:hunter2@host:x",
        "redis://user:hunter2@host:99999", "redis://user:hunter2@host/99",
        "redis://:hunter2@host/x", "redis://hunter2@host:0x10", "redis://u:hunter2@h@st:x",
        "redis://u:hunter2%00@host", "redis://u:hunter2@[::1", "redis://u:hunter2@h:1:2",
        "redis://u:hunter2:more@host:-1", "redis://u:hunter2@h:6379/0 ",
    }

    for _, url in ipairs(MALFORMED) do
        it(("keeps the password out of the error for REDIS_URL=%q"):format(url), function()
            local errs = {
                error_of(config.redis, config.resolve(nil, env { REDIS_URL = url }, NO_FILE)),
                error_of(config.redis, config.resolve({ url = url }, NO_ENV, NO_FILE)),
                error_of(config.redis, config.resolve(nil, NO_ENV,
                                                      dotenv("REDIS_URL='" .. url .. "'\n"))),
            }
            for i = 1, 3 do
                assert(errs[i], "no error")
                assert(not errs[i]:find(SECRET, 1, true), errs[i])
            end
        end)
    end

    it("shows a malformed URL with the password replaced", function()
        local cfg = config.resolve(nil, env { REDIS_URL = "http://app:hunter2@host:6380/1" },
                                   NO_FILE)
        assert.are.equal("REDIS_URL must be " .. URL_FORMS
                         .. ", got 'http://app:***@host:6380/1' (from environment)",
                         error_of(config.redis, cfg))
    end)

    it("shows a URL without a user with the password replaced", function()
        local cfg = config.resolve({ url = "REDIS://:hunter2@host" }, NO_ENV, NO_FILE)
        assert.are.equal("option url must be " .. URL_FORMS .. ", got 'REDIS://:***@host'",
                         error_of(config.redis, cfg))
    end)

    for _, bad in ipairs { 424242, true, { "hunter2" } } do
        it(("does not show a password option of type %s"):format(type(bad)), function()
            local err = error_of(config.redis, config.resolve({ password = bad }, NO_ENV,
                                                              NO_FILE))
            assert.are.equal("option password must be a string, got " .. type(bad), err)
        end)
    end

    for _, case in ipairs {
        { "redis://app:hunter2@h:1/2", "redis://app:***@h:1/2" },
        { "redis://:hunter2@h", "redis://:***@h" },
        { "redis://hunter2@h", "redis://***@h" },
        { "redis://app:hun:ter@2@h", "redis://app:***@h" },
        { " REDIS://:hunter2@h", " REDIS://:***@h" },
        { ":hunter2@h", ":***@h" },
        { "redis://h:1/2", "redis://h:1/2" },
    } do
        it(("redacts %q as %q"):format(case[1], case[2]), function()
            assert.are.equal(case[2], config.redact_url(case[1]))
        end)
    end

    describe("a manager's fields", function()
        local function check(make)
            local c = make()
            assert_no_secret(c, SECRET)
            -- still connects with it (to a port where nothing listens)
            c:connect()
            c:disconnect()
            assert_no_secret(c, SECRET)
            assert_no_secret(c:stats(), SECRET)
            return c
        end

        it("never hold a password given in the url option", function()
            local c = check(function()
                return cache.new { url = "redis://app:hunter2@127.0.0.1:1/3" }
            end)
            assert.are.equal("redis://app:***@127.0.0.1:1/3", c.cfg.raw.url)
        end)

        it("never hold a password given in REDIS_URL or REDIS_PASSWORD", function()
            with_env({ REDIS_URL = "redis://:hunter2@127.0.0.1:1",
                       REDIS_PASSWORD = "hunter2" }, function()
                check(function() return cache.new() end)
            end)
        end)

        it("never hold a password given in the password option", function()
            check(function() return cache.new { password = SECRET, port = 1 } end)
        end)

        it("never hold a %-encoded password, decoded or not", function()
            local c = cache.new { url = "redis://u:hun%74er2@127.0.0.1:1" }
            assert_no_secret(c, "hun%74er2")
            assert_no_secret(c, SECRET)
        end)

        it("still hand the password to cache.core.connect", function()
            local r = config.redis(cache.new { url = "redis://app:p%40ss@h:1/3" }.cfg)
            assert.are.same({ "app", "p@ss", "h" }, { r.username, r.password, r.host })
        end)
    end)
end)

describe("a .env shared with other tools (issue 7 item 10)", function()
    after_each(remove_tmpfiles)

    -- Runs fn with io.stderr replaced; returns what was written to it.
    local function stderr_of(fn)
        local real, written = io.stderr, {}
        io.stderr = { write = function(self, ...)   -- luacheck: ignore 122
            for _, s in ipairs { ... } do written[#written + 1] = s end
            return self
        end }
        local ok, err = pcall(fn)
        io.stderr = real                            -- luacheck: ignore 122
        if not ok then error(err, 0) end
        return table.concat(written)
    end

    local PEM = "-----BEGIN PRIVATE KEY-----\n"
        .. "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7k3t8aQzG0qY5\n"
        .. "K8oZlJxqP3vV4t0ZP1oYl9o2XQ2hkz0xW2Qh8Nw+/x4Fq0LrT1x9bK2mVn7sYw==\n"
        .. "Zl9o2XQ2hkz0xW2Qh8NwK8oZlJxqP3vV4t0ZP1oYMIIEvQIBADANBgkqhkiG9w0B\n"
        .. "-----END PRIVATE KEY-----"

    -- A .env of a web application that cachert shares: a BOM, comments,
    -- export lines, a PEM key in double quotes over 5 lines, empty values,
    -- spaces around =, quotes of both kinds, inline comments, ${VAR}, and
    -- lines of other tools that python-dotenv itself cannot read.
    local SHARED = "\239\187\191# shared by the web app, the worker and cachert\n"
        .. "export PATH\n"
        .. "export APP_ENV=production\n"
        .. 'DATABASE_URL = "postgres://app:pw@db:5432/app"   # primary\n'
        .. 'TLS_KEY="' .. PEM .. '"\n'
        .. "SENTRY_DSN=\n"
        .. "GREETING='hello # not a comment'\n"
        .. "MOTD=\"line one\\nline two\"\n"
        .. "WEIRD LINE WITHOUT EQUALS\n"
        .. "=no_name\n"
        .. 'NOT_OURS="a"b\n'
        .. "\n"
        .. "  REDIS_HOST = cache.internal\n"
        .. "export REDIS_PORT=6380 # the port\n"
        .. 'CACHE_NAMESPACE="app:${APP_ENV}:"\n'
        .. "CACHE_DEFAULT_TTL='60'\n"
        .. "REDIS_PASSWORD=\n"
        .. 'BROKEN="never closed\n'

    it("reads what python-dotenv reads from it", function()
        local vars = config.parse_dotenv(SHARED, "x.env", function() return nil end)
        assert.are.same({
            APP_ENV = "production", DATABASE_URL = "postgres://app:pw@db:5432/app",
            TLS_KEY = PEM, SENTRY_DSN = "", GREETING = "hello # not a comment",
            MOTD = "line one\nline two", REDIS_HOST = "cache.internal", REDIS_PORT = "6380",
            CACHE_NAMESPACE = "app:production:", CACHE_DEFAULT_TTL = "60", REDIS_PASSWORD = "",
        }, vars)
    end)

    it("reports the lines it could not read, with their line numbers", function()
        local _, problems = config.parse_dotenv(SHARED, "x.env")
        local got = {}
        for i, p in ipairs(problems) do got[i] = p.where .. " " .. (p.name or "-") end
        assert.are.same({ "x.env:13 WEIRD", "x.env:14 -", "x.env:15 NOT_OURS",
                          "x.env:22 BROKEN" }, got)
    end)

    it("gives cachert its settings without raising, and one warning per bad line", function()
        local path = dotenv(SHARED)
        local cfg, r
        local err = stderr_of(function()
            cfg = config.resolve(nil, NO_ENV, path)
            r = config.redis(cfg)
        end)
        assert.are.same({ "cache.internal", 6380, "app:production:", 60, nil },
                        { r.host, r.port, cfg.namespace, cfg.default_ttl, r.password })
        local lines = {}
        for l in err:gmatch("[^\n]+") do lines[#lines + 1] = l end
        assert.are.same({
            "cachert: " .. path .. ":13: ignored WEIRD, which could not be read "
                .. "(unexpected text after the value)",
            "cachert: " .. path .. ":14: ignored a line, which could not be read "
                .. "(expected NAME=value)",
            "cachert: " .. path .. ":15: ignored NOT_OURS, which could not be read "
                .. "(unexpected text after the value)",
            "cachert: " .. path .. ":22: ignored BROKEN, which could not be read "
                .. "(unterminated quote)",
        }, lines)
        -- and no second warning for the same lines
        assert.are.equal("", stderr_of(function() config.resolve(nil, NO_ENV, path) end))
    end)

    it("lets module-level calls work in a directory with that .env", function()
        local dir = helpers.sh("mktemp -d /tmp/cachert-dotenv-XXXXXX"):gsub("%s+$", "")
        local f = assert(io.open(dir .. "/.env", "wb"))
        f:write((SHARED:gsub("cache.internal", "127.0.0.1"):gsub("6380", "1")))
        f:close()
        local out, status = run_lua([[
            local cache = require "cache"
            cache.set("k", "v")
            cache.connect()
            cache.set("k2", "v2")
            io.write("\nget: ", cache.get("k"), " ", cache.get("k2"), " ",
                     cache.stats().namespace, "\n")
            cache.new()
        ]], dir, 20, "env -u REDIS_HOST -u REDIS_PORT -u CACHE_NAMESPACE -u REDIS_URL")
        helpers.sh("rm -rf " .. dir)
        assert.are.same({ 0, "v v2 app:production:" }, { status, out:match("get: ([^\n]*)") })
        local _, warnings = out:gsub("could not be read", "")
        assert.are.equal(4, warnings)       -- once each, though two managers read it
    end)

    -- What python-dotenv 1.2.2's dotenv_values reads from each text (names
    -- without a value left out), recorded from it.
    for i, case in ipairs {
        { "A=# nothing\n", { ["A"] = "# nothing" } },
        { "A=\"abc\\\"\n", { ["A"] = "abc\\" } },
        { "A=1\n\nnot a setting\nB=2\n", { ["A"] = "1", ["B"] = "2" } },
        { "1A=1\n", { ["1A"] = "1" } },
        { "A=1\nB=\"open\n", { ["A"] = "1" } },
        { "A=\"x\"y\nB=1\n", { ["B"] = "1" } },
        { "A=\"a\\\\n\"\n", { ["A"] = "a\\n" } },
        { "A='a\\nb'\n", { ["A"] = "a\\nb" } },
        { "A='it\\'s'\n", { ["A"] = "it's" } },
        { "A=\"x\"#c\n", { ["A"] = "x" } },
        { "A = 1\n", { ["A"] = "1" } },
        { "export PATH\nB=2\n", { ["B"] = "2" } },
        { "A=\"open\nB=1\nC=\"x\"\nD=4\n", { ["D"] = "4" } },
        { "'Q K'=1\n", { ["Q K"] = "1" } },
        { "A=\"\\t\\q\"\n", { ["A"] = "\t\\q" } },
        { "A=a\\tb  \n", { ["A"] = "a\\tb" } },
        { "A=\"x\" # c\n   B = \"y\"   \n", { ["A"] = "x", ["B"] = "y" } },
        { "A= \n", { ["A"] = "" } },
        { "A=\nB=1", { ["A"] = "", ["B"] = "1" } },
        { "  export   A=1", { ["A"] = "1" } },
        { "export=1", { ["export"] = "1" } },
        { "A=\"x\r\ny\"\r\nB=2\r\n", { ["A"] = "x\ny", ["B"] = "2" } },
        { "A=1\rB=2\r", { ["A"] = "1", ["B"] = "2" } },
        { "K==v\n", { ["K"] = "=v" } },
        { "A=b c d   # x\n", { ["A"] = "b c d" } },
        { "A=\"a\"  b\n", {} },
        { "A=\"multi\nline\n  value\"\nB=after\n",
          { ["A"] = "multi\nline\n  value", ["B"] = "after" } },
        { "A='multi\nline'\n", { ["A"] = "multi\nline" } },
        { "A=\"say \\\"hi\\\"\"\n", { ["A"] = "say \"hi\"" } },
        { "A='x' # c\n", { ["A"] = "x" } },
        { "A=x#y # z\n", { ["A"] = "x#y" } },
        { "#A=1\nB=2\n", { ["B"] = "2" } },
        { "A\t=\t\"t\"\t\n", { ["A"] = "t" } },
        { "A.B-C=1\n", { ["A.B-C"] = "1" } },
        { "   \n\n\tA=1\n", { ["A"] = "1" } },
        { "A=\"x\\\\\"\n", { ["A"] = "x\\" } },
        { "A=\"a\\\"b\nC=2\n", { ["C"] = "2" } },
        { "A='unterminated\nB=1\n", { ["B"] = "1" } },
        { "A=''\nB=\"\"\n", { ["A"] = "", ["B"] = "" } },
    } do
        it(("reads case %d as python-dotenv does: %q"):format(i, case[1]), function()
            assert.are.same(case[2], (config.parse_dotenv(case[1], "x.env")))
        end)
    end

    it("skips a UTF-8 byte order mark before the first name", function()
        local cfg = config.resolve(nil, NO_ENV, dotenv "\239\187\191REDIS_PORT=6390\n")
        assert.are.equal(6390, config.redis(cfg).port)
    end)

    describe("a line of a cachert variable that cannot be read", function()
        it("raises at connect for REDIS_*, naming it and the line, not the value", function()
            local path = dotenv 'A=1\nREDIS_PASSWORD="hunter2\n'
            local cfg
            local err = stderr_of(function() cfg = config.resolve(nil, NO_ENV, path) end)
            assert.are.same({ "", "REDIS_PASSWORD in " .. path .. ":2 could not be read: "
                                  .. "unterminated quote" },
                            { err, error_of(config.redis, cfg) })
        end)

        it("raises in cache.new for CACHE_*", function()
            local path = dotenv "CACHE_MAX_ITEMS='5'x\n"
            assert.are.equal("CACHE_MAX_ITEMS in " .. path .. ":1 could not be read: "
                             .. "unexpected text after the value",
                             error_of(config.resolve, nil, NO_ENV, path))
        end)

        it("raises at connect in a script, at the line that called connect", function()
            local dir = helpers.sh("mktemp -d /tmp/cachert-dotenv-XXXXXX"):gsub("%s+$", "")
            local f = assert(io.open(dir .. "/.env", "wb"))
            f:write("REDIS_PORT 6379\n")
            f:close()
            local out = run_lua([[
                local c = require("cache").new()
                io.write("created\n")
                local ok, err = pcall(c.connect, c)
                io.write(tostring(ok), " ", err, "\n")
            ]], dir, 20, "env -u REDIS_PORT -u REDIS_URL")
            helpers.sh("rm -rf " .. dir)
            assert.are.equal("created\nfalse REDIS_PORT in .env:1 could not be read: "
                             .. "unexpected text after the value\n", out)
        end)

        it("does not raise when the environment gives the variable", function()
            local path = dotenv 'REDIS_PORT="6379\n'
            local cfg = config.resolve(nil, env { REDIS_PORT = "6380" }, path)
            assert.are.equal(6380, config.redis(cfg).port)
        end)

        it("does not raise when REDIS_URL gives the variable", function()
            local path = dotenv 'REDIS_PORT="6379\n'
            local cfg = config.resolve(nil, env { REDIS_URL = "redis://h:6381" }, path)
            assert.are.equal(6381, config.redis(cfg).port)
        end)

        it("does not raise when a later line gives the variable", function()
            local path = dotenv "CACHE_DEFAULT_TTL=5 5\nCACHE_DEFAULT_TTL=7\n"
            assert.are.equal(7, config.resolve(nil, NO_ENV, path).default_ttl)
        end)

        it("raises for a REDIS_URL line, naming it", function()
            local path = dotenv "REDIS_URL='redis://:hunter2@h'x\n"
            local err = error_of(config.redis, config.resolve(nil, NO_ENV, path))
            assert.are.equal("REDIS_URL in " .. path .. ":1 could not be read: "
                             .. "unexpected text after the value", err)
        end)
    end)

    describe("${VAR} expansion", function()
        local function parse(text, vars)
            return (config.parse_dotenv(text, "x.env", env(vars or {})))
        end

        it("takes a name from the environment first, then from an earlier line", function()
            assert.are.same({ A = "file", B = "env/file", C = "" },
                            parse("A=file\nB=${HOME}/${A}\nC=${NOPE}\n", { HOME = "env" }))
        end)

        it("takes the default of ${NAME:-default} when NAME is unset or empty", function()
            assert.are.same({ A = "6379", B = "yx", C = "6379" },
                            parse("A=${PORT:-6379}\nB=${Z:-y}x\nC=${A:-1}\n", { Z = "" }))
        end)

        it("expands in double quotes, not in single quotes, and never $NAME", function()
            assert.are.same({ U = "u", D = "u u", S = "${U}", N = "$U" },
                            parse("U=u\nD=\"${U} ${U}\"\nS='${U}'\nN=$U\n"))
        end)

        it("builds REDIS_URL from REDIS_PASSWORD, as a shared .env may", function()
            local path = dotenv "REDIS_PASSWORD=s3cret\nREDIS_URL=redis://:${REDIS_PASSWORD}@h\n"
            local r = config.redis(config.resolve(nil, NO_ENV, path))
            assert.are.same({ "s3cret", "h" }, { r.password, r.host })
        end)
    end)
end)

-- config.redis() of options, variables and a .env path, quiet (the TLS,
-- Sentinel and Cluster settings below).
local function redis_of(opts, vars, path)
    return config.redis(config.resolve(opts, env(vars or {}), path or NO_FILE), true)
end

-- The error config.redis() raises for them.
local function redis_error(opts, vars, path)
    return error_of(config.redis, config.resolve(opts, env(vars or {}), path or NO_FILE),
                    true)
end

describe("TLS settings", function()
    after_each(remove_tmpfiles)


    -- The warnings config.redis(cfg) gives (config.warn), and its result.
    local function warnings_of(cfg, quiet)
        local seen, real = {}, config.warn
        config.warn = function(msg) seen[#seen + 1] = msg end
        local ok, r = pcall(config.redis, cfg, quiet)
        config.warn = real
        assert(ok, r)
        return seen, r
    end

    describe("turning TLS on", function()
        it("is off by default: no tls field", function()
            assert.is_nil(redis_of().tls)
        end)

        it("is on with tls = true, verifying by default", function()
            assert.are.same({ verify = true }, redis_of { tls = true }.tls)
        end)

        it("is on with a tls table, even an empty one", function()
            assert.are.same({ verify = true }, redis_of { tls = {} }.tls)
        end)

        it("hands every field of the tls table to cache.core", function()
            local ca, cert, key = dotenv "ca", dotenv "cert", dotenv "key"
            local r = redis_of { tls = { ca_file = ca, cert_file = cert, key_file = key,
                                         server_name = "cache.internal", verify = false } }
            assert.are.same({ ca_file = ca, cert_file = cert, key_file = key,
                              server_name = "cache.internal", verify = false }, r.tls)
        end)

        for _, case in ipairs {
            { "yes", true }, { "no", false }, { "true", true }, { "false", false },
            { "1", true }, { "0", false }, { "on", true }, { "off", false },
            { "YES", true }, { "Off", false }, { "True", true },
        } do
            it(("reads REDIS_TLS=%s as %s"):format(case[1], case[2]), function()
                local r = redis_of(nil, { REDIS_TLS = case[1] })
                assert.are.equal(case[2], r.tls ~= nil)
            end)
        end

        it("reads REDIS_TLS from .env", function()
            assert.is_table(redis_of(nil, nil, dotenv "REDIS_TLS=yes\n").tls)
        end)

        it("takes the tls option over REDIS_TLS, and REDIS_TLS over .env", function()
            assert.is_nil(redis_of({ tls = false }, { REDIS_TLS = "yes" }).tls)
            assert.is_table(redis_of({ tls = {} }, { REDIS_TLS = "no" }).tls)
            assert.is_nil(redis_of(nil, { REDIS_TLS = "no" }, dotenv "REDIS_TLS=yes\n").tls)
        end)

        it("is on for a rediss:// URL, read as a redis:// URL", function()
            local r = redis_of { url = "rediss://app:s3cret@cache.example.com:6380/2" }
            assert.are.same({ "cache.example.com", 6380, 2, "app", "s3cret", { verify = true } },
                            { r.host, r.port, r.db, r.username, r.password, r.tls })
        end)

        it("gives way to a tls option above the level of a rediss:// URL", function()
            assert.is_nil(redis_of({ tls = false }, { REDIS_URL = "rediss://h" }).tls)
        end)

        it("keeps rediss:// over REDIS_TLS=no at its own or a lower level", function()
            assert.is_table(redis_of(nil, { REDIS_URL = "rediss://h", REDIS_TLS = "no" }).tls)
            assert.is_table(redis_of({ url = "rediss://h" }, { REDIS_TLS = "no" }).tls)
            assert.is_table(redis_of(nil, { REDIS_URL = "rediss://h" },
                                     dotenv "REDIS_TLS=no\n").tls)
        end)

        it("leaves TLS to the tls setting for a redis:// URL", function()
            assert.is_table(redis_of(nil, { REDIS_URL = "redis://h", REDIS_TLS = "yes" }).tls)
            assert.is_table(redis_of({ url = "redis://h", tls = true }).tls)
            assert.is_nil(redis_of({ url = "redis://h" }).tls)
        end)

        it("takes the rediss:// URL's TLS fields from the variables", function()
            local ca = dotenv "ca"
            local r = redis_of(nil, { REDIS_URL = "rediss://h", REDIS_TLS_CA_FILE = ca,
                                      REDIS_TLS_SERVER_NAME = "h.example" })
            assert.are.same({ ca_file = ca, server_name = "h.example", verify = true }, r.tls)
        end)
    end)

    describe("the TLS fields", function()
        it("each take option > environment > .env > default, field by field", function()
            local ca_opt, ca_env, ca_file = dotenv "1", dotenv "2", dotenv "3"
            local path = dotenv(("REDIS_TLS_CA_FILE=%s\nREDIS_TLS_SERVER_NAME=file\n"
                                 .. "REDIS_TLS_VERIFY=no\n"):format(ca_file))
            local vars = { REDIS_TLS_CA_FILE = ca_env, REDIS_TLS_SERVER_NAME = "env" }
            assert.are.same({ ca_file = ca_opt, server_name = "env", verify = false },
                            redis_of({ tls = { ca_file = ca_opt } }, vars, path).tls)
            assert.are.same({ ca_file = ca_env, server_name = "env", verify = false },
                            redis_of({ tls = true }, vars, path).tls)
            assert.are.same({ ca_file = ca_file, server_name = "file", verify = false },
                            redis_of({ tls = true }, nil, path).tls)
            assert.are.same({ ca_file = ca_file, server_name = "opt", verify = true },
                            redis_of({ tls = { server_name = "opt", verify = true } }, nil,
                                     path).tls)
        end)

        it("read REDIS_TLS_VERIFY as a boolean, case-insensitive", function()
            assert.are.same({ false, true, false },
                            { redis_of({ tls = true }, { REDIS_TLS_VERIFY = "NO" }).tls.verify,
                              redis_of({ tls = true }, { REDIS_TLS_VERIFY = "on" }).tls.verify,
                              redis_of({ tls = true }, { REDIS_TLS_VERIFY = "0" }).tls.verify })
        end)

        it("take a client certificate and key from the environment", function()
            local cert, key = dotenv "c", dotenv "k"
            local r = redis_of(nil, { REDIS_TLS = "yes", REDIS_TLS_CERT_FILE = cert,
                                      REDIS_TLS_KEY_FILE = key })
            assert.are.same({ cert_file = cert, key_file = key, verify = true }, r.tls)
        end)

        it("are ignored while TLS is off, with one warning naming them", function()
            local ca = dotenv "ca"
            local cfg = config.resolve(nil, env { REDIS_TLS_CA_FILE = ca,
                                                  REDIS_TLS_VERIFY = "maybe" }, NO_FILE)
            local seen, r = warnings_of(cfg)
            assert.is_nil(r.tls)
            assert.are.same({ "TLS is off (turn it on with a rediss:// URL, the tls option or "
                              .. "REDIS_TLS=yes): ignoring REDIS_TLS_CA_FILE (from environment), "
                              .. "REDIS_TLS_VERIFY (from environment)" }, seen)
        end)

        it("are ignored without a warning when TLS is turned off explicitly", function()
            local cfg = config.resolve(nil, env { REDIS_TLS = "no", REDIS_TLS_CA_FILE = "/x" },
                                       NO_FILE)
            local seen, r = warnings_of(cfg)
            assert.are.same({ {}, nil }, { seen, r.tls })
        end)
    end)

    describe("for a malformed value", function()
        for _, case in ipairs {
            { nil, { REDIS_TLS = "maybe" }, nil,
              "REDIS_TLS must be one of yes/no, true/false, 1/0, on/off, got 'maybe' "
              .. "(from environment)" },
            { nil, { REDIS_TLS = " yes" }, nil,
              "REDIS_TLS must be one of yes/no, true/false, 1/0, on/off, got ' yes' "
              .. "(from environment)" },
            { { tls = "yes" }, nil, nil,
              "option tls must be true, false or a table { ca_file=, cert_file=, key_file=, "
              .. "server_name=, verify= }, got 'yes'" },
            { { tls = 1 }, nil, nil,
              "option tls must be true, false or a table { ca_file=, cert_file=, key_file=, "
              .. "server_name=, verify= }, got 1" },
            { { tls = { verify = "no" } }, nil, nil,
              "option tls.verify must be true or false, got 'no'" },
            { { tls = true }, { REDIS_TLS_VERIFY = "2" }, nil,
              "REDIS_TLS_VERIFY must be one of yes/no, true/false, 1/0, on/off, got '2' "
              .. "(from environment)" },
            { { tls = { ca_file = 5 } }, nil, nil,
              "option tls.ca_file must be a non-empty string, got 5" },
            { { tls = { server_name = "" } }, nil, nil,
              "option tls.server_name must be a non-empty string, got ''" },
            { { tls = { server_name = "a\0b" } }, nil, nil,
              "option tls.server_name must not contain a NUL byte" },
            { { tls = { ca_file = "/nonexistent/cachert/ca.pem" } }, nil, nil,
              "option tls.ca_file must name a readable file, got "
              .. "'/nonexistent/cachert/ca.pem': No such file or directory" },
            { nil, { REDIS_TLS = "on", REDIS_TLS_KEY_FILE = "/nonexistent/k.pem",
                     REDIS_TLS_CERT_FILE = "/nonexistent/c.pem" }, nil,
              "REDIS_TLS_CERT_FILE must name a readable file, got '/nonexistent/c.pem' "
              .. "(from environment): No such file or directory" },
        } do
            it("raises at connect: " .. case[4], function()
                assert.are.equal(case[4], redis_error(case[1], case[2], case[3]))
            end)
        end

        it("names the .env file a malformed REDIS_TLS_VERIFY came from", function()
            local path = dotenv "REDIS_TLS=yes\nREDIS_TLS_VERIFY=nope\n"
            assert.are.equal("REDIS_TLS_VERIFY must be one of yes/no, true/false, 1/0, on/off, "
                             .. "got 'nope' (from " .. path .. ")", redis_error(nil, nil, path))
        end)

        it("refuses a certificate without a key, and a key without a certificate", function()
            local f = dotenv "pem"
            assert.are.equal("option tls.cert_file is set without a key file (option "
                             .. "tls.key_file or REDIS_TLS_KEY_FILE): a client certificate "
                             .. "needs both", redis_error { tls = { cert_file = f } })
            assert.are.equal("REDIS_TLS_KEY_FILE (from environment) is set without a "
                             .. "certificate file (option tls.cert_file or REDIS_TLS_CERT_FILE): "
                             .. "a client certificate needs both",
                             redis_error({ tls = true }, { REDIS_TLS_KEY_FILE = f }))
        end)

        it("raises in cache.new for an unknown field of the tls option", function()
            assert.are.equal("unknown field 'ca' in option tls (known: ca_file, cert_file, "
                             .. "key_file, server_name, verify)",
                             error_of(cache.new, { tls = { ca = "/x" } }))
        end)

        it("does not take the TLS fields as options of their own", function()
            assert.are.equal("unknown option 'tls_ca_file'",
                             error_of(cache.new, { tls_ca_file = "/x" }))
        end)

        it("does not check the TLS settings in cache.new", function()
            assert.has_no.errors(function() cache.new { tls = "yes" } end)
        end)
    end)

    describe("with verification off", function()
        local WARNING = "TLS certificate verification is off (option tls.verify = false): "
                        .. "the connection can be intercepted"

        it("warns once each time config.redis is called for a connect", function()
            local cfg = config.resolve({ tls = { verify = false } }, NO_ENV, NO_FILE)
            assert.are.same({ WARNING }, (warnings_of(cfg)))
            assert.are.same({ WARNING }, (warnings_of(cfg)))
        end)

        it("does not warn for a check that does not connect (quiet)", function()
            local cfg = config.resolve({ tls = { verify = false } }, NO_ENV, NO_FILE)
            assert.are.same({}, (warnings_of(cfg, true)))
        end)

        it("names REDIS_TLS_VERIFY and its source", function()
            local path = dotenv "REDIS_TLS_VERIFY=off\n"
            local cfg = config.resolve(nil, env { REDIS_URL = "rediss://h" }, path)
            assert.are.same({ "TLS certificate verification is off (REDIS_TLS_VERIFY=off, from "
                              .. path .. "): the connection can be intercepted" },
                            (warnings_of(cfg)))
        end)

        it("does not warn when verification is on", function()
            local cfg = config.resolve({ tls = true }, NO_ENV, NO_FILE)
            assert.are.same({}, (warnings_of(cfg)))
        end)

        it("warns once per connect and once per cache.with, through cache.on_log", function()
            local seen = {}
            cache.on_log(function(level, msg)
                if msg:find("verification", 1, true) then seen[#seen + 1] = level .. ": " .. msg end
            end)
            local ok, err = pcall(function()
                local c = cache.new { host = "127.0.0.1", port = 1, tls = { verify = false } }
                c:connect()
                c:disconnect()
                cache.with(function() end, { host = "127.0.0.1", port = 1,
                                             tls = { verify = false } })
            end)
            cache.on_log(nil)
            assert(ok, err)
            assert.are.same({ "warn: " .. WARNING, "warn: " .. WARNING }, seen)
        end)
    end)
end)

describe("Sentinel settings", function()
    after_each(remove_tmpfiles)


    describe("the addresses and the master", function()
        it("are absent by default", function()
            local r = redis_of()
            assert.are.same({}, { r.sentinels, r.sentinel_master, r.sentinel_username,
                                  r.sentinel_password })
        end)

        it("are read from the options, the port defaulting to 26379", function()
            local r = redis_of { sentinels = { "s1:26380", "s2", "[::1]:26381", "[fe80::1]" },
                                 sentinel_master = "mymaster" }
            assert.are.same({ { host = "s1", port = 26380 }, { host = "s2", port = 26379 },
                              { host = "::1", port = 26381 }, { host = "fe80::1", port = 26379 } },
                            r.sentinels)
            assert.are.equal("mymaster", r.sentinel_master)
        end)

        it("accept a comma-separated string option, blanks around an address ignored", function()
            local r = redis_of { sentinels = "s1:1, s2:2 ,s3", sentinel_master = "m" }
            assert.are.same({ { host = "s1", port = 1 }, { host = "s2", port = 2 },
                              { host = "s3", port = 26379 } }, r.sentinels)
        end)

        it("are read from the environment, with the sentinels' credentials", function()
            local r = redis_of(nil, { REDIS_SENTINELS = "s1:1,s2:2", REDIS_SENTINEL_MASTER = "m",
                                      REDIS_SENTINEL_USERNAME = "sentry",
                                      REDIS_SENTINEL_PASSWORD = "sp" })
            assert.are.same({ { { host = "s1", port = 1 }, { host = "s2", port = 2 } }, "m",
                              "sentry", "sp" },
                            { r.sentinels, r.sentinel_master, r.sentinel_username,
                              r.sentinel_password })
        end)

        it("are read from .env", function()
            local r = redis_of(nil, nil, dotenv("REDIS_SENTINELS=s1\nREDIS_SENTINEL_MASTER=m\n"
                                                .. "REDIS_SENTINEL_PASSWORD=sp\n"))
            assert.are.same({ { { host = "s1", port = 26379 } }, "m", "sp" },
                            { r.sentinels, r.sentinel_master, r.sentinel_password })
        end)

        it("take option > environment > .env, each on its own", function()
            local path = dotenv("REDIS_SENTINELS=file\nREDIS_SENTINEL_MASTER=file\n"
                                .. "REDIS_SENTINEL_USERNAME=file\nREDIS_SENTINEL_PASSWORD=file\n")
            local r = redis_of({ sentinel_master = "opt" },
                               { REDIS_SENTINELS = "env", REDIS_SENTINEL_PASSWORD = "env" }, path)
            assert.are.same({ "env", "opt", "file", "env" },
                            { r.sentinels[1].host, r.sentinel_master, r.sentinel_username,
                              r.sentinel_password })
        end)

        it("leave the sentinels' credentials out when Sentinel is not used", function()
            local r = redis_of(nil, { REDIS_SENTINEL_USERNAME = "u",
                                      REDIS_SENTINEL_PASSWORD = "p" })
            assert.are.same({}, { r.sentinel_username, r.sentinel_password })
        end)

        it("keep the other fields as they are (host and port unused)", function()
            local r = redis_of({ sentinels = "s", sentinel_master = "m", password = "data" },
                               { REDIS_HOST = "h", REDIS_DB = "2" })
            assert.are.same({ "h", 6379, 2, "data", 10 },
                            { r.host, r.port, r.db, r.password, r.pool_size })
        end)
    end)

    describe("a redis+sentinel:// URL", function()
        it("gives the sentinels, the master, the db and the data nodes' credentials", function()
            local r = redis_of { url = "redis+sentinel://app:s3cret@s1:26380,[::1],s3/mymaster/3" }
            assert.are.same({ { host = "s1", port = 26380 }, { host = "::1", port = 26379 },
                              { host = "s3", port = 26379 } }, r.sentinels)
            assert.are.same({ "mymaster", 3, "app", "s3cret" },
                            { r.sentinel_master, r.db, r.username, r.password })
            assert.are.same({}, { r.sentinel_username, r.sentinel_password })
        end)

        it("takes the sentinels' credentials from their own settings", function()
            local r = redis_of(nil, { REDIS_URL = "redis+sentinel://s1/m",
                                      REDIS_SENTINEL_USERNAME = "su",
                                      REDIS_SENTINEL_PASSWORD = "sp" })
            assert.are.same({ "su", "sp", nil, 0 },
                            { r.sentinel_username, r.sentinel_password, r.password, r.db })
        end)

        it("gives way to options above its level", function()
            local r = redis_of({ sentinels = { "o1" }, sentinel_master = "opt" },
                               { REDIS_URL = "redis+sentinel://s1,s2/m/2" })
            assert.are.same({ { { host = "o1", port = 26379 } }, "opt", 2 },
                            { r.sentinels, r.sentinel_master, r.db })
        end)

        it("overrides REDIS_SENTINELS and REDIS_SENTINEL_MASTER at its level or below", function()
            local r = redis_of(nil, { REDIS_URL = "redis+sentinel://s1/m",
                                      REDIS_SENTINELS = "e1", REDIS_SENTINEL_MASTER = "em" })
            assert.are.same({ "s1", "m" }, { r.sentinels[1].host, r.sentinel_master })
        end)

        it("works with TLS from the tls setting", function()
            local r = redis_of({ tls = true }, { REDIS_URL = "redis+sentinel://s1/m" })
            assert.are.same({ { verify = true }, "m" }, { r.tls, r.sentinel_master })
        end)

        it("must name the master", function()
            assert.are.equal("REDIS_URL must name the master (redis+sentinel://...host[:port]/"
                             .. "master[/db]), got 'redis+sentinel://u:***@s1,s2' (from "
                             .. "environment)",
                             redis_error(nil, { REDIS_URL = "redis+sentinel://u:pw@s1,s2" }))
            assert.are.equal("option url must name the master (redis+sentinel://...host[:port]/"
                             .. "master[/db]), got 'redis+sentinel://s1/'",
                             redis_error { url = "redis+sentinel://s1/" })
        end)

        it("raises for a bad address, naming the URL", function()
            assert.are.equal("sentinels in REDIS_URL must be a list of host[:port] (an IPv6 host "
                             .. "in brackets, the port 1-65535, default 26379) addresses, got "
                             .. "'s2:x' as address 2 (from environment)",
                             redis_error(nil, { REDIS_URL = "redis+sentinel://s1,s2:x/m" }))
        end)

        it("raises for a db out of range, naming the URL", function()
            assert.are.equal("db in option url must be an integer between 0 and 15, got '16'",
                             redis_error { url = "redis+sentinel://s1/m/16" })
        end)
    end)

    describe("a redis:// URL", function()
        it("names one server: it overrides the Sentinel variables at its level or below",
           function()
            local r = redis_of(nil, { REDIS_URL = "redis://h", REDIS_SENTINELS = "s1",
                                      REDIS_SENTINEL_MASTER = "m" },
                               dotenv "REDIS_SENTINELS=s2\n")
            assert.are.same({ "h" }, { r.host, r.sentinels, r.sentinel_master })
        end)

        it("gives way to Sentinel options", function()
            local r = redis_of({ sentinels = "s1", sentinel_master = "m" },
                               { REDIS_URL = "redis://:pw@h/3" })
            assert.are.same({ "s1", "m", "pw", 3 },
                            { r.sentinels[1].host, r.sentinel_master, r.password, r.db })
        end)
    end)

    describe("for a malformed value", function()
        local ADDRESSES = "a list of host[:port] (an IPv6 host in brackets, the port 1-65535, "
                          .. "default 26379) addresses"
        for _, case in ipairs {
            { { sentinels = { "s1" } }, nil,
              "option sentinels lists sentinels but no master name is set (option "
              .. "sentinel_master or REDIS_SENTINEL_MASTER)" },
            { nil, { REDIS_SENTINELS = "s1" },
              "REDIS_SENTINELS (from environment) lists sentinels but no master name is set "
              .. "(option sentinel_master or REDIS_SENTINEL_MASTER)" },
            { { sentinel_master = "m" }, nil,
              "option sentinel_master is set but no sentinels are (option sentinels or "
              .. "REDIS_SENTINELS, or a redis+sentinel:// URL)" },
            { nil, { REDIS_SENTINEL_MASTER = "m" },
              "REDIS_SENTINEL_MASTER (from environment) is set but no sentinels are (option "
              .. "sentinels or REDIS_SENTINELS, or a redis+sentinel:// URL)" },
            { { sentinels = {}, sentinel_master = "m" }, nil,
              "option sentinels must be a non-empty list of host[:port] (an IPv6 host in "
              .. "brackets, the port 1-65535, default 26379) addresses, or a string of them "
              .. "separated by commas, got table" },
            { { sentinels = 26379, sentinel_master = "m" }, nil,
              "option sentinels must be a non-empty list of host[:port] (an IPv6 host in "
              .. "brackets, the port 1-65535, default 26379) addresses, or a string of them "
              .. "separated by commas, got 26379" },
            { { sentinels = { "s1", 2 }, sentinel_master = "m" }, nil,
              "option sentinels must be " .. ADDRESSES .. ", got number as address 2" },
            { { sentinels = { "s1", x = "s2" }, sentinel_master = "m" }, nil,
              "option sentinels must be a list of host[:port] (an IPv6 host in brackets, the "
              .. "port 1-65535, default 26379) strings, got table" },
            { nil, { REDIS_SENTINELS = "s1,,s2", REDIS_SENTINEL_MASTER = "m" },
              "REDIS_SENTINELS must be " .. ADDRESSES .. ", got '' as address 2 "
              .. "(from environment)" },
            { nil, { REDIS_SENTINELS = "::1", REDIS_SENTINEL_MASTER = "m" },
              "REDIS_SENTINELS must be " .. ADDRESSES .. ", got '::1' as address 1 "
              .. "(from environment)" },
            { nil, { REDIS_SENTINELS = "s1:0", REDIS_SENTINEL_MASTER = "m" },
              "REDIS_SENTINELS must be " .. ADDRESSES .. ", got 's1:0' as address 1 "
              .. "(from environment)" },
            { nil, { REDIS_SENTINELS = "s1:65536", REDIS_SENTINEL_MASTER = "m" },
              "REDIS_SENTINELS must be " .. ADDRESSES .. ", got 's1:65536' as address 1 "
              .. "(from environment)" },
            { nil, { REDIS_SENTINELS = "s1:", REDIS_SENTINEL_MASTER = "m" },
              "REDIS_SENTINELS must be " .. ADDRESSES .. ", got 's1:' as address 1 "
              .. "(from environment)" },
            { nil, { REDIS_SENTINELS = "s1 s2", REDIS_SENTINEL_MASTER = "m" },
              "REDIS_SENTINELS must be " .. ADDRESSES .. ", got 's1 s2' as address 1 "
              .. "(from environment)" },
            { { sentinels = "s1", sentinel_master = "" }, nil,
              "option sentinel_master must be a non-empty string, got ''" },
            { { sentinels = "s1", sentinel_master = "m", sentinel_username = 7 }, nil,
              "option sentinel_username must be a string, got 7" },
        } do
            it("raises at connect: " .. case[3], function()
                assert.are.equal(case[3], redis_error(case[1], case[2]))
            end)
        end

        it("names the .env file a malformed REDIS_SENTINELS came from", function()
            local path = dotenv "REDIS_SENTINELS=s1:abc\nREDIS_SENTINEL_MASTER=m\n"
            assert.are.equal("REDIS_SENTINELS must be " .. ADDRESSES .. ", got 's1:abc' as "
                             .. "address 1 (from " .. path .. ")", redis_error(nil, nil, path))
        end)

        it("does not check the Sentinel settings in cache.new", function()
            assert.has_no.errors(function() cache.new { sentinels = 5 } end)
        end)
    end)
end)

describe("Cluster settings", function()
    after_each(remove_tmpfiles)


    describe("cluster and the seed nodes", function()
        it("are absent by default", function()
            local r = redis_of()
            assert.are.same({}, { r.cluster, r.cluster_nodes })
        end)

        it("are read from the options, the port defaulting to 6379", function()
            local r = redis_of { cluster_nodes = { "n1:7000", "n2", "[::1]:7001", "[fe80::1]" } }
            assert.are.same({ { host = "n1", port = 7000 }, { host = "n2", port = 6379 },
                              { host = "::1", port = 7001 }, { host = "fe80::1", port = 6379 } },
                            r.cluster_nodes)
            assert.is_true(r.cluster)
        end)

        it("accept a comma-separated string option, blanks around an address ignored", function()
            local r = redis_of { cluster_nodes = "n1:1, n2:2 ,n3" }
            assert.are.same({ true, { { host = "n1", port = 1 }, { host = "n2", port = 2 },
                                      { host = "n3", port = 6379 } } },
                            { r.cluster, r.cluster_nodes })
        end)

        it("are read from the environment", function()
            local r = redis_of(nil, { REDIS_CLUSTER_NODES = "n1:1,n2:2" })
            assert.are.same({ true, { { host = "n1", port = 1 }, { host = "n2", port = 2 } } },
                            { r.cluster, r.cluster_nodes })
        end)

        it("are read from .env", function()
            local r = redis_of(nil, nil, dotenv "REDIS_CLUSTER_NODES=n1\n")
            assert.are.same({ true, { { host = "n1", port = 6379 } } },
                            { r.cluster, r.cluster_nodes })
        end)

        it("take option > environment > .env", function()
            local path = dotenv "REDIS_CLUSTER_NODES=file\n"
            assert.are.equal("opt", redis_of({ cluster_nodes = "opt" },
                                             { REDIS_CLUSTER_NODES = "env" }, path)
                                    .cluster_nodes[1].host)
            assert.are.equal("env", redis_of(nil, { REDIS_CLUSTER_NODES = "env" }, path)
                                    .cluster_nodes[1].host)
        end)

        it("cluster = true without nodes seeds from host and port", function()
            local r = redis_of { cluster = true, host = "seed", port = 7000 }
            assert.are.same({ true, { { host = "seed", port = 7000 } } },
                            { r.cluster, r.cluster_nodes })
        end)

        it("cluster = true without nodes seeds from the URL's host and port", function()
            local r = redis_of({ cluster = true }, { REDIS_URL = "redis://:pw@seed:7000" })
            assert.are.same({ true, { { host = "seed", port = 7000 } }, "pw" },
                            { r.cluster, r.cluster_nodes, r.password })
        end)

        for _, word in ipairs { "yes", "true", "1", "on", "YES", "True" } do
            it(("REDIS_CLUSTER=%s turns Cluster on, seeding from REDIS_HOST and REDIS_PORT")
               :format(word), function()
                local r = redis_of(nil, { REDIS_CLUSTER = word, REDIS_HOST = "seed",
                                          REDIS_PORT = "7000" })
                assert.are.same({ true, { { host = "seed", port = 7000 } } },
                                { r.cluster, r.cluster_nodes })
            end)
        end

        for _, word in ipairs { "no", "false", "0", "off", "NO" } do
            it(("REDIS_CLUSTER=%s leaves Cluster off"):format(word), function()
                local r = redis_of(nil, { REDIS_CLUSTER = word })
                assert.are.same({}, { r.cluster, r.cluster_nodes })
            end)
        end

        it("REDIS_CLUSTER is read from .env", function()
            local r = redis_of(nil, nil, dotenv "REDIS_CLUSTER=yes\nREDIS_PORT=7000\n")
            assert.are.same({ true, { { host = "localhost", port = 7000 } } },
                            { r.cluster, r.cluster_nodes })
        end)

        it("cluster = false leaves Cluster off", function()
            local r = redis_of { cluster = false }
            assert.are.same({}, { r.cluster, r.cluster_nodes })
        end)

        it("a cluster setting above the nodes' level turns Cluster off", function()
            local r = redis_of({ cluster = false }, { REDIS_CLUSTER_NODES = "n1" })
            assert.are.same({}, { r.cluster, r.cluster_nodes })
            r = redis_of(nil, { REDIS_CLUSTER = "no" }, dotenv "REDIS_CLUSTER_NODES=n1\n")
            assert.are.same({}, { r.cluster, r.cluster_nodes })
        end)

        it("nodes at the cluster setting's level or above turn Cluster on", function()
            local r = redis_of(nil, { REDIS_CLUSTER = "no", REDIS_CLUSTER_NODES = "n1" })
            assert.is_true(r.cluster)
            r = redis_of({ cluster_nodes = "n1" }, { REDIS_CLUSTER = "no" })
            assert.is_true(r.cluster)
        end)

        it("keep the other fields as they are", function()
            local r = redis_of({ cluster_nodes = "n1", password = "data", tls = true },
                               { REDIS_USERNAME = "app", REDIS_POOL_MAX_CONNECTIONS = "4" })
            assert.are.same({ "app", "data", 0, 4, { verify = true } },
                            { r.username, r.password, r.db, r.pool_size, r.tls })
        end)
    end)

    describe("a redis+cluster:// URL", function()
        it("gives the nodes and the data nodes' credentials", function()
            local r = redis_of { url = "redis+cluster://app:s3cret@n1:7000,[::1],n3/0" }
            assert.are.same({ { host = "n1", port = 7000 }, { host = "::1", port = 6379 },
                              { host = "n3", port = 6379 } }, r.cluster_nodes)
            assert.are.same({ true, 0, "app", "s3cret" },
                            { r.cluster, r.db, r.username, r.password })
            assert.is_nil(r.tls)
        end)

        it("needs no db", function()
            local r = redis_of(nil, { REDIS_URL = "redis+cluster://:pw@n1:7000" })
            assert.are.same({ true, { { host = "n1", port = 7000 } }, 0, "pw" },
                            { r.cluster, r.cluster_nodes, r.db, r.password })
        end)

        it("turns TLS on as rediss+cluster://", function()
            local r = redis_of(nil, { REDIS_URL = "rediss+cluster://n1:7000,n2:7001/0" })
            assert.are.same({ true, { verify = true }, 2 },
                            { r.cluster, r.tls, #r.cluster_nodes })
        end)

        it("leaves TLS to the tls setting as redis+cluster://", function()
            local r = redis_of({ tls = true }, { REDIS_URL = "redis+cluster://n1" })
            assert.are.same({ true, { verify = true } }, { r.cluster, r.tls })
        end)

        it("gives way to options above its level", function()
            local r = redis_of({ cluster_nodes = { "o1" } },
                               { REDIS_URL = "redis+cluster://n1,n2" })
            assert.are.same({ true, { { host = "o1", port = 6379 } } },
                            { r.cluster, r.cluster_nodes })
            r = redis_of({ cluster = false }, { REDIS_URL = "redis+cluster://:pw@n1" })
            assert.are.same({ nil, nil, "pw" }, { r.cluster, r.cluster_nodes, r.password })
        end)

        it("overrides REDIS_CLUSTER_NODES and REDIS_CLUSTER at its level or below", function()
            local r = redis_of(nil, { REDIS_URL = "redis+cluster://n1", REDIS_CLUSTER = "no",
                                      REDIS_CLUSTER_NODES = "e1" })
            assert.are.same({ true, "n1" }, { r.cluster, r.cluster_nodes[1].host })
        end)

        it("overrides the Sentinel variables at its level or below", function()
            local r = redis_of(nil, { REDIS_URL = "redis+cluster://n1", REDIS_SENTINELS = "s1",
                                      REDIS_SENTINEL_MASTER = "m" })
            assert.are.same({ true }, { r.cluster, r.sentinels, r.sentinel_master })
        end)

        it("raises for a db other than 0, naming the URL", function()
            assert.are.equal("db in option url must be 0 (Redis Cluster has only database 0), "
                             .. "got '3'", redis_error { url = "redis+cluster://n1/3" })
            assert.are.equal("db in REDIS_URL must be 0 (Redis Cluster has only database 0), "
                             .. "got '1' (from environment)",
                             redis_error(nil, { REDIS_URL = "rediss+cluster://u:pw@n1,n2/1" }))
        end)

        it("raises for a db out of range as for any URL", function()
            assert.are.equal("db in option url must be an integer between 0 and 15, got '16'",
                             redis_error { url = "redis+cluster://n1/16" })
        end)

        it("raises for a bad address, naming the URL", function()
            assert.are.equal("cluster_nodes in REDIS_URL must be a list of host[:port] (an IPv6 "
                             .. "host in brackets, the port 1-65535, default 6379) addresses, "
                             .. "got 'n2:x' as address 2 (from environment)",
                             redis_error(nil, { REDIS_URL = "redis+cluster://n1,n2:x" }))
            assert.are.equal("cluster_nodes in option url must be a list of host[:port] (an "
                             .. "IPv6 host in brackets, the port 1-65535, default 6379) "
                             .. "addresses, got '' as address 1",
                             redis_error { url = "redis+cluster://u:pw@/0" })
        end)
    end)

    describe("a redis:// URL", function()
        it("names one server: it overrides REDIS_CLUSTER_NODES at its level or below",
           function()
            local r = redis_of(nil, { REDIS_URL = "redis://h", REDIS_CLUSTER_NODES = "n1" },
                               dotenv "REDIS_CLUSTER_NODES=n2\n")
            assert.are.same({ "h" }, { r.host, r.cluster, r.cluster_nodes })
        end)

        it("gives way to a cluster_nodes option", function()
            local r = redis_of({ cluster_nodes = "n1" }, { REDIS_URL = "redis://:pw@h" })
            assert.are.same({ true, "n1", "pw" },
                            { r.cluster, r.cluster_nodes[1].host, r.password })
        end)
    end)

    describe("for a malformed value", function()
        local ADDRESSES = "a list of host[:port] (an IPv6 host in brackets, the port 1-65535, "
                          .. "default 6379) addresses"
        local DB_0 = "must be 0 (Redis Cluster has only database 0), got "
        for _, case in ipairs {
            { { cluster = true, db = 2 }, nil, "option db " .. DB_0 .. "2" },
            { { cluster_nodes = "n1" }, { REDIS_DB = "2" },
              "REDIS_DB " .. DB_0 .. "'2' (from environment)" },
            { nil, { REDIS_CLUSTER = "yes", REDIS_URL = "redis://h/5" },
              "db in REDIS_URL " .. DB_0 .. "'5' (from environment)" },
            { { cluster = true, sentinels = "s1", sentinel_master = "m" }, nil,
              "option cluster turns Redis Cluster on and option sentinels lists sentinels: "
              .. "choose Cluster or Sentinel" },
            { nil, { REDIS_CLUSTER_NODES = "n1", REDIS_SENTINELS = "s1",
                     REDIS_SENTINEL_MASTER = "m" },
              "REDIS_CLUSTER_NODES (from environment) turns Redis Cluster on and "
              .. "REDIS_SENTINELS (from environment) lists sentinels: choose Cluster or Sentinel" },
            { { sentinels = "s1", sentinel_master = "m" },
              { REDIS_URL = "redis+cluster://n1" },
              "cluster in REDIS_URL (from environment) turns Redis Cluster on and option "
              .. "sentinels lists sentinels: choose Cluster or Sentinel" },
            { { cluster = true }, { REDIS_URL = "redis+sentinel://s1/m" },
              "option cluster turns Redis Cluster on and sentinels in REDIS_URL (from "
              .. "environment) lists sentinels: choose Cluster or Sentinel" },
            { { cluster = "yes" }, nil, "option cluster must be true or false, got 'yes'" },
            { nil, { REDIS_CLUSTER = "maybe" },
              "REDIS_CLUSTER must be one of yes/no, true/false, 1/0, on/off, got 'maybe' "
              .. "(from environment)" },
            { { cluster_nodes = {} }, nil,
              "option cluster_nodes must be a non-empty list of host[:port] (an IPv6 host in "
              .. "brackets, the port 1-65535, default 6379) addresses, or a string of them "
              .. "separated by commas, got table" },
            { { cluster_nodes = 7000 }, nil,
              "option cluster_nodes must be a non-empty list of host[:port] (an IPv6 host in "
              .. "brackets, the port 1-65535, default 6379) addresses, or a string of them "
              .. "separated by commas, got 7000" },
            { { cluster_nodes = { "n1", 2 } }, nil,
              "option cluster_nodes must be " .. ADDRESSES .. ", got number as address 2" },
            { { cluster_nodes = { "n1", x = "n2" } }, nil,
              "option cluster_nodes must be a list of host[:port] (an IPv6 host in brackets, "
              .. "the port 1-65535, default 6379) strings, got table" },
            { nil, { REDIS_CLUSTER_NODES = "n1,,n2" },
              "REDIS_CLUSTER_NODES must be " .. ADDRESSES .. ", got '' as address 2 "
              .. "(from environment)" },
            { nil, { REDIS_CLUSTER_NODES = "::1" },
              "REDIS_CLUSTER_NODES must be " .. ADDRESSES .. ", got '::1' as address 1 "
              .. "(from environment)" },
            { nil, { REDIS_CLUSTER_NODES = "n1:0" },
              "REDIS_CLUSTER_NODES must be " .. ADDRESSES .. ", got 'n1:0' as address 1 "
              .. "(from environment)" },
            { nil, { REDIS_CLUSTER_NODES = "n1:65536" },
              "REDIS_CLUSTER_NODES must be " .. ADDRESSES .. ", got 'n1:65536' as address 1 "
              .. "(from environment)" },
            { nil, { REDIS_CLUSTER_NODES = "n1:" },
              "REDIS_CLUSTER_NODES must be " .. ADDRESSES .. ", got 'n1:' as address 1 "
              .. "(from environment)" },
            { nil, { REDIS_CLUSTER_NODES = "n1 n2" },
              "REDIS_CLUSTER_NODES must be " .. ADDRESSES .. ", got 'n1 n2' as address 1 "
              .. "(from environment)" },
        } do
            it("raises at connect: " .. case[3], function()
                assert.are.equal(case[3], redis_error(case[1], case[2]))
            end)
        end

        it("names the .env file a malformed REDIS_CLUSTER_NODES came from", function()
            local path = dotenv "REDIS_CLUSTER_NODES=n1:abc\n"
            assert.are.equal("REDIS_CLUSTER_NODES must be " .. ADDRESSES .. ", got 'n1:abc' as "
                             .. "address 1 (from " .. path .. ")", redis_error(nil, nil, path))
        end)

        it("names the .env line REDIS_CLUSTER could not be read from", function()
            local path = dotenv "REDIS_CLUSTER='yes\n"
            assert.are.equal("REDIS_CLUSTER in " .. path .. ":1 could not be read: "
                             .. "unterminated quote", redis_error(nil, nil, path))
        end)

        it("does not check the Cluster settings in cache.new", function()
            assert.has_no.errors(function() cache.new { cluster = "x", cluster_nodes = 5 } end)
        end)
    end)

    it("reach connect: a manager with Cluster settings connects or falls back", function()
        local ok, err = pcall(function()
            local c = cache.new { cluster_nodes = { "127.0.0.1:1", "[::1]:1" },
                                  host = "127.0.0.1", port = 1, connect_timeout = 0.5,
                                  log_level = "off" }
            assert.is_false(c:connect())
            c:disconnect()
        end)
        assert(ok, err)
    end)
end)

describe("TLS and Sentinel passwords stay out of messages and fields", function()
    after_each(remove_tmpfiles)

    local SECRET = "hunter2"

    -- Raises when a string reachable from `t` (keys, values, metatables)
    -- contains `secret`.
    local function assert_no_secret(t, secret, path, seen)
        seen = seen or {}
        if type(t) == "string" then
            assert(not t:find(secret, 1, true), (path or "value") .. " shows the password: " .. t)
        elseif type(t) == "table" and not seen[t] then
            seen[t] = true
            for k, v in pairs(t) do
                assert_no_secret(k, secret, (path or "") .. "[key]", seen)
                assert_no_secret(v, secret, (path or "") .. "." .. tostring(k), seen)
            end
            assert_no_secret(getmetatable(t), secret, (path or "") .. "<mt>", seen)
        end
    end

    for _, case in ipairs {
        { "rediss://app:hunter2@h:1/2", "rediss://app:***@h:1/2" },
        { "rediss://:hunter2@h", "rediss://:***@h" },
        { "redis+sentinel://app:hunter2@s1:1,[::1]:2/m/3",
          "redis+sentinel://app:***@s1:1,[::1]:2/m/3" },
        { "redis+sentinel://:hunter2@s1/m", "redis+sentinel://:***@s1/m" },
        { "redis+sentinel://hunter2@s1/m", "redis+sentinel://***@s1/m" },
        { "redis+sentinel://s1,s2/m", "redis+sentinel://s1,s2/m" },
        { "redis+cluster://app:hunter2@n1:1,[::1]:2/0", "redis+cluster://app:***@n1:1,[::1]:2/0" },
        { "rediss+cluster://:hunter2@n1", "rediss+cluster://:***@n1" },
    } do
        it(("redacts %q as %q"):format(case[1], case[2]), function()
            assert.are.equal(case[2], config.redact_url(case[1]))
        end)
    end

    for _, url in ipairs {
        "rediss://u:hunter2@host:x", "rediss://u:hunter2@host/99", "redis+sentinel://u:hunter2@s1",
        "redis+sentinel://u:hunter2@s1:x/m", "redis+sentinel://u:hunter2@/m",
        "redis+sentinel://u:hunter2@s1/m/x", "redis+sentinel://u:hunter2%00@s1/m",
        "REDIS+SENTINEL://u:hunter2@s1/m", "rediss+sentinel://u:hunter2@s1/m",
        "redis+cluster://u:hunter2@n1:x", "rediss+cluster://u:hunter2@n1/3",
        "redis+cluster://u:hunter2@/0", "redis+cluster://u:hunter2@n1/x",
        "redis+cluster://u:hunter2%00@n1", "REDIS+CLUSTER://u:hunter2@n1",
    } do
        it(("keeps the password out of the error for REDIS_URL=%q"):format(url), function()
            local errs = {
                error_of(config.redis, config.resolve(nil, env { REDIS_URL = url }, NO_FILE)),
                error_of(config.redis, config.resolve({ url = url }, NO_ENV, NO_FILE)),
                error_of(config.redis, config.resolve(nil, NO_ENV,
                                                      dotenv("REDIS_URL='" .. url .. "'\n"))),
            }
            for i = 1, 3 do
                assert(errs[i], "no error")
                assert(not errs[i]:find(SECRET, 1, true), errs[i])
            end
        end)
    end

    for _, bad in ipairs { 424242, true, { "hunter2" } } do
        it(("does not show a sentinel_password option of type %s"):format(type(bad)), function()
            local err = error_of(config.redis, config.resolve(
                { sentinels = "s1", sentinel_master = "m", sentinel_password = bad },
                NO_ENV, NO_FILE))
            assert.are.equal("option sentinel_password must be a string, got " .. type(bad), err)
        end)
    end

    it("does not show a sentinel password with a NUL byte", function()
        local err = error_of(config.redis, config.resolve(nil, env {
            REDIS_SENTINELS = "s1", REDIS_SENTINEL_MASTER = "m",
            REDIS_SENTINEL_PASSWORD = "hunter2\0" }, NO_FILE))
        assert.are.equal("REDIS_SENTINEL_PASSWORD must not contain a NUL byte "
                         .. "(from environment)", err)
    end)

    it("keeps the sentinel password out of cfg.raw, from an option", function()
        local c = cache.new { sentinels = { "s1" }, sentinel_master = "m",
                              sentinel_password = SECRET }
        assert_no_secret(c, SECRET)
        assert.are.equal("***", c.cfg.raw.sentinel_password)
        assert.are.equal(SECRET, config.redis(c.cfg).sentinel_password)
    end)

    it("keeps the sentinel password out of cfg.raw, from the environment and .env", function()
        local path = dotenv "REDIS_SENTINEL_PASSWORD=hunter2\nREDIS_SENTINEL_MASTER=m\n"
        local c
        with_env({ REDIS_SENTINELS = "s1" }, function()
            c = cache.new()
        end)
        assert_no_secret(c, SECRET)
        local cfg = config.resolve(nil, env { REDIS_SENTINELS = "s1" }, path)
        assert_no_secret(cfg, SECRET)
        assert.are.equal(SECRET, config.redis(cfg).sentinel_password)
    end)

    it("keeps a rediss://, redis+sentinel:// or redis+cluster:// URL's password out of cfg.raw",
       function()
        for _, url in ipairs { "rediss://app:hunter2@h:1/3",
                               "redis+sentinel://app:hunter2@s1/m",
                               "rediss+cluster://app:hunter2@n1,n2/0" } do
            local c = cache.new { url = url }
            assert_no_secret(c, SECRET)
            assert.are.equal(SECRET, config.redis(c.cfg).password)
        end
    end)

    it("copies table options into cfg.raw: changing them later changes nothing", function()
        local sentinels, tls = { "s1" }, { server_name = "a" }
        local cfg = config.resolve({ sentinels = sentinels, sentinel_master = "m", tls = tls },
                                   NO_ENV, NO_FILE)
        sentinels[1], tls.server_name = "changed", "changed"
        local r = config.redis(cfg)
        assert.are.same({ "s1", "a", "s1" },
                        { r.sentinels[1].host, r.tls.server_name, cfg.raw.sentinels[1] })
        local nodes = { "n1" }
        cfg = config.resolve({ cluster_nodes = nodes }, NO_ENV, NO_FILE)
        nodes[1] = "changed"
        assert.are.same({ "n1", "n1" },
                        { config.redis(cfg).cluster_nodes[1].host, cfg.raw.cluster_nodes[1] })
    end)
end)
