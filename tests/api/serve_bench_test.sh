#!/bin/sh
# cayuga-serve-bench: --help and its usage errors (status 2), then one short run of each kind:
# the pass-through query, whose every output a subscriber must read back (status 0 says none
# was lost), and generated queries, which must report outputs.
# Usage: serve_bench_test.sh CAYUGA_SERVE_BENCH
set -u
bench=$1
fail() { echo "FAIL: $*"; exit 1; }

"$bench" --help > help.txt 2>&1 || fail "--help exited $?"
grep -q -- '--queries N' help.txt || fail "--help does not describe --queries: $(cat help.txt)"

for args in "--seconds x" "--clients 0" "--phase udp" "--jit maybe" "--bogus 1" "--batch"; do
  # shellcheck disable=SC2086
  "$bench" $args > out.txt 2> err.txt
  rc=$?
  [ $rc -eq 2 ] || fail "'$args' exited $rc, not 2"
  grep -q 'cayuga-serve-bench: .*(--help for usage)' err.txt || fail "'$args' said: $(cat err.txt)"
done

"$bench" --seconds 1 --symbols 50 > pass.txt 2>&1 || fail "pass-through run exited $?: $(cat pass.txt)"
grep -Eq '^http  2 clients x 1000-event batches: [0-9]+ events in [0-9.]+ s = [0-9]+ events/s, [0-9]+ outputs, [0-9]+ peak instances' pass.txt ||
  fail "no http line: $(cat pass.txt)"
grep -Eq '^tcp   1 connection, cayuga lines: +[0-9]+ events in [0-9.]+ s = [0-9]+ events/s, [0-9]+ outputs, [0-9]+ peak instances$' pass.txt ||
  fail "no tcp line: $(cat pass.txt)"

"$bench" --queries 300 --seconds 1 --phase tcp --jit off > mix.txt 2>&1 ||
  fail "generated queries run exited $?: $(cat mix.txt)"
[ "$(wc -l < mix.txt)" -eq 1 ] || fail "--phase tcp printed more than the tcp line: $(cat mix.txt)"
outputs=$(sed -n 's/^tcp .* events\/s, \([0-9]*\) outputs, [0-9]* peak instances$/\1/p' mix.txt)
[ "${outputs:-0}" -gt 0 ] || fail "no outputs reported: $(cat mix.txt)"
echo "serve_bench_test: ok"
