-- spec/docs_spec.lua -- `make docs`: LDoc (config.ld) builds the HTML
-- reference from the doc comments without a warning, and every public
-- function of the modules (and every method of a manager and of a task) has
-- an entry in it. A function added without a doc comment fails here.
--
-- Run from the repository root (ctest and busted's .busted do).

local helpers = require "helpers"

local run, read = helpers.sh, helpers.slurp

local function shell_quote(s)
    return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- The public names of a table: functions whose name does not start with _.
local function public_functions(t)
    local names = {}
    for k, v in pairs(t) do
        if type(k) == "string" and k:sub(1, 1) ~= "_" and type(v) == "function" then
            names[#names + 1] = k
        end
    end
    table.sort(names)
    return names
end

describe("the LDoc reference (make docs)", function()
    local dir, out, status

    setup(function()
        dir = (run("mktemp -d")):gsub("%s+$", "")
        -- As `make docs` runs it (Makefile: docs).
        out, status = run("lua5.1 \"$(command -v ldoc)\" -d " .. shell_quote(dir) .. " .")
    end)

    teardown(function()
        if dir and dir:match("^/tmp/") then run("rm -rf " .. shell_quote(dir)) end
    end)

    it("builds without warnings", function()
        assert.are.equal(0, status, out)
        for line in out:gmatch("[^\n]+") do
            assert.is_truthy(line:match("^reading configuration") or line:match("^output written"),
                             "LDoc said: " .. line)
        end
    end)

    local function anchors(module)
        local html = read(dir .. "/modules/" .. module .. ".html")
        local set = {}
        for name in html:gmatch('<a name%s*=%s*"([^"]+)"') do set[name] = true end
        return set, html
    end

    it("documents every public function of cache and every manager method", function()
        local cache = require "cache"
        local set, html = anchors("cache")
        for _, name in ipairs(public_functions(cache)) do
            assert.is_true(set[name] or false, "cache." .. name .. " has no entry")
        end
        for _, name in ipairs(public_functions(cache.Manager)) do
            if name ~= "get_stats" then    -- the same function as stats
                assert.is_true(set["Manager:" .. name] or false,
                               "Manager:" .. name .. " has no entry")
            end
        end
        -- Markdown is rendered (lua-markdown under Lua 5.1), not shown raw.
        assert.is_truthy(html:find("<code>", 1, true))
    end)

    it("documents every public function of cache.testing", function()
        local set = anchors("cache.testing")
        for _, name in ipairs(public_functions(require "cache.testing")) do
            assert.is_true(set[name] or false, "cache.testing." .. name .. " has no entry")
        end
    end)

    it("documents every public function of cachert and every task method", function()
        local cachert = require "cachert"
        local set = anchors("cachert")
        for _, name in ipairs(public_functions(cachert)) do
            assert.is_true(set[name] or false, "cachert." .. name .. " has no entry")
        end
        local task = cachert.spawn(function() end)
        task:join()
        for _, name in ipairs(public_functions(getmetatable(task).__index)) do
            assert.is_true(set["Task:" .. name] or false, "Task:" .. name .. " has no entry")
        end
    end)
end)
