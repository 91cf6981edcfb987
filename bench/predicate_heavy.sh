#!/usr/bin/env bash
# End-to-end run where predicate evaluation dominates (no equality join: every event is tested
# against every waiting instance, ~5,000 of them): `cayuga run` with the JIT on and off.
#   bench/predicate_heavy.sh [BUILD_DIR] [EVENTS]   (default build, 200000)
set -euo pipefail
# --help prints the comment above.
if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0"; exit 0; fi
if [ $# -gt 2 ]; then echo "usage: bench/predicate_heavy.sh [BUILD_DIR] [EVENTS]" >&2; exit 2; fi
cd "$(dirname "$0")/.."
build="${1:-build}"
events="${2:-200000}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 - "$events" > "$tmp/events.txt" <<'PY'
import random, sys
random.seed(5)
p = 100.0
for i in range(int(sys.argv[1])):
    p = max(1.0, p + random.gauss(0, 0.3))
    print(f"S{random.randrange(500)},{p:.3f},{random.randrange(1, 3000)},Stock,{i * 2},{i * 2}")
PY
for jit in on off; do
  printf 'jit %-3s ' "$jit"
  "$build/cayuga" run bench/predicate_heavy.cel --events "$tmp/events.txt" --jit "$jit" \
      --stats --quiet -o /dev/null 2>&1 | tail -1
done
