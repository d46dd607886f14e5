#!/usr/bin/env bash
# cachert benchmarks next to the anchors (W1, W2, W3, W6; W3 over TLS). See bench/README.md.
#
#   make bench               # installs the Debian packages, builds, runs this script
#   bench/run.sh             # after `make`: builds nothing itself; w1 w2 w3 w6
#   bench/run.sh w3          # selected workloads (w1 w2 w3 w6, and w3tls: W3 over TLS,
#                            # w3cluster: W3 on a 3-primary Redis Cluster, only when named)
#   RUNS=5 bench/run.sh      # runs per anchor and per cachert workload (default 3)
#   PIN=same bench/run.sh    # CPU placement, as in the anchors: split (default) | same | none
#
# env: RUNS (3), PIN (split), SHARED_BENCH (../shared/bench from the repo root),
#      BUILD or CACHERT_BUILD_DIR (build), PY (/usr/bin/python3), LUAJIT (/usr/bin/luajit),
#      NODE (node), OUT (bench/results/<stamp>), W3_PORT and W3TLS_PORT (free loopback ports),
#      ANCHORS (1: run them | 0: skip them | path of an earlier anchors raw.tsv to reuse).
# Output: $OUT/anchors/ (the anchors' raw.tsv, summary.md, redis.log), $OUT/cachert.tsv,
#         $OUT/raw.tsv (both), $OUT/summary.md (one table), $OUT/ratios.txt,
#         $OUT/redis-cachert.log (the redis-server of cachert's W3),
#         $OUT/redis-cachert-tls.log (the TLS redis-server of w3tls).
# w3 also runs redis-benchmark -c 1 -P 1, -c 50 -P 1 and -c 50 -P 16 on cachert's
# W3 server, and ratios.txt ends with issue 13's target table (met / NOT met).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

RUNS=${RUNS:-3}
PIN=${PIN:-split}
BUILD=${BUILD:-${CACHERT_BUILD_DIR:-build}}
PY=${PY:-/usr/bin/python3}
LJ=${LUAJIT:-/usr/bin/luajit}
NODE=${NODE:-node}
ANCHORS=${ANCHORS:-1}
SHARED_BENCH=${SHARED_BENCH:-$ROOT/../shared/bench}
OUT=${OUT:-bench/results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export RUNS PIN

ALL=(w1 w2 w3 w6)      # the default set
KNOWN=("${ALL[@]}" w3tls w3cluster)
SEL=("$@")
[ ${#SEL[@]} -eq 0 ] && SEL=("${ALL[@]}")
for w in "${SEL[@]}"; do
    case " ${KNOWN[*]} " in *" $w "*) ;; *) echo "unknown workload: $w (have: ${KNOWN[*]})" >&2; exit 2 ;; esac
done
selected() { case " ${SEL[*]} " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
# The anchors' run.sh knows w1..w6; the anchors of w3tls and w3cluster
# (redis-benchmark --tls, --cluster) run below.
ASEL=()
for w in "${SEL[@]}"; do case "$w" in w3tls|w3cluster) ;; *) ASEL+=("$w") ;; esac; done

BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || {
    echo "no build directory '$BUILD': run 'make' (or 'make bench') first" >&2
    exit 2
}
CACHERT="$BUILD/cachert"
for f in "$CACHERT" "$BUILD/lua/cache/core.so"; do
    [ -e "$f" ] || { echo "missing $f: run 'make' (or 'make bench') first" >&2; exit 2; }
done
[ -f "$SHARED_BENCH/run.sh" ] || { echo "no anchors at $SHARED_BENCH" >&2; exit 2; }
# The executable embeds lua/ at build time; the luajit run of W1 reads lua/ directly.
if [ -n "$(find lua src -newer "$CACHERT" \( -name '*.lua' -o -name '*.[ch]' \) 2>/dev/null)" ]
then
    echo "warning: lua/ or src/ changed after $CACHERT was built; run 'make' first" >&2
fi

# As the anchors: clients on CPU 0, redis-server on CPU 1 (split) or CPU 0 (same).
CLI=() SRV=()
case "$PIN" in
    split) if [ "$(nproc)" -ge 2 ]; then CLI=(taskset -c 0) SRV=(taskset -c 1); else PIN=none; fi ;;
    same) CLI=(taskset -c 0) SRV=(taskset -c 0) ;;
    none) ;;
    *) echo "PIN must be split, same or none" >&2; exit 2 ;;
