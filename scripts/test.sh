#!/usr/bin/env bash
# Installs everything, builds and runs the whole test suite: the release build, the
# AddressSanitizer + UndefinedBehaviorSanitizer build, the ThreadSanitizer build of the engine
# tests (parallel epochs) and a bounded parser fuzzing run.
# Set CAYUGA_SKIP_SANITIZE=1 or CAYUGA_FUZZ_SECONDS=0 to skip those parts locally.
set -euo pipefail
# --help prints the comment above.
if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0"; exit 0; fi
if [ $# -gt 0 ]; then
  echo "test.sh: takes no arguments (got '$*'); see --help for the environment it reads" >&2
  exit 2
fi
cd "$(dirname "$0")/.."
jobs="$(nproc)"

./scripts/build.sh release
ctest --test-dir build --output-on-failure --timeout 600 -j "$jobs"

if [ "${CAYUGA_SKIP_SANITIZE:-0}" != 1 ]; then
  ./scripts/build.sh sanitize
  ctest --test-dir build-sanitize --output-on-failure --timeout 900 -j "$jobs"

  # ThreadSanitizer: the engine, the string table, the embedding API, the service (whose
  # connection threads look up candidates beside the engine thread) and the whole end-to-end
  # suite with four workers and every batch split into tasks.
  cmake --preset tsan >/dev/null
  cmake --build --preset tsan --target engine_test expiry_wheel_test interner_test api_test \
    serve_test cayuga e2e_runner
  ctest --test-dir build-tsan --output-on-failure --timeout 900 -j "$jobs" \
    -R '^(Engine|Api|Serve|ExpiryWheel|Interner)[.]|[.]threads4$'
fi

fuzz_seconds="${CAYUGA_FUZZ_SECONDS:-60}"
if [ "$fuzz_seconds" -gt 0 ] && [ -x scripts/fuzz.sh ]; then
  ./scripts/fuzz.sh "$fuzz_seconds"
fi
echo "test.sh: all suites passed"
