#!/bin/sh
# Installs the build into a temporary prefix and checks, from another working
# directory, that plain luajit finds `cache` (Lua part and cache/core.so)
# where `cmake --install` put them, and that the installed cachert runs.
# Usage: install_check.sh <build dir> <luajit>
set -eu
build=$1
luajit=$2
dest=$(mktemp -d /tmp/cachert-install-XXXXXX)
trap 'rm -rf "$dest"' EXIT
cmake --install "$build" --prefix "$dest" >/dev/null
cd /
script='local c = require "cache"
assert(c.set("k", { 1, "two" }))
local v, found = c.get("k")
assert(found and v[2] == "two", "value did not round-trip")
assert(package.searchpath("cache.core", package.cpath):find(os.getenv("DEST"), 1, true))
print("ok")'
DEST=$dest \
LUA_PATH="$dest/share/lua/5.1/?.lua;$dest/share/lua/5.1/?/init.lua;;" \
LUA_CPATH="$dest/lib/lua/5.1/?.so;;" \
    "$luajit" -e "$script"
DEST=$dest "$dest/bin/cachert" -e 'local c = require "cache"
assert(c.set("k", 1)); assert(c.get("k") == 1); print("ok")'
# the LuaLS stubs and the license are installed too
for f in share/cachert/types/cache.lua share/cachert/types/cachert.lua share/doc/cachert/LICENSE; do
    [ -s "$dest/$f" ] || { echo "not installed: $f" >&2; exit 1; }
done
echo "ok"
