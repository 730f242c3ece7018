#!/usr/bin/env bash
# Where the server's memory goes after heavy answers, per allocator setting
# (see BENCHMARKS.md, "Memory under hostile load"). Half the data of
# hostile.sh on SQLite; for each variant, a fresh server on a copy of the
# same data: RSS idle; throughput of a small read query (wrk, 10 s, 8
# connections); five 100x100x100 fan-out answers (limits raised so they
# run), RSS 5 s, 20 s and 60 s later; 3,000 fuzzed requests, RSS 5 s and
# 60 s later; the peak (VmHWM).
#
# Each argument is one variant: a label, then settings for the server
# (environment variables; BIN=path picks another binary). No argument: the
# default build as it is.
#
#   cargo build --release
#   tests/bench/memory_probe.sh                                  # defaults
#   tests/bench/memory_probe.sh default "off CRM_MEMORY_RELEASE=off" \
#     "purge0 CRM_MEMORY_RELEASE=off MIMALLOC_PURGE_DELAY=0"
#   # glibc's malloc: cargo build --release --no-default-features &&
#   #   cp target/release/crm target/release/crm-system (then rebuild)
#   tests/bench/memory_probe.sh "glibc BIN=target/release/crm-system"
#
# MAPS=1 also prints, at each step, resident memory by kind of mapping
# (1 GiB+ regions are mimalloc's arenas, [heap] and 64 MiB regions glibc's).
# SQLITE=1 also prints SQLite's own count of the memory it holds
# (sqlite3_memory_used, read by attaching gdb for a moment) and the pool's
# open connections (/metrics).
# FUZZ=N sends N fuzzed requests instead of 3,000.
# FUZZ_ONLY=1: per variant, a fresh server with the default limits (as a
# hostile client meets it): RSS idle, FUZZ fuzzed requests, RSS 5 s and
# 60 s later, peak. (With the raised limits of the steps above, some
# mutated queries fan out to hundreds of thousands of rows each, so
# 10,000 of them take hours.)
#
# SOAK_SECS=N runs the long mode instead of the steps above: per variant, a
# fresh server, RSS every 10 s for a minute at rest (no request at all),
# then N seconds of mixed load (hostile_load.py soak: 4 clients of reads,
# writes, nested pages, cursor paging and a few fuzzed requests, and 4
# WebSocket subscribers that reconnect and resume), RSS every 10 s, then
# REST_SECS (default 180) at rest, RSS every 10 s; a summary line per
# variant (largest RSS per quarter of the load: a plateau repeats the same
# figure, growth climbs).
#
#   SOAK_SECS=600 tests/bench/memory_probe.sh        # 10 minutes
#   SOAK_SECS=3600 tests/bench/memory_probe.sh       # an hour
set -euo pipefail
cd "$(dirname "$0")/../.."

command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
W=$(mktemp -d)
PORT=${PORT:-18961}
S=
trap '[[ -n $S ]] && kill $S 2>/dev/null; rm -rf "$W"' EXIT
export CRM_ADMIN_PASSWORD=bench-admin-password CRM_LOG=warn
CRM_DATA_DIR=$W/data target/release/crm demo --accounts 100 --contacts 10000 \
  --activities 200000 --purchases 0 --seed 1 > "$W/demo.txt"

rss() { awk '/VmRSS/ {printf "%.0f", $2/1024}' /proc/$S/status; }
hwm() { awk '/VmHWM/ {printf "%.0f", $2/1024}' /proc/$S/status; }
threads() { ls /proc/$S/task | wc -l; }
maps() {
  [[ ${MAPS:-0} == 1 ]] || return 0
  awk '/^[0-9a-f]+-[0-9a-f]+ / { split($1, r, "-"); size = strtonum("0x" r[2]) - strtonum("0x" r[1]);
         kind = ($6 == "[heap]") ? "heap" : ($6 != "") ? "file" : (size >= 1073741824) ? "arena1G" :
                (size >= 60000000 && size <= 67108864) ? "arena64M" : "anon-other" }
       /^Rss:/ { kb[kind] += $2 }
       END { for (k in kb) printf "  %s %.0f MB", k, kb[k] / 1024; print "" }' /proc/$S/smaps
}
sqlite() {
  [[ ${SQLITE:-0} == 1 ]] || return 0
  local used pool
  used=$(gdb -q -batch -p "$S" \
    -ex 'printf "%lld\n", ((long long (*)(void)) sqlite3_memory_used)()' 2>/dev/null | grep -E "^[0-9]+$" | tail -1 || true)
  pool=$(curl -s localhost:$PORT/metrics | awk '/^crm_db_pool_connections / {print $2}')
  echo "  SQLite holds $(awk -v b="$used" 'BEGIN {printf "%.1f", b / 1048576}') MB; pool: ${pool:-?} connections open"
}
step() { echo "  $1: $(rss) MB, $(threads) threads"; maps; sqlite; }
# sample PHASE SECONDS: one line and one record in $W/samples per sample.
sample() {
  local r; r=$(rss)
  echo "$1 $2 $r" >> "$W/samples"
  echo "  $1 $2 s: $r MB, $(threads) threads"; maps
  [[ $1 == load ]] || sqlite
}
soak() {
  : > "$W/samples"
  for t in 0 10 20 30 40 50 60; do sample rest0 $t; [[ $t == 60 ]] || sleep 10; done
  python3 tests/bench/hostile_load.py $PORT "$TOKEN" soak "$SOAK_SECS" > "$W/soak.txt" 2>&1 &
  local load=$! t0=$SECONDS
  while kill -0 $load 2>/dev/null; do
    sleep 10
    kill -0 $load 2>/dev/null && sample load $((SECONDS - t0))
  done
  local ok=0; wait $load || ok=$?
  sed 's/^/  /' "$W/soak.txt" | head -20
  [[ $ok == 0 ]] || echo "  LOAD FAILED (5xx, INTERNAL or a broken subscription, above)"
  t0=$SECONDS
  for t in $(seq 10 10 "${REST_SECS:-180}"); do sleep $((t0 + t - SECONDS)); sample rest $t; done
  awk -v peak="$(hwm)" '
    $1 == "rest0" { idle[$2] = $3 }
    $1 == "load" { n++; t[n] = $2; r[n] = $3 }
    $1 == "rest" { rest[$2] = $3; last = $2 }
    END {
      for (i = 1; i <= n; i++) { q = int(4 * (i - 1) / n) + 1; if (r[i] > m[q]) m[q] = r[i] }
      printf "  summary: at rest %s MB, 60 s later %s MB; under load (%d samples) largest per quarter %s / %s / %s / %s MB, last %s MB; after it 10 s %s, 60 s %s, %s s %s MB; peak %s MB\n",
        idle[0], idle[60], n, m[1], m[2], m[3], m[4], r[n], rest[10], rest[60], last, rest[last], peak
    }' "$W/samples"
}

