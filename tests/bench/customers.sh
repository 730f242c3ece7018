#!/usr/bin/env bash
# Customers benchmark (see BENCHMARKS.md): PostgreSQL with 100k accounts,
# 500k contacts and 2M timeline entries, the release build, wrk with 32
# connections, signed in as a sales_manager.
#
#   tests/bench/customers.sh            # full size
#   SCALE=10 tests/bench/customers.sh   # a tenth of it, for a quick look
set -euo pipefail
cd "$(dirname "$0")/../.."

SCALE=${SCALE:-1}
DURATION=${DURATION:-20s}
DB=crm_bench
URL="postgres://postgres@127.0.0.1:5432/$DB"
PORT=18900
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT

command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet
CRM=target/release/crm

export DATABASE_URL=$URL CRM_DATA_DIR=$WORK CRM_ADMIN_PASSWORD=bench-admin-password CRM_LOG=warn
# REUSE=1 keeps the data of the previous run (same SCALE).
if [[ "${REUSE:-0}" != 1 ]]; then
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" postgres
  psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $DB" postgres
  echo "== generating data"
  time $CRM demo --accounts $((100000 / SCALE)) --contacts $((500000 / SCALE)) \
    --activities $((2000000 / SCALE)) --purchases 0 --seed 1 > "$WORK/demo.txt"
  # (not piped into head: under pipefail, demo's write to a closed pipe fails)
  head -1 "$WORK/demo.txt"
  psql -h 127.0.0.1 -U postgres -qc "VACUUM ANALYZE" $DB
fi

CRM_LISTEN=127.0.0.1:$PORT CRM_DB_POOL_SIZE=32 $CRM serve &
SERVER=$!
for _ in $(seq 1 50); do curl -sf localhost:$PORT/readyz >/dev/null && break; sleep 0.2; done

gql() { curl -sf localhost:$PORT/graphql -H 'content-type: application/json' ${TOKEN:+-H "authorization: Bearer $TOKEN"} -d "$1"; }
TOKEN=$(gql '{"query":"mutation { login(email: \"manager@demo.example\", password: \"demo-password-1\") { token } }"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["login"]["token"])')
ACCOUNT=$(gql '{"query":"{ accounts(first: 1, orderBy: {field: CREATED_AT}) { edges { node { id } } } }"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["accounts"]["edges"][0]["node"]["id"])')

script() { # name, JSON body
  cat > "$WORK/$1.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
wrk.body = [[$2]]
LUA
}
script a "{\"query\":\"{ account(id: \\\"$ACCOUNT\\\") { name industry website phone lifecycleStage } }\"}"
script b '{"query":"{ accounts(first: 50) { edges { node { name contacts(first: 10) { edges { node { firstName lastName timeline(first: 5) { edges { node { title occurredAt } } } } } } } } } }"}'
script c '{"query":"{ accounts(first: 20, filter: {namePrefix: \"Acme\"}) { edges { node { id name } } } }"}'
script d '{"query":"{ accounts(first: 20, filter: {namePrefix: \"Acme\"}) { totalCount edges { node { id name } } } }"}'

for q in a b c d; do
  # Check the query answers without errors before timing it.
  body=$(sed -n 's/^wrk.body = \[\[\(.*\)\]\]$/\1/p' "$WORK/$q.lua")
  if gql "$body" | grep -q '"errors"'; then echo "query $q fails: $(gql "$body")" >&2; exit 1; fi
  echo "== query $q"
  wrk -t2 -c32 -d"$DURATION" --latency -s "$WORK/$q.lua" "http://127.0.0.1:$PORT/graphql" \
    | grep -E "Requests/sec|^ +50%|^ +99%|Non-2xx|Socket errors"
done
