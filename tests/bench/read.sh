#!/usr/bin/env bash
# Read path beside PostgreSQL itself (see BENCHMARKS.md, "Read path"): on one
# data set, each workload through the service (wrk, signed in as a
# sales_manager: token, whole-request policy check and row scope applied)
# and the same answer from pgbench running the hand-written SQL in
# tests/bench/sql/ (prepared, same client count), in the same run.
#
#   tests/bench/read.sh                 # 100k accounts / 500k contacts / 2M activities
#   REUSE=1 tests/bench/read.sh         # keep the data of the previous run
#   SCALE=10 DURATION=5s tests/bench/read.sh   # a tenth of the size, quick look
#   CRM_BIN=target/debug/crm ...        # another binary (default: release build)
#
# Workloads: (a) account(id) with 5 fields over 10,000 rotating ids, (b) 50
# accounts x 10 contacts x 5 activities, (c) the first 20 accounts by name
# prefix over 22 rotating prefixes (the most common first words of the
# demo's names, ~4,500 accounts each). Prints requests/s, p50/p99, service CPU
# per request, statements per request and the ratio service / pgbench.
set -euo pipefail
cd "$(dirname "$0")/../.."

SCALE=${SCALE:-1}
DURATION=${DURATION:-20s}
CLIENTS=${CLIENTS:-32}
DB=crm_bench
URL="postgres://postgres@127.0.0.1:5432/$DB"
PORT=18900
WORK=$(mktemp -d)
SQL=tests/bench/sql
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
. tests/bench/lib.sh

export DATABASE_URL=$URL CRM_DATA_DIR=$WORK CRM_ADMIN_PASSWORD=bench-admin-password CRM_LOG=warn
if [[ "${REUSE:-0}" != 1 ]]; then
  fresh_db
  echo "== generating data"
  time $CRM_BIN demo --accounts $((100000 / SCALE)) --contacts $((500000 / SCALE)) \
    --activities $((2000000 / SCALE)) --purchases 0 --seed 1 > "$WORK/demo.txt"
  head -1 "$WORK/demo.txt"
  psql_db -c "VACUUM ANALYZE"
fi

# The rotating inputs, in tables pgbench reads and in wrk's scripts.
psql_db <<'SQL'
DROP TABLE IF EXISTS bench_ids, bench_prefixes;
CREATE TABLE bench_ids (n int PRIMARY KEY, id text NOT NULL);
INSERT INTO bench_ids SELECT row_number() OVER (ORDER BY md5(id)), id
  FROM (SELECT id FROM accounts WHERE deleted_at IS NULL ORDER BY md5(id) LIMIT 10000) s;
CREATE TABLE bench_prefixes (n int PRIMARY KEY, p text NOT NULL);
INSERT INTO bench_prefixes SELECT row_number() OVER (ORDER BY p), p
  FROM (SELECT split_part(name, ' ', 1) AS p FROM accounts GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 22) s;
ANALYZE bench_ids; ANALYZE bench_prefixes;
SQL
IDS=$(psql_db -c "SELECT count(*) FROM bench_ids")
PREFIXES=$(psql_db -c "SELECT count(*) FROM bench_prefixes")

# The manager's scope, as the service computes it (the pgbench scripts get
# the same list).
manager_scope
for f in a b; do
  sed -e "s/:teams/$TEAMS/g" -e "s/:manager/'$MANAGER'/g" -e "s/:ids/$IDS/g" "$SQL/$f.sql" > "$WORK/$f.sql"
done
# (c): one script per prefix with the prefix written in (pgbench variables
# are numbers), all run with equal weights.
C_SCRIPTS=()
for i in $(seq 1 "$PREFIXES"); do
  p=$(psql_db -c "SELECT p FROM bench_prefixes WHERE n = $i")
  sed -e "s/:teams/$TEAMS/g" -e "s/:prefix_end/'$p' || chr(1114111)/g" -e "s/:prefix/'$p'/g" \
    "$SQL/c.sql" > "$WORK/c_$i.sql"
  C_SCRIPTS+=(-f "c_$i.sql@1")
done
cp "$WORK/c_1.sql" "$WORK/c.sql"

serve
sign_in_manager

# wrk scripts: each request takes the next id or prefix of the list.
lua_list() { psql_db -c "SELECT string_agg('\"' || $1 || '\"', ',' ORDER BY n) FROM $2"; }
{ cat "$WORK/common.lua"; echo "ids = { $(lua_list id bench_ids) }"
  echo 'request = rotate(ids, [[{"query":"{ account(id: \"]], [[\") { name industry website phone lifecycleStage } }"}]])'
} > "$WORK/a.lua"
{ cat "$WORK/common.lua"
  echo 'wrk.body = [[{"query":"{ accounts(first: 50) { edges { node { name contacts(first: 10) { edges { node { firstName lastName timeline(first: 5) { edges { node { title occurredAt } } } } } } } } } }"}]]'
} > "$WORK/b.lua"
{ cat "$WORK/common.lua"; echo "prefixes = { $(lua_list p bench_prefixes) }"
  echo 'request = rotate(prefixes, [[{"query":"{ accounts(first: 20, filter: {namePrefix: \"]], [[\"}) { edges { node { id name } } } }"}]])'
} > "$WORK/c.lua"

