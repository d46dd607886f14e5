-- examples/tls.lua -- a cache on a TLS-only Redis (managed services
-- require TLS in transit), with the server's certificate and host name
-- verified.
--
-- Run against a TLS server (the CA that signed its certificate, or none
-- for the system's CA store):
--   REDIS_URL=rediss://127.0.0.1:6380/0 REDIS_TLS_CA_FILE=/path/to/ca.pem \
--       ./build/cachert examples/tls.lua
-- Mutual TLS: add REDIS_TLS_CERT_FILE=client.pem REDIS_TLS_KEY_FILE=client.key.
-- Without REDIS_URL it runs on the memory store: no server needed.

local cache = require "cache"

local url = os.getenv("REDIS_URL")
if url == "" then url = nil end
local c = cache.new {
    namespace = "example:tls:",
    -- The same as the variables above, as options (an option beats a
    -- variable). rediss:// alone turns TLS on; this table says how.
    url = url,
    tls = url and url:match("^rediss://") and {
        ca_file = os.getenv("REDIS_TLS_CA_FILE"),   -- nil: the system store
        cert_file = os.getenv("REDIS_TLS_CERT_FILE"), -- mutual TLS, optional
        key_file = os.getenv("REDIS_TLS_KEY_FILE"),
        -- server_name = "redis.internal",  -- a name other than the host's
        -- verify = false,                  -- never in production: logged
    } or nil,
}
print("connected to redis:", c:connect())
if not c:stats().using_redis then
    print("why not:", c:stats().last_error)
end

local quote = c:cached(30, "quote")(function(symbol)
    return { symbol = symbol, price = #symbol * 10.5 }
end)
for _ = 1, 3 do quote("ACME") end
local s = c:stats()
print(("hits: %d, misses: %d, hit rate: %.2f%%, backend: %s")
      :format(s.hits, s.misses, s.hit_rate * 100, s.backend))
c:disconnect()
