#!/bin/sh
# `luarocks --lua-version=5.1 --tree=DIR make` from a copy of the source tree
# into a temporary tree, then, from another working directory and with only
# `luarocks path` for set-up: plain luajit requires cache, cache.core and
# cachert; DIR/bin/cachert runs a script; `luarocks list` shows the rock and
# `luarocks remove` takes every file away again. Nothing is downloaded.
# Usage: luarocks_check.sh <source dir> <luajit>
set -eu
src=$(cd "$1" && pwd)
luajit=$2
work=$(mktemp -d /tmp/cachert-luarocks-XXXXXX)
trap 'rm -rf "$work"' EXIT
tree=$work/tree

fail() { echo "luarocks_check: $*" >&2; exit 1; }

# A copy of what the build reads (a new top-level input of CMakeLists.txt
# goes in this list): luarocks' cmake backend builds in ./build.luarocks,
# which must not land in the checkout (nor touch its build/).
mkdir "$work/src"
for f in cachert-scm-1.rockspec CMakeLists.txt LICENSE cmake src lua types; do
    cp -R "$src/$f" "$work/src/"
done

# luarocks' own settings for the test: LuaJIT's headers for its Lua header
# check (the build takes them from pkg-config luajit either way), an empty
# local directory as the only rock server (an empty list means the defaults),
# so a dependency luarocks would download fails instead, and a HOME of its
# own, so the user's ~/.luarocks is neither read nor written.
mkdir "$work/home" "$work/no-rocks"
cat >"$work/config.lua" <<EOF
rocks_servers = { "$work/no-rocks" }
variables = { LUA_INCDIR = "$(pkg-config --variable=includedir luajit)" }
EOF
export LUAROCKS_CONFIG="$work/config.lua" HOME="$work/home"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"

(cd "$work/src" && luarocks --lua-version=5.1 --tree="$tree" make) \
    >"$work/make.log" 2>&1 || { cat "$work/make.log" >&2; fail "luarocks make failed"; }

# The C module uses LuaJIT's API from the process that loads it: it must not
# bring a Lua library of its own.
core=$tree/lib/lua/5.1/cache/core.so
[ -f "$core" ] || fail "not installed: $core"
if readelf -d "$core" | grep -i 'NEEDED.*lua'; then
    fail "$core links a Lua library"
fi

mkdir "$work/elsewhere"
cd "$work/elsewhere"
eval "$(luarocks --lua-version=5.1 --tree="$tree" path)"
script='local cache = require "cache"
local core = require "cache.core"
local cachert = require "cachert"
local tree = os.getenv("TREE")
for _, m in ipairs({ { "cache", package.path }, { "cachert", package.path },
                     { "cache.core", package.cpath } }) do
    local file = assert(package.searchpath(m[1], m[2]))
    assert(file:sub(1, #tree) == tree, m[1] .. " loaded from " .. file)
end
assert(type(core) == "table", "cache.core is not a module table")
assert(cache.set("k", { 1, "two", n = 3 }))
local v, found = cache.get("k")
assert(found and v[2] == "two" and v.n == 3, "value did not round-trip")
local start = cachert.now()
local task = cachert.spawn(function(x)
    cachert.sleep(0.05)
    return x * 2
end, 21)
assert(task:join() == 42, "task result")
local slept = cachert.now() - start
assert(slept >= 0.045 and slept < 5, "slept " .. slept .. " s")
print("ok")'
out=$(TREE=$tree "$luajit" -e "$script") || fail "plain luajit could not use the rock"
[ "$out" = ok ] || fail "luajit printed: $out"

# `luarocks path` put DIR/bin first on PATH: the executable, not a wrapper.
[ "$(command -v cachert)" = "$tree/bin/cachert" ] ||
    fail "cachert on PATH is $(command -v cachert || echo nothing)"
echo 'local c = require "cache"; assert(c.set("k", 7)); print("got " .. c.get("k"))' >one.lua
out=$(cachert one.lua) || fail "$tree/bin/cachert one.lua failed"
[ "$out" = "got 7" ] || fail "cachert one.lua printed: $out"

luarocks --lua-version=5.1 --tree="$tree" list --porcelain | grep -q '^cachert	scm-1	installed	' ||
    fail "luarocks list does not show cachert scm-1"

luarocks --lua-version=5.1 --tree="$tree" remove cachert >"$work/remove.log" 2>&1 ||
    { cat "$work/remove.log" >&2; fail "luarocks remove failed"; }
# What may stay: luarocks' (now empty) manifest and empty directories.
left=$(find "$tree" -type f ! -path "$tree/lib/luarocks/rocks-5.1/manifest")
[ -z "$left" ] || fail "left after luarocks remove: $left"
luarocks --lua-version=5.1 --tree="$tree" list --porcelain | grep -q '^cachert' &&
    fail "luarocks list still shows cachert after remove"
echo "ok"
