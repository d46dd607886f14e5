-- `luarocks --lua-version=5.1 --tree=DIR make` in this directory builds with
-- CMake (in ./build.luarocks) and installs the modules `cache`, `cache.core`
-- and `cachert` and the `cachert` executable into DIR; see docs/install.md.
rockspec_format = "3.0"
package = "cachert"
version = "scm-1"

source = {
   -- Placeholder until the repository has a public address: `luarocks make`
   -- uses the local tree and never fetches it.
   url = "git+https://example.invalid/cachert.git",
}

description = {
   summary = "Redis-backed cache with an in-memory fallback, and a task scheduler, for LuaJIT",
   detailed = [[
The module `cache` (get / set / delete / clear, statistics, memoization with
cache.cached) stores MessagePack values in Redis (single node, Sentinel or
Cluster, over a pooled, pipelined libuv connection) and falls back to an
in-memory LRU store while Redis is away. The module `cachert` runs lightweight
tasks (spawn / join / sleep / now) on the same event loop. The `cachert`
executable is LuaJIT with both modules built in.
]],
   license = "MIT",
   homepage = "https://example.invalid/cachert",
   labels = { "cache", "redis", "luajit", "libuv", "msgpack" },
}

-- LuaJIT only: cache.core is built against the LuaJIT headers (found with
-- pkg-config, as in a plain `make`) and uses LuaJIT's API.
dependencies = {
   "lua >= 5.1, < 5.2",
}

-- Checked by luarocks before the build, so a missing -dev package is named
-- up front; a NAME_DIR given to luarocks reaches CMake through
-- CMAKE_PREFIX_PATH (pkg-config looks for NAME's .pc file under it).
external_dependencies = {
   LUAJIT = { header = "luajit-2.1/luajit.h" },
   LIBUV = { header = "uv.h" },
   HIREDIS = { header = "hiredis/hiredis.h" },
   MSGPACK = { header = "msgpack.h" },
   OPENSSL = { header = "openssl/ssl.h" },
}

build = {
   type = "cmake",
   variables = {
      CMAKE_INSTALL_PREFIX = "$(PREFIX)",
      CMAKE_INSTALL_BINDIR = "$(BINDIR)",
      -- where luarocks looks for the rock's files before deploying them to
      -- DIR/share/lua/5.1 and DIR/lib/lua/5.1
      CACHERT_LUA_DIR = "$(LUADIR)",
      CACHERT_LIB_DIR = "$(LIBDIR)",
      CMAKE_PREFIX_PATH = "$(LUAJIT_DIR);$(LIBUV_DIR);$(HIREDIS_DIR);$(MSGPACK_DIR);$(OPENSSL_DIR)",
      -- a user's compiler may warn where ours does not: no -Werror here
      CACHERT_WERROR = "OFF",
   },
}
