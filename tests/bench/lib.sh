# Shared parts of the benchmarks that run the service beside pgbench on one
# PostgreSQL database (read.sh, pipeline.sh). Source it after setting DB,
# PORT, CLIENTS, DURATION and WORK; it sets CRM_BIN (release build unless
# given) and defines the functions below.

command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
command -v pgbench >/dev/null || { echo "needs pgbench (PostgreSQL's client tools)" >&2; exit 1; }
if [[ -z "${CRM_BIN:-}" ]]; then
  cargo build --release --quiet
  CRM_BIN=target/release/crm
fi
SERVER=

psql_db() { psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -qAt "$@" "$DB"; }

# Drops and creates $DB.
fresh_db() {
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" postgres
  psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $DB" postgres
}

# The manager's scope, as the service computes it: the quoted ids of the
# manager's team and the teams below it (sets MANAGER and TEAMS).
manager_scope() {
  MANAGER=$(psql_db -c "SELECT id FROM users WHERE email = 'manager@demo.example'")
  TEAMS=$(psql_db -c "WITH RECURSIVE t AS (SELECT team_id AS id FROM users WHERE id = '$MANAGER'
    UNION SELECT teams.id FROM teams JOIN t ON teams.parent_id = t.id) SELECT string_agg(quote_literal(id), ',') FROM t")
}

# Starts the service on $PORT with a pool of $CLIENTS and waits until ready.
serve() {
  CRM_LISTEN=127.0.0.1:$PORT CRM_DB_POOL_SIZE=$CLIENTS $CRM_BIN serve &
  SERVER=$!
  for _ in $(seq 1 300); do
    curl -sf "localhost:$PORT/readyz" >/dev/null && break
    kill -0 $SERVER 2>/dev/null || { echo "the service exited" >&2; exit 1; }
    sleep 0.2
  done
  curl -sf "localhost:$PORT/readyz" >/dev/null || { echo "the service did not become ready" >&2; exit 1; }
}

gql() { curl -sf "localhost:$PORT/graphql" -H 'content-type: application/json' ${TOKEN:+-H "authorization: Bearer $TOKEN"} -d "$1"; }

# Signs in as the demo's sales manager (sets TOKEN) and writes the wrk
# prelude every script starts with to $WORK/common.lua: JSON POSTs with the
# token, and rotate(list, before, after), a request function taking the
# next item of a list each time.
sign_in_manager() {
  TOKEN=$(gql '{"query":"mutation { login(email: \"manager@demo.example\", password: \"demo-password-1\") { token } }"}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["login"]["token"])')
  cat > "$WORK/common.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
local i = 0
function rotate(list, before, after)
  return function()
    i = i + 1
    return wrk.format(nil, nil, nil, before .. list[(i % #list) + 1] .. after)
  end
end
LUA
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }
statements() { curl -sf "localhost:$PORT/metrics" | awk '/^crm_db_statements_started /{print $2}'; }

table_header() {
  printf '\n%-10s %12s %9s %9s %13s %11s | %12s %9s %9s | %6s\n' workload "service r/s" p50 p99 "CPU/req µs" "stmts/req" "pgbench tps" p50 p99 ratio
}

# measure NAME WRK_SCRIPT PGBENCH_SCRIPT_ARGS...: warms up both sides, runs
# wrk against the service and pgbench (prepared, same client count) on the
# scripts in $WORK for $DURATION each, and prints one table row.
measure() {
  local w=$1 lua=$2; shift 2
  local hz; hz=$(getconf CLK_TCK)
  wrk -t2 -c"$CLIENTS" -d2s -s "$lua" "http://127.0.0.1:$PORT/graphql" >/dev/null
  local t0 s0 t1 s1
  t0=$(cpu_ticks); s0=$(statements)
  wrk -t2 -c"$CLIENTS" -d"$DURATION" --timeout 10s --latency -s "$lua" "http://127.0.0.1:$PORT/graphql" > "$WORK/$w.wrk"
  t1=$(cpu_ticks); s1=$(statements)
  if grep -qE "Non-2xx|Socket errors" "$WORK/$w.wrk"; then
    echo "workload $w: errors under load" >&2; cat "$WORK/$w.wrk" >&2; exit 1
  fi
  local reqs rps p50 p99 cpu stmts
  reqs=$(awk '/requests in/{print $1}' "$WORK/$w.wrk")
  rps=$(awk '/Requests\/sec/{print $2}' "$WORK/$w.wrk")
  p50=$(awk '$1=="50%"{print $2}' "$WORK/$w.wrk")
  p99=$(awk '$1=="99%"{print $2}' "$WORK/$w.wrk")
  cpu=$(( (t1 - t0) * 1000000 / hz / reqs ))
  stmts=$(python3 -c "print(f'{($s1 - $s0) / $reqs:.2f}')")
  (cd "$WORK" && pgbench -h 127.0.0.1 -U postgres -n -M prepared -c "$CLIENTS" -j 2 -T 2 "$@" "$DB" >/dev/null)
  rm -f "$WORK"/pgbench_log.*
  (cd "$WORK" && pgbench -h 127.0.0.1 -U postgres -n -M prepared -c "$CLIENTS" -j 2 \
    -T "${DURATION%s}" -l --log-prefix=pgbench_log "$@" "$DB" > "$w.pgbench")
  local tps pp50 pp99 ratio
  tps=$(awk '/^tps = /{print $3}' "$WORK/$w.pgbench")
  read -r pp50 pp99 < <(cat "$WORK"/pgbench_log.* | python3 -c '
import sys
lat = sorted(int(l.split()[2]) for l in sys.stdin)
q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] / 1000
print(f"{q(0.50):.2f}ms {q(0.99):.2f}ms")')
  ratio=$(python3 -c "print(f'{$rps / $tps:.2f}')")
  printf '%-10s %12s %9s %9s %13s %11s | %12.0f %9s %9s | %6s\n' "($w)" "$rps" "$p50" "$p99" "$cpu" "$stmts" "$tps" "$pp50" "$pp99" "$ratio"
}