esac

TMP=$(mktemp -d /tmp/cachert-bench.XXXXXX)
REDIS_PID=""
redis_stop() {
    if [ -n "$REDIS_PID" ]; then
        kill "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
        REDIS_PID=""
    fi
}
CLUSTER_PIDS=()
cluster_stop() {
    local pid
    for pid in "${CLUSTER_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    CLUSTER_PIDS=()
}
trap 'redis_stop; cluster_stop; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

# The managers read CACHE_* variables and a .env in the working directory: run our
# workloads with neither, so they measure the defaults the workload definitions assume.
unset CACHE_DEFAULT_TTL CACHE_NAMESPACE CACHE_MAX_ITEMS CACHE_MAX_MEMORY CACHE_CODEC \
      CACHE_JOURNAL_MAX_KEYS REDIS_URL REDIS_HOST REDIS_PORT REDIS_DB REDIS_USERNAME \
      REDIS_PASSWORD REDIS_POOL_MAX_CONNECTIONS REDIS_POOL_TIMEOUT REDIS_COMMAND_TIMEOUT \
      REDIS_TLS REDIS_TLS_CA_FILE REDIS_TLS_CERT_FILE REDIS_TLS_KEY_FILE REDIS_TLS_SERVER_NAME \
      REDIS_TLS_VERIFY REDIS_SENTINELS REDIS_SENTINEL_MASTER REDIS_SENTINEL_USERNAME \
      REDIS_SENTINEL_PASSWORD REDIS_CLUSTER REDIS_CLUSTER_NODES
WORK="$TMP/work"
mkdir -p "$WORK"

echo "# cachert bench $(date -u +%Y-%m-%dT%H:%M:%SZ) runs=$RUNS pin=$PIN" \
     "commit=$(git rev-parse --short HEAD 2>/dev/null || echo ?)" \
     "$(git status --porcelain 2>/dev/null | grep -q . && echo '(dirty tree)')" >&2
echo "# $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)" >&2

# -- Anchors ----------------------------------------------------------------
# The shared folder may be read-only: run a writable copy of it.
ANCHOR_RAW="$OUT/anchors/raw.tsv"
if [ -f "$ANCHORS" ]; then
    echo "## anchors: reusing $ANCHORS" >&2
    mkdir -p "$OUT/anchors"
    cp "$ANCHORS" "$ANCHOR_RAW"
