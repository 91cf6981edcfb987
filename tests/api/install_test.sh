#!/bin/sh
# Installs the build tree into a temporary prefix, then builds the embedding sample as an
# outside project with find_package(cayuga) against that prefix, runs it and checks its output.
# Usage: install_test.sh BUILD_DIR CONSUMER_SOURCE_DIR WORKDIR EXPECTED_OUTPUT
set -eu
build=$1 src=$2 work=$3 expected=$4
rm -rf "$work"
mkdir -p "$work"
cmake --build "$build" --target cayuga_bundle cayuga-serve
cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"
test -f "$work/prefix/include/cayuga/cayuga.h"
test -f "$work/prefix/lib/cmake/cayuga/cayugaConfig.cmake"
# Nothing private may leak into the installed headers.
if grep -n '#include "' "$work"/prefix/include/cayuga/*.h; then
  echo "installed headers include private headers"; exit 1
fi
gen=""
command -v ninja >/dev/null && gen="-G Ninja"
cmake -S "$src" -B "$work/consumer" $gen -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$work/prefix" > "$work/configure.log"
cmake --build "$work/consumer" > "$work/build.log"
"$work/consumer/embed_sample" > "$work/out.txt"
cmp "$work/out.txt" "$expected"
echo "installed, found with find_package, built and ran the sample"
