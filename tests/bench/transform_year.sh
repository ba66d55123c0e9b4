#!/usr/bin/env bash
# Benchmark: the grid ingest, the full recompute of a year for 1,000 connections (about 35
# million intervals) against DuckDB on the same received files, the three analyst queries
# against DuckDB on the lake's intervals (tests/bench/analyst_queries.sh), then the nightly
# incremental transform of one more day. Every ratio is printed only after DuckDB's answer was
# found equal to vaten's. A year of generated feed does not fit in memory as JSON, so the fake grid operator
# serves it in chunks of 29 days (each continuing the registers of the one before; an
# installation keeps 30 × 96 readings, and a day can have 100 quarter-hours).
# Two of every three connections have an installation (`vaten fake-installations --registry`),
# whose production, battery and voltage readings are pulled in the same chunks; INSTALLATIONS=0
# leaves them out (grid readings only, as before 2026-11-30).
# Usage: tests/bench/transform_year.sh [CONNECTIONS] [DAYS] [CABLES]   (builds the release binary first)
set -euo pipefail
cd "$(dirname "$0")/../.."
connections=${1:-1000}
days=${2:-365}
cables=${3:-3}
NO_SERVE=1
. tests/bench/fake_grid.sh
inst_server=""
trap '{ [ -z "$server" ] || kill $server 2>/dev/null; [ -z "$inst_server" ] || kill $inst_server 2>/dev/null; } || true; if [ -n "${KEEP_WORK:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi' EXIT
# One port for every chunk's installations: their URLs, and so the registry, stay the same.
inst_port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# serve_installations SKIP ONLY TOTAL END: as `serve`, for the installations of the registry
# the fake grid operator just wrote (it writes the registry back with them).
serve_installations() {
  if [ -n "$inst_server" ]; then kill "$inst_server" 2>/dev/null || true; wait "$inst_server" 2>/dev/null || true; fi
  rm -f "$work/inst_url"
  "$bin" fake-installations --registry "$work/registry" --registry-out "$work/registry" \
    --tokens-out "$work/tokens.toml" --port "$inst_port" \
    --days "$3" --end "$4" --skip-days "$1" --only-days "$2" > "$work/inst_url" 2>/dev/null &
  inst_server=$!
  wait_for_url "$work/inst_url" "$inst_server" "fake installations" 3000
  cat >> "$work/vaten.toml" <<TOML
[installations]
tokens_file = "tokens.toml"
concurrency = 16
timeout_s = 60
TOML
}
# serve SKIP ONLY TOTAL END: the days SKIP+1..SKIP+ONLY of the TOTAL days ending END.
serve() {
  serve_grid --days "$3" --end "$4" --skip-days "$1" --only-days "$2" --cables "$cables"
  if [ "${INSTALLATIONS:-1}" != 0 ]; then serve_installations "$@"; fi
}
# timed_ingest SOURCE NOW LOG: `vaten ingest SOURCE` under /usr/bin/time; sets secs, kib and
# got (the readings it received).
timed_ingest() {
  /usr/bin/time -f '%e %M' -o "$work/time_$1" "$bin" --config "$work/vaten.toml" --now "$2" ingest "$1" 2> "$3" \
    || { tail -3 "$3"; exit 1; }
  read -r secs kib < "$work/time_$1"
  got=$(grep -o '[0-9]* readings received' "$3" | tail -1 | cut -d' ' -f1)
}
# ingest_installations: one pass (its cursors go on from chunk to chunk, as in operation).
ingest_installations() {
  [ "${INSTALLATIONS:-1}" != 0 ] || return 0
  timed_ingest installations "$1" "$work/inst.log"
  inst_readings=$(( ${inst_readings:-0} + got ))
  inst_secs=$("$py" -c "print(${inst_secs:-0} + $secs)")
  inst_kib=$(( kib > ${inst_kib:-0} ? kib : ${inst_kib:-0} ))
}
for ((skip = 0; skip < days; skip += 29)); do
  serve "$skip" 29 "$days" 2026-11-20
  # Each chunk is a new feed: its cursor starts afresh (a benchmark shortcut, not an operation).
  rm -f "$work/lake/_state/grid.json"
  # The ingest's rate over all chunks: readings received / wall time, and its peak memory.
  timed_ingest grid 2026-11-21T10:00:00Z "$work/ingest.log"
  ingest_readings=$(( ${ingest_readings:-0} + got ))
  ingest_secs=$("$py" -c "print(${ingest_secs:-0} + $secs)")
  ingest_kib=$(( kib > ${ingest_kib:-0} ? kib : ${ingest_kib:-0} ))
  ingest_installations 2026-11-21T10:00:00Z
