---@meta cache
-- LuaLS type stubs for `require "cache"` (declarations only: never loaded
-- at run time). Point LuaLS at this folder: "workspace.library" in
-- .luarc.json (docs/api.md: Editor types). spec/types_spec.lua checks that every
-- public function, manager method and stats field is declared here.

---@alias cache.Key string|number
---@alias cache.Value nil|boolean|number|string|table

---@class cache.TlsOptions
---@field ca_file? string CA bundle (PEM) to verify the server with
---@field cert_file? string client certificate (mutual TLS)
---@field key_file? string client key (mutual TLS)
---@field server_name? string name sent (SNI) and checked in the certificate
---@field verify? boolean false skips certificate checks (with a warning)

---@class cache.NearOptions
---@field max_items? integer entries kept in the process (default 10000; 0 = off)
---@field max_memory? integer|string byte bound, e.g. "16mb" (default 16mb; 0 = off)

---@class cache.Options
---@field url? string redis://, rediss://, redis+sentinel://, redis+cluster:// URL
---@field host? string Redis host (REDIS_HOST, default "localhost")
---@field port? integer Redis port (REDIS_PORT, default 6379)
---@field db? integer database 0-15 (REDIS_DB)
---@field username? string ACL user (REDIS_USERNAME)
---@field password? string password (REDIS_PASSWORD)
---@field pool_size? integer connections in the pool (REDIS_POOL_MAX_CONNECTIONS, default 10)
---@field timeout? number accepted for compatibility; bounds nothing (REDIS_POOL_TIMEOUT)
---@field connect_timeout? number seconds per connection attempt (REDIS_CONNECT_TIMEOUT, default 2)
---@field command_timeout? number seconds of server silence before Redis counts as lost (default 1)
---@field default_ttl? number TTL in seconds when a call gives none; 0 = no expiry (default 300)
---@field namespace? string prefix for every key and pattern (CACHE_NAMESPACE)
---@field max_items? integer memory-store entry limit; 0 = none (CACHE_MAX_ITEMS)
---@field max_memory? integer|string memory-store byte limit, e.g. "256mb" (CACHE_MAX_MEMORY)
---@field max_value_bytes? integer|string largest key + encoded value a set accepts
---@field journal_max_keys? integer keys the outage journal remembers
---@field codec? "msgpack" value format
---@field log_level? "error"|"warn"|"info"|"debug"|"off" what cachert logs
---@field exit_flush_timeout? number seconds an unreplayed journal waits for Redis at exit
---@field tls? boolean|cache.TlsOptions TLS to Redis
---@field sentinels? string|string[] Sentinel addresses "h:p"
---@field sentinel_master? string name of the master the sentinels monitor
---@field sentinel_username? string the sentinels' ACL user
---@field sentinel_password? string the sentinels' password
---@field cluster? boolean Redis Cluster
---@field cluster_nodes? string|string[] Cluster seed nodes "h:p"
---@field near? boolean|cache.NearOptions the near cache (decoded Redis hits kept in the process)

---@class cache.ClusterStats
---@field nodes integer primaries in the slot map
---@field nodes_up integer primaries connected
---@field slots_on_memory integer slots served from the memory store

---@class cache.Stats
---@field hits integer lookups that found a value (near hits included)
---@field misses integer lookups that found nothing
---@field hit_rate number hits / (hits + misses), 0 before any lookup
---@field sets integer values stored
---@field deletes integer delete calls that removed a key, plus keys cleared
---@field errors integer backend failures
---@field last_error? string message of the last error or Redis failure
---@field using_redis boolean true when Redis serves the calls
---@field backend "redis"|"memory" which backend serves the calls
---@field reconnects integer switches back to Redis after having used it
---@field journal_overflows integer recoveries that cleared the whole namespace
---@field evictions integer memory-store entries dropped for its limits
---@field expired integer memory-store entries removed by their TTL
---@field keys integer entries in the memory store
---@field memory_bytes integer bytes of the memory store
---@field max_items integer the memory store's entry limit (0 = none)
---@field max_memory integer the memory store's byte limit (0 = none)
---@field namespace string the manager's namespace ("" when none)
---@field near_hits integer lookups answered by the near cache
---@field near_keys integer values the near cache holds
---@field near_evictions integer near-cache entries dropped for its limits
---@field invalidations integer keys Redis said changed, plus flush messages
---@field stale_served integer cached calls answered with a value past its ttl (stale_ttl)
---@field cluster? cache.ClusterStats on a Redis Cluster only

