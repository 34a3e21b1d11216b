#!/bin/bash
# The read-set append experiment (bench/README.md, "Read sets, round 5"): pgbench, one client,
# each variant's transaction N times, backend CPU per transaction from /proc/<pid>/schedstat (run
# on the database's machine, as a user who may read it), rounds alternated with rotated order.
#   bench/experiments/readSetAppend/measure.sh [rounds=5] [transactions=500] [filler heads=0]
# Creates and drops cairn_scratch_rsappend (DATABASE_URL's server). synchronous_commit=off: the
# commit's fsync wait is not what is compared. RESULTS=<file> keeps the per-round lines.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); repo=$(cd "$here/../../.." && pwd)
rounds=${1:-5}; n=${2:-500}; filler=${3:-0}
db=cairn_scratch_rsappend
base=${DATABASE_URL:-postgres://root@127.0.0.1:5432/postgres}; url="${base%/*}/$db"
work=$(mktemp -d)
psql "$base" -qc "drop database if exists $db with (force)" -c "create database $db"
(cd "$repo" && DATABASE_URL=$url node bin/cairn.js migrate >/dev/null && DATABASE_URL=$url npx tsx "$here/setup.ts")
psql "$url" -q -v ON_ERROR_STOP=1 -f "$here/proto0.sql" -f "$here/proto1.sql" -f "$here/proto2.sql" -f "$here/recFixed.sql" \
  -c "grant execute on function cairn.proto0, cairn.proto_append_with_reads, cairn.proto2, cairn.rec_fixed to cairn_app"
if [ "$filler" -gt 0 ]; then
  # Unrelated entities (heads only, triggers off: the owner loading a scratch database).
  psql "$url" -q -c "set session_replication_role = replica" \
    -c "insert into cairn.entity_heads (entity_type, entity_id, version, chain_hash, prev_hash, scope) select 'filler', 'f-' || g, 1, md5(g::text), '', 'global' from generate_series(1, $filler) g" \
    -c "vacuum analyze cairn.entity_heads"
fi
python3 "$here/gen.py" "$work"
fields=$(printf '"{label,score}",%.0s' $(seq 19))'"{status}"'
D=(-D "types={$(printf 'bench,%.0s' $(seq 19))bench}" -D "ctxids={$(seq -s, -f 'ctx-%g' 0 18)" -D "ctxvers={$(printf '1,%.0s' $(seq 18))1" -D "fields={$fields}")
one() {
  local v=$1
  PGOPTIONS='-c synchronous_commit=off' PGAPPNAME=rsa-$v pgbench "$url" -n -M extended "${D[@]}" -c 1 -t "$n" -f "$work/$v.sql" >"$work/out.$v" 2>&1 &
  # Every backend of the run (pgbench may open a short first connection): CPU of each, summed.
  local pb=$! pid x total=0
  local -A cpu=()
  while kill -0 $pb 2>/dev/null; do
    for pid in $(psql "$base" -Atc "select pid from pg_stat_activity where application_name = 'rsa-$v'"); do
      x=$(cut -d' ' -f1 "/proc/$pid/schedstat" 2>/dev/null || true); [ -n "$x" ] && cpu[$pid]=$x
    done
    sleep 0.02
  done
  for x in "${cpu[@]}"; do total=$((total + x)); done
  wait $pb || { cat "$work/out.$v"; exit 1; }
  echo "$v tps=$(grep -oP 'tps = \K[0-9.]+' "$work/out.$v") cpu_us=$((total / 1000 / n))"
}
V=(alone two two_fixed p0 comb comb2 two_off comb_off)
for ((r = 0; r < rounds; r++)); do
  for ((j = 0; j < ${#V[@]}; j++)); do echo "r$r $(one "${V[$(((j + r) % ${#V[@]}))]}")"; done
done | tee "$work/results.txt"
python3 "$here/summarize.py" "$work/results.txt"
[ -n "${RESULTS:-}" ] && cp "$work/results.txt" "$RESULTS"
psql "$base" -qc "drop database $db with (force)"
rm -rf "$work"
