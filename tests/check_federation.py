#!/usr/bin/env python3
"""Independent check of `vaten publish` and the federation's Spark job, with DuckDB.

For every cooperative (COOP=LAKE=REGISTRY_DIR arguments) it recomputes from the cooperative's
own `intervals` what may be shared, with the rule written out again in SQL: per cable and
quarter-hour, L, T and P count when the connections that contributed (value above 0) number
0 or at least 5, V with all three, matched = least(L, T) with both; the cooperative's
quarter-hour is the sum of its cables' when none withheld it; a month is the sum of the
published quarter-hours. (Every cable of the demo cooperatives has at least 5 connections, so
each cable is its own group.) Then:
- the published `quarter_hours` equal it (values and which figures are withheld);
- Spark's `coop_monthly` equals its monthly sums to the Wh;
- no EAN, participant or installation id of any registry appears in any shared file.
Usage: check_federation.py SHARED SPARK_OUT COOP=LAKE=REGISTRY_DIR..."""
import csv
import glob
import sys

import duckdb

shared, spark_out, coops = sys.argv[1], sys.argv[2], [a.split("=", 2) for a in sys.argv[3:]]
con = duckdb.connect()
problems = []

RULE = """
WITH iv AS (
  SELECT cable_id AS scope, interval_start, CAST(date AS DATE) AS date, l_wh, t_wh, p_wh, v_wh
  FROM read_parquet('{lake}/intervals/*/*.parquet', hive_partitioning = true)),
cell AS (
  SELECT scope, interval_start, date, sum(l_wh) AS l, sum(t_wh) AS t, sum(p_wh) AS p, sum(v_wh) AS v,
         count(*) FILTER (WHERE l_wh > 0) AS nl, count(*) FILTER (WHERE t_wh > 0) AS nt,
         count(*) FILTER (WHERE p_wh > 0) AS np
  FROM iv GROUP BY ALL),
ok AS (
  SELECT *, (nl = 0 OR nl >= 5) AS okl, (nt = 0 OR nt >= 5) AS okt, (np = 0 OR np >= 5) AS okp FROM cell),
vals AS (
  SELECT scope, interval_start, date,
         CASE WHEN okl THEN l END AS l, CASE WHEN okt THEN t END AS t, CASE WHEN okp THEN p END AS p,
         CASE WHEN okl AND okt AND okp THEN v END AS v, CASE WHEN okl AND okt THEN least(l, t) END AS m
  FROM ok),
coop AS (
  SELECT 'cooperative' AS scope, interval_start, date,
         CASE WHEN count(l) = count(*) THEN sum(l) END AS l, CASE WHEN count(t) = count(*) THEN sum(t) END AS t,
         CASE WHEN count(p) = count(*) THEN sum(p) END AS p, CASE WHEN count(v) = count(*) THEN sum(v) END AS v,
         CASE WHEN count(m) = count(*) THEN sum(m) END AS m
  FROM vals GROUP BY interval_start, date)
SELECT * FROM vals UNION ALL SELECT * FROM coop
"""

spark_rows = {}
for path in glob.glob(f"{spark_out}/coop_monthly_csv/*.csv"):
    for r in csv.DictReader(open(path)):
        spark_rows[(r["coop"], r["month"])] = r

identifiers = set()
for coop, lake, registry in coops:
    for r in csv.DictReader(open(f"{registry}/connections.csv")):
        identifiers |= {r["ean"], r["participant_id"]} | ({r["installation_id"]} if r.get("installation_id") else set())
    con.execute(f"CREATE OR REPLACE TABLE want AS {RULE.format(lake=lake)}")
    con.execute(f"""CREATE OR REPLACE TABLE got AS
        SELECT scope, interval_start, l_wh AS l, t_wh AS t, p_wh AS p, v_wh AS v, matched_wh AS m
        FROM read_parquet('{shared}/coop={coop}/quarter_hours/*/*.parquet')""")
    n_want, n_got = con.execute("SELECT (SELECT count(*) FROM want), (SELECT count(*) FROM got)").fetchall()[0]
    diff = con.execute("""
        SELECT count(*) FROM want w FULL JOIN got g USING (scope, interval_start)
        WHERE w.l IS DISTINCT FROM g.l OR w.t IS DISTINCT FROM g.t OR w.p IS DISTINCT FROM g.p
           OR w.v IS DISTINCT FROM g.v OR w.m IS DISTINCT FROM g.m""").fetchall()[0][0]
    withheld = con.execute("SELECT count(*) FILTER (WHERE t IS NULL), count(*) FILTER (WHERE t IS NOT NULL) FROM want").fetchall()[0]
    print(f"{coop}: {n_want} quarter-hour rows recomputed, {n_got} published, {diff} differ; T withheld in {withheld[0]}, shown in {withheld[1]}")
    if n_want != n_got or diff or n_want == 0:
        problems.append(f"{coop}: published quarter_hours differ from the rule ({diff} rows)")
    months = con.execute("""
        SELECT strftime(date, '%Y-%m') AS month, sum(l), sum(t), sum(p), sum(v), sum(m), count(*)
        FROM want WHERE scope = 'cooperative' GROUP BY month ORDER BY month""").fetchall()
    for month, l, t, p, v, m, quarters in months:
        got = spark_rows.get((coop, month))
        if got is None:
            problems.append(f"{coop} {month}: not in Spark's coop_monthly")
            continue
        for name, want in [("l_wh", l), ("t_wh", t), ("p_wh", p), ("v_wh", v), ("matched_wh", m), ("quarter_hours", quarters)]:
            have = got[name]
            if want is None:
                same = have in ("", None)
            else:
                same = have not in ("", None) and int(float(have)) == int(want)
            if not same:
                problems.append(f"{coop} {month} {name}: Spark {have!r}, DuckDB {want}")
    print(f"{coop}: {len(months)} months compared with Spark")

# No identifier of any household in any shared file, in any column.
hits = 0
files = glob.glob(f"{shared}/**/*.parquet", recursive=True)
for f in files:
    rel = con.read_parquet(f)
    for col in rel.columns:
        values = {str(x[0]) for x in con.sql(f'SELECT DISTINCT CAST("{col}" AS VARCHAR) FROM rel').fetchall()}
        found = values & identifiers
        if found:
            hits += 1
            problems.append(f"{f}: column {col} holds {sorted(found)[:3]}")
print(f"{len(files)} shared files searched for {len(identifiers)} identifiers: {hits} columns hold one")
if problems:
    print("\n".join(problems[:20]))
    sys.exit(1)
