#!/bin/sh
# Installs the build into a temporary prefix and checks, from another working
# directory, that plain luajit finds `cache` (Lua part and cache/core.so)
# where `cmake --install` put them, and that the installed cachert runs.
# Then `make install PREFIX=... DESTDIR=...` (the Makefile's recipe, without
# its rebuild) stages every file under DESTDIR/PREFIX and nowhere else.
# Usage: install_check.sh <build dir> <luajit>
set -eu
build=$(cd "$1" && pwd)
luajit=$2
src=$(cd "$(dirname "$0")/.." && pwd)
dest=$(mktemp -d /tmp/cachert-install-XXXXXX)
stage=$(mktemp -d /tmp/cachert-stage-XXXXXX)
trap 'rm -rf "$dest" "$stage"' EXIT
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

# -o build: install what this build dir holds, as `make install` does after
# building (the rebuild would reconfigure it); no outer make's flags.
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory -C "$src" \
    -o build install BUILD="$build" PREFIX=/opt/cachert DESTDIR="$stage" >/dev/null
for f in bin/cachert lib/lua/5.1/cache/core.so share/lua/5.1/cache/init.lua \
         share/lua/5.1/cachert.lua share/cachert/types/cache.lua \
         share/cachert/types/cachert.lua share/doc/cachert/LICENSE; do
    [ -s "$stage/opt/cachert/$f" ] || { echo "make install: not staged: $f" >&2; exit 1; }
done
stray=$(find "$stage" -type f ! -path "$stage/opt/cachert/*")
[ -z "$stray" ] || { echo "make install: outside PREFIX: $stray" >&2; exit 1; }
"$stage/opt/cachert/bin/cachert" -e 'print(require("cache").set("k", 1))' | grep -qx true ||
    { echo "make install: the staged cachert does not run" >&2; exit 1; }
echo "ok"
