-- app_spec.lua -- the application's specs with cache.testing: a fresh,
-- memory-only default manager for each test (REDIS_URL and .env are not
-- read, nothing connects), and TTLs run out with testing.advance()
-- instead of sleeping.

local cache = require "cache"
local testing = require "cache.testing"
local app = require "app"

describe("app.convert", function()
    local calls       -- how often the slow source was asked

    before_each(function()
        testing.setup()
        calls = 0
        app.fetch_rate = function(from, to)
            calls = calls + 1
            if from == "EUR" and to == "USD" then return 1.25 end
            return nil
        end
    end)

    after_each(testing.teardown)

    it("asks the slow source once per pair while the rate is cached", function()
        assert.are.equal(125, app.convert(100, "EUR", "USD"))
        assert.are.equal(250, app.convert(200, "EUR", "USD"))
        assert.are.equal(1, calls)
        local stats = cache.stats()
        assert.are.equal(1, stats.hits)
        assert.are.equal(1, stats.misses)
    end)

    it("starts every test with an empty cache", function()
        assert.are.equal(125, app.convert(100, "EUR", "USD"))
        assert.are.equal(1, calls)          -- the previous test's rate is gone
        assert.are.equal(0, cache.stats().hits)
    end)

    it("asks again once the 10 minutes have passed, without waiting for them", function()
        app.convert(100, "EUR", "USD")
        testing.advance(599)
        app.convert(100, "EUR", "USD")
        assert.are.equal(1, calls)
        testing.advance(2)
        app.convert(100, "EUR", "USD")
        assert.are.equal(2, calls)
    end)

    it("remembers an unknown pair for 30 seconds only", function()
        assert.are.same({ nil, "no rate for EUR -> CHF" },
                        { app.convert(100, "EUR", "CHF") })
        app.convert(100, "EUR", "CHF")
        assert.are.equal(1, calls)
        testing.advance(31)
        app.convert(100, "EUR", "CHF")
        assert.are.equal(2, calls)
    end)

    it("forgets a rate deleted by its key", function()
        app.convert(100, "EUR", "USD")
        cache.delete(cache.key("rate", "EUR", "USD"))
        app.convert(100, "EUR", "USD")
        assert.are.equal(2, calls)
    end)
end)
