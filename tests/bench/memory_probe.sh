#!/usr/bin/env bash
# A quick probe of where the server's memory goes after heavy answers (see
# BENCHMARKS.md, "Memory under hostile load"): RSS and thread count idle,
# after five 100x100x100 fan-out answers (limits raised so they run), and
# after 3,000 fuzzed requests; half the data of hostile.sh. Arguments are
# environment settings for the server, to compare allocator knobs:
#
#   cargo build --release
#   tests/bench/memory_probe.sh                          # defaults
#   tests/bench/memory_probe.sh MIMALLOC_PURGE_DELAY=0   # purge freed pages at once
set -euo pipefail
cd "$(dirname "$0")/../.."

CRM=target/release/crm
W=$(mktemp -d)
PORT=18961
S=
trap '[[ -n $S ]] && kill $S 2>/dev/null; rm -rf "$W"' EXIT
export CRM_DATA_DIR=$W CRM_ADMIN_PASSWORD=bench-admin-password CRM_LOG=warn
$CRM demo --accounts 100 --contacts 10000 --activities 200000 --purchases 0 --seed 1 > "$W/demo.txt"

env "$@" CRM_LISTEN=127.0.0.1:$PORT CRM_MAX_COST=100000000 CRM_MAX_RESPONSE_BYTES=1000000000 \
  CRM_REQUEST_TIMEOUT_SECS=600 $CRM serve 2>"$W/server.log" &
S=$!
for _ in $(seq 1 100); do curl -sf localhost:$PORT/readyz >/dev/null && break; sleep 0.2; done
TOKEN=$(curl -sf localhost:$PORT/graphql -H 'content-type: application/json' \
  -d '{"query":"mutation { login(email: \"admin@localhost\", password: \"bench-admin-password\") { token } }"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["login"]["token"])')
rss() { awk '/VmRSS/ {printf "%.0f", $2/1024}' /proc/$S/status; }
threads() { ls /proc/$S/task | wc -l; }

echo "idle: $(rss) MB, $(threads) threads"
python3 tests/bench/hostile_load.py $PORT "$TOKEN" heavy 5
sleep 5
echo "5 s after the heavy answers: $(rss) MB, $(threads) threads"
sleep 15
echo "20 s after: $(rss) MB"
python3 tests/bench/hostile_load.py $PORT "$TOKEN" fuzz 3000
sleep 5
echo "5 s after 3,000 fuzzed requests: $(rss) MB, $(threads) threads"
