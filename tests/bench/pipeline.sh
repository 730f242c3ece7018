#!/usr/bin/env bash
# The pipeline board and the quarterly forecast beside PostgreSQL itself
# (see BENCHMARKS.md, "Pipeline board and forecast"): on one data set, each
# query through the service (wrk, signed in as a sales_manager: token,
# whole-request policy check and row scope applied) and the same answer
# from pgbench running the hand-written SQL in tests/bench/sql/ (prepared,
# same client count), in the same run.
#
#   tests/bench/pipeline.sh                  # 100,000 opportunities with history
#   REUSE=1 tests/bench/pipeline.sh          # keep the data of the previous run
#   SCALE=10 DURATION=5s tests/bench/pipeline.sh   # a tenth of the size, quick look
#   CRM_BIN=target/debug/crm ...             # another binary (default: release build)
#
# Workloads: (d) pipelineBoard of "New business": per stage the count, the
# amount and weighted sums, and the first 5 deals; (e) forecast of the
# current quarter for the Sales team tree: per owner, team and in total
# closed won, commit, best case, pipeline, weighted, counts and quotas.
set -euo pipefail
cd "$(dirname "$0")/../.."

SCALE=${SCALE:-1}
DURATION=${DURATION:-20s}
CLIENTS=${CLIENTS:-32}
DB=crm_bench_pipeline
URL="postgres://postgres@127.0.0.1:5432/$DB"
PORT=18901
WORK=$(mktemp -d)
SQL=tests/bench/sql
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
. tests/bench/lib.sh

export DATABASE_URL=$URL CRM_DATA_DIR=$WORK CRM_ADMIN_PASSWORD=bench-admin-password CRM_LOG=warn
if [[ "${REUSE:-0}" != 1 ]]; then
  fresh_db
  echo "== generating data"
  time $CRM_BIN demo --accounts $((20000 / SCALE)) --contacts $((40000 / SCALE)) \
    --activities 0 --purchases 0 --opportunities $((100000 / SCALE)) --seed 1 > "$WORK/demo.txt"
  grep '^demo data' "$WORK/demo.txt"
  psql_db -c "VACUUM ANALYZE"