elif [ "$ANCHORS" = 1 ] && [ ${#ASEL[@]} -eq 0 ]; then
    echo "## anchors: none selected (w3tls, w3cluster run their own redis-benchmark anchor)" >&2
elif [ "$ANCHORS" = 1 ]; then
    cp -r "$SHARED_BENCH" "$TMP/anchors"
    chmod -R u+w "$TMP/anchors"
    ANODE=$NODE
    if selected w3 && [ ! -d "$TMP/anchors/node/node_modules" ]; then
        # Only the ioredis anchors of W3 need node; skip them if ioredis cannot be installed.
        if ! (cd "$TMP/anchors/node" && timeout 300 npm ci --no-audit --no-fund >/dev/null 2>&1)
        then
            echo "note: 'npm ci' failed in the anchors' node/ folder: skipping the" \
                 "node-ioredis W3 anchors" >&2
            printf '#!/bin/sh\necho "skipped: node-ioredis anchor (npm ci failed)" >&2\n' \
                > "$TMP/no-node.sh"
            chmod +x "$TMP/no-node.sh"
            ANODE="$TMP/no-node.sh"
        fi
    fi
    echo "## anchors: ./run.sh ${ASEL[*]} (copy of $SHARED_BENCH)" >&2
    mkdir -p "$OUT/anchors"
    OUT="$OUT/anchors" PY="$PY" LUAJIT="$LJ" NODE="$ANODE" \
        timeout 1800 "$TMP/anchors/run.sh" "${ASEL[@]}" >/dev/null || {
        echo "!! anchor run failed or timed out (partial results kept)" >&2
    }
elif [ "$ANCHORS" != 0 ]; then
    echo "ANCHORS must be 1, 0 or an existing raw.tsv (got '$ANCHORS')" >&2
    exit 2
fi

# -- cachert ----------------------------------------------------------------
OURS="$OUT/cachert.tsv"
: > "$OURS"
FAILED=0

# bench <timeout_s> cmd...: run cmd RUNS times on the client CPU, keep RESULT lines.
bench() {
    local limit=$1
    shift
    for r in $(seq "$RUNS"); do
        echo "# run $r/$RUNS: $*" >&2
        (cd "$WORK" && timeout "$limit" "${CLI[@]}" "$@") | grep '^RESULT' | tee -a "$OURS" >&2 || {
            echo "!! failed or timed out: $*" >&2
            FAILED=1
        }
    done
}

cpu_ticks() { awk '/^cpu /{t=0; for (i=2; i<=9; i++) t+=$i; print t, $9}' /proc/stat; }
# with_steal <name> fn: runs fn and records the share of CPU time stolen meanwhile.
with_steal() {
    local t0 s0 t1 s1
    read -r t0 s0 < <(cpu_ticks)
    "$2"
    read -r t1 s1 < <(cpu_ticks)
    awk -v s=$((s1 - s0)) -v t=$((t1 - t0)) -v n="$1" \
        'BEGIN { printf "RESULT\tenv\t%s\tsteal_pct\t%.1f\t%%\n", n, t ? 100 * s / t : 0 }' \
        | tee -a "$OURS" >&2
}

w1() {
    bench 120 "$CACHERT" "$ROOT/bench/w1_cached.lua" cachert-cached
    LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;" LUA_CPATH="$BUILD/lua/?.so;;" \
        bench 120 "$LJ" "$ROOT/bench/w1_cached.lua" cachert-cached-luajit
}
w2() { bench 120 "$CACHERT" "$ROOT/bench/w2_lru.lua"; }
w6() { bench 120 "$CACHERT" "$ROOT/bench/w6_mem.lua"; }

# W3 against a private redis-server (started like the anchors' one, on another
# port so both can never meet), loaded with cachert's encoding of the keyspace.
free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# redis_start <port> [<ca_file> <cert_file> <key_file>]: plain, or TLS only (no plain
# port, clients need not show a certificate).
redis_start() {
    local port=$1 rcli=(redis-cli -h 127.0.0.1 -p "$1") args=(--port "$1") log=redis-cachert.log
    if [ $# -gt 1 ]; then
        rcli+=(--tls --cacert "$2")
        args=(--port 0 --tls-port "$port" --tls-ca-cert-file "$2" --tls-cert-file "$3"
              --tls-key-file "$4" --tls-auth-clients no)
        log=redis-cachert-tls.log
    fi
    if "${rcli[@]}" ping >/dev/null 2>&1 || redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1
    then
        echo "something already listens on 127.0.0.1:$port; refusing to reuse it" >&2
        exit 1
    fi
    "${SRV[@]}" redis-server --bind 127.0.0.1 "${args[@]}" --daemonize no \
        --save '' --appendonly no --dir "$OUT" --logfile "$log" \
        --protected-mode yes &
    REDIS_PID=$!
    for _ in $(seq 50); do
        "${rcli[@]}" ping >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "redis-server did not come up on port $port" >&2
    exit 1
}
# Also on that server, interleaved with cachert's runs (run r of each before
# run r + 1 of any): redis-benchmark -c 1 -P 1, -c 50 -P 1 and -c 50 -P 16
# GET (anchors redis-benchmark-same-get-c<C>-P<P>) on the anchors' keyspace
# (key:%012d), loaded beside cachert's: the server's ceiling for issue 13's
# targets, measured against the same server in the same run.
w3() {
    local port=${W3_PORT:-$(free_port)} rcli r
    rcli=(redis-cli -h 127.0.0.1 -p "$port")
    redis_start "$port"
    "${rcli[@]}" flushall >/dev/null
    timeout 60 "$CACHERT" "$ROOT/bench/w3_load.lua" 100000 | timeout 60 "${rcli[@]}" --pipe >/dev/null
    timeout 60 "$PY" "$SHARED_BENCH/lib/load_keys.py" 100000 0 12 \
        | timeout 60 "${rcli[@]}" --pipe >/dev/null
    echo "# preloaded $("${rcli[@]}" dbsize) keys (cachert's and redis-benchmark's) on port $port" >&2
    local all_runs=$RUNS
    for r in $(seq "$all_runs"); do
        echo "# W3 round $r/$all_runs" >&2
        RUNS=1 bench 60 "$ROOT/bench/w3x_redis_benchmark.sh" W3 "$port" 1 1
        RUNS=1 bench 60 "$CACHERT" "$ROOT/bench/w3_get.lua" 1 1 "$port"
        RUNS=1 bench 60 "$ROOT/bench/w3x_redis_benchmark.sh" W3 "$port" 50 1
        for pool in 1 10 50; do
            RUNS=1 bench 60 "$CACHERT" "$ROOT/bench/w3_get.lua" 50 "$pool" "$port"
        done
        RUNS=1 bench 60 "$ROOT/bench/w3x_redis_benchmark.sh" W3 "$port" 50 16
    done
    redis_stop
}
# W3 over TLS: a TLS-only redis-server (certificates made for this run by
# spec/tls_certs.sh in the temporary folder), both keyspaces loaded (cachert's
# key:<n>, and the anchors' key:%012d that redis-benchmark reads), cachert's
# w3_get.lua with REDIS_TLS=yes, and redis-benchmark --tls as the anchor.
w3tls() {
    local port=${W3TLS_PORT:-$(free_port)} tls="$TMP/tls" rcli
    sh "$ROOT/spec/tls_certs.sh" "$tls" || { echo "!! spec/tls_certs.sh failed" >&2; FAILED=1; return; }
    rcli=(redis-cli -h 127.0.0.1 -p "$port" --tls --cacert "$tls/ca.pem")
    redis_start "$port" "$tls/ca.pem" "$tls/server.pem" "$tls/server.key"
    "${rcli[@]}" flushall >/dev/null
    timeout 60 "$CACHERT" "$ROOT/bench/w3_load.lua" 100000 | timeout 60 "${rcli[@]}" --pipe >/dev/null
    timeout 60 "$PY" "$SHARED_BENCH/lib/load_keys.py" 100000 0 12 \
        | timeout 60 "${rcli[@]}" --pipe >/dev/null
    echo "# preloaded $("${rcli[@]}" dbsize) keys (cachert's and redis-benchmark's) on TLS" \
         "port $port" >&2
    for cp in "50 1" "50 10" "50 50"; do
        # shellcheck disable=SC2086
        REDIS_TLS=yes REDIS_TLS_CA_FILE="$tls/ca.pem" \
            bench 60 "$CACHERT" "$ROOT/bench/w3_get.lua" $cp "$port"
    done
    bench 60 "$ROOT/bench/w3x_redis_benchmark.sh" W3-TLS "$port" 50 1 --tls --cacert "$tls/ca.pem"
    redis_stop
}

# W3 on a Redis Cluster of three primaries on loopback (no replicas: the
# workload only reads), each redis-server on the server CPU: cachert's
# keyspace loaded through cachert itself (w3_load.lua cluster), the anchor's
# by redis-benchmark --cluster -t set (key:%012d, random n < 100,000: most of
# the keyspace; a GET of an absent key costs the same round trip).
# cachert's w3_get.lua with REDIS_CLUSTER=yes (seed: the first node) beside
# redis-benchmark --cluster -c 50 -P 1 GET, on the same cluster. The
# pipelining depth each primary saw during cachert's c50 pool10 runs is
# reported as GETs per read event (INFO: cmdstat_get calls over
# total_reads_processed).
get_reads() {
    redis-cli -h 127.0.0.1 -p "$1" info all | tr -d '\r' | awk -F'[:=,]' '
        /^cmdstat_get:/ { g = $3 } /^total_reads_processed:/ { r = $2 }
        END { print g + 0, r + 0 }'
}
w3cluster() {
    local ports=() addrs=() p bus dir i ok
    for i in 1 2 3; do
        p=$(free_port)
        bus=$(free_port)
        dir="$TMP/cluster$i"
        mkdir -p "$dir"
        "${SRV[@]}" redis-server --bind 127.0.0.1 --port "$p" --cluster-enabled yes \
            --cluster-port "$bus" --cluster-config-file nodes.conf --cluster-node-timeout 1000 \
            --save '' --appendonly no --dir "$dir" --logfile redis.log --daemonize no &
        CLUSTER_PIDS+=($!)
        ports+=("$p")
        addrs+=("127.0.0.1:$p")
    done
    for p in "${ports[@]}"; do
        for _ in $(seq 50); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
    done
    timeout 60 redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes \
        >/dev/null || { echo "!! redis-cli --cluster create failed" >&2; FAILED=1; cluster_stop; return; }
    for _ in $(seq 100); do
        ok=1
        for p in "${ports[@]}"; do
            redis-cli -p "$p" cluster info | grep -q cluster_state:ok || ok=0
        done
        [ $ok = 1 ] && break
        sleep 0.1
    done
    REDIS_CLUSTER=yes timeout 120 "$CACHERT" "$ROOT/bench/w3_load.lua" 100000 cluster "${ports[0]}" \
        || { echo "!! w3_load.lua cluster failed" >&2; FAILED=1; cluster_stop; return; }
    timeout 120 redis-benchmark --cluster -h 127.0.0.1 -p "${ports[0]}" -t set -d 64 -r 100000 \
        -n 300000 -c 50 -P 16 -q >/dev/null
    echo "# cluster of ${#ports[@]} primaries on ports ${ports[*]}:" \
         "$(for p in "${ports[@]}"; do redis-cli -p "$p" dbsize; done | tr '\n' ' ')keys" >&2
    local before=() after=()
    for cp in "50 1" "50 10" "50 50"; do
        [ "$cp" = "50 10" ] && for p in "${ports[@]}"; do before+=("$(get_reads "$p")"); done
        # shellcheck disable=SC2086
        REDIS_CLUSTER=yes bench 60 "$CACHERT" "$ROOT/bench/w3_get.lua" $cp "${ports[0]}"
        [ "$cp" = "50 10" ] && for p in "${ports[@]}"; do after+=("$(get_reads "$p")"); done
    done
    for i in "${!ports[@]}"; do
        echo "# node $((i + 1)) (port ${ports[$i]}): GET calls, read events before: ${before[$i]}; after: ${after[$i]}" >&2
        awk -v b="${before[$i]}" -v a="${after[$i]}" -v n="$i" 'BEGIN {
            split(b, x, " "); split(a, y, " ")
            d = y[2] - x[2]
            printf "RESULT\tW3-CLUSTER\tcachert-get-c50-pool10\tgets_per_read_node%d\t%.2f\tGET/read\n",
                   n + 1, (d > 0 ? (y[1] - x[1]) / d : 0) }' | tee -a "$OURS" >&2
    done
    bench 60 "$ROOT/bench/w3x_redis_benchmark.sh" W3-CLUSTER "${ports[0]}" 50 1 --cluster
    cluster_stop
}

for w in "${SEL[@]}"; do
    echo "## cachert $w" >&2
    with_steal "cachert-$w" "$w"
done

# -- Summary ----------------------------------------------------------------
cat "$ANCHOR_RAW" "$OURS" 2>/dev/null > "$OUT/raw.tsv" || true
timeout 60 "$PY" "$SHARED_BENCH/lib/summarize.py" "$OUT/raw.tsv" | tee "$OUT/summary.md"

# median <workload> <anchor> <metric>: median over the runs, empty when absent.
. "$ROOT/bench/lib/median.sh"
median() { median_of "$OUT/raw.tsv" "$@"; }
# ratio <label> <num> <den> <op> <target>: prints num/den and whether it meets the target
# (an empty op: no target, the ratio is only reported).
ratio() {
    awk -v l="$1" -v a="$2" -v b="$3" -v op="$4" -v t="$5" 'BEGIN {
        if (a == "" || b == "" || b + 0 == 0) { printf "%-58s n/a (missing result)\n", l; exit }
        r = a / b
        if (op == "") { printf "%-58s %8.3f  (no target)\n", l, r; exit }
        ok = (op == "<=") ? r <= t : r >= t
        printf "%-58s %8.3f  (target %s %s: %s)\n", l, r, op, t, ok ? "met" : "NOT met" }'
}

# Issue 13's targets, from cachert's W3 server alone (cachert's runs and
# redis-benchmark's "same" runs on it, interleaved): the medians, each row
# met or NOT met. W3 c=50 is the default pool (pool10).
w3_targets() {
    local s50 s1 p50 cp1 rb1 rb50 rb16 b50 b1 bv50 cpu50 cpu1
    s50=$(median W3 cachert-get-c50-pool10 ops_per_s)
    s1=$(median W3 cachert-get-c1-pool1 ops_per_s)
    p50=$(median W3 cachert-get-c50-pool10 p50_us)
    cp1=$(median W3 cachert-get-c1-pool1 p50_us)
    rb1=$(median W3 redis-benchmark-same-get-c1-P1 ops_per_s)
    rb50=$(median W3 redis-benchmark-same-get-c50-P1 ops_per_s)
    rb16=$(median W3 redis-benchmark-same-get-c50-P16 ops_per_s)
    b50=$(median W3 cachert-get-c50-pool10 lua_bytes_per_get)
    bv50=$(median W3 cachert-get-c50-pool10 lua_bytes_per_get_beyond_value)
    b1=$(median W3 cachert-get-c1-pool1 lua_bytes_per_get)
    cpu50=$(median W3 cachert-get-c50-pool10 cpu_us_per_get)
    cpu1=$(median W3 cachert-get-c1-pool1 cpu_us_per_get)
    echo
    echo "Issue 13 targets (W3 on cachert's server; redis-benchmark GET on the same server, same run)"
    echo
    awk -v s50="$s50" -v s1="$s1" -v p50="$p50" -v rb1="$rb1" -v rb50="$rb50" -v rb16="$rb16" \
        -v b50="$b50" -v bv50="$bv50" 'BEGIN {
        print "| workload | measured | target | |"
        print "|---|---|---|---|"
        row("W3 c=50 GET/s / redis-benchmark -c 50 -P 16 (server ceiling)", s50, rb16, ">=", 0.6,
            sprintf("%.0f / %.0f", s50, rb16))
        row("W3 c=50 p50 latency (us)", p50, 1, "<=", 100, "")
        row("W3 c=1 GET/s / redis-benchmark -c 1 -P 1", s1, rb1, ">=", 1.1,
            sprintf("%.0f / %.0f", s1, rb1))
        row("Lua bytes allocated per GET (c=50)", b50, 1, "<=", 100,
            bv50 == "" ? "" : sprintf("%.1f beyond the value", bv50))
    }
    function row(label, a, b, op, t, detail,   r, ok) {
        if (a == "" || b == "" || b + 0 == 0) {
            printf "| %s | n/a (missing result) | %s %s | |\n", label, op, t
            return
        }
        r = a / b
        ok = (op == "<=") ? r <= t : r >= t
        printf "| %s | %.3g%s | %s %s | %s |\n", label, r,
               detail == "" ? "" : " (" detail ")", op, t, ok ? "met" : "NOT met"
    }'
    echo
    awk -v s50="$s50" -v rb50="$rb50" -v cp1="$cp1" -v cpu50="$cpu50" -v cpu1="$cpu1" \
        -v b1="$b1" 'function show(label, v, fmt) {
            printf "%-58s %s\n", label, v == "" ? "n/a (missing result)" : sprintf(fmt, v) }
        BEGIN {
        show("W3 c=50 GET/s / redis-benchmark -c 50 -P 1 (same server)",
             (s50 == "" || rb50 == "" || rb50 + 0 == 0) ? "" : s50 / rb50, "%8.3f  (no target)")
        show("W3 c=1 p50 latency, us", cp1, "%8.1f")
        show("W3 client CPU per GET, c=50 (pool10), us", cpu50, "%8.2f")
        show("W3 client CPU per GET, c=1, us", cpu1, "%8.2f")
        show("Lua bytes allocated per GET, c=1", b1, "%8.1f")
    }'
}

