#!/usr/bin/env bash
# Measures the targets of issue 4 (hundreds of thousands of queries) and prints them as one
# Markdown table: the target, what was measured, and whether it was met. Every measurement is
# a command of docs/benchmarks.md, and each number is the median of --repeat runs:
#  - in memory: cayuga-bench --queries Q --symbols Q/5 --workload walk --jit off,on --events E
#    (JIT off is the interpreter; the last row compares the two);
#  - end to end: `cayuga run --stats` over the script and the 2E events in the Cayuga format
#    that `cayuga-bench --write` makes for the same mix;
#  - the cost of more queries: cayuga-bench --scaled --queries S (then Q) --jit off --events E,
#    the two sizes run in alternation, one run each per round (the ratio: the median of the
#    rounds' ratios);
#  - registration: cayuga-bench --queries M --symbols M/5 --events 10000 --jit off (compile
#    time, the row's peak resident set, live heap per query).
#
#   bench/targets.sh [--build DIR] [--queries Q] [--small S] [--million M] [--events E]
#                    [--repeat R]
#
# Defaults: --build build, Q 100000, S 1000, M 1000000, E 3000000, R 3; three to five minutes on
# the development VM. --million 0 leaves the registration target out. The thresholds are the
# issue's whatever the sizes.
set -euo pipefail
shopt -s inherit_errexit  # a failed run inside $(...) stops the script too
if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0"; exit 0; fi
usage="usage: bench/targets.sh [--build DIR] [--queries Q] [--small S] [--million M] [--events E] [--repeat R] (--help for more)"

build=build queries=100000 small=1000 million=1000000 events=3000000 repeat=3
while [ $# -gt 0 ]; do
  if [ $# -lt 2 ]; then echo "$usage" >&2; exit 2; fi
  case $1 in
    --build) build=$2 ;;
    --queries) queries=$2 ;;
    --small) small=$2 ;;
    --million) million=$2 ;;
    --events) events=$2 ;;
    --repeat) repeat=$2 ;;
    *) echo "unknown option $1" >&2; echo "$usage" >&2; exit 2 ;;
  esac
  shift 2
