#!/usr/bin/env bash
# Throughput of the normal read path with memory release on (the default)
# and off (CRM_MEMORY_RELEASE=off), two servers on copies of the same data,
# wrk rounds alternating between them so machine noise hits both alike
# (see BENCHMARKS.md, "Memory under hostile load").
#
#   cargo build --release
#   tests/bench/release_ab.sh              # 3 rounds of 10 s each
#   ROUNDS=5 SECS=20 tests/bench/release_ab.sh
#   # two builds, both with release on: the second server runs B_BIN with
#   # the settings of B_ENV (default CRM_MEMORY_RELEASE=off)
#   B_BIN=path/to/the/previous/crm B_ENV= tests/bench/release_ab.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-10}
W=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"' EXIT
export CRM_ADMIN_PASSWORD=bench-admin-password CRM_LOG=warn
CRM_DATA_DIR=$W/data target/release/crm demo --accounts 100 --contacts 2000 \
  --activities 10000 --purchases 0 --seed 1 > "$W/demo.txt"

start() { # name, port, binary, settings...
  local name=$1 port=$2 bin=$3
  shift 3
  cp -r "$W/data" "$W/$name"
  env "$@" CRM_DATA_DIR=$W/$name CRM_LISTEN=127.0.0.1:$port "$bin" serve 2>"$W/$name.log" &
  PIDS+=($!)
  for _ in $(seq 1 100); do curl -sf localhost:$port/readyz >/dev/null && break; sleep 0.2; done
  local token
  token=$(curl -sf localhost:$port/graphql -H 'content-type: application/json' \
    -d '{"query":"mutation { login(email: \"admin@localhost\", password: \"bench-admin-password\") { token } }"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["login"]["token"])')
  cat > "$W/$name.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
wrk.body = '{"query":"{ accounts(first: 20) { edges { node { id name lifecycleStage } } } }"}'
LUA
}
start on 18971 target/release/crm
read -r -a b_env <<<"${B_ENV-CRM_MEMORY_RELEASE=off}"
start off 18972 "${B_BIN:-target/release/crm}" ${b_env[@]+"${b_env[@]}"}
echo "on: target/release/crm; off: ${B_BIN:-target/release/crm} ${B_ENV-CRM_MEMORY_RELEASE=off}"

for r in $(seq 1 "$ROUNDS"); do
  for pair in on:18971 off:18972; do
    name=${pair%%:*} port=${pair##*:}
    rps=$(wrk -t1 -c8 -d"${SECS}s" -s "$W/$name.lua" "http://127.0.0.1:$port/graphql" |
      awk '/Requests\/sec/ {print $2} /Non-2xx/ {print "non-2xx!"}')
    echo "round $r release $name: $rps req/s"
    # A quiet pause, as between bursts of real traffic: the release runs.
    sleep 3
  done
done
