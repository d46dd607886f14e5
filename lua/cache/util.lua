-- cache/util.lua -- small helpers shared by the scheduler, the manager and
-- the decorators.

local select, type, getmetatable, tostring, tonumber =
    select, type, getmetatable, tostring, tonumber
local format, floor, huge = string.format, math.floor, math.huge
local MIN_NORMAL = 2.2250738585072014e-308

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

--- Writes a number exactly, the one rule for numbers in keys (manager keys
-- and `cached` keys): integers as digits, other numbers in the shortest
-- form that reads back to the same double; never tostring's 14 digits.
function _M.format_number(x)
    if x == floor(x) then
        if x > -1e14 and x < 1e14 then
            return tostring(x)      -- %.14g: exact digits here, "-0" for -0.0
        elseif x ~= huge and x ~= -huge then
            return format("%.0f", x)
        end
        return x > 0 and "inf" or "-inf"
    end
    if x ~= x then
        return "nan"
    end
    -- For a normal number %.15g already gives any shorter form that reads
    -- back; a subnormal has fewer significant digits (5e-324).
    local from = (x > -MIN_NORMAL and x < MIN_NORMAL) and 1 or 15
    for precision = from, 16 do
        local s = format("%." .. precision .. "g", x)
        if tonumber(s) == x then
            return s
        end
    end
    return format("%.17g", x)
end

return _M