---@class cache.CachedOptions
---@field ttl? number seconds (default: the manager's default TTL)
---@field prefix? string key prefix (default: derived from fn's source and line)
---@field cache? cache.Manager the manager to use (default: the default manager)
---@field key? fun(...): string|number the key of the arguments (under prefix)
---@field neg_ttl? number|false how long a nil/false result is kept (default ttl; false: never)
---@field stale_ttl? number seconds past ttl a value is served while one task recomputes it
---@field lock? boolean|number single flight across processes; seconds the lock lasts (true: 10)

---@class cache.InvalidateOptions
---@field prefix string the prefix whose entries are cleared
---@field cache? cache.Manager the manager to use

---A cache manager: its own memory store and, once connected, its own Redis pool.
---@class cache.Manager
local Manager = {}

---Connects to Redis; true when Redis is in use, false when the memory store serves.
---@return boolean using_redis
function Manager:connect() end

---Closes the Redis connections; the memory store serves until connect().
---@return true
function Manager:disconnect() end

---@param key cache.Key
---@param default? any returned when the key is absent
---@return any value
---@return boolean found
function Manager:get(key, default) end

---@param key cache.Key
---@param value cache.Value
---@param ttl? number seconds (nil: the default TTL; 0: no expiry)
---@return boolean ok
---@return string? err
function Manager:set(key, value, ttl) end

---@param key cache.Key
---@return boolean deleted true when a key was deleted
function Manager:delete(key) end

---@param key cache.Key
---@return boolean
function Manager:exists(key) end

---@param pattern? string Redis glob (default "*")
---@return integer removed
function Manager:clear(pattern) end

---One step of listing the keys matching a Redis glob (namespace removed):
---SCAN on Redis (every Cluster primary in turn), the whole memory store at
---once without Redis. Start with "0"; done when "0" comes back.
---@param pattern string Redis glob
---@param cursor? string "0" (default) or a cursor scan returned
---@param count? integer SCAN's COUNT hint (default 1000)
---@return string|nil next_cursor "0" when the listing is complete; nil on failure
---@return string[]|string keys the keys of this step, or the error message
function Manager:scan(pattern, cursor, count) end

---@return cache.Stats
function Manager:stats() end

---The same as stats().
---@return cache.Stats
function Manager:get_stats() end

---@param keys cache.Key[]
---@return table values array with nil holes, and n
function Manager:mget(keys) end

---@param map table<cache.Key, cache.Value>
---@param ttl? number
---@return boolean ok
---@return string? err
function Manager:mset(map, ttl) end

---Memoizes a function on this manager (see cache.cached).
---@param ttl? number|cache.CachedOptions
---@param prefix? string
---@return fun(fn: function): function
function Manager:cached(ttl, prefix) end

---Clears prefix:* on this manager after fn returns (see cache.invalidate).
---@param prefix string|cache.InvalidateOptions
---@return fun(fn: function): function
function Manager:invalidate(prefix) end

---@class cache
local cache = {}

cache._VERSION = "0.1.0"

---The methods of every manager.
cache.Manager = Manager

---Creates a manager.
---@param options? cache.Options
---@return cache.Manager
function cache.new(options) end

---The module-level manager, created on first use from the environment.
---@return cache.Manager
function cache.default() end

---@return boolean using_redis
function cache.connect() end

---@return true
function cache.disconnect() end

---@param key cache.Key
---@param default? any
---@return any value
---@return boolean found
function cache.get(key, default) end

---@param key cache.Key
---@param value cache.Value
---@param ttl? number
---@return boolean ok
---@return string? err
function cache.set(key, value, ttl) end

---@param key cache.Key
---@return boolean deleted
function cache.delete(key) end

---@param key cache.Key
---@return boolean
function cache.exists(key) end

---@param pattern? string
---@return integer removed
function cache.clear(pattern) end

---Manager:scan on the default manager.
---@param pattern string Redis glob
---@param cursor? string
---@param count? integer
---@return string|nil next_cursor
---@return string[]|string keys
function cache.scan(pattern, cursor, count) end

---@return cache.Stats
function cache.stats() end

---@return cache.Stats
function cache.get_stats() end

---@param keys cache.Key[]
---@return table values
function cache.mget(keys) end

---@param map table<cache.Key, cache.Value>
---@param ttl? number
---@return boolean ok
---@return string? err
function cache.mset(map, ttl) end

---Memoizes fn under prefix:<arguments> for ttl seconds.
---@param ttl? number|cache.CachedOptions
---@param prefix? string
---@return fun(fn: function): function
function cache.cached(ttl, prefix) end

---After fn returns without error, clears prefix:*.
---@param prefix string|cache.InvalidateOptions
---@return fun(fn: function): function
function cache.invalidate(prefix) end

---The key cached() uses under prefix for these arguments.
---@param prefix string
---@param ... any
---@return string
function cache.key(prefix, ...) end

---Runs fn(c) with a connected manager and always disconnects.
---@param fn fun(c: cache.Manager): ...
---@param options? cache.Options|cache.Manager
---@return ...
function cache.with(fn, options) end

---Escapes the glob characters * ? [ ] \ of text.
---@param text string
---@return string
function cache.glob_escape(text) end

---Every live manager's stats() in the Prometheus text exposition format
---0.0.4 (docs/metrics.md): counters cachert_*_total, gauges, one sample
---per manager labelled namespace="..." and manager="default" or its
---creation number.
---@return string text
function cache.metrics() end

---Redirects cachert's log messages; nil restores stderr.
---@param fn? fun(level: "error"|"warn"|"info"|"debug", message: string)
function cache.on_log(fn) end

return cache
