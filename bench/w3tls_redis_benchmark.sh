#!/bin/sh
# W3-TLS anchor: redis-benchmark over TLS, GET only, on the keyspace the W3
# anchor's redis-benchmark reads (key:%012d, n = 0..99,999, 64-byte values,
# loaded beforehand with ../shared/bench/lib/load_keys.py 100000 0 12).
# Usage: w3tls_redis_benchmark.sh <port> <ca_file> <clients> <pipeline>
# As ../shared/bench/w3_redis_benchmark.py: -d 64 -r 100000, -n 200,000
# (50,000 at 1 client), --csv; but -t get alone, as the keys are preloaded
# (the anchor runs -t get,set, whose SET rewrites the same keys first).
# Prints RESULT lines for W3-TLS redis-benchmark-tls-get-c<C>-P<P>.
set -eu
port=${1:?usage: w3tls_redis_benchmark.sh <port> <ca_file> <clients> <pipeline>}
ca=${2:?ca_file} c=${3:?clients} p=${4:?pipeline}
n=200000
[ "$c" = 1 ] && n=50000
csv=$(timeout 50 redis-benchmark --tls --cacert "$ca" -h 127.0.0.1 -p "$port" -t get \
    -d 64 -r 100000 -n "$n" -c "$c" -P "$p" --csv)
printf '%s\n' "$csv" | awk -F'","' -v c="$c" -v p="$p" '
    { gsub(/^"|"$/, "") }
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    {
        name = sprintf("redis-benchmark-tls-%s-c%d-P%d", tolower($1), c, p)
        printf "RESULT\tW3-TLS\t%s\tops_per_s\t%s\tops/s\n", name, $col["rps"]
        split("p50 p99 max", m, " ")
        for (k = 1; k <= 3; k++)
            printf "RESULT\tW3-TLS\t%s\t%s_us\t%g\tus\n", name, m[k],
                   $col[m[k] "_latency_ms"] * 1000
        ok = 1
    }
    END { if (!ok) { print "w3tls_redis_benchmark: no result in the CSV" > "/dev/stderr"; exit 1 } }'
