#!/bin/sh
# SIGTERM drains: every event accepted before the signal reaches the subscriber, whose stream
# then ends with {"end":"server shutting down"}, and the server exits 0.
# Usage: sigterm_test.sh CAYUGA_SERVE WORKDIR
set -u
serve=$1 work=$2
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
cat > pass.cel <<'CEL'
CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);
SELECT * FROM FILTER{Price >= 0}(Stock) PUBLISH All;
CEL
"$serve" --listen 127.0.0.1:0 --port-file ports --script pass.cel 2>server.log &
pid=$!
for i in $(seq 50); do [ -s ports ] && break; sleep 0.1; done
read http ingest < ports || { echo "server did not start"; cat server.log; exit 1; }
curl -sN -H 'Accept: application/x-ndjson' "http://127.0.0.1:$http/v1/subscribe/All" > out.jsonl &
sub=$!
sleep 0.5
i=0
while [ $i -lt 20000 ]; do
  echo "{\"stream\":\"Stock\",\"Name\":\"N$i\",\"Price\":$i,\"Volume\":$i}"; i=$((i + 1))
done > batch.jsonl
accepted=0
for k in 1 2 3 4 5; do
  n=$(curl -s -X POST --data-binary @batch.jsonl "http://127.0.0.1:$http/v1/events" |
      sed -n 's/.*"accepted":\([0-9]*\).*/\1/p')
  accepted=$((accepted + ${n:-0}))
done
kill -TERM $pid
wait $pid; rc=$?
wait $sub
lines=$(wc -l < out.jsonl)
last=$(tail -1 out.jsonl)
echo "accepted=$accepted lines=$lines server_rc=$rc last=$last"
[ $rc -eq 0 ] || exit 1
[ "$accepted" -eq 100000 ] || exit 1
[ "$lines" -eq $((accepted + 1)) ] || exit 1
[ "$last" = '{"end":"server shutting down"}' ] || exit 1
