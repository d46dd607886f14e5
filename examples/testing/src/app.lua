-- app.lua -- the application code under test: exchange rates from a slow
-- source, memoized with cache.cached at module level (no cache= option:
-- on the default manager, which cache.testing swaps for each test).

local cache = require "cache"

local app = {}

--- Where rates come from: a slow HTTP API in production. The specs put
-- their own function here.
function app.fetch_rate(from, to)
    error(("no rate source configured (asked for %s -> %s)"):format(from, to))
end

--- The rate from -> to: a known rate is kept 10 minutes, an unknown pair
-- (nil) 30 seconds, so a new currency shows up soon.
app.rate = cache.cached { ttl = 600, neg_ttl = 30, prefix = "rate" } (function(from, to)
    return app.fetch_rate(from, to)
end)

--- amount converted, or nil and a message for an unknown pair.
function app.convert(amount, from, to)
    if from == to then return amount end
    local rate = app.rate(from, to)
    if rate == nil then
        return nil, ("no rate for %s -> %s"):format(from, to)
    end
    return amount * rate
end

return app
