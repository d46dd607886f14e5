-- cache/config.lua -- a manager's settings: explicit option > environment
-- variable > .env file in the working directory > default.
--
-- Settings of the memory store (ttl, namespace, limits, codec) are checked
-- when the manager is created; Redis settings when connect() uses them, so
-- a bad REDIS_PORT cannot break a script that never connects. Every error
-- names the setting and where its value came from, and none shows a
-- password: URLs are shown redacted, and the password is kept out of
-- every field a manager exposes (see secret_values).

local tonumber, tostring, type, error, pairs, ipairs, setmetatable =
    tonumber, tostring, type, error, pairs, ipairs, setmetatable
local floor, huge = math.floor, math.huge
local format_number = require("cache.util").format_number

local _M = {}

-- option name -> environment variable
local ENV = {
    url = "REDIS_URL", host = "REDIS_HOST", port = "REDIS_PORT",
    db = "REDIS_DB", username = "REDIS_USERNAME", password = "REDIS_PASSWORD",
    pool_size = "REDIS_POOL_MAX_CONNECTIONS", timeout = "REDIS_POOL_TIMEOUT",
    connect_timeout = "REDIS_CONNECT_TIMEOUT", command_timeout = "REDIS_COMMAND_TIMEOUT",
    journal_max_keys = "CACHE_JOURNAL_MAX_KEYS",
    default_ttl = "CACHE_DEFAULT_TTL", namespace = "CACHE_NAMESPACE",
    max_items = "CACHE_MAX_ITEMS", max_memory = "CACHE_MAX_MEMORY",
    max_value_bytes = "CACHE_MAX_VALUE_BYTES", codec = "CACHE_CODEC",
    log_level = "CACHE_LOG_LEVEL", exit_flush_timeout = "CACHE_EXIT_FLUSH_TIMEOUT",
    tls = "REDIS_TLS", tls_ca_file = "REDIS_TLS_CA_FILE", tls_cert_file = "REDIS_TLS_CERT_FILE",
    tls_key_file = "REDIS_TLS_KEY_FILE", tls_server_name = "REDIS_TLS_SERVER_NAME",
    tls_verify = "REDIS_TLS_VERIFY",
    sentinels = "REDIS_SENTINELS", sentinel_master = "REDIS_SENTINEL_MASTER",
    sentinel_username = "REDIS_SENTINEL_USERNAME", sentinel_password = "REDIS_SENTINEL_PASSWORD",
    cluster = "REDIS_CLUSTER", cluster_nodes = "REDIS_CLUSTER_NODES",
    near_max_items = "CACHE_NEAR_MAX_ITEMS", near_max_memory = "CACHE_NEAR_MAX_MEMORY",
}
_M.ENV = ENV

-- The fields of a `tls = { ... }` option, each a setting of its own
-- (tls_<field>) with its own variable: option > environment > .env >
-- default, field by field.
local TLS_FIELDS = { "ca_file", "cert_file", "key_file", "server_name", "verify" }
local TLS_FIELD = {}
for _, f in ipairs(TLS_FIELDS) do TLS_FIELD[f] = "tls_" .. f end

-- Settings that are not options of cache.new themselves: their option
-- form is a field of the tls table.
local NOT_OPTION = {}
for _, name in pairs(TLS_FIELD) do NOT_OPTION[name] = true end

-- Likewise the fields of `near = { max_items=, max_memory= }` (near_<field>).
-- `near` itself is an option with no variable: a table, true (the
-- defaults below) or false (off, whatever the environment says).
local NEAR_FIELDS = { "max_items", "max_memory" }
local NEAR_FIELD = {}
for _, f in ipairs(NEAR_FIELDS) do
    NEAR_FIELD[f] = "near_" .. f
    NOT_OPTION["near_" .. f] = true
end


-- Settings whose values are secrets: never shown, redacted in cfg.raw.
local SECRET = { password = true, sentinel_password = true }

_M.DEFAULTS = {
    host = "localhost", port = 6379, db = 0, pool_size = 10, timeout = 20,
    connect_timeout = 2, command_timeout = 1, journal_max_keys = 100000,
    default_ttl = 300, namespace = "", max_items = 100000,
    max_memory = 64 * 1024 * 1024, max_value_bytes = 512 * 1024 * 1024,
    codec = "msgpack", log_level = "warn", exit_flush_timeout = 2,
    tls = false, tls_verify = true, cluster = false,
    near_max_items = 10000, near_max_memory = 16 * 1024 * 1024,
}

-- The port of a Sentinel address, and of a Cluster node's, that gives none.
local SENTINEL_PORT = 26379
local CLUSTER_PORT = 6379

-- Upper bounds of the settings cache.core casts to size_t (and of the
-- Redis timeouts, which it casts to uint64_t milliseconds): a cast of an
-- out-of-range double is undefined behaviour. 2^53 is the largest integer
-- a Lua number holds exactly, and fits a 64-bit size_t; the journal bound
-- keeps its index a sane size; Redis refuses values over 512 MiB.
local MAX_COUNT = 2 ^ 53
local MAX_JOURNAL_KEYS = 100000000
local MAX_VALUE_BYTES = 512 * 1024 * 1024
local MAX_TIMEOUT = 86400           -- a day
local MAX_EXIT_FLUSH = 3600         -- an hour

