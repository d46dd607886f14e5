-- examples/sessions.lua -- caching user sessions (the seed's Example 3):
-- sessions are read through the cache for 10 minutes, and logging out
-- deletes the session and invalidates the cached sessions.
--
-- Run: ./build/cachert examples/sessions.lua

local cache = require "cache"
local cachert = require "cachert"

print("cache.connect() ->", cache.connect())   -- false: memory store, no Redis

-- Stands in for the sessions table of a database (0.2 s per query here).
local db = {
    queries = 0,
    sessions = {
        ["s-1f3a"] = { user_id = 7, name = "ann" },
        ["s-9c2e"] = { user_id = 8, name = "bob" },
    },
}

function db.find_session(session_id)
    db.queries = db.queries + 1
    cachert.sleep(0.2)
    return db.sessions[session_id]
end

-- A missing session (nil) is cached too, like any other result.
local get_user_session = cache.cached(600, "session")(function(session_id)
    return db.find_session(session_id)
end)

-- Clears every "session:*" entry once the session is deleted, as the seed's
-- @cache_invalidate does. To drop only this one entry, call
-- cache.delete(cache.key("session", session_id)) instead: cache.key gives
-- the exact key get_user_session uses for that argument.
local logout_user = cache.invalidate("session")(function(session_id)
    db.sessions[session_id] = nil
end)

local function timed(label, session_id)
    local start = cachert.now()
    local session = get_user_session(session_id)
    print(("%-30s %7.1f ms  %s"):format(label, (cachert.now() - start) * 1000,
          session and ("user " .. session.name) or "no session"))
end

timed("first read (database):", "s-1f3a")
timed("second read (cached):", "s-1f3a")
timed("third read (cached):", "s-1f3a")
print('cached as "session:s-1f3a" ->', cache.exists("session:s-1f3a"))

logout_user("s-1f3a")
print('after logout_user("s-1f3a") ->', cache.exists("session:s-1f3a"))
timed("read after logout (database):", "s-1f3a")
print("database queries:", db.queries)

local stats = cache.stats()
print(("hits: %d, misses: %d, hit rate: %.2f%%, using redis: %s (backend: %s)")
      :format(stats.hits, stats.misses, stats.hit_rate * 100,
              tostring(stats.using_redis), stats.backend))
