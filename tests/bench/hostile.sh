#!/usr/bin/env bash
# Memory under hostile load (see BENCHMARKS.md): the server's RSS idle, after
# ten 100x100x100 fan-out queries (cost limit raised so they run), after
# 10,000 fuzzed requests, and after a stretch of mixed load; SQLite with 200
# accounts, 20,000 contacts and 400,000 timeline entries.
#
#   tests/bench/hostile.sh                       # release build, 1 h of mixed load
#   MIX_SECS=300 BUILD=debug tests/bench/hostile.sh
#   cargo build --release --no-default-features
#   SKIP_BUILD=1 PRELOAD="glibc jemalloc mimalloc" tests/bench/hostile.sh
#       compare allocators by LD_PRELOAD (meaningful only for a binary
#       built without the `mimalloc` feature, i.e. with glibc's malloc;
#       needs Debian's libjemalloc2 and libmimalloc2.0)
set -euo pipefail
cd "$(dirname "$0")/../.."

BUILD=${BUILD:-release}
MIX_SECS=${MIX_SECS:-3600}
FUZZ=${FUZZ:-10000}
SCALE=${SCALE:-1}
PRELOAD=${PRELOAD:-builtin}
FEATURES=${FEATURES:-}
PORT=18950
WORK=$(mktemp -d)
SERVER=
trap '[[ -n $SERVER ]] && kill $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT

# SKIP_BUILD=1 measures the binary already built.
if [[ $BUILD == release ]]; then
  [[ ${SKIP_BUILD:-0} == 1 ]] || cargo build --release --quiet ${FEATURES:+--features $FEATURES}
  CRM=target/release/crm
else
  [[ ${SKIP_BUILD:-0} == 1 ]] || cargo build --quiet ${FEATURES:+--features $FEATURES}
  CRM=target/debug/crm
fi

export CRM_DATA_DIR=$WORK CRM_ADMIN_PASSWORD=bench-admin-password CRM_LOG=warn
echo "== generating data"
$CRM demo --accounts $((200 / SCALE)) --contacts $((20000 / SCALE)) \
  --activities $((400000 / SCALE)) --purchases 0 --seed 1 > "$WORK/demo.txt"
head -1 "$WORK/demo.txt"
cp "$WORK/crm.db" "$WORK/seed.db"

rss() { awk '/VmRSS/ {printf "%.0f", $2/1024}' /proc/$SERVER/status; }
hwm() { awk '/VmHWM/ {printf "%.0f", $2/1024}' /proc/$SERVER/status; }

lib() {
  case $1 in
    jemalloc) ls /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 ;;
    mimalloc) ls /usr/lib/x86_64-linux-gnu/libmimalloc.so.2* | head -1 ;;
    *) echo "" ;;
  esac
}

start() { # allocator, extra environment
  cp "$WORK/seed.db" "$WORK/crm.db"
  env LD_PRELOAD="$(lib "$1")" CRM_LISTEN=127.0.0.1:$PORT "${@:2}" $CRM serve 2>"$WORK/server.log" &
  SERVER=$!
  for _ in $(seq 1 100); do curl -sf localhost:$PORT/readyz >/dev/null && break; sleep 0.2; done
  TOKEN=$(curl -sf localhost:$PORT/graphql -H 'content-type: application/json' \
    -d '{"query":"mutation { login(email: \"admin@localhost\", password: \"bench-admin-password\") { token } }"}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["login"]["token"])')
  python3 tests/bench/hostile_load.py $PORT "$TOKEN" fuzz 50 >/dev/null
  sleep 2
}
stop() { kill $SERVER; wait $SERVER 2>/dev/null || true; SERVER=; }

# Heavy: the 100x100x100 fan-out, which the default max-cost refuses, run
# with the limits raised. Fuzz and mixed load: default limits, a fresh server.
printf "%-9s %8s %16s %9s | %8s %8s %8s %9s\n" allocator "idle MB" "heavy MB 5s/30s" "peak MB" "idle MB" "fuzz MB" "mix MB" "peak MB"
for alloc in $PRELOAD; do
  start "$alloc" CRM_MAX_COST=100000000 CRM_MAX_RESPONSE_BYTES=1000000000 CRM_REQUEST_TIMEOUT_SECS=600
  idle1=$(rss)
  python3 tests/bench/hostile_load.py $PORT "$TOKEN" heavy 10 >&2
  sleep 5; heavy=$(rss); peak1=$(hwm)
  sleep 25; heavy="$heavy/$(rss)"
  stop
  if [[ ${HEAVY_ONLY:-0} == 1 ]]; then
    printf "%-9s %8s %16s %9s |\n" "$alloc" "$idle1" "$heavy" "$peak1"
    continue
  fi
  start "$alloc"
  idle2=$(rss)
  python3 tests/bench/hostile_load.py $PORT "$TOKEN" fuzz "$FUZZ" >&2
  sleep 5; fuzz=$(rss)
  python3 tests/bench/hostile_load.py $PORT "$TOKEN" mix "$MIX_SECS" >&2
  sleep 5; mix=$(rss)
  printf "%-9s %8s %16s %9s | %8s %8s %8s %9s\n" "$alloc" "$idle1" "$heavy" "$peak1" "$idle2" "$fuzz" "$mix" "$(hwm)"
  stop
done