-- .env ----------------------------------------------------------------------

-- .env files are shared with other tools (python-dotenv, docker compose,
-- shells), so this reads what python-dotenv reads, the same way; see
-- parse_dotenv. Lua patterns stand in for its regular expressions; a
-- [ \t\f\v] class for its "whitespace but not a line break".

-- Escapes inside quotes (python-dotenv's); any other \x is kept as it is.
local DQ_ESCAPES = { ["\\"] = "\\", ["'"] = "'", ['"'] = '"', a = "\a", b = "\b",
                     f = "\f", n = "\n", r = "\r", t = "\t", v = "\v" }

-- The position of the quote that closes the value opened by the quote
-- `q` at `open`, as python-dotenv's q((?:\\q|[^q])*)q finds it: the first
-- q after `open` that no backslash precedes; failing that (every later q
-- is escaped), the last q in the text; nil when there is none.
local function closing_quote(text, open, q)
    local last
    local i = text:find(q, open + 1, true)
    while i do
        if text:sub(i - 1, i - 1) ~= "\\" then
            return i
        end
        last = i
        i = text:find(q, i + 1, true)
    end
    return last
end

-- ${NAME} and ${NAME:-default} in a value, as python-dotenv expands them:
-- NAME's value from the environment (when set and not empty, as for
-- cachert's own settings), else from an earlier line of the file, else
-- the default, else "". $NAME without braces stays as it is.
local function expand(value, vars, getenv)
    if not value:find("${", 1, true) then return value end
    local out, i = {}, 1
    while true do
        local at = value:find("${", i, true)
        if not at then break end
        local name, e = value:match("^%${([^}:]*)}()", at)
        local default
        if not name then
            name, default, e = value:match("^%${([^}:]*):%-([^}]*)}()", at)
        end
        if name then
            out[#out + 1] = value:sub(i, at - 1)
            local v = getenv(name)
            if v == nil or v == "" then v = vars[name] end
            out[#out + 1] = v or default or ""
            i = e
        else
            out[#out + 1] = value:sub(i, at)
            i = at + 1
        end
    end
    out[#out + 1] = value:sub(i)
    return table.concat(out)
end

local HSPACE = "[ \t\f\v]*()"

-- One binding starting at `p` (leading blank lines skipped): returns
-- true, the position after it, its name (nil for a comment) and value
-- (nil for a name without "="), whether the value was single-quoted; or
-- false, the position where reading failed, the name if it was read, and
-- why.
local function binding(text, p)
    p = text:match("^export[ \t\f\v]+()", p) or p
    local c, name = text:sub(p, p), nil
    if c == "'" then
        name, p = text:match("^'([^']+)'()", p)
    elseif c ~= "#" then
        name, p = text:match("^([^=#%s]+)()", p)
    end
    if not p then
        return false, nil, nil, "expected NAME=value"
    end
    p = text:match("^" .. HSPACE, p)
    local value, single
    if text:sub(p, p) == "=" then
        p = text:match("^=" .. HSPACE, p)
        c = text:sub(p, p)
        if c == "'" or c == '"' then
            local close = closing_quote(text, p, c)
            if not close then
                return false, p, name, "unterminated quote"
            end
            value = text:sub(p + 1, close - 1)
            if c == '"' then
                value = value:gsub("\\([\\'\"abfnrtv])", DQ_ESCAPES)
            else
                value = value:gsub("\\([\\'])", "%1")
                single = true
            end
            p = close + 1
        else
            -- unquoted: up to the line break; whitespace then # starts a comment
            local part
            part, p = text:match("^([^\n]*)()", p)
            value = part:gsub("%s+#.*", ""):gsub("%s+$", "")
        end
    end
    p = text:match("^[ \t\f\v]*#[^\n]*()", p) or p
    local eol = text:match("^[ \t\f\v]*\n()", p) or text:match("^[ \t\f\v]*()$", p)
    if not eol then
        return false, p, name, "unexpected text after the value"
    end
    return true, eol, name, value, single
end

--- Parses .env text as python-dotenv does: NAME=value bindings, `#`
-- comments (whole lines, and after a value following whitespace), an
-- optional `export `, spaces around "=", values unquoted, in single quotes
-- (\' and \\ escapes) or double quotes (\n, \t, \", \\ ... escapes), both
-- of which may span lines; a name without "=" (`export PATH`) is unset;
-- ${NAME} and ${NAME:-default} expand in unquoted and double-quoted values
-- (see expand; `getenv` defaults to os.getenv). Beyond python-dotenv, a
-- UTF-8 byte order mark is skipped. CRLF and CR line breaks read as LF.
--
-- Never raises. Returns the map name -> value; the list of lines it could
-- not read ({ name = (nil when not read), line =, where = "file:line",
-- reason = }), each of which it skipped to its end as python-dotenv does;
-- and the map name -> that entry for the names whose last binding is one
-- of them.
function _M.parse_dotenv(text, filename, getenv)
    getenv = getenv or os.getenv
    if text:sub(1, 3) == "\239\187\191" then text = text:sub(4) end
    text = text:gsub("\r\n?", "\n")
    local vars, problems, broken = {}, {}, {}
    local p, line = 1, 1
    local function move(to)             -- to `to`, counting line breaks
        local _, n = text:sub(p, to - 1):gsub("\n", "")
        p, line = to, line + n
    end
    while true do
        move(text:match("^%s*()", p))
        if p > #text then break end
        local at_line = line
        local ok, to, name, value, single = binding(text, p)
        if ok then
            if name then
                if value and not single then value = expand(value, vars, getenv) end
                vars[name], broken[name] = value, nil
            end
            move(to)
        else
            local problem = { name = name, line = at_line, reason = value,
                              where = filename .. ":" .. at_line }
            problems[#problems + 1] = problem
            if name then vars[name], broken[name] = nil, problem end
            if to then move(to) end
            move(text:match("^[^\n]*\n?()", p))
        end
    end
    return vars, problems, broken
end

-- The lines of a .env file that no cachert variable is on, and could not
-- be read, have been reported (once each per process): where .. reason.
local warned = {}

--- Reports a problem that does not stop anything: the one way out for
-- cachert's warnings from this module. The cache module points it at its
-- logger (cache.on_log).
function _M.warn(msg)
    io.stderr:write("cachert: ", msg, "\n")
end

local function warn(msg)
    _M.warn(msg)
end

-- The variables cachert reads (filled in below, from ENV).
local OURS = {}
for _, var in pairs(ENV) do OURS[var] = true end

local function load_dotenv(path, getenv)
    local f = io.open(path, "rb")
    if not f then return {}, {} end
    local text = f:read("*a")
    f:close()
    local vars, problems, broken = _M.parse_dotenv(text, path, getenv)
    for _, problem in ipairs(problems) do
        -- A line of another tool: that tool's business, so one warning at
        -- most. A line of cachert's own raises when its value is used.
        local key = problem.where .. "\0" .. problem.reason .. "\0" .. (problem.name or "")
        if not OURS[problem.name] and not warned[key] then
            warned[key] = true
            warn(("%s: ignored %s, which could not be read (%s)"):format(
                problem.where, problem.name or "a line", problem.reason))
        end
    end
    return vars, broken
end

-- Values --------------------------------------------------------------------

--- A URL as messages and readable fields show it: whatever stands where
-- a password can (before the last "@", after the scheme and the user)
-- replaced by "***": "redis://user:***@host:6379/0". Works on malformed
-- URLs too ("REDIS://:***@host", " redis://:***@h", "user:***@h").
function _M.redact_url(url)
    local at = url:match("^.*()@")
    if not at then return url end
    local scheme = url:sub(1, at - 1):match("^%s*%a[%w+.-]*:/*") or ""
    local user = url:sub(#scheme + 1, at - 1):match("^([^:]*):")
    return scheme .. (user and user .. ":***" or "***") .. url:sub(at)
end
local redact_url = _M.redact_url

-- The name of a setting in a message: the option, the variable, or the
-- part of the URL it came from.
local function describe(name, src)
    if src.in_url then
        return name .. " in " .. (src.kind == "option" and "option url" or ENV.url)
    end
    if src.kind == "option" then
        return "option " .. (NOT_OPTION[name] and name:gsub("^tls_", "tls."):gsub("^near_", "near.")
                             or name)
    end
    return ENV[name] or name
end

local function from(src)
    return src.kind == "option" and "" or (" (from " .. src.kind .. ")")
end

-- Raises "<setting> must be <msg>, got <value> (from <source>)". A
-- password's value is never shown, only its type (a table's too).
local function fail(name, src, msg, value)
    local got
    if SECRET[name] or type(value) == "table" then
        got = type(value)
    elseif name == "url" and type(value) == "string" then
        got = "'" .. redact_url(value) .. "'"
    elseif type(value) == "string" then
        got = "'" .. value .. "'"
    else
        got = tostring(value)
    end
    error(("%s must be %s, got %s%s"):format(describe(name, src), msg, got, from(src)), 0)
end

-- 2^53 is where doubles stop holding every integer: a longer decimal
-- string can round down onto a bound (9007199254740993 reads as 2^53).
local EXACT = 2 ^ 53

-- The number a string writes in plain decimal notation, or nil: digits,
-- with a fraction when `fraction` is true ("0.25", ".5", "2."); no sign,
-- exponent, hexadecimal, "inf", "nan" or surrounding blanks (tonumber
-- takes all of these). A value past 2^53 that a double cannot hold exactly
-- comes back as infinity, so it fails any range check.
local function decimal(s, fraction)
    local int, frac = s:match("^(%d*)%.?(%d*)$")
    if not int or (int == "" and frac == "") or (not fraction and s:find(".", 1, true)) then
        return nil
    end
    local n = tonumber(s)
    if n >= EXACT and (frac:find("[1-9]") or int:gsub("^0+", "") ~= "9007199254740992") then
        return huge
    end
    return n
end

-- A setting's numeric value: a Lua number as it is, a string read by
-- decimal(); nil for anything else.
local function to_number(v, fraction)
    if type(v) == "number" then return v end
    if type(v) == "string" then return decimal(v, fraction) end
    return nil
end

local function integer(lo, hi)
    local msg = ("an integer between %s and %s")
        :format(format_number(lo), format_number(hi))
    return function(name, src, v)
        local n = to_number(v, false)
        -- (a NaN fails n == floor(n))
        if not n or n ~= floor(n) or n < lo or n > hi then fail(name, src, msg, v) end
        return n
    end
end

-- Seconds >= 0 (> 0 when `min_exclusive`), finite, at most `max` if given.
-- With `timeout`, a positive value below a millisecond becomes 0.001:
-- cache.core counts timeouts in whole milliseconds (truncating), and 0 ms
-- there means no deadline at all, so 0.0004 would wait forever.
local function seconds(min_exclusive, max, timeout)
    local msg = min_exclusive and "a number of seconds > 0" or "a number of seconds >= 0"
    if max then
        msg = msg .. " and <= " .. max
    end
    max = max or huge
    return function(name, src, v)
        local n = to_number(v, true)
        if not n or n ~= n or n >= huge or n > max or (min_exclusive and n <= 0) or n < 0 then
            fail(name, src, msg, v)
        end
        if timeout and n > 0 and n < 0.001 then
            return 0.001
        end
        return n
    end
end

local function str(name, src, v)
    if type(v) ~= "string" then fail(name, src, "a string", v) end
    return v
end

-- A string cache.core hands to C as a C string (host, username,
-- password): a NUL byte would cut it short. The message never shows the
-- value, which may be a password.
local function cstring(name, src, v)
    str(name, src, v)
    if v:find("\0", 1, true) then
        error(describe(name, src) .. " must not contain a NUL byte" .. from(src), 0)
    end
    return v
end

local UNITS = { b = 1, k = 1024, kb = 1024, m = 1024 ^ 2, mb = 1024 ^ 2,
                g = 1024 ^ 3, gb = 1024 ^ 3 }

--- Parses a byte size: a whole number of bytes (a Lua number or decimal
-- digits), or a decimal number with a unit such as "256mb", "1.5gb",
-- "512kb" (powers of 1024, case-insensitive), rounded up to whole bytes.
-- Returns nil for anything else (a sign, an exponent, hexadecimal, a
-- fraction of a byte); a size past 2^53 bytes comes back as infinity.
function _M.parse_bytes(v)
    if type(v) == "number" then
        return (v >= 0 and v == floor(v)) and v or nil
    end
    if type(v) ~= "string" then return nil end
    local num, unit = v:lower():match("^([%d.]+)%s*(%a*)$")
    local mult = UNITS[unit == "" and "b" or unit]
    if not num or not mult then return nil end
    local n = decimal(num, mult > 1)
    if not n then return nil end
    n = n * mult
    if n >= EXACT and num:find("%.%d*[1-9]") then
        return huge         -- a fraction past 2^53 bytes: not exact
    end
    return math.ceil(n)
end

-- A byte size between lo and hi; `hi_text` writes hi with a unit.
local function bytes(lo, hi, hi_text)
    local range = ("a byte size between %s and %s"):format(format_number(lo), hi_text)
    return function(name, src, v)
        local n = _M.parse_bytes(v)
        if not n then fail(name, src, "a byte size such as 1048576 or '256mb'", v) end
        if n < lo or n > hi then fail(name, src, range, v) end
        return n
    end
end

local function codec(name, src, v)
    if v ~= "msgpack" then fail(name, src, "'msgpack'", v) end
    return v
end

-- The log levels, by severity as in src/log.h: a manager keeps the
-- messages whose level is at most its own.
local LOG_LEVELS = { off = 0, error = 1, warn = 2, info = 3, debug = 4 }
_M.LOG_LEVELS = LOG_LEVELS

-- One of LOG_LEVELS, case-insensitive; returned in lower case.
local function log_level(name, src, v)
    local level = type(v) == "string" and v:lower()
    if not LOG_LEVELS[level] then
        fail(name, src, "one of 'error', 'warn', 'info', 'debug', 'off'", v)
    end
    return level
end

-- TLS, Sentinel and Cluster ------------------------------------------------

local BOOLEAN_WORDS = { yes = true, ["true"] = true, ["1"] = true, on = true,
                        no = false, ["false"] = false, ["0"] = false, off = false }
local BOOLEAN_MSG = "one of yes/no, true/false, 1/0, on/off"

-- A boolean: a Lua boolean from an option; from the environment or .env
-- one of BOOLEAN_WORDS, case-insensitive.
local function boolean(name, src, v)
    if type(v) == "boolean" then return v end       -- an option, a default
    if src.kind == "option" then fail(name, src, "true or false", v) end
    local b = type(v) == "string" and BOOLEAN_WORDS[v:lower()]
    if b == nil then fail(name, src, BOOLEAN_MSG, v) end
    return b
end

-- `tls`: true/false or a table (which means on) as an option; a boolean
-- word from the environment or .env.
local function tls(name, src, v)
    if src.kind == "option" and type(v) == "table" then return true end
    if src.kind == "option" and type(v) ~= "boolean" then
        fail(name, src, "true, false or a table { ca_file=, cert_file=, key_file=, "
             .. "server_name=, verify= }", v)
    end
    return boolean(name, src, v)
end

-- A non-empty string handed to C (a file name, a server name, a master
-- name): no NUL byte.
local function name_string(name, src, v)
    if type(v) ~= "string" or v == "" then fail(name, src, "a non-empty string", v) end
    return cstring(name, src, v)
end

-- A file cache.core will read (a CA bundle, a certificate, a key): it
-- must open here, so the error names the setting rather than OpenSSL's.
local function readable_file(name, src, v)
    name_string(name, src, v)
    local f, err = io.open(v, "rb")
    if not f then
        if err:sub(1, #v + 2) == v .. ": " then err = err:sub(#v + 3) end
        error(("%s must name a readable file, got '%s'%s: %s")
              :format(describe(name, src), v, from(src), err), 0)
    end
    f:close()
    return v
end

-- What an address must be, as errors say; `port` is the default port.
local function address_msg(port)
    return "host[:port] (an IPv6 host in brackets, the port 1-65535, default "
           .. port .. ")"
end

-- "host", "host:port", "[v6]", "[v6]:port" -> host, port (`default_port`
-- when it gives none); nil when malformed.
local function parse_address(s, default_port)
    local host, port = s:match("^%[([^%]]+)%]:?(%d*)$")
    if not host then
        host, port = s:match("^([^:%[%]]+):?(%d*)$")
    end
    if not host or host:find("[%s,/@%z]") or s:sub(-1) == ":" then return nil end
    if port == "" then return host, default_port end
    local n = decimal(port, false)
    if not n or n < 1 or n > 65535 then return nil end
    return host, n
end

-- A list of addresses whose port defaults to `default_port` (`sentinels`,
-- `cluster_nodes`): "host[:port]" strings (an option), or those separated
-- by commas (an option, a variable, a redis+sentinel:// or
-- redis+cluster:// URL); blanks around an address are ignored. The checker
-- returns { {host=, port=}, ... }.
local function addresses(default_port)
    local msg = address_msg(default_port)
    return function(name, src, v)
        local list = {}
        if type(v) == "string" then
            for part in (v .. ","):gmatch("([^,]*),") do
                list[#list + 1] = part:match("^%s*(.-)%s*$")
            end
        elseif type(v) == "table" and src.kind == "option" then
            for i = 1, #v do list[i] = v[i] end
            for k in pairs(v) do
                if type(k) ~= "number" or not list[k] then
                    fail(name, src, "a list of " .. msg .. " strings", v)
                end
            end
        end
        if #list == 0 then
            fail(name, src, "a non-empty list of " .. msg .. " addresses, "
                 .. "or a string of them separated by commas", v)
        end
        local out = {}
        for i, a in ipairs(list) do
            local host, port
            if type(a) == "string" then host, port = parse_address(a, default_port) end
            if not host then
                local got = type(a) == "string" and ("'" .. a .. "'") or type(a)
                error(("%s must be a list of %s addresses, got %s as address %d%s")
                      :format(describe(name, src), msg, got, i, from(src)), 0)
            end
            out[i] = { host = host, port = port }
        end
        return out
    end
end

local CHECK = {
    host = cstring, username = cstring, password = cstring, url = str, namespace = str,
    tls = tls, tls_ca_file = readable_file, tls_cert_file = readable_file,
    tls_key_file = readable_file, tls_server_name = name_string, tls_verify = boolean,
    sentinels = addresses(SENTINEL_PORT), sentinel_master = name_string,
    sentinel_username = cstring, sentinel_password = cstring,
    cluster = boolean, cluster_nodes = addresses(CLUSTER_PORT),
    port = integer(1, 65535), db = integer(0, 15),
    pool_size = integer(1, 10000), timeout = seconds(true, MAX_TIMEOUT, true),
    default_ttl = seconds(false), max_items = integer(0, MAX_COUNT),
    max_memory = bytes(0, MAX_COUNT, format_number(MAX_COUNT)),
    max_value_bytes = bytes(1, MAX_VALUE_BYTES, "536870912 (512mb)"),
    codec = codec, command_timeout = seconds(true, MAX_TIMEOUT, true),
    connect_timeout = seconds(true, MAX_TIMEOUT, true),
    journal_max_keys = integer(1, MAX_JOURNAL_KEYS),
    log_level = log_level, exit_flush_timeout = seconds(false, MAX_EXIT_FLUSH, true),
    near_max_items = integer(0, MAX_COUNT),
    near_max_memory = bytes(0, MAX_COUNT, format_number(MAX_COUNT)),
}

local LOCAL = { default_ttl = true, namespace = true, max_items = true,
                max_memory = true, max_value_bytes = true, codec = true,
                journal_max_keys = true, log_level = true, exit_flush_timeout = true,
                near_max_items = true, near_max_memory = true }

-- TTLs --------------------------------------------------------------------

-- The longest TTL cache.core accepts (~285,000 years); longer finite TTLs
-- are cut to it.
local MAX_TTL_MS = 9e15 - 1

--- Seconds -> milliseconds for a TTL argument: any positive TTL lasts at
-- least 1 ms, 0 means no expiry. Returns nil and the message for a TTL
-- that is not a finite number >= 0; callers raise it at their level.
function _M.ttl_ms(ttl)
    if type(ttl) ~= "number" then
        return nil, "ttl must be a number, got " .. type(ttl)
    elseif ttl ~= ttl then
        return nil, "ttl must be a number, got nan"
    elseif ttl < 0 then
        return nil, "ttl must be >= 0"
    elseif ttl == huge then
        return nil, "ttl must be finite (use 0 for no expiry)"
    end
    local ms = math.ceil(ttl * 1000)
    return ms < MAX_TTL_MS and ms or MAX_TTL_MS
end

-- Checks a setting's value; raises for a .env line that held it and could
-- not be read, naming the variable and the line (never the value).
local function check(name, src, v)
    if src.broken then
        error(("%s in %s could not be read: %s"):format(ENV[name], src.broken.where,
                                                         src.broken.reason), 0)
    end
    return CHECK[name](name, src, v)
end

-- Resolution ----------------------------------------------------------------

-- cfg -> its values as given, the password and the full URL included.
-- cfg.raw holds a copy with both redacted, so no field reachable from a
-- manager holds a password; only config.redis(cfg) (for connect) reads
-- them from here. Weak keys: an entry goes with its cfg.
local secret_values = setmetatable({}, { __mode = "k" })

local function copy(t)
    local c = {}
    for k, v in pairs(t) do c[k] = v end
    return c
end

--- Resolves every setting for a manager. `opts` are cache.new's options.
-- Returns the manager's cfg: the checked memory-store and process
-- settings (default_ttl, namespace, max_items, max_memory,
-- max_value_bytes, codec, journal_max_keys, log_level in lower case,
-- exit_flush_timeout in seconds), `sources` (where each value came from)
-- and `raw` (the values before checking, the passwords shown as "***" and
-- the URL as redact_url writes it; the fields of a tls table as
-- tls_ca_file, ...). Raises on an unknown option (or field of the tls
-- option) or a malformed memory-store setting. `getenv` and `dotenv_path`
-- can be replaced for tests.
function _M.resolve(opts, getenv, dotenv_path)
    opts = opts or {}
    if type(opts) ~= "table" then
        error("options must be a table", 0)
    end
    for k in pairs(opts) do
        if (not ENV[k] or NOT_OPTION[k]) and k ~= "near" then
            error("unknown option '" .. tostring(k) .. "'", 0)
        end
    end
    local near_opt = opts.near
    if near_opt ~= nil and type(near_opt) ~= "table" and type(near_opt) ~= "boolean" then
        error("option near must be a table { max_items=, max_memory= }, true or false, got "
              .. type(near_opt), 0)
    end
    if type(near_opt) == "table" then
        for k in pairs(near_opt) do
            if not NEAR_FIELD[k] then
                error(("unknown field '%s' in option near (known: %s)")
                      :format(tostring(k), table.concat(NEAR_FIELDS, ", ")), 0)
            end
        end
    end
    local tls_opt = type(opts.tls) == "table" and opts.tls or {}
    for k in pairs(tls_opt) do
        if not TLS_FIELD[k] then
            error(("unknown field '%s' in option tls (known: %s)")
                  :format(tostring(k), table.concat(TLS_FIELDS, ", ")), 0)
        end
    end
    getenv = getenv or os.getenv
    local path = dotenv_path or ".env"
    local dotenv, broken = load_dotenv(path, getenv)
    local values, sources = {}, {}
    for name, var in pairs(ENV) do
        -- an empty environment or .env value counts as unset
        local v, src
        if NEAR_FIELD[name:sub(6)] and name:sub(1, 5) == "near_" then
            v, src = type(near_opt) == "table" and near_opt[name:sub(6)] or nil,
                     { kind = "option" }

        elseif NOT_OPTION[name] then
            v, src = tls_opt[name:sub(5)], { kind = "option" }
        else
            v, src = opts[name], { kind = "option" }
        end
        if v == nil then
            v, src = getenv(var), { kind = "environment" }
            if v == nil or v == "" then
                -- a line of .env that could not be read: no value, and
                -- an error when the setting is checked
                v, src = dotenv[var], { kind = path, broken = broken[var] }
                if v == "" then v = nil end
            end
        end
        if v == nil and not src.broken then
            v, src = _M.DEFAULTS[name], { kind = "default" }
        end
        -- a table option is copied: changing it later changes nothing
        if type(v) == "table" then v = copy(v) end
        values[name], sources[name] = v, src
    end
    local raw = {}
    for name, v in pairs(values) do
        raw[name] = type(v) == "table" and copy(v) or v
    end
    for name in pairs(SECRET) do
        if raw[name] ~= nil then raw[name] = "***" end
    end
    if type(raw.url) == "string" then raw.url = redact_url(raw.url) end
    local cfg = { sources = sources, raw = raw }
    secret_values[cfg] = values
    for name in pairs(LOCAL) do
        cfg[name] = check(name, sources[name], values[name])
    end
    -- The near cache is on when asked for (the option, or either variable)
    -- with both bounds above 0; `near = false` turns it off whatever the
    -- environment says.
    local asked = near_opt
    if near_opt == nil then
        asked = sources.near_max_items.kind ~= "default"
            or sources.near_max_memory.kind ~= "default"
    end
    cfg.near = asked and cfg.near_max_items > 0 and cfg.near_max_memory > 0 or false
    return cfg
end

-- "%40" -> "@": user and password in a URL are percent-encoded.
local function unescape(s)
    return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local URL_FORMS = "a redis[s]://[user:password@]host[:port][/db], "
    .. "redis+sentinel://[user:password@]host[:port][,host[:port]...]/master[/db] or "
    .. "redis[s]+cluster://[user:password@]host[:port][,host[:port]...][/0] URL"

local SCHEMES = { redis = true, rediss = true, ["redis+sentinel"] = true,
                  ["redis+cluster"] = true, ["rediss+cluster"] = true }

-- The parts of a URL, as strings: host, port, db, username, password;
-- tls = true for rediss:// and rediss+cluster://; sentinels (the
-- addresses, as written) and sentinel_master for redis+sentinel://, whose
-- user and password are the data nodes' (as in redis://); cluster = true
-- and cluster_nodes (the addresses, as written) for redis[s]+cluster://.
local function parse_url(url, src)
    local scheme, rest = url:match("^([%l+]+)://(.*)$")
    if not SCHEMES[scheme] then
        fail("url", src, URL_FORMS, url)
    end
    local out = { tls = (scheme == "rediss" or scheme == "rediss+cluster") or nil }
    local auth, hostpart = rest:match("^(.*)@([^@]*)$")
    if auth then
        local user, pass = auth:match("^([^:]*):(.*)$")
        if user then
            out.username = user ~= "" and unescape(user) or nil
            out.password = unescape(pass)
        else
            out.password = unescape(auth)
        end
    else
        hostpart = rest
    end
    local hostport, db = hostpart:match("^([^/]*)/?(.*)$")
    if scheme == "redis+sentinel" then
        local master
        master, db = db:match("^([^/]*)/?(.*)$")
        if master == "" then
            error(("%s must name the master (redis+sentinel://...host[:port]/master[/db]), "
                   .. "got '%s'%s"):format(describe("url", src), redact_url(url), from(src)), 0)
        end
        out.sentinels = hostport
        out.sentinel_master = unescape(master)
        out.db = db ~= "" and db or nil
        return out
    elseif scheme == "redis+cluster" or scheme == "rediss+cluster" then
        out.cluster = true
        out.cluster_nodes = hostport
        out.db = db ~= "" and db or nil
        return out
    end
    local host, port = hostport:match("^%[(.+)%]:?(%d*)$")
    if not host then
        host, port = hostport:match("^([^:]*):?(.*)$")
    end
    out.host = host ~= "" and host or nil
    out.port = port ~= "" and port or nil
    out.db = db ~= "" and db or nil
    return out
end

-- Precedence of a value's source: option > environment > .env > default.
local function rank(src)
    return src.kind == "option" and 4 or src.kind == "environment" and 3
        or src.kind == "default" and 1 or 2
end

-- Settings a URL carries: a part it leaves out takes the default. (TLS and
-- Cluster are not among them: rediss:// and redis[s]+cluster:// turn them
-- on, redis:// leaves them to `tls` and `cluster`.)
local URL_PARTS = { "host", "port", "db", "username", "password",
                    "sentinels", "sentinel_master", "cluster_nodes" }

local REDIS_SETTINGS = { "host", "port", "db", "username", "password", "pool_size",
                         "timeout", "connect_timeout", "command_timeout" }

-- The TLS table for cache.core, or nil when TLS is off. `srcs` maps each
-- setting to its source; `quiet` keeps warnings back.
local function tls_settings(values, srcs, quiet)
    local on = srcs.tls.in_url        -- rediss://
    if not on and (values.tls ~= nil or srcs.tls.broken) then
        on = check("tls", srcs.tls, values.tls)
    end
    if not on then
        -- the TLS fields apply to a TLS connection only; one given while
        -- nothing turned TLS on is likely a mistake worth a word
        if srcs.tls.kind == "default" and not quiet then
            local given = {}
            for _, f in ipairs(TLS_FIELDS) do
                local src = srcs[TLS_FIELD[f]]
                if src.kind ~= "default" then
                    given[#given + 1] = describe(TLS_FIELD[f], src) .. from(src)
                end
            end
            if #given > 0 then
                warn(("TLS is off (turn it on with a rediss:// URL, the tls option or "
                      .. "REDIS_TLS=yes): ignoring %s"):format(table.concat(given, ", ")))
            end
        end
        return nil
    end
    local t = {}
    for _, f in ipairs(TLS_FIELDS) do
        local name = TLS_FIELD[f]
        if values[name] ~= nil or srcs[name].broken then
            t[f] = check(name, srcs[name], values[name])
        end
    end
    for _, pair in ipairs { { "cert_file", "key_file", "a key file" },
                            { "key_file", "cert_file", "a certificate file" } } do
        local has, lacks = TLS_FIELD[pair[1]], TLS_FIELD[pair[2]]
        if t[pair[1]] and not t[pair[2]] then
            error(("%s%s is set without %s (option tls.%s or %s): a client "
                   .. "certificate needs both"):format(describe(has, srcs[has]),
                  from(srcs[has]), pair[3], pair[2], ENV[lacks]), 0)
        end
    end
    if not t.verify and not quiet then
        local src = srcs.tls_verify
        local setting = src.kind == "option" and "option tls.verify = false"
            or ("%s=%s, from %s"):format(ENV.tls_verify, values.tls_verify, src.kind)
        warn(("TLS certificate verification is off (%s): the connection can be "
              .. "intercepted"):format(setting))
    end
    return t
end

--- Checks and returns the Redis settings (called by connect()): the table
-- handed to cache.core.connect, with host, port, db, username, password,
-- pool_size, connect_timeout (seconds for one connection attempt, the
-- handshake included), command_timeout (seconds) and timeout
-- (REDIS_POOL_TIMEOUT, the seed's wait for a free pool connection: kept
-- and checked for compatibility; cachert's pool never makes a caller wait
-- for a connection, so it bounds nothing); tls (nil when plain, else
-- { ca_file=, cert_file=, key_file=, server_name= (strings or nil),
-- verify = boolean }); sentinels (nil, or an array of { host=, port= }),
-- sentinel_master, sentinel_username, sentinel_password (strings; nil
-- without Sentinel); cluster (true with Redis Cluster, else nil) and
-- cluster_nodes (with Cluster the seed nodes, an array of { host=, port= }:
-- those of cluster_nodes or a redis[s]+cluster:// URL, else the one of
-- host and port; nil without Cluster). Raises a clear error naming the
-- variable and its source for a malformed value, for Cluster with a db
-- other than 0 and for Cluster together with Sentinel. Warns (config.warn)
-- when TLS verification is off, unless `quiet` (a check that does not
-- connect).
function _M.redis(cfg, quiet)
    local values, sources = secret_values[cfg] or cfg.raw, cfg.sources
    local r, v = {}, {}
    for name, x in pairs(values) do v[name] = x end
    local srcs = setmetatable({}, { __index = sources })
    if values.url ~= nil or sources.url.broken then
        -- The URL overrides the settings it can carry (a part it leaves out
        -- takes the default), except one given at a higher level than the
        -- URL itself: an explicit port option beats a REDIS_URL from the
        -- environment, as options beat variables. rediss:// turns TLS on
        -- the same way; redis:// leaves TLS to the tls setting.
        local src = sources.url
        check("url", src, values.url)
        local parts = parse_url(values.url, src)
        local in_url = { kind = src.kind, in_url = true }
        for _, name in ipairs(URL_PARTS) do
            if rank(sources[name]) <= rank(src) then
                v[name], srcs[name] = parts[name], in_url
                if parts[name] == nil then
                    v[name], srcs[name] = _M.DEFAULTS[name], { kind = "default" }
                end
            end
        end
        for _, name in ipairs { "tls", "cluster" } do
            if parts[name] and rank(sources[name]) <= rank(src) then
                v[name], srcs[name] = true, in_url
            end
        end
    end
    for _, name in ipairs(REDIS_SETTINGS) do
        if v[name] ~= nil or srcs[name].broken then
            r[name] = check(name, srcs[name], v[name])
        end
    end
    r.tls = tls_settings(v, srcs, quiet)
    local has_sentinels = v.sentinels ~= nil or srcs.sentinels.broken
    -- Cluster: on with `cluster`, or with nodes (cluster_nodes, a
    -- redis[s]+cluster:// URL) unless a `cluster` setting above their
    -- level turns it off, as `tls = false` beats rediss://
    local has_nodes = v.cluster_nodes ~= nil or srcs.cluster_nodes.broken
    local cluster = check("cluster", srcs.cluster, v.cluster) and "cluster"
    if not cluster and has_nodes and rank(srcs.cluster_nodes) >= rank(srcs.cluster) then
        cluster = "cluster_nodes"
    end
    if cluster then
        if has_sentinels then
            local src, s_src = srcs[cluster], srcs.sentinels
            error(("%s%s turns Redis Cluster on and %s%s lists sentinels: choose Cluster "
                   .. "or Sentinel"):format(describe(cluster, src), from(src),
                  describe("sentinels", s_src), from(s_src)), 0)
        end
        r.cluster = true
        if has_nodes then
            r.cluster_nodes = check("cluster_nodes", srcs.cluster_nodes, v.cluster_nodes)
        else
            r.cluster_nodes = { { host = r.host, port = r.port } }
        end
        if r.db ~= 0 then
            fail("db", srcs.db, "0 (Redis Cluster has only database 0)", v.db)
        end
    end
    -- Sentinel: the addresses and the master's name go together
    local has_master = v.sentinel_master ~= nil or srcs.sentinel_master.broken
    if has_sentinels and not has_master then
        local src = srcs.sentinels
        error(("%s%s lists sentinels but no master name is set (option sentinel_master "
               .. "or %s)"):format(describe("sentinels", src), from(src),
              ENV.sentinel_master), 0)
    elseif has_master and not has_sentinels then
        local src = srcs.sentinel_master
        error(("%s%s is set but no sentinels are (option sentinels or %s, or a "
               .. "redis+sentinel:// URL)"):format(describe("sentinel_master", src),
              from(src), ENV.sentinels), 0)
    elseif has_sentinels then
        for _, name in ipairs { "sentinels", "sentinel_master", "sentinel_username",
                                "sentinel_password" } do
            if v[name] ~= nil or srcs[name].broken then
                r[name] = check(name, srcs[name], v[name])
            end
        end
    end
    return r
end

return _M
