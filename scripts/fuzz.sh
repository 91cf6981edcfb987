#!/usr/bin/env bash
# Builds the CEL front-end fuzz target (parser, analyzer, automaton builder) with clang (libFuzzer + ASan + UBSan) in build-fuzz/ and runs
# it for SECONDS (default 60). Exits non-zero if the fuzzer finds a crash, leak, hang or UB;
# the reproducer is left in build-fuzz/ (crash-*, timeout-*, ...).
#
#   scripts/fuzz.sh 60
#   CXX=clang++-15 scripts/fuzz.sh 600
set -euo pipefail
# --help prints the comment above.
if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0"; exit 0; fi

seconds="${1:-60}"
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build-fuzz"
cxx="${CXX:-clang++-14}"

generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi

cmake -S "$root" -B "$build" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER="$cxx" \
  -DCAYUGA_FUZZ=ON \
  -DCAYUGA_TESTS=OFF
# Only the fuzz target and what it links (lang, compiler, nfa), not the whole project.
cmake --build "$build" --target fuzz_parser

# The seeds stay read-only in the repository; new inputs go to a working corpus in build-fuzz.
corpus="$build/fuzz-corpus"
mkdir -p "$corpus"
cd "$build"
./fuzz_parser -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
  -dict="$root/tests/fuzz/cel.dict" -print_final_stats=1 \
  "$corpus" "$root/tests/fuzz/corpus"
