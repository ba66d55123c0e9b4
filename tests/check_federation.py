#!/usr/bin/env python3
"""Independent check of `vaten publish` and the federation's Spark job, with DuckDB.

For every cooperative (COOP=LAKE=REGISTRY_DIR arguments) it recomputes from the cooperative's
own `intervals` and registry what may be shared, with the rule written out again here:
- groups: a cable of at least 5 registry connections by its id, the others together as
  "other cables", which takes the smallest named cable (ties: the later id) while it has 1 to 4;
- per group and day: nothing when fewer than 5 connections have data; L, T, P each for the
  whole day when the connections with a value above 0 that day number 0 or at least 5, else
  withheld all day; per quarter-hour V = L + P - T and matched = least(L, T) of the shared sums;
- the cooperative: per quarter-hour the sum over groups, withheld when any group withheld it;
- a day: the sum of its quarter-hours, withheld when withheld; completeness the whole percent
  of the connection-quarter-hours whose L is not missing.
Then: the shared `quarter_hours` and `days` equal it, figure for figure (nulls included); no
group shares a figure on a day it had data from fewer than 5 connections; Spark's
`coop_monthly` equals the sums of the cooperative's days to the Wh, month by month, and has no
other rows; no EAN, participant or installation id of any registry is in any shared file
(hidden folders included).
Usage: check_federation.py SHARED SPARK_OUT COOP=LAKE=REGISTRY_DIR..."""
import collections
import csv
import glob
import os
import sys

import duckdb

shared, spark_out, coops = sys.argv[1], sys.argv[2], [a.split("=", 2) for a in sys.argv[3:]]
con = duckdb.connect()
problems = []


def groups(registry):
    conns = collections.defaultdict(set)
    for r in csv.DictReader(open(f"{registry}/connections.csv")):
        conns[r["cable_id"]].add(r["ean"])
    named = {c for c, s in conns.items() if len(s) >= 5}
    while True:
        other = sum(len(s) for c, s in conns.items() if c not in named)
        if other == 0 or other >= 5 or not named:
            break
        named.remove(min(named, key=lambda c: (len(conns[c]), [-ord(ch) for ch in c])))
    return {c: (c if c in named else "other cables") for c in conns}


RULE = """
CREATE OR REPLACE TABLE iv AS
  SELECT coalesce(g.scope, 'other cables') AS scope, i.ean, i.interval_start, CAST(i.date AS DATE) AS date,
         i.l_wh, i.t_wh, i.p_wh, i.l_quality
  FROM read_parquet('{lake}/intervals/*/*.parquet', hive_partitioning = true) i LEFT JOIN grp g USING (cable_id)
  WHERE CAST(i.date AS DATE) IN (SELECT date FROM published);
CREATE OR REPLACE TABLE dec AS
  SELECT scope, date, count(DISTINCT ean) AS n,
         count(DISTINCT ean) FILTER (WHERE l_wh > 0) AS nl, count(DISTINCT ean) FILTER (WHERE t_wh > 0) AS nt,
         count(DISTINCT ean) FILTER (WHERE p_wh > 0) AS np,
         count(*) AS rows_, count(*) FILTER (WHERE l_quality <> 'missing') AS reporting
  FROM iv GROUP BY ALL;
CREATE OR REPLACE TABLE q AS
  WITH s AS (SELECT scope, date, interval_start, coalesce(sum(l_wh), 0) AS l, coalesce(sum(t_wh), 0) AS t,
                    coalesce(sum(p_wh), 0) AS p FROM iv GROUP BY ALL),
  k AS (SELECT s.scope, s.date, s.interval_start,
               CASE WHEN d.n >= 5 AND (d.nl = 0 OR d.nl >= 5) THEN s.l END AS l,
               CASE WHEN d.n >= 5 AND (d.nt = 0 OR d.nt >= 5) THEN s.t END AS t,
               CASE WHEN d.n >= 5 AND (d.np = 0 OR d.np >= 5) THEN s.p END AS p
        FROM s JOIN dec d USING (scope, date)),
  g AS (SELECT *, l + p - t AS v, CASE WHEN l IS NOT NULL AND t IS NOT NULL THEN least(l, t) END AS m FROM k)
  SELECT scope, date, interval_start, l, t, p, v, m FROM g
  UNION ALL
  SELECT 'cooperative', date, interval_start,
         CASE WHEN count(l) = count(*) THEN sum(l) END, CASE WHEN count(t) = count(*) THEN sum(t) END,
         CASE WHEN count(p) = count(*) THEN sum(p) END, CASE WHEN count(v) = count(*) THEN sum(v) END,
         CASE WHEN count(m) = count(*) THEN sum(m) END
  FROM g GROUP BY date, interval_start;
CREATE OR REPLACE TABLE d AS
  WITH sums AS (
    SELECT scope, date,
           CASE WHEN count(l) = count(*) THEN sum(l) END AS l, CASE WHEN count(t) = count(*) THEN sum(t) END AS t,
           CASE WHEN count(p) = count(*) THEN sum(p) END AS p, CASE WHEN count(v) = count(*) THEN sum(v) END AS v,
           CASE WHEN count(m) = count(*) THEN sum(m) END AS m
    FROM q GROUP BY ALL),
  comp AS (
    SELECT scope, date, CASE WHEN n >= 5 THEN reporting * 100 // rows_ END AS c FROM dec
    UNION ALL
    SELECT 'cooperative', date, CASE WHEN sum(n) >= 5 THEN sum(reporting) * 100 // sum(rows_) END FROM dec GROUP BY date)
  SELECT sums.*, comp.c FROM sums LEFT JOIN comp USING (scope, date);
"""