done
# BASELINE_BIN=path also times another build's full recompute on the same files first.
if [ -n "${BASELINE_BIN:-}" ]; then
  /usr/bin/time -f '%e %M' -o "$work/time_base" "$BASELINE_BIN" --config "$work/vaten.toml" --now 2026-11-21T10:00:00Z transform --full 2> /dev/null
  read -r b_secs b_kib < "$work/time_base"
  # Its marts, to compare with this build's below: speed never changes a figure.
  for t in consumption_daily cable_balance_daily tax_base_yearly; do cp -r "$work/lake/$t" "$work/base_$t"; done
fi
/usr/bin/time -f '%e %M' -o "$work/time_vaten" "$bin" --config "$work/vaten.toml" --now 2026-11-21T10:00:00Z transform --full 2> "$work/log"
read -r v_secs v_kib < "$work/time_vaten"
intervals=$(grep -o 'intervals: [0-9]* quarter-hours' "$work/log" | grep -o '[0-9]*')
# DuckDB: the same SQL as tests/bench/transform.sh.
sed -n '/^cat > "\$work\/duck.py" <<PY$/,/^PY$/p' tests/bench/transform.sh | sed '1d;$d' \
  | sed "s|\$work|$work|g" > "$work/duck.py"
/usr/bin/time -f '%e %M' -o "$work/time_duck" "$py" "$work/duck.py"
read -r d_secs d_kib < "$work/time_duck"
# Before any ratio: DuckDB's daily sums equal vaten's `consumption_daily`, connection by day.
# Not on the first day of the data: vaten's first quarter-hour of it comes from the day
# register at midnight, which DuckDB's SQL (differences of consecutive readings) has not.
cat > "$work/same.py" <<PY
import duckdb, sys
con = duckdb.connect().execute('SET enable_progress_bar = false')
first = "(SELECT min(date) FROM read_parquet('$work/duck_daily.parquet'))"
def compare(duck, lake, key):
    """Rows of DuckDB's and vaten's tables after the first day, and how many differ in L, T, P or V."""
    cols = f"{key}, l_wh, t_wh, p_wh, v_wh"
    return con.execute(f'''
      WITH d AS (SELECT {cols} FROM {duck} WHERE date > {first}),
           v AS (SELECT {cols} FROM read_parquet('$work/lake/{lake}/*/*.parquet', hive_partitioning = true)
                 WHERE date > {first})
      SELECT count(*), count(*) FILTER (WHERE d.l_wh IS DISTINCT FROM v.l_wh OR d.t_wh IS DISTINCT FROM v.t_wh
                                           OR d.p_wh IS DISTINCT FROM v.p_wh OR d.v_wh IS DISTINCT FROM v.v_wh)
      FROM d FULL JOIN v USING ({key})''').fetchone()
n, diff = compare("read_parquet('$work/duck_daily.parquet')", "consumption_daily", "ean, date")
print(f"daily sums compared: {n} connection-days, {diff} differ")
# And quarter-hour by quarter-hour (a P shifted within a day would leave its sums alone).
q, qdiff = compare("read_parquet('$work/duck_intervals/*/*.parquet', hive_partitioning = true)",
                   "intervals", "ean, interval_start")
