-- The concurrent part of cachert's W3 and W4 runs: C tasks pull the next
-- request index from a shared counter until N requests are done or the
-- deadline passes; latency = time around each call (cachert.now()).
local cachert = require "cachert"

local M = {}

--- Runs call(i) (i = 0, 1, ...) from `c` tasks, at most `n` times in all
-- and until `deadline_s` seconds have passed. Returns the sorted latencies
-- (seconds), how many calls completed and the elapsed seconds.
function M.run(c, n, deadline_s, call)
    local lat, done, nxt = {}, 0, 0
    local now = cachert.now
    local stop_at = now() + deadline_s
    local function worker()
        while true do
            local i = nxt
            if i >= n or now() > stop_at then
                return
            end
            nxt = i + 1
            local t = now()
            call(i)
            local dt = now() - t
            done = done + 1
            lat[done] = dt
        end
    end
    local t0 = now()
    local tasks = {}
    for w = 1, c do
        tasks[w] = cachert.spawn(worker)
    end
    for w = 1, c do
        tasks[w]:join()
    end
    local elapsed = now() - t0
    table.sort(lat)
    return lat, done, elapsed
end

--- The anchors' percentile (lib/common.py): the sorted value at
-- round(p% of n-1).
function M.percentile(lat, p)
    local n = #lat
    return lat[math.min(n - 1, math.floor(p / 100 * (n - 1) + 0.5)) + 1]
end

return M
