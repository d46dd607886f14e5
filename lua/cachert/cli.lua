-- cachert.cli -- the inspection commands of the cachert executable:
-- `cachert get KEY`, `keys PATTERN`, `clear PATTERN`, `stats`, `help`.
--
-- main.c runs main(command, args...) as the main task when the first
-- argument that is not an option names a command. The cache in Redis is
-- reached through an ordinary manager, configured like any script's
-- (options > environment > .env > defaults) with --url and --namespace on
-- top, so keys are written as a script writes them and values are decoded
-- by the cache's own codec. The memory store is never shown: when Redis
-- cannot be used the command fails with exit code 3. Output on stdout is
-- meant for people and for scripts alike: values as Lua literals (sorted
-- keys, exact numbers, escaped bytes), keys one per line, `name: value`
-- lines for stats. Documented in docs/cli.md.

local cache = require "cache"
local config = require "cache.config"
local core = require "cache.core"
local sched = require "cachert"
local util = require "cache.util"
local ffi = require "ffi"

local type, tostring, tonumber, pairs, ipairs, pcall, error =
    type, tostring, tonumber, pairs, ipairs, pcall, error
local concat, sort, floor, huge = table.concat, table.sort, math.floor, math.huge
local byte, char, format = string.byte, string.char, string.format
local stdout, stderr = io.stdout, io.stderr
local inspect = cache._inspect

local _M = {}

-- Exit codes (docs/cli.md).
local EXIT = { ok = 0, not_found = 1, usage = 2, redis = 3, internal = 4 }
_M.EXIT = EXIT

local DEFAULT_LIMIT = 1000          -- keys: --limit
local STATS_COUNT_SECONDS = 5       -- stats: the namespace's key count
local PROGRESS_INTERVAL = 0.1       -- clear: seconds between progress lines
local SCAN_COUNT = 1000             -- SCAN's COUNT hint

-- An error that ends the command with `code` (raised, caught by main).
local Failure = {}
Failure.__index = Failure
local function fail(code, msg)
    error(setmetatable({ code = code, msg = msg }, Failure), 0)
end

-- Text ----------------------------------------------------------------------

local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in
            local nil not or repeat return then true until while]]):gmatch("%a+") do
    KEYWORDS[w] = true
end

local ESCAPES = { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n", ["\r"] = "\\r",
                  ["\t"] = "\\t", ["\a"] = "\\a", ["\b"] = "\\b", ["\f"] = "\\f",
                  ["\v"] = "\\v" }

-- The length of the valid UTF-8 sequence (of a printable character) at
-- `i`, or nil: overlong forms, surrogates and code points past U+10FFFF
-- are not valid; C1 controls (U+0080-U+009F) are not printable.
local function utf8_len(s, i)
    local c = byte(s, i)
    local n, min
    if c >= 0xC2 and c <= 0xDF then n, min = 2, 0x80
    elseif c >= 0xE0 and c <= 0xEF then n, min = 3, 0x800
    elseif c >= 0xF0 and c <= 0xF4 then n, min = 4, 0x10000
    else return nil end
    local cp = c % (2 ^ (7 - n))
    for j = i + 1, i + n - 1 do
        local b = byte(s, j)
        if not b or b < 0x80 or b > 0xBF then return nil end
        cp = cp * 64 + (b - 0x80)
    end
    if cp < min or cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF)
        or (cp >= 0x80 and cp <= 0x9F) then
        return nil
    end
    return n
end

