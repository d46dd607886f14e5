-- spec/invalidate_spec.lua -- cache.invalidate: clears prefix:* after fn
-- succeeds and returns fn's results. Runs under luajit and under cachert.

local cache = require "cache"

-- The message of the error fn raises, after checking that its position
-- names this file: misuse is reported at the caller's line.
local function caller_error(fn)
    local ok, err = pcall(fn)
    assert.is_false(ok)
    local where, msg = tostring(err):match("^(.-):%d+: (.*)$")
    assert.are.equal("invalidate_spec.lua", where and where:match("[^/]*$"))
    return msg
end

local function pack(...)
    return { n = select("#", ...), ... }
end

describe("cache.invalidate", function()
    before_each(function()
        cache.clear()
    end)

    describe("decoration", function()
        it("rejects a prefix that is not a string", function()
            assert.are.equal("prefix must be a string, got number",
                             caller_error(function() cache.invalidate(42) end))
        end)

        it("rejects a missing prefix", function()
            assert.are.equal("prefix must be a string, got nil",
                             caller_error(function() cache.invalidate() end))
        end)

        it("rejects an unknown option", function()
            assert.are.equal("unknown option 'ttl'",
                             caller_error(function()
                                 cache.invalidate{ prefix = "video", ttl = 1 }
                             end))
        end)

        it("rejects a cache option that is not a manager", function()
            assert.are.equal("cache must be a cache manager",
                             caller_error(function()
                                 cache.invalidate{ prefix = "video", cache = {} }
                             end))
        end)

        it("rejects a fn that is not callable", function()
            local decorate = cache.invalidate("video")
            assert.are.equal("fn must be callable, got string",
                             caller_error(function() decorate("update") end))
        end)
    end)

    describe("after fn returns", function()
        it("clears every prefix:* key", function()
            cache.set("video:1", "a")
            cache.set("video:2", "b")
            cache.invalidate("video")(function() end)()
            assert.are.same({ false, false },
                            { cache.exists("video:1"), cache.exists("video:2") })
        end)

        it("keeps keys of other prefixes", function()
            cache.set("videos:1", "a")
            cache.set("video_meta:1", "b")
            cache.set("video", "c")
            cache.set("user:1", "d")
            cache.invalidate("video")(function() end)()
            assert.are.same({ true, true, true, true },
                            { cache.exists("videos:1"), cache.exists("video_meta:1"),
                              cache.exists("video"), cache.exists("user:1") })
        end)

        it("returns every value fn returned, trailing nils included", function()
            local update = cache.invalidate("video")(function(id)
                return id, nil, nil
            end)
            assert.are.same({ n = 3, 42 }, pack(update(42)))
        end)

        it("passes its arguments to fn", function()
            local update = cache.invalidate("video")(function(...)
                return pack(...)
            end)
            assert.are.same({ n = 3, 1, nil, "x" }, update(1, nil, "x"))
        end)

        it("makes a cached function run again", function()
            local calls = 0
            local get_video = cache.cached(60, "video")(function(id)
                calls = calls + 1
                return { id = id }
            end)
            local update_video = cache.invalidate("video")(function() end)
            get_video(42)
            update_video(42)
            get_video(42)
            assert.are.equal(2, calls)
        end)
    end)

    describe("while fn runs", function()
        it("leaves the prefix's keys in place", function()
            cache.set("video:1", "a")
            local seen
            cache.invalidate("video")(function()
                seen = cache.exists("video:1")
            end)()
            assert.is_true(seen)
        end)
    end)

    describe("when fn raises", function()
        it("propagates the same error value", function()
            local e = { code = 409 }
            local _, err = pcall(cache.invalidate("video")(function() error(e) end))
            assert.are.equal(e, err)
        end)

        it("propagates a string error unchanged", function()
            local ok, err = pcall(cache.invalidate("video")(function()
                error("conflict", 0)
            end))
            assert.are.same({ false, "conflict" }, { ok, err })
        end)

        it("does not clear the prefix's keys", function()
            cache.set("video:1", "a")
            local ok, err = pcall(cache.invalidate("video")(function() error("conflict", 0) end))
            assert.are.same({ false, "conflict" }, { ok, err })
            assert.is_true(cache.exists("video:1"))
        end)
    end)

    describe("prefix escaping", function()
        it("treats [ ] in the prefix literally", function()
            cache.set("a1:x", 1)
            cache.set("a[1]:x", 2)
            cache.invalidate("a[1]")(function() end)()
            assert.are.same({ true, false }, { cache.exists("a1:x"), cache.exists("a[1]:x") })
        end)

        it("treats * in the prefix literally", function()
            cache.set("ab:x", 1)
            cache.set("a*:x", 2)
            cache.invalidate("a*")(function() end)()
            assert.are.same({ true, false }, { cache.exists("ab:x"), cache.exists("a*:x") })
        end)

        it("treats ? in the prefix literally", function()
            cache.set("ab:x", 1)
            cache.set("a?:x", 2)
            cache.invalidate("a?")(function() end)()
            assert.are.same({ true, false }, { cache.exists("ab:x"), cache.exists("a?:x") })
        end)

        it("treats a backslash in the prefix literally", function()
            cache.set("a*:x", 1)
            cache.set("a\\:x", 2)
            cache.invalidate("a\\")(function() end)()
            assert.are.same({ true, false }, { cache.exists("a*:x"), cache.exists("a\\:x") })
        end)
    end)

    describe("options", function()
        it("clears the keys of the manager given as cache", function()
            local c = cache.new()
            c:set("video:1", "a")
            cache.invalidate{ prefix = "video", cache = c }(function() end)()
            assert.is_false(c:exists("video:1"))
        end)

        it("leaves the default manager alone when given another manager", function()
            local c = cache.new()
            cache.set("video:1", "a")
            cache.invalidate{ prefix = "video", cache = c }(function() end)()
            assert.is_true(cache.exists("video:1"))
        end)

        it("clears through a manager's invalidate method", function()
            local c = cache.new()
            c:set("video:1", "a")
            c:invalidate("video")(function() end)()
            assert.is_false(c:exists("video:1"))
        end)

        it("clears the prefix's keys in a namespaced manager", function()
            local c = cache.new{ namespace = "ns:" }
            c:set("video:1", "a")
            c:set("user:1", "b")
            c:invalidate("video")(function() end)()
            assert.are.same({ false, true }, { c:exists("video:1"), c:exists("user:1") })
        end)
    end)
end)
