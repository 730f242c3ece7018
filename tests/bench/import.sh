#!/usr/bin/env bash
# Import benchmark (see BENCHMARKS.md): 1,000,000 contacts from CSV into
# PostgreSQL with `crm import`, beside PostgreSQL's own `\copy` of the same
# file into a plain table; rows/s, the ratio, and the import's peak memory.
#
#   tests/bench/import.sh               # 1,000,000 rows
#   ROWS=100000 tests/bench/import.sh   # a quick look
set -euo pipefail
cd "$(dirname "$0")/../.."

ROWS=${ROWS:-1000000}
DB=crm_bench_import
URL="postgres://postgres@127.0.0.1:5432/$DB"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

[[ -x /usr/bin/time ]] || { echo "needs GNU time (apt-get install time)" >&2; exit 1; }
cargo build --release --quiet
CRM=$(realpath "${CARGO_TARGET_DIR:-target}")/release/crm
FILE=$WORK/contacts.csv

python3 - "$FILE" "$ROWS" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
firsts = ["Anna", "Ben", "Chen", "Dana", "Emil", "Fatima", "Gao", "Hugo", "Ines", "Jonas"]
lasts = ["Müller", "Schmidt", "Li", "Wang", "García", "Rossi", "Novak", "Kowalski", "Smith", "Ivanova"]
with open(path, "w", encoding="utf-8") as f:
    f.write("First Name,Last Name,Email,Phone,Title,Consent\n")
    for i in range(1, n + 1):
        f.write(f"{firsts[i % 10]},{lasts[(i // 10) % 10]} {i},person{i}@example.com,"
                f"+4930{i:08d},Buyer,opted_in\n")
PY
echo "== file: $ROWS rows, $(du -h "$FILE" | cut -f1)"

fresh() {
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" postgres
  psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $DB" postgres
}

# PostgreSQL's own bulk load of the same file into a plain table.
fresh
psql -h 127.0.0.1 -U postgres -q $DB -c "CREATE TABLE plain (first_name text, last_name text, email text, phone text, title text, consent text)"
start=$(date +%s.%N)
psql -h 127.0.0.1 -U postgres -q $DB -c "\\copy plain FROM '$FILE' WITH (FORMAT csv, HEADER true)"
copy_secs=$(echo "$(date +%s.%N) - $start" | bc)
echo "== \\copy: $copy_secs s"

# The CRM import: every row validated and normalised (email, E.164 phone,
# consent), written with its audit entry and its event in the outbox.
for mode in skip-bad-rows all-or-nothing; do
  fresh
  export DATABASE_URL=$URL CRM_DATA_DIR=$WORK/data CRM_ADMIN_PASSWORD=bench-admin-password CRM_LOG=warn
  $CRM migrate >/dev/null
  start=$(date +%s.%N)
  /usr/bin/time -f "%M" -o "$WORK/rss" $CRM import contacts "$FILE" --mode $mode | tail -2
  secs=$(echo "$(date +%s.%N) - $start" | bc)
  rss_mb=$(( $(cat "$WORK/rss") / 1024 ))
  rows=$(psql -h 127.0.0.1 -U postgres -tAc "SELECT count(*) FROM contacts" $DB)
  events=$(psql -h 127.0.0.1 -U postgres -tAc "SELECT count(*) FROM outbox" $DB)
  python3 - "$ROWS" "$secs" "$copy_secs" "$rss_mb" "$mode" "$rows" "$events" <<'PY'
import sys
n, secs, copy, rss, mode, rows, events = sys.argv[1:]
n, secs, copy = int(n), float(secs), float(copy)
print(f"== crm import --mode {mode}: {secs:.1f} s, {n / secs:,.0f} rows/s; "
      f"\\copy {n / copy:,.0f} rows/s; ratio {copy / secs:.3f}; peak RSS {rss} MB; "
      f"{rows} contacts, {events} events")
PY
done
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" postgres