# Both sides must give the same answer: the service's answer to the first
# id / prefix against the SQL's rows (tab-separated; NULL as empty).
first_id=$(psql_db -c "SELECT id FROM bench_ids WHERE n = 1")
first_prefix=$(psql_db -c "SELECT p FROM bench_prefixes WHERE n = 1")
check() { # workload, GraphQL body, python expression over the answer `d` giving rows
  local got want
  got=$(gql "$2" | python3 -c "
import json, sys
d = json.load(sys.stdin)
assert 'errors' not in d, d
for row in $3:
    print('\t'.join('' if v is None else str(v) for v in row))")
  want=$(sed -e 's/:n\b/1/g' "$WORK/$1.sql" | sed '/^\\set/d' | psql_db -F $'\t')
  if [[ "${got,,}" != "${want,,}" ]]; then  # enums: GraphQL upper case, stored lower
    echo "workload $1: the service and the SQL disagree" >&2
    echo "service: ${got:0:600}" >&2; echo "sql:     ${want:0:600}" >&2; exit 1
  fi
}
check a "{\"query\":\"{ account(id: \\\"$first_id\\\") { name industry website phone lifecycleStage } }\"}" \
  "[[a[k] for k in ('name', 'industry', 'website', 'phone', 'lifecycleStage')] for a in [d['data']['account']]]"
# (b): the SQL answers one JSON document; both sides projected to names,
# contact names and activity titles, in order.
project='[[a["name"], [[c["firstName"], c["lastName"], [t["title"] for t in c["timeline"]]] for c in a["contacts"]]] for a in d]'
got=$(gql "$(sed -n 's/^wrk.body = \[\[\(.*\)\]\]$/\1/p' "$WORK/b.lua")" | python3 -c "
import json, sys
d = json.load(sys.stdin)
assert 'errors' not in d, d
d = [{'name': a['node']['name'], 'contacts': [{'firstName': c['node']['firstName'], 'lastName': c['node']['lastName'], 'timeline': [t['node'] for t in c['node']['timeline']['edges']]} for c in a['node']['contacts']['edges']]} for a in d['data']['accounts']['edges']]
print(json.dumps($project))")
want=$(psql_db -f "$WORK/b.sql" | python3 -c "
import json, sys
d = json.load(sys.stdin)
print(json.dumps($project))")
if [[ "$got" != "$want" ]]; then
  echo "workload b: the service and the SQL disagree" >&2
  echo "service: ${got:0:600}" >&2; echo "sql:     ${want:0:600}" >&2; exit 1
fi
check c "{\"query\":\"{ accounts(first: 20, filter: {namePrefix: \\\"$first_prefix\\\"}) { edges { node { id name } } } }\"}" \
  "[[e['node']['id'], e['node']['name']] for e in d['data']['accounts']['edges']]"

table_header
for w in a b c; do
  if [[ $w == c ]]; then scripts=("${C_SCRIPTS[@]}"); else scripts=(-f "$w.sql"); fi
  measure "$w" "$WORK/$w.lua" "${scripts[@]}"
done
echo
echo "service on PostgreSQL: RSS after the run $(awk '/VmRSS/{print $2, $3}' /proc/$SERVER/status), peak $(awk '/VmHWM/{print $2, $3}' /proc/$SERVER/status)"
kill $SERVER; wait $SERVER 2>/dev/null || true

# Footprint on the embedded default: time from start to a ready /readyz on an
# existing SQLite database, and the idle RSS a few seconds later.
SQLITE_DIR=$WORK/sqlite
mkdir -p "$SQLITE_DIR"
unset DATABASE_URL
# A first start creates the database and its admin; the second is measured.
CRM_DATA_DIR=$SQLITE_DIR CRM_LISTEN=127.0.0.1:$PORT $CRM_BIN serve &
SERVER=$!
until curl -sf localhost:$PORT/readyz >/dev/null; do sleep 0.05; done
kill $SERVER; wait $SERVER 2>/dev/null || true
start=$(date +%s%N)
CRM_DATA_DIR=$SQLITE_DIR CRM_LISTEN=127.0.0.1:$PORT $CRM_BIN serve &
SERVER=$!
until curl -sf localhost:$PORT/readyz >/dev/null; do sleep 0.01; done
ready=$(( ($(date +%s%N) - start) / 1000000 ))
sleep 5
echo "SQLite, existing database: ready after ${ready} ms; idle RSS $(awk '/VmRSS/{print $2, $3}' /proc/$SERVER/status)"
