-- spec/examples_spec.lua -- the documentation runs: every examples/*.lua and
-- every ```lua block of README.md and docs/*.md is executed with the built cachert
-- executable ($CACHERT_BUILD_DIR/cachert, default ./build/cachert) and must
-- exit with status 0. Examples must also show cache hits in their output.
-- Under plain luajit the examples run a second time with luajit itself,
-- which checks `require "cache"` from a stock interpreter (DESIGN.md, use 2).
--
-- Run from the repository root (ctest and busted's .busted do).

local function shell_quote(s)
    return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- Runs a shell command; returns its output (stdout and stderr) and its exit
-- status. io.popen's close() gives no status under LuaJIT, so the command
-- prints it last.
local function run(cmd)
    local p = assert(io.popen("( " .. cmd .. " ) 2>&1; echo \"__exit=$?\""))
    local out = p:read("*a")
    p:close()
    local status = tonumber(out:match("__exit=(%d+)%s*$"))
    return out:gsub("__exit=%d+%s*$", ""), status
end

local ROOT = (run("pwd")):gsub("%s+$", "")

local function absolute(path)
    return path:sub(1, 1) == "/" and path or ROOT .. "/" .. path:gsub("^%./", "")
end

local BUILD = absolute(os.getenv("CACHERT_BUILD_DIR") or "./build")
local CACHERT = BUILD .. "/cachert"

-- The cachert executable preloads cache.core; plain luajit loads a .so.
local UNDER_CACHERT = package.preload["cache.core"] ~= nil

local function list_examples()
    local out = run("ls " .. shell_quote(ROOT .. "/examples") .. "/*.lua")
    local files = {}
    for path in out:gmatch("[^\n]+") do
        files[#files + 1] = path
    end
    return files
end

--- Returns the ```lua blocks of a Markdown file as { line =, code = }.
local function lua_blocks(path)
    local f = assert(io.open(path, "rb"))
    local text = f:read("*a")
    f:close()
    local blocks, current, lineno = {}, nil, 0
    for line in (text .. "\n"):gmatch("([^\n]*)\n") do
        lineno = lineno + 1
        if current then
            if line:match("^```%s*$") then
                blocks[#blocks + 1] = current
                current = nil
            else
                current.code = current.code .. line .. "\n"
            end
        elseif line:match("^```lua%s*$") then
            current = { line = lineno, code = "" }
        end
    end
    assert(current == nil, path .. ": unterminated ```lua block")
    return blocks
end

local function make_temp_dir()
    local dir = (run("mktemp -d /tmp/cachert-docs-XXXXXX")):gsub("%s+$", "")
    assert(dir:match("^/tmp/cachert%-docs%-"), "mktemp failed: " .. dir)
    return dir
end

local function assert_ran(what, out, status)
    assert(status == 0, ("%s exited with status %s; output:\n%s")
        :format(what, tostring(status), out))
end

-- An example's statistics line: "hits: N, misses: M, hit rate: P%".
local function assert_shows_hits(what, out)
    local hits = tonumber(out:match("hits: (%d+)"))
    assert(hits and hits > 0, what .. " shows no cache hits; output:\n" .. out)
    assert(out:match("hit rate: %d+%.%d%d%%"),
           what .. " shows no hit rate; output:\n" .. out)
end

describe("examples", function()
    local examples = list_examples()

    it("include the quickstart that `make run` shows", function()
        local names = {}
        for _, path in ipairs(examples) do
            names[path:match("[^/]+$")] = true
        end
        assert.is_true(names["quickstart.lua"])
    end)

    for _, path in ipairs(examples) do
        local name = path:sub(#ROOT + 2)

        it(name .. " runs under cachert and shows cache hits", function()
            local out, status = run(shell_quote(CACHERT) .. " " .. shell_quote(path))
            assert_ran(name, out, status)
            assert_shows_hits(name, out)
        end)

        if not UNDER_CACHERT then
            it(name .. " runs under plain luajit and shows cache hits", function()
                local env = ("LUA_PATH=%s LUA_CPATH=%s"):format(
                    shell_quote(ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;"),
                    shell_quote(BUILD .. "/lua/?.so;;"))
                local out, status = run(env .. " luajit " .. shell_quote(path))
                assert_ran(name .. " (luajit)", out, status)
                assert_shows_hits(name .. " (luajit)", out)
            end)
        end
    end
end)

-- The README and every page of docs/: each ```lua block runs alone, in a
-- fresh temporary directory (so a .env in the repository cannot change its
-- behaviour).
local function check_blocks(doc, min_blocks)
    local blocks = lua_blocks(ROOT .. "/" .. doc)

    it("has Lua examples to check", function()
        assert.is_true(#blocks >= min_blocks)
    end)

    for _, block in ipairs(blocks) do
        it("```lua block at line " .. block.line .. " runs", function()
            local dir = make_temp_dir()
            local script = dir .. "/block.lua"
            local f = assert(io.open(script, "wb"))
            f:write(block.code)
            f:close()
            local out, status = run(("cd %s && %s block.lua")
                :format(shell_quote(dir), shell_quote(CACHERT)))
            run("rm -rf " .. shell_quote(dir))
            assert_ran(doc .. " line " .. block.line, out, status)
        end)
    end
end

describe("README.md", function()
    check_blocks("README.md", 3)
end)

describe("docs/", function()
    local pages = {}
    for path in run("ls " .. shell_quote(ROOT .. "/docs") .. "/*.md"):gmatch("[^\n]+") do
        pages[#pages + 1] = path:sub(#ROOT + 2)
    end

    it("has its pages", function()
        assert.is_true(#pages >= 6)
    end)

    for _, page in ipairs(pages) do
        describe(page, function()
            check_blocks(page, 0)
        end)
    end
end)
