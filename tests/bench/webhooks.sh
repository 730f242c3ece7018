#!/usr/bin/env bash
# Webhook delivery benchmark (see BENCHMARKS.md): the release build on
# PostgreSQL delivering `account.*` events to ENDPOINTS endpoints of a local
# receiver while wrk creates accounts; commit-to-receipt latency and
# deliveries/s, live and when draining a backlog, beside the receiver alone
# (wrk POSTing the same payloads to it, one connection per request as the
# sender does).
#
#   tests/bench/webhooks.sh                 # 4 endpoints, 20 s of writes
#   ENDPOINTS=1 DURATION=10s tests/bench/webhooks.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

ENDPOINTS=${ENDPOINTS:-4}
DURATION=${DURATION:-20s}
WRITERS=${WRITERS:-8}
DB=crm_bench_webhooks
URL="postgres://postgres@127.0.0.1:5432/$DB"
PORT=18910
RX_PORT=18911
WORK=$(mktemp -d)
trap 'kill $SERVER $RX 2>/dev/null || true; rm -rf "$WORK"' EXIT

command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet
CRM=$(realpath "${CARGO_TARGET_DIR:-target}")/release/crm

psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" postgres
psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $DB" postgres
export DATABASE_URL=$URL CRM_DATA_DIR=$WORK/data CRM_ADMIN_PASSWORD=bench-admin-password CRM_LOG=warn
export CRM_WEBHOOK_ALLOW_HOSTS=127.0.0.1
CRM_LISTEN=127.0.0.1:$PORT CRM_DB_POOL_SIZE=32 $CRM serve &
SERVER=$!
for _ in $(seq 1 100); do curl -sf localhost:$PORT/readyz >/dev/null && break; sleep 0.2; done

gql() { curl -sf localhost:$PORT/graphql -H 'content-type: application/json' ${TOKEN:+-H "authorization: Bearer $TOKEN"} -d "$1"; }
TOKEN=$(gql '{"query":"mutation { login(email: \"admin@localhost\", password: \"bench-admin-password\") { token } }"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["login"]["token"])')

receiver() { # output file
  python3 tests/bench/webhook_receiver.py $RX_PORT "$1" &
  RX=$!
  for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/$RX_PORT) 2>/dev/null && break; sleep 0.1; done
}
stop_receiver() { kill -TERM $RX; wait $RX || true; }
wait_for() { # expected deliveries, file of the receiver's progress (its outbox count)
  local want=$1 deadline=$((SECONDS + 300))
  while (( SECONDS < deadline )); do
    done_=$(psql -h 127.0.0.1 -U postgres -tAc "SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'" $DB)
    (( done_ >= want )) && return 0
    sleep 0.5
  done
  echo "only $done_ of $want deliveries after 300 s" >&2; exit 1
}

receiver "$WORK/live.jsonl"
IDS=()
for i in $(seq 1 "$ENDPOINTS"); do
  IDS+=("$(gql "{\"query\":\"mutation { createWebhookEndpoint(input: {url: \\\"http://127.0.0.1:$RX_PORT/e$i\\\", topics: [\\\"account.*\\\"]}) { endpoint { id } } }\"}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["createWebhookEndpoint"]["endpoint"]["id"])')")
done

cat > "$WORK/create.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
wrk.body = [[{"query":"mutation { createAccount(input: {name: \"Bench Ltd\", industry: \"Retail\", website: \"https://bench.example\"}) { id } }"}]]
LUA
echo "== live: $WRITERS writers for $DURATION, $ENDPOINTS endpoints"
wrk -t2 -c"$WRITERS" -d"$DURATION" --latency -s "$WORK/create.lua" "http://127.0.0.1:$PORT/graphql" \
  | grep -E "Requests/sec|^ +50%|^ +99%|Non-2xx|Socket errors"
EVENTS=$(psql -h 127.0.0.1 -U postgres -tAc "SELECT count(*) FROM outbox WHERE kind = 'account.created'" $DB)
wait_for $((EVENTS * ENDPOINTS))
stop_receiver

# A backlog: every endpoint replays all those events at once.
receiver "$WORK/backlog.jsonl"
psql -h 127.0.0.1 -U postgres -qc "DELETE FROM webhook_attempts; DELETE FROM webhook_deliveries" $DB
for id in "${IDS[@]}"; do
  gql "{\"query\":\"mutation { replayWebhook(endpointId: \\\"$id\\\", fromCursor: \\\"0\\\") { id } }\"}" >/dev/null
done
wait_for $((EVENTS * ENDPOINTS))
stop_receiver

# The receiver alone: the same payload POSTed with one connection per request.
receiver "$WORK/alone.jsonl"
BODY=$(psql -h 127.0.0.1 -U postgres -tAc "SELECT payload FROM webhook_deliveries LIMIT 1" $DB)
cat > "$WORK/alone.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Connection"] = "close"
wrk.body = [[$BODY]]
LUA
echo "== the receiver alone: wrk, $ENDPOINTS connections, one per request"
ALONE=$(wrk -t1 -c"$ENDPOINTS" -d10s -s "$WORK/alone.lua" "http://127.0.0.1:$RX_PORT/alone" | sed -n 's/^Requests\/sec: *//p')
stop_receiver

python3 - "$WORK" "$EVENTS" "$ENDPOINTS" "$ALONE" <<'PY'
import json, sys
from datetime import datetime
work, events, endpoints, alone = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
def load(name):
    return [json.loads(l) for l in open(f"{work}/{name}.jsonl")]
def rate(rows):
    ats = sorted(r["at"] for r in rows)
    return len(ats) / (ats[-1] - ats[0]) if len(ats) > 1 else 0.0
live, backlog = load("live"), load("backlog")
lat = sorted((r["at"] - datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")).timestamp()) * 1000 for r in live)
pct = lambda p: lat[min(len(lat) - 1, int(len(lat) * p))]
print(f"events: {events}, deliveries live: {len(live)}, replayed: {len(backlog)}")
print(f"live: {rate(live):.0f} deliveries/s, event-to-receipt p50 {pct(0.5):.1f} ms, p99 {pct(0.99):.1f} ms")
print(f"backlog: {rate(backlog):.0f} deliveries/s")
print(f"receiver alone: {alone:.0f} requests/s; backlog ratio {rate(backlog) / alone:.2f}")
PY