spark_rows = {}
for path in glob.glob(f"{spark_out}/coop_monthly_csv/*.csv"):
    for r in csv.DictReader(open(path)):
        spark_rows[(r["coop"], r["month"])] = r
seen_spark = set()

identifiers = set()
for coop, lake, registry in coops:
    for r in csv.DictReader(open(f"{registry}/connections.csv")):
        identifiers |= {r["ean"], r["participant_id"]} | ({r["installation_id"]} if r.get("installation_id") else set())
    g = groups(registry)
    con.execute("CREATE OR REPLACE TABLE grp (cable_id VARCHAR, scope VARCHAR)")
    con.executemany("INSERT INTO grp VALUES (?, ?)", list(g.items()))
    base = f"{shared}/coop={coop}"
    con.execute(f"""CREATE OR REPLACE TABLE published AS
        SELECT DISTINCT CAST(date AS DATE) AS date FROM read_parquet('{base}/quarter_hours/*/*.parquet', hive_partitioning = true)""")
    con.execute(RULE.format(lake=lake))
    got_q = f"""SELECT scope, interval_start, l_wh AS l, t_wh AS t, p_wh AS p, v_wh AS v, matched_wh AS m
                FROM read_parquet('{base}/quarter_hours/*/*.parquet')"""
    got_d = f"""SELECT scope, CAST(date AS DATE) AS date, l_wh AS l, t_wh AS t, p_wh AS p, v_wh AS v, matched_wh AS m,
                       completeness_pct AS c FROM read_parquet('{base}/days/*/*.parquet', hive_partitioning = false)"""
    for name, got, want, key, cols in [
        ("quarter_hours", got_q, "SELECT scope, interval_start, l, t, p, v, m FROM q", "scope, interval_start", "lptvm"),
        ("days", got_d, "SELECT scope, date, l, t, p, v, m, c FROM d", "scope, date", "lptvmc"),
    ]:
        cond = " OR ".join(f"w.{c} IS DISTINCT FROM g.{c}" for c in cols)
        n_want, n_got, diff = con.execute(f"""
            SELECT (SELECT count(*) FROM ({want})), (SELECT count(*) FROM ({got})),
                   (SELECT count(*) FROM ({want}) w FULL JOIN ({got}) g USING ({key}) WHERE {cond})""").fetchall()[0]
        print(f"{coop} {name}: {n_want} rows recomputed, {n_got} shared, {diff} differ")
        if n_want != n_got or diff or n_want == 0:
            problems.append(f"{coop} {name}: the shared rows differ from the rule ({diff} of {n_got})")
    small = con.execute(f"""
        SELECT count(*) FROM ({got_d}) g JOIN dec USING (scope, date)
        WHERE dec.n < 5 AND (g.l IS NOT NULL OR g.t IS NOT NULL OR g.p IS NOT NULL OR g.c IS NOT NULL)""").fetchall()[0][0]
    withheld, shown = con.execute("SELECT count(*) FILTER (WHERE t IS NULL), count(*) FILTER (WHERE t IS NOT NULL) FROM d WHERE scope <> 'cooperative'").fetchall()[0]
    print(f"{coop}: groups sharing on a day with data from fewer than 5 connections: {small}; group-days with T withheld {withheld}, shared {shown}; scopes {sorted(set(g.values()))}")
    if small:
        problems.append(f"{coop}: {small} group-days share figures with fewer than 5 connections")
    months = con.execute("""
        SELECT strftime(date, '%Y-%m') AS month, coalesce(sum(l), 0), coalesce(sum(t), 0), coalesce(sum(p), 0),
               coalesce(sum(v), 0), coalesce(sum(m), 0), count(*)
        FROM d WHERE scope = 'cooperative' GROUP BY month ORDER BY month""").fetchall()
    for month, l, t, p, v, m, days in months:
        got = spark_rows.get((coop, month))
        seen_spark.add((coop, month))
        if got is None:
            problems.append(f"{coop} {month}: not in Spark's coop_monthly")
            continue
        for name, want in [("l_wh", l), ("t_wh", t), ("p_wh", p), ("v_wh", v), ("matched_wh", m), ("days", days)]:
            if int(float(got[name])) != int(want):
                problems.append(f"{coop} {month} {name}: Spark {got[name]!r}, DuckDB {want}")
    print(f"{coop}: {len(months)} months compared with Spark")
extra = set(spark_rows) - seen_spark
if extra:
    problems.append(f"Spark has rows DuckDB has not: {sorted(extra)[:3]}")

# No identifier of a household in any shared file, in any column, hidden folders included.
hits = 0
files = [os.path.join(d, f) for d, _, fs in os.walk(shared) for f in fs if f.endswith(".parquet")]
for f in files:
    rel = con.read_parquet(f)
    for col in rel.columns:
        values = {str(x[0]) for x in con.sql(f'SELECT DISTINCT CAST("{col}" AS VARCHAR) FROM rel').fetchall()}
        found = {v for v in values for i in identifiers if i in v}
        if found:
            hits += 1
            problems.append(f"{f}: column {col} holds {sorted(found)[:3]}")
print(f"{len(files)} shared files searched for {len(identifiers)} identifiers: {hits} columns hold one")
if problems:
    print("\n".join(problems[:20]))
    sys.exit(1)
