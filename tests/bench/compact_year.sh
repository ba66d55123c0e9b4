#!/usr/bin/env bash
# Benchmark: `vaten compact` on the lake a year of nightly runs leaves. Each night the fake
# grid operator serves one more day (its registers continuing the days before), then `vaten
# ingest grid` and `vaten transform` run as the nightly pipeline would. Then: the files in the
# lake, a typical analyst query with DuckDB in a fresh process (page cache dropped when
# allowed), `vaten compact` timed, the files and the same query again.
# Usage: tests/bench/compact_year.sh [CONNECTIONS] [DAYS]   (builds the release binary first)
set -euo pipefail
cd "$(dirname "$0")/../.."
connections=${1:-1000}
days=${2:-365}
NO_SERVE=1
. tests/bench/fake_grid.sh
end=2026-11-20
for ((d = 0; d < days; d++)); do
  serve_grid --days "$days" --end "$end" --skip-days "$d" --only-days 1
  # Each night is a new feed: its cursor starts afresh (a benchmark shortcut).
  rm -f "$work/lake/_state/grid.json"
  now=$(date -u -d "$end - $((days - 2 - d)) days" +%Y-%m-%dT10:00:00Z)
  "$bin" --config "$work/vaten.toml" --now "$now" ingest grid 2> "$work/ingest.log" \
    || { tail -3 "$work/ingest.log"; exit 1; }
  "$bin" --config "$work/vaten.toml" --now "$now" transform 2> "$work/transform.log" \
    || { tail -3 "$work/transform.log"; exit 1; }
done
files() { find "$work/lake" -name '*.parquet' | wc -l; }
cat > "$work/query.py" <<PY
import duckdb, time
t = time.time()
# Monthly consumption per connection from the quarter-hours, the totals per cable, the runs.
duckdb.sql("""SELECT ean, date_trunc('month', interval_start) AS month, sum(v_wh) AS v_wh
              FROM read_parquet('$work/lake/intervals/**/*.parquet', hive_partitioning = true)
              GROUP BY ALL""").fetchall()
duckdb.sql("""SELECT cable_id, sum(l_wh), sum(t_wh)
              FROM read_parquet('$work/lake/consumption_daily/**/*.parquet', hive_partitioning = true)
              GROUP BY ALL""").fetchall()
duckdb.sql("""SELECT job, status, count(*) FROM read_parquet('$work/lake/_runs/*.parquet')
              GROUP BY ALL""").fetchall()
print(f"{time.time() - t:.2f}")
PY
cold() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; "$py" "$work/query.py"; }
echo "connections=$connections nights=$days"
echo "before: files=$(files) query_s=$(cold)"
/usr/bin/time -f '%e %M' -o "$work/time_compact" "$bin" --config "$work/vaten.toml" --now "$now" compact
read -r c_secs c_kib < "$work/time_compact"
echo "vaten compact: wall_s=$c_secs peak_rss_mib=$((c_kib / 1024))"
echo "after: files=$(files) query_s=$(cold)"
