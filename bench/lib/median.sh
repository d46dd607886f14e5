# Sourced by bench/run.sh and bench/pairs.sh.
# median_of <raw.tsv> <workload> <anchor> <metric>: the median of the RESULT
# values over the runs, empty when there are none.
median_of() {
    awk -F'\t' -v w="$2" -v a="$3" -v m="$4" \
        '$1 == "RESULT" && $2 == w && $3 == a && $4 == m { print $5 }' "$1" \
        | sort -g | awk '{ v[NR] = $1 } END {
            if (NR) printf "%.6g\n", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