CHECK_FAILED=0
{
    echo
    echo "Ratios (medians of the runs above)"
  if selected w1; then
    c1=$(median W1 cachert-cached ns_per_call)
    c1l=$(median W1 cachert-cached-luajit ns_per_call)
    t1=$(median W1 lua-table ns_per_call)
    ratio "W1 cachert-cached / lua-table, ns per call" "$c1" "$t1" "<=" 3
    ratio "W1 cachert-cached-luajit / lua-table, ns per call" "$c1l" "$t1" "<=" 3
  fi
  if selected w2; then
    c2=$(median W2 cachert-manager ops_per_s)
    l2=$(median W2 lua-lrucache ops_per_s)
    ratio "W2 cachert-manager / lua-lrucache, ops per s" "$c2" "$l2" ">=" 1
    h2=$(median W2 cachert-manager get_hits)
    s2=$(median W2 cachert-manager sets)
    if [ "$h2" = 312231 ] && [ "$s2" = 100260 ]; then
        echo "W2 exact-LRU checksum: get_hits $h2, sets $s2 (expected 312231 / 100260): ok"
    else
        echo "W2 exact-LRU checksum: get_hits ${h2:-?}, sets ${s2:-?} (expected 312231 / 100260): MISMATCH"
        CHECK_FAILED=1
    fi
  fi
  if selected w3; then
    g50=$(median W3 redis-benchmark-get-c50-P1 ops_per_s)
    ratio "W3 cachert-get-c50-pool1 / redis-benchmark -c 50 -P 1 GET" \
        "$(median W3 cachert-get-c50-pool1 ops_per_s)" "$g50" ">=" 1
    ratio "W3 cachert-get-c50-pool10 (the default pool) / redis-benchmark -c 50 -P 1 GET" \
        "$(median W3 cachert-get-c50-pool10 ops_per_s)" "$g50" ">=" 1
    ratio "W3 cachert-get-c50-pool50 / redis-benchmark -c 50 -P 1 GET" \
        "$(median W3 cachert-get-c50-pool50 ops_per_s)" "$g50" ">=" 1
    ratio "W3 cachert-get-c1-pool1 / redis-benchmark -c 1 -P 1 GET" \
        "$(median W3 cachert-get-c1-pool1 ops_per_s)" \
        "$(median W3 redis-benchmark-get-c1-P1 ops_per_s)" "" ""
    w3_targets
  fi
  if selected w3tls; then
    t50=$(median W3-TLS redis-benchmark-tls-get-c50-P1 ops_per_s)
    ratio "W3-TLS cachert-get-c50-pool10 / redis-benchmark --tls -c 50 -P 1 GET" \
        "$(median W3-TLS cachert-get-c50-pool10 ops_per_s)" "$t50" ">=" 1
    ratio "W3-TLS cachert-get-c50-pool1 / redis-benchmark --tls -c 50 -P 1 GET" \
        "$(median W3-TLS cachert-get-c50-pool1 ops_per_s)" "$t50" ">=" 1
    ratio "W3-TLS cachert-get-c50-pool50 / redis-benchmark --tls -c 50 -P 1 GET" \
        "$(median W3-TLS cachert-get-c50-pool50 ops_per_s)" "$t50" ">=" 1
    if selected w3; then
        ratio "cachert-get-c50-pool10, W3-TLS / W3 (plain)" \
            "$(median W3-TLS cachert-get-c50-pool10 ops_per_s)" \
            "$(median W3 cachert-get-c50-pool10 ops_per_s)" "" ""
        ratio "redis-benchmark -c 50 -P 1 GET, W3-TLS / W3 (plain)" "$t50" \
            "$(median W3 redis-benchmark-get-c50-P1 ops_per_s)" "" ""
    fi
  fi
  if selected w3cluster; then
    k50=$(median W3-CLUSTER redis-benchmark-cluster-get-c50-P1 ops_per_s)
    for pool in 10 1 50; do
        ratio "W3-CLUSTER cachert-get-c50-pool$pool / redis-benchmark --cluster -c 50 -P 1 GET" \
            "$(median W3-CLUSTER cachert-get-c50-pool$pool ops_per_s)" "$k50" ">=" 1
    done
  fi
  if selected w6; then
    b6=$(median W6 cachert-manager bytes_per_entry)
    r6=$(median W6 cachert-manager rss_bytes_per_entry)
    x6=$(median W6 redis-set-ex bytes_per_entry)
    x6=${x6:-193}   # the anchors' published value when the Redis anchor did not run
    awk -v b="$b6" -v r="$r6" -v x="$x6" 'BEGIN {
        if (b == "" || r == "") { print "W6 cachert bytes per entry: n/a (missing result)"; exit }
        printf "%-58s %8.1f  (target <= redis-set-ex %.0f: %s)\n",
            "W6 cachert bytes per entry, store accounting", b, x, b <= x ? "met" : "NOT met"
        printf "%-58s %8.1f  (target <= redis-set-ex %.0f: %s)\n",
            "W6 cachert bytes per entry, RSS delta", r, x, r <= x ? "met" : "NOT met" }'
  fi
} > "$OUT/ratios.txt"   # not a pipeline: CHECK_FAILED must survive the block
cat "$OUT/ratios.txt"

echo "results: $OUT" >&2
if [ "$FAILED" != 0 ] || [ "$CHECK_FAILED" != 0 ]; then
    exit 1
fi
