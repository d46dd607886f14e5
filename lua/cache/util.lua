-- cache/util.lua -- small helpers shared by the scheduler and the decorators.

local select, type, getmetatable = select, type, getmetatable

local _M = {}

--- The arguments as a table, with their count (trailing nils included) in n.
function _M.pack(...)
    return { n = select("#", ...), ... }
end

--- True for a function or a value whose metatable has __call.
function _M.is_callable(f)
    if type(f) == "function" then return true end
    local mt = getmetatable(f)
    return type(mt) == "table" and mt.__call ~= nil
end

return _M
