#!/bin/sh
# The redis-benchmark anchor of W3's variants (W3-TLS, W3-CLUSTER), and of W3
# itself on cachert's own W3 server (W3: the anchor "same"): GET only,
# on the keyspace the W3 anchor's redis-benchmark reads (key:%012d, n =
# 0..99,999, 64-byte values, loaded beforehand).
# Usage: w3x_redis_benchmark.sh <workload> <port> <clients> <pipeline> [options...]
#   workload: W3-TLS (options: --tls --cacert CA), W3-CLUSTER (options: --cluster)
#             or W3 (no options)
# As ../shared/bench/w3_redis_benchmark.py: -d 64 -r 100000, -n 200,000
# (50,000 at 1 client, 1,000,000 pipelined), --csv; but -t get alone, as the keys are preloaded
# (the anchor runs -t get,set, whose SET rewrites the same keys first).
# Prints RESULT lines for <workload> redis-benchmark-<tls|cluster|same>-get-c<C>-P<P>.
set -eu
usage="usage: w3x_redis_benchmark.sh <workload> <port> <clients> <pipeline> [options...]"
w=${1:?$usage} port=${2:?$usage} c=${3:?$usage} p=${4:?$usage}
shift 4
case "$w" in
    W3-TLS) tag=tls ;;
    W3-CLUSTER) tag=cluster ;;
    W3) tag=same ;;
    *) echo "$usage" >&2; exit 2 ;;
esac
n=200000
[ "$c" = 1 ] && n=50000
[ "$p" -gt 1 ] && n=1000000  # pipelined: ~1.5 s at the ceiling, not 0.3 s
csv=$(timeout 50 redis-benchmark "$@" -h 127.0.0.1 -p "$port" -t get \
    -d 64 -r 100000 -n "$n" -c "$c" -P "$p" --csv)
# (--cluster prints the nodes it found first: only the quoted CSV counts)
printf '%s\n' "$csv" | awk -F'","' -v c="$c" -v p="$p" -v w="$w" -v tag="$tag" '
    !/^"/ { next }
    { gsub(/^"|"$/, "") }
    !header { for (i = 1; i <= NF; i++) col[$i] = i; header = 1; next }
    {
        name = sprintf("redis-benchmark-%s-%s-c%d-P%d", tag, tolower($1), c, p)
        printf "RESULT\t%s\t%s\tops_per_s\t%s\tops/s\n", w, name, $col["rps"]
        split("p50 p99 max", m, " ")
        for (k = 1; k <= 3; k++)
            printf "RESULT\t%s\t%s\t%s_us\t%g\tus\n", w, name, m[k],
                   $col[m[k] "_latency_ms"] * 1000
        ok = 1
    }
    END { if (!ok) { print "w3x_redis_benchmark: no result in the CSV" > "/dev/stderr"; exit 1 } }'
