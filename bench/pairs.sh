#!/usr/bin/env bash
# Interleaved pairs: each cachert workload run right after its anchor, PAIRS
# times, so that the machine's drift (bench/README.md, "Noise") hits both
# sides alike; the ratios are taken between the medians. The pairs:
#
#   W1 memory   lua-table (../shared/bench/w1_memo.lua table)  vs cachert-cached
#   W1 near     lua-table                                      vs cachert-cached-near
#               (bench/w1_cached.lua over Redis with the near cache)
#   W2          lua-lrucache (../shared/bench/w2_lru.lua)      vs cachert-manager
#   W4          py-replica-redis-hiredis-c50                   vs cachert-cached-near-c50
#               (../shared/bench/w4_py_cached_redis.py 50 and bench/w4_cached.lua 50 near,
#               both against the same private redis-server)
#
#   bench/pairs.sh            # after `make`; PAIRS=5 by default, PIN=split as run.sh
# env: PAIRS (5), PIN (split | same | none), BUILD or CACHERT_BUILD_DIR (build),
#      SHARED_BENCH (../shared/bench), PY (/usr/bin/python3), LUAJIT (/usr/bin/luajit),
#      OUT (bench/results/pairs-<stamp>).
# Output: $OUT/raw.tsv (every RESULT line), $OUT/ratios.txt (printed too).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

PAIRS=${PAIRS:-5}
PIN=${PIN:-split}
BUILD=$(cd "${BUILD:-${CACHERT_BUILD_DIR:-build}}" && pwd)
SHARED_BENCH=$(cd "${SHARED_BENCH:-$ROOT/../shared/bench}" && pwd)
PY=${PY:-/usr/bin/python3}
LJ=${LUAJIT:-/usr/bin/luajit}
OUT=${OUT:-bench/results/pairs-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
CACHERT="$BUILD/cachert"
[ -x "$CACHERT" ] || { echo "missing $CACHERT: run 'make' first" >&2; exit 2; }

CLI=() SRV=()
case "$PIN" in
    split) if [ "$(nproc)" -ge 2 ]; then CLI=(taskset -c 0) SRV=(taskset -c 1); fi ;;
    same) CLI=(taskset -c 0) SRV=(taskset -c 0) ;;
    none) ;;
    *) echo "PIN must be split, same or none" >&2; exit 2 ;;
esac

unset CACHE_DEFAULT_TTL CACHE_NAMESPACE CACHE_MAX_ITEMS CACHE_MAX_MEMORY CACHE_CODEC \
      CACHE_NEAR_MAX_ITEMS CACHE_NEAR_MAX_MEMORY REDIS_URL REDIS_HOST REDIS_PORT REDIS_DB \
      REDIS_USERNAME REDIS_PASSWORD REDIS_TLS REDIS_SENTINELS REDIS_CLUSTER REDIS_CLUSTER_NODES

TMP=$(mktemp -d /tmp/cachert-pairs.XXXXXX)
REDIS_PID=""
cleanup() {
    if [ -n "$REDIS_PID" ]; then
        kill "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${SRV[@]}" redis-server --bind 127.0.0.1 --port "$PORT" --daemonize no --save '' \
    --appendonly no --dir "$TMP" --logfile redis.log &
REDIS_PID=$!
for _ in $(seq 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

RAW="$OUT/raw.tsv"
: > "$RAW"
# run <dir> cmd...: one run on the client CPU, from `dir`, RESULT lines kept.
run() {
    local dir=$1
    shift
    (cd "$dir" && timeout 120 "${CLI[@]}" "$@") | grep '^RESULT' | tee -a "$RAW" >&2 || {
        echo "!! failed: $*" >&2
        exit 1
    }
}
ANCHOR_ENV=(env "LUA_PATH=$SHARED_BENCH/lib/?.lua;;" "ANCHOR_PORT=$PORT")
for i in $(seq "$PAIRS"); do
    echo "## pair $i/$PAIRS" >&2
    run "$SHARED_BENCH" "${ANCHOR_ENV[@]}" "$LJ" w1_memo.lua table
    run "$TMP" "$CACHERT" "$ROOT/bench/w1_cached.lua" cachert-cached
    run "$SHARED_BENCH" "${ANCHOR_ENV[@]}" "$LJ" w1_memo.lua table
    run "$TMP" "$CACHERT" "$ROOT/bench/w1_cached.lua" cachert-cached-near 1000000 "$PORT"
    run "$SHARED_BENCH" "${ANCHOR_ENV[@]}" "$LJ" w2_lru.lua lrucache
    run "$TMP" "$CACHERT" "$ROOT/bench/w2_lru.lua"
    redis-cli -p "$PORT" flushall >/dev/null
    run "$SHARED_BENCH" "${ANCHOR_ENV[@]}" "$PY" w4_py_cached_redis.py 50
    run "$TMP" "$CACHERT" "$ROOT/bench/w4_cached.lua" 50 near "$PORT"
done

. "$ROOT/bench/lib/median.sh"
median() { median_of "$RAW" "$@"; }
# row <label> <ours> <anchor> <op> <target>
row() {
    awk -v l="$1" -v a="$2" -v b="$3" -v op="$4" -v t="$5" 'BEGIN {
        if (a == "" || b == "" || b + 0 == 0) { printf "| %s | n/a | | |\n", l; exit }
        r = a / b
        ok = (op == "<=") ? r <= t : r >= t
        printf "| %s | %.6g / %.6g | %.3fx | %s %s: %s |\n", l, a, b, r, op, t, ok ? "met" : "NOT met" }'
}
t1=$(median W1 lua-table ns_per_call)
{
    echo "Interleaved pairs: PAIRS=$PAIRS, PIN=$PIN, commit $(git rev-parse --short HEAD 2>/dev/null || echo ?)"
    echo
    echo "| workload | cachert / anchor (medians) | ratio | target |"
    echo "|---|---|---|---|"
    row "W1 hot cached hit, memory store, ns/call vs lua-table" \
        "$(median W1 cachert-cached ns_per_call)" "$t1" "<=" 1.5
    row "W1 hot cached hit over Redis, near cache, ns/call vs lua-table" \
        "$(median W1 cachert-cached-near ns_per_call)" "$t1" "<=" 1.5
    row "W2 LRU mix get/set, ops/s vs lua-resty-lrucache" \
        "$(median W2 cachert-manager ops_per_s)" "$(median W2 lua-lrucache ops_per_s)" ">=" 1
    row "W4 cached hits over Redis, c50, near cache, calls/s vs Python seed" \
        "$(median W4 cachert-cached-near-c50 calls_per_s)" \
        "$(median W4 py-replica-redis-hiredis-c50 calls_per_s)" ">=" 100
    echo
    echo "W2 checksum (cachert-manager): get_hits $(median W2 cachert-manager get_hits)," \
         "sets $(median W2 cachert-manager sets) (exact LRU: 312231 / 100260)"
} | tee "$OUT/ratios.txt"