print(f"quarter-hours compared: {q}, {qdiff} differ")
sys.exit(1 if diff or qdiff or not n or not q else 0)
PY
same=yes
"$py" "$work/same.py" || same=""
if [ -n "${BASELINE_BIN:-}" ]; then
  cat > "$work/same_base.py" <<PY
import duckdb, sys
con = duckdb.connect().execute('SET enable_progress_bar = false')
bad = 0
for t in ["consumption_daily", "cable_balance_daily", "tax_base_yearly"]:
    a = f"read_parquet('$work/base_{t}/**/*.parquet', hive_partitioning = true)"
    b = f"read_parquet('$work/lake/{t}/**/*.parquet', hive_partitioning = true)"
    n = con.execute(f"SELECT count(*) FROM {b}").fetchone()[0]
    d = con.execute(f"SELECT count(*) FROM ((SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b}) UNION ALL (SELECT * FROM {b} EXCEPT ALL SELECT * FROM {a}))").fetchone()[0]
    print(f"{t}: {n} rows, {d} differ from the baseline build's")
    bad += d + (n == 0)
sys.exit(1 if bad else 0)
PY
  "$py" "$work/same_base.py" || same=""
fi
# The analyst's queries on the year of intervals just written.
. tests/bench/analyst_queries.sh
# One more day, then the nightly incremental transform.
serve "$days" 1 $((days + 1)) 2026-11-21
rm -f "$work/lake/_state/grid.json"
"$bin" --config "$work/vaten.toml" --now 2026-11-22T10:00:00Z ingest grid 2> "$work/ingest.log" \
  || { tail -3 "$work/ingest.log"; exit 1; }
ingest_installations 2026-11-22T10:00:00Z
# KEEP_WORK also keeps the lake as the nightly run finds it, to time other builds' nightly runs on.
# (`sync`: the copy's writeback must not fall into the timed run.)
if [ -n "${KEEP_WORK:-}" ]; then cp -a "$work/lake" "$work/lake_before_nightly"; sync; fi
/usr/bin/time -f '%e %M' -o "$work/time_inc" "$bin" --config "$work/vaten.toml" --now 2026-11-22T10:00:00Z transform 2> "$work/log_inc"
read -r i_secs i_kib < "$work/time_inc"
echo "connections=$connections cables=$cables days=$days intervals=$intervals"
[ "${INSTALLATIONS:-1}" != 0 ] && echo "installation ingest (incl. the nightly day): readings=$inst_readings wall_s=$inst_secs readings_per_s=$("$py" -c "print(int($inst_readings / $inst_secs))") peak_rss_mib=$((inst_kib / 1024))"
echo "grid ingest: readings=$ingest_readings wall_s=$ingest_secs readings_per_s=$("$py" -c "print(int($ingest_readings / $ingest_secs))") peak_rss_mib=$((ingest_kib / 1024))"
[ -n "${BASELINE_BIN:-}" ] && echo "baseline transform (full): wall_s=$b_secs peak_rss_mib=$((b_kib / 1024))"
echo "vaten transform (full): wall_s=$v_secs peak_rss_mib=$((v_kib / 1024))"
echo "duckdb sql:             wall_s=$d_secs peak_rss_mib=$((d_kib / 1024))"
if [ -n "$same" ]; then
  echo "ratio vaten/duckdb (full recompute): $("$py" -c "print(round($v_secs / $d_secs, 2))")"
else
  echo "DuckDB and vaten disagree: no ratio" >&2
  exit 1
fi
grep -o 'incremental recompute.*' "$work/log_inc" | head -1
echo "nightly incremental (+1 day): wall_s=$i_secs peak_rss_mib=$((i_kib / 1024))"
printf 'query %s\n' "${query_lines[@]}"
[ -n "$queries_same" ] || { echo "a query's answer differs from DuckDB's" >&2; exit 1; }