--- `s` as a Lua string literal: printable ASCII and valid UTF-8 as they
-- are, the usual escapes, every other byte as \xNN (LuaJIT reads these).
function _M.quote(s)
    local out, i, n = { '"' }, 1, #s
    while i <= n do
        local c = byte(s, i)
        if c >= 0x20 and c < 0x7F then
            local ch = char(c)
            out[#out + 1] = ESCAPES[ch] or ch
            i = i + 1
        elseif c >= 0x80 and utf8_len(s, i) then
            local len = utf8_len(s, i)
            out[#out + 1] = s:sub(i, i + len - 1)
            i = i + len
        else
            out[#out + 1] = ESCAPES[char(c)] or format("\\x%02X", c)
            i = i + 1
        end
    end
    out[#out + 1] = '"'
    return concat(out)
end
local quote = _M.quote

-- True when `s` prints as itself on one line (a key shown unquoted).
local function plain_text(s)
    if s == "" or s:find('^"') then return false end
    local i, n = 1, #s
    while i <= n do
        local c = byte(s, i)
        if c >= 0x20 and c < 0x7F then
            i = i + 1
        else
            local len = c >= 0x80 and utf8_len(s, i)
            if not len then return false end
            i = i + len
        end
    end
    return true
end

--- A key for a line of output: as it is when printable, else quoted.
function _M.show_key(k)
    return plain_text(k) and k or quote(k)
end

--- A number as a Lua literal that reads back to the same double.
function _M.number(x)
    if x ~= x then return "0/0" end
    if x == huge then return "math.huge" end
    if x == -huge then return "-math.huge" end
    if x == 0 and 1 / x < 0 then return "-0.0" end
    return util.format_number(x)
end
local number = _M.number

local TYPE_ORDER = { number = 1, string = 2, boolean = 3 }

local function key_less(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then return TYPE_ORDER[ta] < TYPE_ORDER[tb] end
    if ta == "boolean" then return (not a) and b end   -- false first
    if ta == "number" and a ~= a then return false end
    if ta == "number" and b ~= b then return true end
    return a < b
end

-- The number of entries and whether the keys are exactly 1..n.
local function shape(t)
    local n = 0
    for _ in pairs(t) do n = n + 1 end
    for i = 1, n do
        if t[i] == nil then return n, false end
    end
    return n, true
end

local WIDTH = 78
local render

local function render_key(k)
    if type(k) == "string" and k:match("^[%a_][%w_]*$") and not KEYWORDS[k] then
        return k
    end
    return "[" .. render(k, "") .. "]"
end

-- Lua-literal text of `v`; `indent` is the current line's indentation.
render = function(v, indent)
    local tv = type(v)
    if tv == "string" then return quote(v) end
    if tv == "number" then return number(v) end
    if tv ~= "table" then return tostring(v) end     -- nil, booleans
    local n, is_array = shape(v)
    if n == 0 then return "{}" end
    local keys = {}
    if is_array then
        for i = 1, n do keys[i] = i end
    else
        for k in pairs(v) do keys[#keys + 1] = k end
        sort(keys, key_less)
    end
    local inner = indent .. "  "
    local items, flat = {}, true
    for i, k in ipairs(keys) do
        local val = v[k]
        if type(val) == "table" and next(val) ~= nil then flat = false end
        local text = render(val, inner)
        items[i] = is_array and text or (render_key(k) .. " = " .. text)
    end
    if flat then          -- scalars only: one line when it fits
        local line = "{ " .. concat(items, ", ") .. " }"
        if #indent + #line <= WIDTH and not line:find("\n") then return line end
    end
    return "{\n" .. inner .. concat(items, ",\n" .. inner) .. ",\n" .. indent .. "}"
end

--- A value as Lua-literal text: tables with sorted keys, indented by two
-- spaces; the same value always gives the same text.
function _M.render(v)
    return render(v, "")
end

local function ttl_text(ms)
    if ms == -1 then return "no expiry" end
    if ms < 0 then return "expired" end
    local s = format("%.3f", ms / 1000):gsub("0+$", ""):gsub("%.$", "")
    return s .. " s"
end

-- Arguments -----------------------------------------------------------------

local HELP = {
    get = [[
usage: cachert get [options] KEY
Prints the value of KEY (in the namespace), decoded from MessagePack, as
Lua-literal text, then its time to live as a comment ("-- ttl: 12.5 s" or
"-- ttl: no expiry"). A value some other client wrote (not MessagePack) is
shown as a quoted string of its bytes, with a note.
Exit status: 0 found, 1 not found, 2 usage, 3 Redis unusable.]],
    keys = [[
usage: cachert keys [options] [--limit N] PATTERN
Lists the keys of the namespace matching the Redis glob PATTERN (* ? [a-z]
[^a] \x), one per line, without the namespace; a key that would not print
as itself (control bytes, invalid UTF-8, a leading ") is shown quoted, with
escapes. Uses SCAN (never KEYS), on every primary of a Cluster.
  --limit N  Stop after N keys (default 1000; 0: no limit). Says so on
             stderr when the limit cut the listing.
Exit status: 0, 2 usage, 3 Redis unusable.]],
    clear = [[
usage: cachert clear [options] PATTERN
Deletes the keys of the namespace matching the Redis glob PATTERN (SCAN +
UNLINK, on every primary of a Cluster) and prints how many. The pattern is
required: `cachert clear '*'` empties the namespace. There is no prompt.
On a terminal, a progress line (keys matched, deleted, rate) is updated
on stderr while it runs.
Exit status: 0, 2 usage, 3 Redis unusable (or failed midway: the count
deleted so far is printed).]],
    stats = [[
usage: cachert stats [options] [--json]
Prints `name: value` lines: the Redis address, backend (standalone,
sentinel, cluster), server version, keys in the namespace (SCAN, at most
5 s; DBSIZE-like from INFO without a namespace), used memory, keyspace
hits and misses, connected clients; then this process's manager.* stats.
  --json     One JSON object instead.
Exit status: 0, 2 usage, 3 Redis unusable.]],
}

local COMMON = [[
Options (every command):
  --url URL        Redis URL (redis://, rediss://, redis+sentinel://,
                   redis+cluster://); beats REDIS_URL and the other
                   variables, which are read as by any script, with .env.
  --namespace NS   The key prefix (beats CACHE_NAMESPACE).
  -h, --help       This help.
  --               Ends the options (a KEY or PATTERN starting with -).]]

local USAGE = [[
usage: cachert get KEY | keys PATTERN | clear PATTERN | stats | help [command]
Inspects the cache in Redis. Configured like a script: REDIS_URL,
REDIS_HOST, ..., CACHE_NAMESPACE from the environment or .env, and --url,
--namespace. `cachert help COMMAND` describes one.
Exit status: 0 success, 1 not found (get), 2 usage or configuration
error, 3 Redis unreachable or refused, 4 internal error.]]

local function usage_error(msg, command)
    fail(EXIT.usage, msg .. "\n" .. (command and HELP[command] or USAGE))
end

-- Parses args for `command`: flags (name -> true: takes a value) allowed
-- besides the common ones; `npos` positional arguments required.
local function parse(command, args, flags, npos)
    local opts, pos, i, literal = {}, {}, 1, false
    local takes = { url = true, namespace = true }
    for k, v in pairs(flags) do takes[k] = v end
    while i <= #args do
        local a = args[i]
        if literal or a:sub(1, 1) ~= "-" or a == "-" then
            pos[#pos + 1] = a
        elseif a == "--" then
            literal = true
        elseif a == "-h" or a == "--help" then
            opts.help = true
        else
            local name, value = a:match("^%-%-([%w-]+)=(.*)$")
            name = name or a:match("^%-%-([%w-]+)$")
            if not name or takes[name] == nil then
                usage_error(("unknown option '%s'"):format(a), command)
            end
            if takes[name] then
                if not value then
                    i = i + 1
                    value = args[i]
                    if value == nil then
                        usage_error(("option '%s' needs a value"):format(a), command)
                    end
                end
                opts[name] = value
            elseif value then
                usage_error(("option '--%s' takes no value"):format(name), command)
            else
                opts[name] = true
            end
        end
        i = i + 1
    end
    if opts.help then return opts, pos end
    if #pos ~= npos then
        local what = npos == 0 and "no argument" or (command == "get" and "one KEY"
                                                     or "one PATTERN")
        usage_error(("%s takes %s, got %d"):format(command, what, #pos), command)
    end
    return opts, pos
end

-- Connecting ----------------------------------------------------------------

local function list_addrs(list)
    local out = {}
    for i, a in ipairs(list) do out[i] = a.host .. ":" .. a.port end
    return concat(out, ",")
end

-- The address the settings point at, for messages (never a password), and
-- the backend's kind.
local function describe(settings)
    if settings.sentinels then
        return ("sentinels %s (master %s)"):format(list_addrs(settings.sentinels),
                                                   settings.sentinel_master), "sentinel"
    elseif settings.cluster then
        return "cluster " .. list_addrs(settings.cluster_nodes), "cluster"
    end
    local addr = settings.host .. ":" .. settings.port
    if settings.db and settings.db ~= 0 then addr = addr .. " db " .. settings.db end
    return addr, "standalone"
end

-- A manager connected to Redis, the address text and the backend's kind;
-- fails with EXIT.usage for a malformed setting, EXIT.redis when Redis
-- cannot be used.
local function connect(opts)
    -- one connection is all a command uses; a near cache would only add
    -- tracking traffic
    local ok, c = pcall(cache.new, { url = opts.url, namespace = opts.namespace,
                                    pool_size = 1, near = false })
    if not ok then fail(EXIT.usage, "configuration: " .. tostring(c)) end
    local settings
    ok, settings = pcall(config.redis, c.cfg, true)
    if not ok then fail(EXIT.usage, "configuration: " .. tostring(settings)) end
    local addr, kind = describe(settings)
    ok = c:connect()
    if not ok then
        local why = c:stats().last_error or "no answer"
        c:disconnect()
        fail(EXIT.redis, ("cannot use Redis at %s: %s"):format(addr, why))
    end
    return c, addr, kind
end

-- Fails (EXIT.redis) when the manager has left Redis meanwhile: what it
-- answered came from the memory store.
local function still_on_redis(c, addr, where, before_failing)
    local s = c:stats()
    local cl = s.cluster
    local broken = not s.using_redis or where == "memory"
                   or (cl and cl.slots_on_memory > 0)
    if broken and before_failing then before_failing() end
    if not s.using_redis or where == "memory" then
        fail(EXIT.redis, ("lost Redis at %s: %s"):format(addr, s.last_error or "?"))
    end
    -- A Cluster with a primary down serves that primary's slots from the
    -- memory store: an answer could be the empty store's.
    if cl and cl.slots_on_memory > 0 then
        fail(EXIT.redis, ("%d slots of the Cluster at %s have no primary up: %s")
             :format(cl.slots_on_memory, addr, s.last_error or "?"))
    end
end

-- Commands ------------------------------------------------------------------

local commands = {}

-- A top-level MessagePack ext (the codec's only one: a multi value, the
-- results of a `cached` function).
local EXT_FIRST = { [0xc7] = true, [0xc8] = true, [0xc9] = true, [0xd4] = true,
                    [0xd5] = true, [0xd6] = true, [0xd7] = true, [0xd8] = true }

function commands.get(args)
    local opts, pos = parse("get", args, {}, 1)
    if opts.help then return EXIT.ok, HELP.get end
    local key = pos[1]
    local c, addr = connect(opts)
    local found, bytes = inspect.get_raw(c, key)
    local ttl = found and inspect.pttl(c, key)
    still_on_redis(c, addr)
    if not found then
        stderr:write("cachert: ", _M.show_key(key), ": not found\n")
        return EXIT.not_found
    end
    local out = {}
    local results = EXT_FIRST[byte(bytes, 1)] and util.pack(core.decode_results(bytes))
    if results and results[1] then
        out[1] = ("-- %d values (a cached function's results)"):format(results.n - 1)
        for i = 2, results.n do
            out[#out + 1] = render(results[i], "") .. (i < results.n and "," or "")
        end
    else
        local value, ok = core.decode(bytes)
        if ok then
            out[1] = render(value, "")
        else
            out[1] = ("-- not a cachert value (not MessagePack): its %d bytes as they are")
                :format(#bytes)
            out[2] = quote(bytes)
        end
    end
    out[#out + 1] = "-- ttl: " .. ttl_text(ttl)
    stdout:write(concat(out, "\n"), "\n")
    return EXIT.ok
end

local function check_limit(text)
    local n = tonumber(text)
    if not n or n < 0 or n % 1 ~= 0 or n > 2 ^ 53 then
        usage_error(("--limit must be a whole number >= 0 (0: no limit), got '%s'")
                    :format(text), "keys")
    end
    return n
end

function commands.keys(args)
    local opts, pos = parse("keys", args, { limit = true }, 1)
    if opts.help then return EXIT.ok, HELP.keys end
    local limit = opts.limit and check_limit(opts.limit) or DEFAULT_LIMIT
    local c, addr = connect(opts)
    local cursor, shown, seen, cut = "0", 0, {}, false
    repeat
        local next_cursor, keys, _, where = inspect.scan(c, pos[1], cursor, SCAN_COUNT, false)
        if not next_cursor then
            fail(EXIT.redis, ("listing keys at %s failed: %s"):format(addr, keys))
        end
        still_on_redis(c, addr, where)
        local lines = {}
        for _, k in ipairs(keys) do
            if not seen[k] then           -- SCAN may return a key twice
                if limit > 0 and shown >= limit then
                    cut = true
                    break
                end
                seen[k] = true
                shown = shown + 1
                lines[#lines + 1] = _M.show_key(k)
            end
        end
        if #lines > 0 then stdout:write(concat(lines, "\n"), "\n") end
        cursor = next_cursor
        if limit > 0 and shown >= limit and cursor ~= "0" then cut = true end
    until cursor == "0" or cut
    if cut then
        stderr:write(("cachert: stopped at --limit %d keys; more may match "
                      .. "(--limit 0 lists them all)\n"):format(limit))
    end
    return EXIT.ok
end

-- isatty(2): the progress line is for a person watching.
local function stderr_is_terminal()
    if not pcall(function() return ffi.C.cachert_isatty end) then
        ffi.cdef [[int cachert_isatty(int fd) __asm__("isatty");]]
    end
    return ffi.C.cachert_isatty(2) == 1
end

function commands.clear(args)
    local opts, pos = parse("clear", args, {}, 1)
    if opts.help then return EXIT.ok, HELP.clear end
    local pattern = pos[1]
    if pattern == "" then
        usage_error("PATTERN must not be empty (use '*' for every key)", "clear")
    end
    local c, addr = connect(opts)
    local tty = stderr_is_terminal()
    local started = sched.now()
    local last_shown = -huge
    local matched, deleted, cursor = 0, 0, "0"
    local function progress(final)
        local now = sched.now()
        if not final and now - last_shown < PROGRESS_INTERVAL then return end
        last_shown = now
        local rate = deleted / math.max(now - started, 1e-3)
        stderr:write(("\r\27[Kclear %s: %d matched, %d deleted, %d keys/s")
                     :format(_M.show_key(pattern), matched, deleted, floor(rate + 0.5)))
        if final then stderr:write("\r\27[K") end
        stderr:flush()
    end
    repeat
        local next_cursor, keys, unlinked, where =
            inspect.scan(c, pattern, cursor, SCAN_COUNT, true)
        if not next_cursor then
            if tty then progress(true) end
            stdout:write(("deleted %d keys\n"):format(deleted))
            fail(EXIT.redis, ("clear at %s failed midway: %s"):format(addr, keys))
        end
        still_on_redis(c, addr, where, function()
            if tty then progress(true) end
            -- what this step unlinked in Redis counts; the memory store's not
            local in_redis = where == "memory" and 0 or unlinked or 0
            stdout:write(("deleted %d keys\n"):format(deleted + in_redis))
        end)
        matched = matched + #keys
        deleted = deleted + unlinked
        cursor = next_cursor
        if tty then progress(false) end
    until cursor == "0"
    if tty then progress(true) end
    stdout:write(("deleted %d keys\n"):format(deleted))
    return EXIT.ok
end

-- "name:value" lines of an INFO text.
local function parse_info(text)
    local t = {}
    for line in text:gmatch("[^\r\n]+") do
        local k, v = line:match("^([%w_]+):(.*)$")
        if k then t[k] = v end
    end
    return t
end

local function json_string(s)
    return '"' .. s:gsub('[%c"\\\128-\255]', function(ch)
        local b = byte(ch)
        if ch == '"' or ch == "\\" then return "\\" .. ch end
        if b >= 0x80 then return ch end
        return format("\\u%04x", b)
    end) .. '"'
end

local function json_value(v)
    if type(v) == "string" then return json_string(v) end
    if type(v) == "number" then
        if v ~= v or v == huge or v == -huge then return "null" end
        return util.format_number(v)
    end
    if type(v) == "boolean" then return tostring(v) end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    sort(keys)
    local items = {}
    for i, k in ipairs(keys) do items[i] = json_string(k) .. ": " .. json_value(v[k]) end
    return "{" .. concat(items, ", ") .. "}"
end

-- How many keys the namespace holds: a SCAN for at most `seconds`.
-- Returns the count and whether it is complete.
local function count_keys(c, addr, seconds)
    local deadline, n, cursor = sched.now() + seconds, 0, "0"
    repeat
        local next_cursor, keys, _, where = inspect.scan(c, "*", cursor, SCAN_COUNT, false)
        if not next_cursor then
            fail(EXIT.redis, ("counting keys at %s failed: %s"):format(addr, keys))
        end
        still_on_redis(c, addr, where)
        n, cursor = n + #keys, next_cursor
    until cursor == "0" or sched.now() >= deadline
    return n, cursor == "0"
end

function commands.stats(args)
    local opts = parse("stats", args, { json = false }, 0)
    if opts.help then return EXIT.ok, HELP.stats end
    local c, addr, kind = connect(opts)
    local settings = config.redis(c.cfg, true)
    -- every primary's INFO (one node but for a Cluster)
    local infos, node, nodes = {}, 0, 1
    while node < nodes do
        local text, count = inspect.info(c, node)
        if text == nil then
            fail(EXIT.redis, ("INFO at %s failed: %s"):format(addr, count))
        end
        nodes = count
        if text then infos[#infos + 1] = parse_info(text) end
        node = node + 1
    end
    still_on_redis(c, addr)
    local function sum(field)
        local total = 0
        for _, info in ipairs(infos) do total = total + (tonumber(info[field]) or 0) end
        return total
    end
    local out = {
        { "address", addr }, { "backend", kind },
        { "redis_version", infos[1] and infos[1].redis_version or "?" },
    }
    if kind == "cluster" then out[#out + 1] = { "primaries", #infos } end
    out[#out + 1] = { "namespace", c.namespace }
    if c.namespace == "" then
        local db = "db" .. (settings.db or 0)
        local keys = 0
        for _, info in ipairs(infos) do
            keys = keys + (tonumber((info[db] or ""):match("keys=(%d+)")) or 0)
        end
        out[#out + 1] = { "keys", keys }
    else
        local n, complete = count_keys(c, addr, STATS_COUNT_SECONDS)
        out[#out + 1] = { "keys", n }
        if not complete then
            out[#out + 1] = { "keys_counted", ("at least (the count stopped after %d s)")
                                              :format(STATS_COUNT_SECONDS) }
        end
    end
    local hits, misses = sum("keyspace_hits"), sum("keyspace_misses")
    for _, f in ipairs {
        { "used_memory_bytes", sum("used_memory") },
        { "maxmemory_bytes", sum("maxmemory") },
        { "keyspace_hits", hits }, { "keyspace_misses", misses },
        { "keyspace_hit_rate", hits + misses > 0 and hits / (hits + misses) or 0 },
        { "connected_clients", sum("connected_clients") },
        { "evicted_keys", sum("evicted_keys") }, { "expired_keys", sum("expired_keys") },
    } do
        out[#out + 1] = f
    end
    local mstats = c:stats()
    mstats.cluster = nil              -- a table: its fields are the primaries above
    local names = {}
    for k in pairs(mstats) do names[#names + 1] = k end
    sort(names)
    if opts.json then
        local t = { manager = {} }
        for _, f in ipairs(out) do t[f[1]] = f[2] end
        for _, k in ipairs(names) do t.manager[k] = mstats[k] end
        stdout:write(json_value(t), "\n")
        return EXIT.ok
    end
    for _, k in ipairs(names) do out[#out + 1] = { "manager." .. k, mstats[k] } end
    local lines = {}
    for i, f in ipairs(out) do
        local v = f[2]
        if type(v) == "number" then
            v = (v % 1 == 0) and util.format_number(v) or format("%.4f", v)
        end
        lines[i] = f[1] .. ": " .. tostring(v)
    end
    stdout:write(concat(lines, "\n"), "\n")
    return EXIT.ok
end

function commands.help(args)
    if #args == 0 then return EXIT.ok, USAGE .. "\n" .. COMMON end
    if #args == 1 and HELP[args[1]] then return EXIT.ok, HELP[args[1]] .. "\n" .. COMMON end
    if #args == 1 and (args[1] == "-h" or args[1] == "--help" or args[1] == "help") then
        return EXIT.ok, USAGE .. "\n" .. COMMON
    end
    usage_error(("no command named '%s'"):format(concat(args, " ")))
end

-- Entry point ---------------------------------------------------------------

local function run(command, ...)
    local fn = commands[command]
    if not fn then usage_error(("no command named '%s'"):format(tostring(command))) end
    local code, text = fn({ ... })
    if text then
        stdout:write(text, text:sub(-1) == "\n" and "" or "\n")
        if command ~= "help" then stdout:write(COMMON, "\n") end
    end
    return code
end

--- Runs `command` with its arguments; exits the process with the
-- command's status (docs/cli.md, "Exit status").
function _M.main(command, ...)
    -- the manager's own warnings ("serving from the memory store") would
    -- contradict the command's message: only errors are shown
    cache.on_log(function(level, msg)
        if level == "error" then stderr:write("cachert: ", msg, "\n") end
    end)
    local ok, code = pcall(run, command, ...)
    if not ok then
        local e = code
        if getmetatable(e) == Failure then
            stderr:write("cachert: ", e.msg, "\n")
            code = e.code
        else
            stderr:write("cachert: internal error: ", tostring(e), "\n")
            code = EXIT.internal
        end
    end
    stdout:flush()
    stderr:flush()
    os.exit(code)
end

return _M