fi
manager_scope
PIPELINE=$(psql_db -c "SELECT id FROM pipelines WHERE name = 'New business'")
SALES=$(psql_db -c "SELECT id FROM teams WHERE name = 'Sales'")
read -r FROM TO < <(psql_db -F ' ' -c "SELECT to_char(date_trunc('quarter', now()), 'YYYY-MM-DD'),
  to_char(date_trunc('quarter', now()) + interval '3 months', 'YYYY-MM-DD')")
sed -e "s/:teams/$TEAMS/g" -e "s/:pipeline/'$PIPELINE'/g" "$SQL/board.sql" > "$WORK/d.sql"
sed -e "s/:teams/$TEAMS/g" -e "s/:from/'$FROM'/g" -e "s/:to/'$TO'/g" "$SQL/forecast.sql" > "$WORK/e.sql"
echo "New business: $(psql_db -c "SELECT count(*) FROM opportunities WHERE pipeline_id = '$PIPELINE'") deals;" \
  "closing in $FROM..$TO: $(psql_db -c "SELECT count(*) FROM opportunities WHERE close_date >= '$FROM' AND close_date < '$TO'")"

serve
sign_in_manager

BOARD="{ pipelineBoard(pipelineId: \\\"$PIPELINE\\\") { columns { stage { id position } count amounts { currency amountMinor } weightedAmounts { currency amountMinor } opportunities(first: 5) { edges { node { id name amount { amountMinor } } } } } } }"
FORECAST="{ forecast(period: QUARTER, from: \\\"$FROM\\\", to: \\\"$FROM\\\", teamId: \\\"$SALES\\\") { rows { level ownerId teamId closedWon { currency amountMinor } commit { currency amountMinor } bestCase { currency amountMinor } pipeline { currency amountMinor } weighted { currency amountMinor } closedWonCount commitCount bestCaseCount pipelineCount lostCount quota { currency amountMinor } } } }"
{ cat "$WORK/common.lua"; echo "wrk.body = [[{\"query\":\"$BOARD\"}]]"; } > "$WORK/d.lua"
{ cat "$WORK/common.lua"; echo "wrk.body = [[{\"query\":\"$FORECAST\"}]]"; } > "$WORK/e.lua"

# Both sides must give the same answer.
gql "{\"query\":\"$BOARD\"}" > "$WORK/d.json"
psql_db -F $'\t' -f "$WORK/d.sql" > "$WORK/d.tsv"
python3 - "$WORK/d.json" "$WORK/d.tsv" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert 'errors' not in d, d
got = {}
for c in d['data']['pipelineBoard']['columns']:
    got[c['stage']['id']] = (c['count'],
        {m['currency']: m['amountMinor'] for m in c['amounts']},
        {m['currency']: m['amountMinor'] for m in c['weightedAmounts']},
        [(e['node']['id'], e['node']['name'], (e['node']['amount'] or {}).get('amountMinor')) for e in c['opportunities']['edges']])
want = {}
for line in open(sys.argv[2]):
    sid, _pos, cur, n, amount, weighted, deals = line.rstrip('\n').split('\t')
    w = want.setdefault(sid, [0, {}, {}, []])
    w[0] += int(n or 0)
    if cur and amount:
        w[1][cur] = int(amount)
        w[2][cur] = round(int(weighted) / 100)
    w[3] = [(x['id'], x['name'], x['amount']) for x in json.loads(deals or '[]')]
want = {k: tuple(v) for k, v in want.items() if v[0] > 0 or k in got}
for k in set(got) | set(want):
    g, w = got.get(k), want.get(k)
    same = g and w and g[0] == w[0] and g[1] == w[1] and g[3] == w[3] and \
        all(abs(g[2].get(c, 0) - w[2].get(c, 0)) <= 1 for c in set(g[2]) | set(w[2]))
    if not same:
        sys.exit(f"workload d: the service and the SQL disagree on stage {k}:\nservice {g}\nsql     {w}")
PY
gql "{\"query\":\"$FORECAST\"}" > "$WORK/e.json"
psql_db -F $'\t' -f "$WORK/e.sql" > "$WORK/e.tsv"
python3 - "$WORK/e.json" "$WORK/e.tsv" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert 'errors' not in d, d
figs = ('closedWon', 'commit', 'bestCase', 'pipeline', 'weighted', 'quota')
counts = ('closedWonCount', 'commitCount', 'bestCaseCount', 'pipelineCount', 'lostCount')
got = {}
for r in d['data']['forecast']['rows']:
    if r['level'] == 'TEAM':
        continue
    key = r['ownerId'] if r['level'] == 'OWNER' else None
    got[key] = ({f: {m['currency']: m['amountMinor'] for m in r[f]} for f in figs}, [r[c] for c in counts])
want = {}
for line in open(sys.argv[2]):
    (owner, cur, won_n, won, commit_n, commit, best_n, best, pipe_n, pipe, weighted, lost_n,
     quota) = line.rstrip('\n').split('\t')
    w = want.setdefault(owner or None, ({f: {} for f in figs}, [0] * 5))
    w[1][:] = [a + int(b or 0) for a, b in zip(w[1], (won_n, commit_n, best_n, pipe_n, lost_n))]
    if cur:
        for f, v in zip(figs, (won, commit, best, pipe, weighted, quota)):
            if v and (int(float(v)) != 0 or f == 'quota'):
                w[0][f][cur] = int(float(v))
for k in set(got) | set(want):
    g, w = got.get(k), want.get(k)
    same = g and w and g[1] == w[1] and all(
        set(g[0][f]) == set(w[0][f]) and all(abs(g[0][f][c] - w[0][f][c]) <= (1 if f == 'weighted' else 0) for c in g[0][f])
        for f in figs)
    if not same:
        sys.exit(f"workload e: the service and the SQL disagree for owner {k}:\nservice {g}\nsql     {w}")
PY
echo "answers checked: board $(wc -l < "$WORK/d.tsv") stage/currency rows, forecast $(wc -l < "$WORK/e.tsv") owner/currency rows"

table_header
measure d "$WORK/d.lua" -f d.sql
measure e "$WORK/e.lua" -f e.sql
echo
echo "service: RSS after the run $(awk '/VmRSS/{print $2, $3}' /proc/$SERVER/status), peak $(awk '/VmHWM/{print $2, $3}' /proc/$SERVER/status)"
