#!/usr/bin/env bash
# The quick tour: installs the dependencies, builds the release preset (into build/), then runs
# the samples (samples/*.cel) on the real data shipped in tests/data and prints what each query
# looks for, its matches (JSON Lines, the first few of each) and the run's --stats line.
#
#   scripts/demo.sh              install deps, build, run
#   scripts/demo.sh --no-build   run with an existing build/cayuga (or $CAYUGA)
#   DEMO_SHOW=N                  matches shown per query (default 5; 0 = all)
set -euo pipefail
# --help prints the comment above.
if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0"; exit 0; fi
if [ $# -gt 1 ] || { [ $# -eq 1 ] && [ "$1" != --no-build ]; }; then
  echo "demo: unknown argument '$*' (usage: scripts/demo.sh [--no-build])" >&2
  exit 2
fi
cd "$(dirname "$0")/.."

if [ "${1:-}" != "--no-build" ]; then
  ./scripts/build.sh release
fi
cayuga="${CAYUGA:-./build/cayuga}"
[ -x "$cayuga" ] || { echo "demo: $cayuga not found (build first: scripts/build.sh release)" >&2; exit 1; }
show="${DEMO_SHOW:-5}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# run TITLE SCRIPT ARGS... : runs the sample and keeps its matches and stats in $tmp
run() {
  local title="$1"; shift
  echo
  echo "=== $title"
  local a line='$ cayuga run'
  for a in "$@"; do
    if [[ "$a" =~ ^[A-Za-z0-9_./=:-]+$ ]]; then line+=" $a"; else line+=" '${a//\'/\'\\\'\'}'"; fi
  done
  echo "$line"
  "$cayuga" run "$@" --stats --quiet >"$tmp/out.jsonl" 2>"$tmp/err.txt" || {
    cat "$tmp/err.txt" >&2; exit 1; }
}

# matches STREAM DESCRIPTION : prints the header line and the (first) matches of one query
matches() {
  local stream="$1" what="$2" n
  n=$(grep -c "^{\"stream\":\"$stream\"" "$tmp/out.jsonl" || true)
  echo
  echo "$stream: $what"
  echo "  $n match(es)"
  if [ "$show" -eq 0 ] || [ "$n" -le "$show" ]; then
    grep "^{\"stream\":\"$stream\"" "$tmp/out.jsonl" || true
  else
    # (grep -m, not a pipe into head: under pipefail, grep killed by the pipe head closed
    # would end the demo with status 141)
    grep -m "$show" "^{\"stream\":\"$stream\"" "$tmp/out.jsonl"
    echo "  ... and $((n - show)) more (DEMO_SHOW=0 shows all)"
  fi
}

stats() {
  echo
  echo "stats: $(grep '^{' "$tmp/err.txt" | tail -n 1)"
}

# 1. Stocks: a year of 1-minute bars of two symbols.
run "samples/stocks.cel on a year of 1-minute bars of SW and TPL (2024, 69038 bars; times: epoch ms)" \
  samples/stocks.cel \
  --input Stock=tests/data/stocks/bars_1min_2024_SW_TPL.csv.gz \
  --time-column epoch_ms --time-format ms --map Name=sym --map Price=close --map Volume=volume
matches LargeTradeRebound \
  "a bar with volume > 10000, then a strictly falling close for >= 10 min, then a close >= 5% above the bottom within a day (Span in ms)"
matches DoubleTop \
  "an M: a rise >= 0.5%, a fall >= 0.5%, a rise back to within 0.2% of the first top, then a close below the trough, all within a day (one line per admissible start)"
stats

# 2. Logins: an sshd log.
failed='(?P<ts>\w+ +\d+ [\d:]+) \S+ sshd\[\d+\]: Failed password for (invalid user )?(?P<User>\S+) from (?P<Host>[\d.]+)'
accepted='(?P<ts>\w+ +\d+ [\d:]+) \S+ sshd\[\d+\]: Accepted password for (?P<User>\S+) from (?P<Host>[\d.]+)'
run "samples/logins.cel on an sshd log (tests/data/logs/OpenSSH_2k.log, 2000 lines; times: ms into 1970, syslog has no year)" \
  samples/logins.cel \
  --input Failed=tests/data/logs/OpenSSH_2k.log --regex "$failed" \
  --time-column ts --time-format '%b %d %H:%M:%S' \
  --input Accepted=tests/data/logs/OpenSSH_2k.log --regex "$accepted" \
  --time-column ts --time-format '%b %d %H:%M:%S'
matches BruteForce \
  "five failed passwords from one host within a minute (one line per derivation: failures in the same second multiply them)"
matches Compromise \
  "a successful login from a brute-forcing host within 10 minutes of the burst (none in this log)"
stats