done
for pair in "--queries $queries" "--small $small" "--events $events" "--repeat $repeat"; do
  if ! [[ ${pair#* } =~ ^[1-9][0-9]*$ ]]; then echo "bad value '${pair#* }' for ${pair% *}" >&2; exit 2; fi
done
if ! [[ $million =~ ^(0|[1-9][0-9]*)$ ]]; then echo "bad value '$million' for --million" >&2; exit 2; fi
bench=$build/cayuga-bench cayuga=$build/cayuga
for bin in "$bench" "$cayuga"; do
  if [ ! -x "$bin" ]; then echo "not an executable: $bin (build first: ./scripts/build.sh release)" >&2; exit 2; fi
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Runs a command; on failure shows its output and stops.
run() {
  local out
  if ! out=$("$@" 2>&1); then printf '%s\n' "$out" >&2; echo "failed: $*" >&2; exit 1; fi
  printf '%s\n' "$out"
}
# The rows of a cayuga-bench table (13 fields, after the header).
rows() { awk 'NF == 13 && $1 != "load"'; }
# The median of the numbers on stdin, one per line.
median() { sort -n | awk '{v[NR] = $1} END {print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
# "yes" or "no": whether the awk condition $1 (over the numbers measured) holds.
yes_no() { awk "BEGIN {print ($1) ? \"yes\" : \"no\"}"; }
# The walk of Q queries as the docs run it: five queries per symbol.
walk_of() { echo --queries "$1" --workload walk --symbols $(($1 / 5 > 0 ? $1 / 5 : 1)); }
# Stops if a measurement came out empty (a table not in the form expected).
need() {
  for name in "$@"; do
    if [ -z "${!name}" ]; then echo "no $name in the output of the run" >&2; exit 1; fi
  done
}

echo "measuring (--repeat $repeat each) ..." >&2
read -r -a walk <<< "$(walk_of "$queries")"
memory=$(run "$bench" "${walk[@]}" --jit off,on --events "$events" --repeat "$repeat" | rows)
off=$(awk '$3 == "off" {print $7}' <<< "$memory")
on=$(awk '$3 == "on" {print $7}' <<< "$memory")
idle=$(awk '$3 == "off" {print $6}' <<< "$memory")
need off on idle

run "$bench" "${walk[@]}" --events $((2 * events)) --write "$tmp" > /dev/null
e2e=$(for ((i = 0; i < repeat; i++)); do
  run "$cayuga" run "$tmp/walk_$queries.cel" --events "$tmp/walk.txt" --stats -o /dev/null \
    --quiet | sed -n 's/.*"events_per_s":\([0-9.]*\).*/\1/p'
done | median)
rm -f "$tmp"/*
need e2e

# The two sizes alternate, one run each per round, so that a slow spell of the shared host
# falls on both; the ratio is the median of the rounds' ratios.
scaled_rate() {
  run "$bench" --scaled --queries "$1" --workload walk --jit off --events "$events" | rows |
    awk '{print $7}'
}
pairs=$(for ((i = 0; i < repeat; i++)); do
  a=$(scaled_rate "$small")
  b=$(scaled_rate "$queries")
  echo "$a $b"
done)
few=$(awk '{print $1}' <<< "$pairs" | median)
many=$(awk '{print $2}' <<< "$pairs" | median)
# (Rounded here, so that the "met" column judges the ratio shown.)
ratio=$(awk '{print $1 / $2}' <<< "$pairs" | median | awk '{printf "%.2f", $1}')
need few many ratio

if [ "$million" -gt 0 ]; then
  read -r -a big_walk <<< "$(walk_of "$million")"
  big=$(run "$bench" "${big_walk[@]}" --events 10000 --jit off | rows)
  read -r compile_ms big_idle peak_mib < <(awk '{print $5, $6, $13}' <<< "$big")
  need compile_ms big_idle peak_mib
fi

echo "| target | measured | met |"
echo "|---|---|---|"
printf '| %s queries in memory, one thread: >= 2,000,000 events/s | %.0f (JIT off), %.0f (JIT on) | %s |\n' \
  "$queries" "$off" "$on" "$(yes_no "$off >= 2000000 || $on >= 2000000")"
printf '| %s queries through `cayuga run`: >= 1,000,000 events/s | %.0f | %s |\n' \
  "$queries" "$e2e" "$(yes_no "$e2e >= 1000000")"
printf '| %s -> %s queries at constant work per event: < 2x the cost per event | %.0f -> %.0f events/s: %sx (rounds: %s) | %s |\n' \
  "$small" "$queries" "$few" "$many" "$ratio" "$repeat" "$(yes_no "$ratio < 2")"
if [ "$million" -gt 0 ]; then
  printf '| %s queries register and compile: < 60 s, < 8 GiB | %.1f s, peak %.0f MiB | %s |\n' \
    "$million" "$(awk -v m="$compile_ms" 'BEGIN {print m / 1000}')" "$peak_mib" \
    "$(yes_no "$compile_ms < 60000 && $peak_mib < 8192")"
  printf '| an idle query: < 2,048 B | %.0f B at %s queries, %.0f B at %s | %s |\n' \
    "$big_idle" "$million" "$idle" "$queries" "$(yes_no "$big_idle < 2048 && $idle < 2048")"
else
  printf '| an idle query: < 2,048 B | %.0f B at %s queries | %s |\n' \
    "$idle" "$queries" "$(yes_no "$idle < 2048")"
fi
printf '| native code against the interpreter, in memory | JIT on / JIT off: %s | (a comparison) |\n' \
  "$(awk -v a="$on" -v b="$off" 'BEGIN {printf "%.2f", a / b}')"
