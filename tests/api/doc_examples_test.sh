#!/bin/sh
# Runs the ```sh blocks of docs/service.md, in order, against one server on ephemeral ports, and
# compares each block's output with the ```output block that follows it (when there is one).
# Usage: doc_examples_test.sh CAYUGA_SERVE SERVICE_MD WORKDIR
set -u
serve=$1 doc=$2 work=$3
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
command -v curl >/dev/null || { echo "curl is needed (scripts/install-deps.sh)"; exit 1; }

"$serve" --listen 127.0.0.1:0 --ingest-port 0 --port-file ports --heartbeat off 2>server.log &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT
for i in $(seq 50); do [ -s ports ] && break; sleep 0.1; done
read http ingest < ports || { echo "server did not start"; cat server.log; exit 1; }

# Split the document into numbered block files: block.N.sh / block.N.output.
awk -v dir="$work" '
  /^```sh$/     { n++; f = dir "/block." n ".sh"; inblock = 1; next }
  /^```output$/ { f = dir "/block." n ".output"; inblock = 1; next }
  /^```/        { if (inblock) { inblock = 0; close(f); f = "" } else { other = !other } next }
  inblock       { print > f }
' "$doc"

status=0
n=1
while [ -f "block.$n.sh" ]; do
  sed -e "s/:7070/:$http/g" -e "s/ 7071/ $ingest/g" "block.$n.sh" > "run.$n.sh"
  sh "run.$n.sh" > "got.$n" 2>"err.$n"
  rc=$?
  if [ $rc -ne 0 ]; then
    echo "block $n exited with $rc:"; cat "block.$n.sh"; cat "err.$n"; status=1
  elif [ -f "block.$n.output" ] && ! cmp -s "got.$n" "block.$n.output"; then
    echo "block $n: output differs:"; diff "block.$n.output" "got.$n"; status=1
  fi
  n=$((n + 1))
done
[ $n -gt 1 ] || { echo "no sh blocks found in $doc"; status=1; }
echo "ran $((n - 1)) blocks"
exit $status
