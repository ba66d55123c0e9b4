#!/usr/bin/env python3
"""Independent check: DuckDB recomputes consumption_daily's sums and counts from intervals.
Usage: check_daily_duckdb.py LAKE"""
import sys

import duckdb

lake = sys.argv[1]
con = duckdb.connect()


def same_or_exit(a, b, what):
    """Rows of query a not in b and of b not in a: none, or print a few and exit 1."""
    diff = con.execute(f"({a}) EXCEPT ({b})").fetchall() + con.execute(f"({b}) EXCEPT ({a})").fetchall()
    if diff:
        print(f"{what}:", diff[:5])
        sys.exit(1)

con.execute(f"CREATE VIEW iv AS SELECT * FROM read_parquet('{lake}/intervals/*/*.parquet', hive_partitioning = true)")
con.execute(f"CREATE VIEW cd AS SELECT * FROM read_parquet('{lake}/consumption_daily/*/*.parquet', hive_partitioning = true)")
recomputed = """
    SELECT ean, CAST(date AS DATE) AS date,
           COALESCE(SUM(l_wh), 0)::BIGINT AS l_wh, COALESCE(SUM(t_wh), 0)::BIGINT AS t_wh,
           COALESCE(SUM(v_wh), 0)::BIGINT AS v_wh,  -- sums of the known quarter-hours: 0, not null, for a day with none
           COUNT(*)::BIGINT AS intervals_expected,
           SUM(CASE WHEN l_quality = 'missing' OR p_quality = 'missing' THEN 1 ELSE 0 END)::BIGINT AS intervals_missing
    FROM iv GROUP BY ean, date
"""
stored = """
    SELECT ean, date, l_wh, t_wh, v_wh, intervals_expected, intervals_missing FROM cd
"""
only_recomputed = con.execute(f"({recomputed}) EXCEPT ({stored})").fetchall()
only_stored = con.execute(f"({stored}) EXCEPT ({recomputed})").fetchall()
n = con.execute("SELECT COUNT(*) FROM cd").fetchone()[0]
if only_recomputed or only_stored or n == 0:
    print("recomputed but not stored:", only_recomputed[:5])
    print("stored but not recomputed:", only_stored[:5])
    sys.exit(1)
yearly_from_daily = """
    SELECT ean, year::BIGINT AS year, SUM(l_wh)::BIGINT, SUM(t_wh)::BIGINT, SUM(v_wh)::BIGINT FROM cd GROUP BY ean, year
"""
con.execute(f"CREATE VIEW ty AS SELECT * FROM read_parquet('{lake}/tax_base_yearly/*.parquet')")
yearly = "SELECT ean, year, l_wh, t_wh, v_wh FROM ty"
same_or_exit(yearly_from_daily, yearly, "yearly differs from daily")
con.execute(f"CREATE VIEW cb AS SELECT * FROM read_parquet('{lake}/cable_balance_15m/*/*.parquet', hive_partitioning = true)")
con.execute(f"CREATE VIEW cbd AS SELECT * FROM read_parquet('{lake}/cable_balance_daily/*/*.parquet', hive_partitioning = true)")
cable_from_intervals = """
    SELECT cable_id, interval_start, COALESCE(SUM(l_wh), 0)::BIGINT AS l, COALESCE(SUM(t_wh), 0)::BIGINT AS t,
           LEAST(COALESCE(SUM(l_wh), 0), COALESCE(SUM(t_wh), 0))::BIGINT AS matched,
           COUNT(l_wh)::BIGINT AS reporting,
           COUNT(*) FILTER (l_quality = 'derived')::BIGINT AS derived
    FROM iv GROUP BY cable_id, interval_start
"""
cable_stored = "SELECT cable_id, interval_start, l_wh, t_wh, matched_wh, connections_reporting, connections_derived FROM cb"
same_or_exit(cable_from_intervals, cable_stored, "cable_balance_15m differs from intervals")
daily_from_15m = """
    SELECT cable_id, CAST(date AS DATE), SUM(matched_wh)::BIGINT, MAX(GREATEST(net_wh, 0))::BIGINT, MAX(GREATEST(-net_wh, 0))::BIGINT,
           CASE WHEN SUM(l_wh) > 0 THEN SUM(matched_wh) / SUM(l_wh) END,
           SUM(connections_derived)::BIGINT
    FROM cb GROUP BY cable_id, date
"""
daily_stored = "SELECT cable_id, date, matched_wh, peak_import_wh, peak_export_wh, local_share, connection_quarters_derived FROM cbd"
same_or_exit(daily_from_15m, daily_stored, "cable_balance_daily differs from cable_balance_15m")
print(f"daily matches: {n} rows")