variants=("$@")
[[ ${#variants[@]} -eq 0 ]] && variants=(default)
cat > "$W/small.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"query":"{ accounts(first: 20) { edges { node { id name lifecycleStage } } } }"}'
LUA

for v in "${variants[@]}"; do
  read -r -a words <<<"$v"
  label=${words[0]}
  bin=target/release/crm
  settings=()
  for w in "${words[@]:1}"; do
    if [[ $w == BIN=* ]]; then bin=${w#BIN=}; else settings+=("$w"); fi
  done
  rm -rf "$W/run" && cp -r "$W/data" "$W/run"
  echo "== $label (${settings[*]:-no settings}, $bin)"
  limits=(CRM_MAX_COST=100000000 CRM_MAX_RESPONSE_BYTES=1000000000 CRM_REQUEST_TIMEOUT_SECS=600)
  [[ ${FUZZ_ONLY:-0} == 1 ]] && limits=()
  env ${settings[@]+"${settings[@]}"} CRM_DATA_DIR=$W/run CRM_LISTEN=127.0.0.1:$PORT \
    ${limits[@]+"${limits[@]}"} "$bin" serve 2>"$W/server.log" &
  S=$!
  for _ in $(seq 1 100); do curl -sf localhost:$PORT/readyz >/dev/null && break; sleep 0.2; done
  TOKEN=$(curl -sf localhost:$PORT/graphql -H 'content-type: application/json' \
    -d '{"query":"mutation { login(email: \"admin@localhost\", password: \"bench-admin-password\") { token } }"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["login"]["token"])')
  sleep 3
  if [[ -n ${SOAK_SECS:-} ]]; then
    soak
    kill $S; wait $S 2>/dev/null || true; S=
    continue
  fi
  step idle
  if [[ ${FUZZ_ONLY:-0} == 1 ]]; then
    echo -n "  "; python3 tests/bench/hostile_load.py $PORT "$TOKEN" fuzz "${FUZZ:-3000}"
    sleep 5; step "5 s after ${FUZZ:-3000} fuzzed requests"
    sleep 55; step "60 s after"
    echo "  peak: $(hwm) MB"
    kill $S; wait $S 2>/dev/null || true; S=
    continue
  fi
  sed "s/^wrk.body/wrk.headers[\"Authorization\"] = \"Bearer $TOKEN\"\nwrk.body/" "$W/small.lua" > "$W/small-auth.lua"
  wrk -t1 -c8 -d10s -s "$W/small-auth.lua" "http://127.0.0.1:$PORT/graphql" |
    awk '/Requests\/sec/ {printf "  small read query: %s req/s", $2} /Non-2xx/ {printf " (%s non-2xx!)", $NF} END {print ""}'
  sleep 2
  step "after the small queries"
  echo -n "  "; python3 tests/bench/hostile_load.py $PORT "$TOKEN" heavy 5
  sleep 5; step "5 s after the heavy answers"
  sleep 15; step "20 s after"
  sleep 40; step "60 s after"
  echo -n "  "; python3 tests/bench/hostile_load.py $PORT "$TOKEN" fuzz "${FUZZ:-3000}"
  sleep 5; step "5 s after ${FUZZ:-3000} fuzzed requests"
  sleep 55; step "60 s after"
  echo "  peak: $(hwm) MB"
  kill $S; wait $S 2>/dev/null || true; S=
done
