#!/usr/bin/env bash
# Benchmark: `vaten transform` (full recompute) against DuckDB running the equivalent SQL on the
# same received files (winning delivery per reading, register differences per meter, V,
# daily sums, cable balance), one after the other on the same machine.
# Usage: tests/bench/transform.sh [CONNECTIONS] [DAYS]   (builds the release binary first)
set -euo pipefail
cd "$(dirname "$0")/../.."
connections=${1:-1000}
days=${2:-10}
. tests/bench/fake_grid.sh
"$bin" --config "$work/vaten.toml" --now 2026-11-21T10:00:00Z ingest grid 2> /dev/null
/usr/bin/time -f '%e %M' -o "$work/time_vaten" "$bin" --config "$work/vaten.toml" --now 2026-11-21T10:00:00Z transform 2> "$work/log"
read -r v_secs v_kib < "$work/time_vaten"
intervals=$(grep -o 'intervals: [0-9]* quarter-hours' "$work/log" | grep -o '[0-9]*')
cat > "$work/duck.py" <<PY
import duckdb, glob
con = duckdb.connect().execute('SET enable_progress_bar = false')
con.execute("SET threads TO 2")
lake = "$work/lake"
# P per quarter-hour from the installations' production registers, as L and T from the
# grid's (the winning reading per time, differences of consecutive readings per meter), when
# the lake has installation readings; V = P + L - T for a connection with an installation.
if glob.glob(f"{lake}/installation_readings/*/*.parquet"):
    p = f"""
p AS (
  SELECT ean, interval_start, p_wh FROM (
    SELECT ean, lag(t) OVER s AS interval_start, p_wh - lag(p_wh) OVER s AS p_wh FROM (
      SELECT * FROM (
        SELECT ean, installation_id, p_meter, t, p_wh,
               row_number() OVER (PARTITION BY installation_id, p_meter, t ORDER BY seq DESC) AS rn
        FROM read_parquet('{lake}/installation_readings/*/*.parquet')) WHERE rn = 1)
    WINDOW s AS (PARTITION BY installation_id, p_meter ORDER BY t))
  WHERE p_wh IS NOT NULL),"""
    pv = """p.p_wh, CASE WHEN c.installation_id IS NULL THEN d.l_wh ELSE p.p_wh + d.l_wh - d.t_wh END AS v_wh"""
    pj = "LEFT JOIN p ON p.ean = d.ean AND p.interval_start = d.interval_start"
else:
    p, pv, pj = "", "CAST(NULL AS BIGINT) AS p_wh, d.l_wh AS v_wh", ""
con.execute(f"""
CREATE TABLE intervals AS
WITH w AS (
  SELECT ean, meter_id, t, import_wh, export_wh FROM (
    SELECT *, row_number() OVER (PARTITION BY ean, meter_id, t ORDER BY delivery_seq DESC) AS rn
    FROM read_parquet('{lake}/grid_readings/*/*.parquet')) WHERE rn = 1),
d AS (
  SELECT ean, lag(t) OVER s AS interval_start,
         import_wh - lag(import_wh) OVER s AS l_wh, export_wh - lag(export_wh) OVER s AS t_wh
  FROM w WINDOW s AS (PARTITION BY ean, meter_id ORDER BY t)),{p}
c AS (SELECT ean, cable_id, installation_id FROM read_csv('$work/registry/connections.csv', all_varchar = true))
SELECT d.*, c.cable_id, {pv},
       CAST(timezone('Europe/Amsterdam', d.interval_start) AS DATE) AS date
FROM d JOIN c USING (ean) {pj} WHERE d.l_wh IS NOT NULL
""")
con.execute(f"COPY intervals TO '$work/duck_intervals' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (date))")
con.execute(f"""COPY (SELECT ean, date, sum(l_wh) l_wh, sum(t_wh) t_wh, sum(p_wh) p_wh, sum(v_wh) v_wh, count(*) n
           FROM intervals GROUP BY ean, date) TO '$work/duck_daily.parquet' (FORMAT parquet, COMPRESSION zstd)""")
con.execute(f"""COPY (SELECT cable_id, interval_start, sum(l_wh) l_wh, sum(t_wh) t_wh, least(sum(l_wh), sum(t_wh)) matched_wh
           FROM intervals GROUP BY cable_id, interval_start) TO '$work/duck_cable.parquet' (FORMAT parquet, COMPRESSION zstd)""")
PY
/usr/bin/time -f '%e %M' -o "$work/time_duck" "$py" "$work/duck.py"
read -r d_secs d_kib < "$work/time_duck"
echo "connections=$connections days=$days intervals=$intervals"
echo "vaten transform: wall_s=$v_secs peak_rss_mib=$((v_kib / 1024))"
echo "duckdb sql:      wall_s=$d_secs peak_rss_mib=$((d_kib / 1024))"
