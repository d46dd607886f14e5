-- redis_timeout_spec.lua -- the command timeout against a busy process: a
-- reply that arrived while another task kept the CPU past the timeout is
-- delivered (no error, no outage), and a server that really is silent is
-- still reported as soon as the busy task lets the loop run. The server is
-- slowed with DEBUG SLEEP from a separate client. Every wait is bounded;
-- every server is stopped by PID in teardown.

local helpers = require "helpers"
local cache = require "cache"
local sched = require "cachert"
local ffi = require "ffi"

local in_task, wait_for = helpers.in_task, helpers.wait_for

local COMMAND_TIMEOUT = 0.2
local BUSY = 0.5                -- seconds a task keeps the CPU, > the timeout
local RECOVERY_DEADLINE = 10    -- seconds; the backoff is capped at 5 s

pcall(ffi.cdef, [[
int socket(int domain, int type, int protocol);
int connect(int fd, const void *addr, unsigned int len);
long write(int fd, const void *buf, unsigned long n);
long read(int fd, void *buf, unsigned long n);
int poll(void *fds, unsigned long nfds, int timeout);
int close(int fd);
struct cachert_spec_pollfd { int fd; short events; short revents; };
]])

-- A connection of its own to the server (blocking, loopback), once the
-- server has answered a PING on it: a brand-new connection is only read
-- after the server has accepted it, maybe after commands of older ones.
local function raw_connect(server)
    local fd = ffi.C.socket(2, 1, 0)            -- AF_INET, SOCK_STREAM
    assert(fd >= 0, "socket")
    local sa = ffi.new("uint8_t[16]")           -- struct sockaddr_in
    if ffi.abi("le") then sa[0] = 2 else sa[1] = 2 end   -- AF_INET
    sa[2], sa[3] = math.floor(server.port / 256), server.port % 256
    sa[4], sa[5], sa[6], sa[7] = 127, 0, 0, 1
    assert(ffi.C.connect(fd, sa, 16) == 0, "connect to " .. server.port)
    assert(ffi.C.write(fd, "PING\r\n", 6) == 6, "write PING")
    local pfd = ffi.new("struct cachert_spec_pollfd", fd, 1, 0)  -- POLLIN
    assert(ffi.C.poll(pfd, 1, 2000) == 1, "no answer to PING")
    local buf = ffi.new("char[64]")
    local n = ffi.C.read(fd, buf, 64)
    assert(ffi.string(buf, n) == "+PONG\r\n", "PING")
    return fd
end

-- Sends "DEBUG SLEEP <seconds>" on such a connection and returns as soon
-- as the command is in the server's socket buffer, ahead of anything any
-- other client sends after this (redis-cli in the background could come
-- later than that). Returns the socket, closed once the sleep is over.
local function debug_sleep(server, seconds)
    local fd = raw_connect(server)
    local cmd = ("DEBUG SLEEP %s\r\n"):format(seconds)
    assert(ffi.C.write(fd, cmd, #cmd) == #cmd, "write DEBUG SLEEP")
    return fd
end

local function close_socket(r)
    if r.fd then
        ffi.C.close(r.fd)
        r.fd = nil
    end
end

-- Keeps the CPU for `seconds` without yielding to the scheduler.
local function busy(seconds)
    local t0 = sched.now()
    local spins = 0
    while sched.now() - t0 < seconds do
        spins = spins + 1
    end
    return spins
end

local function finished(task)
    return function()
        local s = task:status()
        return s == "done" or s == "failed"
    end
end

local function manager(server)
    return cache.new { host = "127.0.0.1", port = server.port, timeout = 0.5,
                       command_timeout = COMMAND_TIMEOUT, pool_size = 2 }
end

-- Task A's GET is written; the server answers it late (DEBUG SLEEP
-- `sleep_seconds`); meanwhile task B keeps the CPU for BUSY seconds.
-- Fills `r` with what A got and the manager's state right after.
local function run_scenario(server, c, sleep_seconds, r)
    in_task(function()
        r.fd = debug_sleep(server, sleep_seconds)
        local a = sched.spawn(function()
            local t0 = sched.now()
            r.get = { pcall(c.get, c, "k") }
            r.get_seconds = sched.now() - t0
            local s = c:stats()
            r.using_redis, r.errors = s.using_redis, s.errors
            r.last_error = s.last_error
        end)
        local b = sched.spawn(function()
            sched.sleep(0.02)        -- the loop writes A's GET meanwhile
            r.spins = busy(BUSY)
        end)
        r.a_finished = wait_for(finished(a), 5)
        r.b_finished = wait_for(finished(b), 5)
        r.a_status, r.b_status = a:status(), b:status()
        sched.sleep(sleep_seconds)   -- the server's sleep is over
        close_socket(r)
    end)
end

describe("when a reply arrives while a task keeps the CPU past the timeout #redis", function()
    local server, c
    local r = {}

    setup(function()
        server = helpers.start_redis("--enable-debug-command yes")
        c = manager(server)
        r.connected = c:connect()
        c:set("k", "v")
        r.errors_before = c:stats().errors
        -- the reply comes after about 0.1 s, in the middle of B's 0.5 s
        run_scenario(server, c, 0.1, r)
    end)

    teardown(function()
        close_socket(r)
        if c then c:disconnect() end
        helpers.stop_redis(server)
    end)

    it("runs both tasks to the end, the GET waiting out the busy task", function()
        assert.is_true(r.connected)
        assert.is_true(r.a_finished and r.b_finished)
        assert.are.equal("done", r.a_status)
        assert.are.equal("done", r.b_status)
        assert.is_true(r.spins > 0)
        assert.is_true(r.get_seconds >= BUSY - 0.05, r.get_seconds .. " s")
    end)

    it("returns the value from Redis", function()
        assert.are.same({ true, "v", true }, r.get)
    end)

    it("stays on Redis and counts no error", function()
        assert.is_true(r.using_redis, tostring(r.last_error))
        assert.are.equal(0, r.errors_before)
        assert.are.equal(0, r.errors, tostring(r.last_error))
        local s = c:stats()
        assert.is_true(s.using_redis)
        assert.are.equal(0, s.errors)
        assert.are.equal(0, s.reconnects)
    end)
end)

describe("when Redis stays silent past the timeout while a task keeps the CPU #redis", function()
    local server, c
    local r = {}

    setup(function()
        server = helpers.start_redis("--enable-debug-command yes")
        c = manager(server)
        r.connected = c:connect()
        c:set("k", "v")
        -- the server sleeps 1 s: no reply by the end of B's 0.5 s
        run_scenario(server, c, 1, r)
        r.recovered = in_task(wait_for, function()
            local s = c:stats()
            return s.using_redis and s.reconnects >= 1
        end, RECOVERY_DEADLINE)
    end)

    teardown(function()
        close_socket(r)
        if c then c:disconnect() end
        helpers.stop_redis(server)
    end)

    it("returns the get right after the busy task, without raising", function()
        assert.is_true(r.connected)
        assert.is_true(r.a_finished and r.b_finished)
        assert.is_true(r.get[1], tostring(r.get[2]))
        assert.is_true(r.get_seconds >= BUSY - 0.05, r.get_seconds .. " s")
        assert.is_true(r.get_seconds < BUSY + 0.2, r.get_seconds .. " s")
    end)

    it("counts an error and switches to the memory store", function()
        assert.is_false(r.using_redis)
        assert.is_true(r.errors >= 1)
        assert.matches("no reply within", r.last_error or "")
    end)

    it("switches back to Redis once the server answers", function()
        assert.is_true(r.recovered)
    end)
end)
