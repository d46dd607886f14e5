-- examples/cluster.lua -- a cache on a Redis Cluster: each key goes to the
-- primary that owns its slot; keys sharing a {hash tag} stay together; a
-- lost primary affects only its own slots (served from memory meanwhile).
--
-- Run against your cluster (any one or more nodes as seeds):
--   REDIS_CLUSTER_NODES=10.0.0.1:7000,10.0.0.2:7000 ./build/cachert examples/cluster.lua
-- or with one URL: REDIS_URL=redis+cluster://h1:7000,h2:7000
-- (rediss+cluster:// and REDIS_TLS_CA_FILE when the nodes speak TLS;
-- REDIS_PASSWORD or user:password@ in the URL when they need a login).
-- Without a cluster it runs on the memory store: no server needed.

local cache = require "cache"
local cachert = require "cachert"

local c = cache.new { namespace = "example:cluster:", command_timeout = 0.5 }
print("connected to redis:", c:connect())
if not c:stats().using_redis then
    print("why not:", c:stats().last_error)
end

-- One user's keys under one hash tag: one slot, one primary.
local uid = 42
c:mset({ [("user:{%d}:name"):format(uid)] = "Ada",
         [("user:{%d}:langs"):format(uid)] = { "lua", "c" } }, 300)
local got = c:mget { ("user:{%d}:name"):format(uid), ("user:{%d}:langs"):format(uid) }
print(("user %d: %s, %s"):format(uid, got[1], table.concat(got[2], " ")))

local lookups = 0
local profile = c:cached(60, "profile")(function(id)
    lookups = lookups + 1
    cachert.sleep(0.01)                     -- stands in for a database query
    return { id = id, name = "user " .. id }
end)
for _ = 1, 3 do
    for id = 1, 4 do profile(id) end
end
local s = c:stats()
print(("hits: %d, misses: %d, hit rate: %.2f%%, backend: %s, lookups: %d")
      :format(s.hits, s.misses, s.hit_rate * 100, s.backend, lookups))
if s.cluster then
    print(("cluster: %d primaries, %d up, %d slots on memory")
          :format(s.cluster.nodes, s.cluster.nodes_up, s.cluster.slots_on_memory))
end
c:disconnect()
