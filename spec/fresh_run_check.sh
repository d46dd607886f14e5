#!/bin/sh
# `make run` on a machine that has only the build packages: copies the
# repository to a temporary directory (a git clone of HEAD plus the
# uncommitted changes to tracked files; untracked files are left out, as in
# a clone), then runs `make run` there inside new mount and network
# namespaces in which the test tools (busted, luacheck, redis-*, valgrind,
# cppcheck, clang*, socat, ...) and apt-get are hidden behind /dev/null.
# Passes when `make run` succeeds without installing anything and prints the
# quickstart's output on the memory store. No network: the namespace has none
# and apt-get is hidden (the build packages are already installed).
#
# Usage: spec/fresh_run_check.sh [source dir]   (default: this repository)
# env:   FRESH_RUN_TIMEOUT  seconds for the whole `make run` (default 600)
# Exit:  0 pass, 1 fail, 77 skipped (namespaces not permitted here).
set -eu
root=$(cd "${1:-$(dirname "$0")/..}" && pwd)
limit=${FRESH_RUN_TIMEOUT:-600}

# Commands of the test and bench packages (TEST_DEBS / BENCH_DEBS in the
# Makefile, not BUILD_DEBS), and apt so that nothing can be installed.
hide="busted luacheck lua lua5.1 lua5.2 lua5.3 lua5.4 redis-server redis-cli
      redis-benchmark redis-sentinel valgrind cppcheck clang clang-14 clang-15
      clang-format clang-format-14 clang-format-15 socat node nodejs npm
      apt-get apt"

# Root gets plain namespaces; anyone else tries a user namespace (-r).
ns=""
for flags in "-m -n" "-r -m -n"; do
    # shellcheck disable=SC2086
    if unshare $flags sh -c 'mount --bind /dev/null /dev/null' 2>/dev/null; then
        ns=$flags
        break
    fi
done
if [ -z "$ns" ]; then
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    echo "!! SKIPPED: the fresh-machine 'make run' check (spec/fresh_run_check.sh)"
    echo "!! did not run: 'unshare -m -n' (mount + network namespaces) is not"
    echo "!! permitted here (it needs root or CAP_SYS_ADMIN, or user namespaces)."
    echo "!! 'make run' with only the build packages is NOT verified on this machine."
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    exit 77
fi

work=$(mktemp -d /tmp/cachert-fresh-XXXXXX)
trap 'rm -rf "$work"' EXIT
src=$work/src
if git -C "$root" rev-parse --verify -q HEAD >/dev/null 2>&1; then
    git clone -q "$root" "$src"
    git -C "$src" checkout -q --detach "$(git -C "$root" rev-parse HEAD)"
    git -C "$root" diff --binary HEAD > "$work/local.diff"
    if [ -s "$work/local.diff" ]; then
        git -C "$src" apply --binary "$work/local.diff"
        echo "note: testing HEAD plus the uncommitted changes to tracked files"
    fi
else
    mkdir "$src"
    (cd "$root" && tar --exclude='./build*' --exclude=./bench/results -cf - .) |
        tar -xf - -C "$src"
fi

# Inside the namespaces: hide every copy of each tool on PATH (a bind mount
# over a symlink lands on its target), check that they are gone, run make.
# shellcheck disable=SC2016 # expanded by the inner shell
inner='
set -eu
ip link set lo up 2>/dev/null || true
hidden=""
for t in $HIDE; do
    for d in $(echo "$PATH" | tr : " "); do
        if [ -f "$d/$t" ]; then
            mount --bind /dev/null "$d/$t"
            case " $hidden " in *" $t "*) ;; *) hidden="$hidden $t" ;; esac
        fi
    done
    if command -v "$t" >/dev/null 2>&1 && [ -x "$(command -v "$t")" ]; then
        echo "fresh_run_check: could not hide $t" >&2
        exit 1
    fi
done
echo "fresh_run_check: hidden:$hidden"
cd "$1"
exec make run
'
log=$work/make-run.log
start=$(date +%s)
status=0
# A clean environment, as on a fresh machine (no MAKEFLAGS from an outer make,
# no BUILD=..., no REDIS_* or CACHE_* settings).
# shellcheck disable=SC2086
env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME="$work" LANG=C.UTF-8 HIDE="$hide" \
    timeout -k 10 "$limit" unshare $ns sh -c "$inner" sh "$src" > "$log" 2>&1 ||
    status=$?
took=$(($(date +%s) - start))

fail() {
    echo "FAIL: $1"
    echo "---- output of 'make run' (unshare $ns, tools hidden) ----"
    cat "$log"
    exit 1
}
[ "$status" = 124 ] && fail "'make run' did not finish within ${limit} s"
[ "$status" = 0 ] || fail "'make run' exited with status $status"
if grep -q '^installing:' "$log"; then
    fail "'make run' tried to install packages (are the build packages installed?)"
fi
for want in \
    'cache.connect()              -> false' \
    'cache.get("user:123")        -> John, true' \
    'second call (cache hit)      -> "Lua in 10 minutes"' \
    'database queries             -> 2' \
    'hits: 2  misses: 3  hit rate: 40.00%  using redis: false  backend: memory'
do
    grep -qF "$want" "$log" || fail "missing from the output: $want"
done
# The hidden tools and what `make run` printed, without the build's lines.
sed -n -e '/^fresh_run_check: hidden/p' -e '/^build\/cachert /,$p' "$log"
echo "ok: 'make run' in a fresh copy with only the build packages (${took} s)"
