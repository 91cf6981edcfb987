#!/usr/bin/env bash
# Compares two builds of cayuga-bench on a shared host, where one binary's events/s moves by
# 15-30% between runs: runs them in alternating pairs (A, then B), prints each pair's events/s
# and ratio B/A, then the median ratio. On the development VM, two copies of one binary gave
# pair ratios from 0.88 to 1.03 and a median of 0.98 over six pairs, so a median inside that
# range says nothing.
#
#   bench/ab.sh A B PAIRS [cayuga-bench options...]
#
# e.g. bench/ab.sh /tmp/base/cayuga-bench build/cayuga-bench 6 --queries 100000 \
#        --symbols 20000 --workload walk --jit off --events 1500000
# The options must select one configuration (one row of the table).
set -euo pipefail
# --help prints the comment above.
if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0"; exit 0; fi
usage="usage: bench/ab.sh A B PAIRS [cayuga-bench options...] (--help for more)"
if [ $# -lt 3 ]; then echo "$usage" >&2; exit 2; fi
a=$1 b=$2 pairs=$3
shift 3
if ! [[ $pairs =~ ^[1-9][0-9]*$ ]]; then echo "bad PAIRS '$pairs': a positive number" >&2; exit 2; fi
for bin in "$a" "$b"; do
  if [ ! -x "$bin" ]; then echo "not an executable: $bin" >&2; exit 2; fi
done

# The events/s of the one row a run prints (its table rows have 13 fields).
rate() {
  local out rows
  if ! out=$("$@" 2>&1); then printf '%s\n' "$out" >&2; echo "failed: $*" >&2; exit 1; fi
  rows=$(awk 'NF == 13 && $1 != "load" {print $7}' <<< "$out")
  if [ "$(wc -l <<< "$rows")" -ne 1 ] || [ -z "$rows" ]; then
    echo "the options must select one configuration; this run printed:" >&2
    printf '%s\n' "$out" >&2
    exit 2
  fi
  echo "$rows"
}

ratios=()
for ((i = 1; i <= pairs; i++)); do
  ra=$(rate "$a" "$@")
  rb=$(rate "$b" "$@")
  r=$(awk -v x="$ra" -v y="$rb" 'BEGIN {printf "%.3f", y / x}')
  ratios+=("$r")
  echo "pair $i: A $ra B $rb B/A $r"
done
printf '%s\n' "${ratios[@]}" | sort -n |
  awk -v n="$pairs" '{v[NR] = $1} END {
    m = n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    printf "median B/A over %d pairs: %.3f\n", n, m
  }'
