#!/usr/bin/env python3
"""Independent check of `vaten publish` and the federation's Spark job, with DuckDB.

For every cooperative (COOP=LAKE=REGISTRY_DIR arguments) it recomputes from the cooperative's
own `intervals` and registry what may be shared, with the rule written out again here:
- groups: a cable of at least 5 registry connections by its id, the others together as
  "other cables", which takes the smallest named cable (ties: the later id) while it has 1 to 4;
- per group and day: nothing (no row) when fewer than 5 connections have an L that is not
  missing; L, T, P: the day's sum when the connections with a value above 0 that day number 0
  or at least 5, its quarter-hours only when moreover every quarter-hour has 0 or at least 5;
  and a month whole or not at all: a group shares a figure in a month only if it shares it on
  every day of the month (the cooperative: every group, every day);
  V = L + P - T and matched = least(L, T) of the shared figures; the voltage count when the
  connections with a P reading number 0 or at least 5; completeness the whole percent;
- the cooperative: a figure only when every group with data that day shared it.
Then: the shared `quarter_hours` and `days` equal it, figure for figure (nulls included); and,
whatever the design, no shared figure of a group has 1 to 4 contributors in its quarter-hour or
day, and no group shares on a day with fewer than 5 connections with an L; Spark's
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
CREATE OR REPLACE TABLE cells AS
  SELECT scope, date, interval_start, coalesce(sum(l_wh), 0) AS l, coalesce(sum(t_wh), 0) AS t, coalesce(sum(p_wh), 0) AS p,
         count(*) FILTER (WHERE l_wh > 0) AS q_l, count(*) FILTER (WHERE t_wh > 0) AS q_t, count(*) FILTER (WHERE p_wh > 0) AS q_p
  FROM iv GROUP BY ALL;
CREATE OR REPLACE TABLE flags AS
  WITH dec AS (
    SELECT scope, date, count(DISTINCT ean) FILTER (WHERE l_quality <> 'missing') AS n,
           count(DISTINCT ean) FILTER (WHERE l_wh > 0) AS d_l, count(DISTINCT ean) FILTER (WHERE t_wh > 0) AS d_t,
           count(DISTINCT ean) FILTER (WHERE p_wh > 0) AS d_p, count(DISTINCT ean) FILTER (WHERE p_wh IS NOT NULL) AS n_inst,
           count(*) AS rows_, count(*) FILTER (WHERE l_quality <> 'missing') AS reporting
    FROM iv GROUP BY ALL),
  qs AS (
    SELECT scope, date, bool_and(q_l = 0 OR q_l >= 5) AS qs_l, bool_and(q_t = 0 OR q_t >= 5) AS qs_t,
           bool_and(q_p = 0 OR q_p >= 5) AS qs_p FROM cells GROUP BY ALL)
  , daily AS (
    SELECT dec.*, qs_l, qs_t, qs_p, strftime(date, '%Y-%m') AS month, n >= 5 AS b,
           n >= 5 AND (d_l = 0 OR d_l >= 5) AS dl, n >= 5 AND (d_t = 0 OR d_t >= 5) AS dt,
           n >= 5 AND (d_p = 0 OR d_p >= 5) AS dp
    FROM dec JOIN qs USING (scope, date)),
  monthly AS (
    SELECT *, bool_and(b) OVER w AS base, bool_and(dl) OVER w AS day_l, bool_and(dt) OVER w AS day_t,
           bool_and(dp) OVER w AS day_p
    FROM daily WINDOW w AS (PARTITION BY scope, month))
  SELECT *, day_l AND qs_l AS qser_l, day_t AND qs_t AS qser_t, day_p AND qs_p AS qser_p FROM monthly;
CREATE OR REPLACE TABLE gq AS
  WITH k AS (
    SELECT c.scope, c.date, c.interval_start, c.l, c.t, c.p,
           CASE WHEN f.qser_l THEN c.l END AS ql, CASE WHEN f.qser_t THEN c.t END AS qt, CASE WHEN f.qser_p THEN c.p END AS qp
    FROM cells c JOIN flags f USING (scope, date) WHERE f.base)
  SELECT *, ql + qp - qt AS qv, CASE WHEN ql IS NOT NULL AND qt IS NOT NULL THEN least(ql, qt) END AS qm FROM k;
CREATE OR REPLACE TABLE q AS
  SELECT scope, date, interval_start, ql AS l, qt AS t, qp AS p, qv AS v, qm AS m FROM gq
  UNION ALL
  SELECT 'cooperative', g.date, g.interval_start,
         CASE WHEN cf.all_base AND cf.c_q_l THEN sum(g.l) END, CASE WHEN cf.all_base AND cf.c_q_t THEN sum(g.t) END,
         CASE WHEN cf.all_base AND cf.c_q_p THEN sum(g.p) END,
         CASE WHEN cf.all_base AND cf.c_q_l AND cf.c_q_p AND cf.c_q_t THEN sum(g.l) + sum(g.p) - sum(g.t) END,
         CASE WHEN cf.all_base AND cf.c_q_l AND cf.c_q_t THEN sum(g.qm) END
  FROM gq g JOIN (SELECT DISTINCT f.date, m.* FROM flags f JOIN (
                    SELECT month, bool_and(base) AS all_base, bool_and(qser_l) AS c_q_l, bool_and(qser_t) AS c_q_t,
                           bool_and(qser_p) AS c_q_p FROM flags GROUP BY month) m USING (month)) cf USING (date)
  GROUP BY g.date, g.interval_start, cf.all_base, cf.c_q_l, cf.c_q_t, cf.c_q_p;
CREATE OR REPLACE TABLE beyond AS
  SELECT coalesce(g.scope, 'other cables') AS scope, CAST(b.date AS DATE) AS date,
         sum(coalesce(b.quarters_below_v_low, 0) + coalesce(b.quarters_above_v_high, 0)) AS bq
  FROM read_parquet('{lake}/cable_balance_daily/*/*.parquet', hive_partitioning = true) b LEFT JOIN grp g USING (cable_id)
  GROUP BY ALL;
CREATE OR REPLACE TABLE d AS
  WITH gd AS (
    SELECT g.scope, g.date, sum(g.l) AS la, sum(g.t) AS ta, sum(g.p) AS pa, sum(g.qm) AS ma,
           any_value(f.day_l) AS day_l, any_value(f.day_t) AS day_t, any_value(f.day_p) AS day_p,
           any_value(f.qser_l) AS qser_l, any_value(f.qser_t) AS qser_t,
           any_value(f.rows_) AS rows_, any_value(f.reporting) AS reporting, any_value(f.n_inst) AS n_inst
    FROM gq g JOIN flags f USING (scope, date) GROUP BY g.scope, g.date),
  groups_ AS (
    SELECT gd.scope, gd.date, CASE WHEN day_l THEN la END AS l, CASE WHEN day_t THEN ta END AS t,
           CASE WHEN day_p THEN pa END AS p, CASE WHEN qser_l AND qser_t THEN ma END AS m,
           reporting * 100 // rows_ AS c,
           CASE WHEN n_inst = 0 OR n_inst >= 5 THEN coalesce(b.bq, 0) END AS bq, la, ta, pa
    FROM gd LEFT JOIN beyond b USING (scope, date)),
  cm AS (SELECT month, bool_and(base) AS all_base, bool_and(day_l) AS c_l, bool_and(day_t) AS c_t, bool_and(day_p) AS c_p,
                bool_and(qser_l AND qser_t) AS c_m FROM flags GROUP BY month),
  cf AS (SELECT f.date, any_value(cm.all_base) AS all_base, any_value(cm.c_l) AS c_l, any_value(cm.c_t) AS c_t,
                any_value(cm.c_p) AS c_p, any_value(cm.c_m) AS c_m, sum(f.rows_) AS rows_, sum(f.reporting) AS reporting
         FROM flags f JOIN cm USING (month) GROUP BY f.date)
  SELECT scope, date, l, t, p, l + p - t AS v, m, c, bq FROM groups_
  UNION ALL
  SELECT 'cooperative', g.date,
         CASE WHEN cf.all_base AND cf.c_l THEN sum(g.la) END, CASE WHEN cf.all_base AND cf.c_t THEN sum(g.ta) END,
         CASE WHEN cf.all_base AND cf.c_p THEN sum(g.pa) END,
         CASE WHEN cf.all_base AND cf.c_l AND cf.c_p AND cf.c_t THEN sum(g.la) + sum(g.pa) - sum(g.ta) END,
         CASE WHEN cf.all_base AND cf.c_m THEN sum(g.m) END,
         CASE WHEN cf.all_base THEN cf.reporting * 100 // cf.rows_ END, NULL
  FROM groups_ g JOIN cf USING (date) GROUP BY g.date, cf.all_base, cf.c_l, cf.c_t, cf.c_p, cf.c_m, cf.reporting, cf.rows_;
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
                       completeness_pct AS c, quarter_hours_beyond_limits AS bq
                FROM read_parquet('{base}/days/*/*.parquet', hive_partitioning = false)"""
    for name, got, want, key, cols in [
        ("quarter_hours", got_q, "SELECT scope, interval_start, l, t, p, v, m FROM q", "scope, interval_start", "lptvm"),
        ("days", got_d, "SELECT scope, date, l, t, p, v, m, c, bq FROM d", "scope, date", ["l", "p", "t", "v", "m", "c", "bq"]),
    ]:
        cond = " OR ".join(f"w.{c} IS DISTINCT FROM g.{c}" for c in cols)
        n_want, n_got, diff = con.execute(f"""
            SELECT (SELECT count(*) FROM ({want})), (SELECT count(*) FROM ({got})),
                   (SELECT count(*) FROM ({want}) w FULL JOIN ({got}) g USING ({key}) WHERE {cond})""").fetchall()[0]
        print(f"{coop} {name}: {n_want} rows recomputed, {n_got} shared, {diff} differ")
        if n_want != n_got or diff or n_want == 0:
            problems.append(f"{coop} {name}: the shared rows differ from the rule ({diff} of {n_got})")
    # The standard itself, whatever the design: every shared figure of a group has none or at
    # least 5 contributors (connections with a value above 0) in its quarter-hour or day, and
    # a group shares on a day only with at least 5 connections that have an L.
    small = con.execute(f"""
        SELECT count(*) FROM ({got_d}) g JOIN flags f USING (scope, date)
        WHERE (f.n < 5 AND (g.l IS NOT NULL OR g.t IS NOT NULL OR g.p IS NOT NULL OR g.c IS NOT NULL OR g.bq IS NOT NULL))
           OR (g.l IS NOT NULL AND f.d_l BETWEEN 1 AND 4) OR (g.t IS NOT NULL AND f.d_t BETWEEN 1 AND 4)
           OR (g.p IS NOT NULL AND f.d_p BETWEEN 1 AND 4) OR (g.bq IS NOT NULL AND f.n_inst BETWEEN 1 AND 4)""").fetchall()[0][0]
    small += con.execute(f"""
        SELECT count(*) FROM ({got_q}) g JOIN cells c USING (scope, interval_start)
        WHERE (g.l IS NOT NULL AND c.q_l BETWEEN 1 AND 4) OR (g.t IS NOT NULL AND c.q_t BETWEEN 1 AND 4)
           OR (g.p IS NOT NULL AND c.q_p BETWEEN 1 AND 4)""").fetchall()[0][0]
    withheld, shown = con.execute("SELECT count(*) FILTER (WHERE t IS NULL), count(*) FILTER (WHERE t IS NOT NULL) FROM d WHERE scope <> 'cooperative'").fetchall()[0]
    qt = con.execute("SELECT count(*) FILTER (WHERE t IS NOT NULL) FROM q WHERE scope <> 'cooperative'").fetchall()[0][0]
    print(f"{coop}: shared figures with 1 to 4 contributors: {small}; group-days with T withheld {withheld}, shared {shown}; group quarter-hours with T shared {qt}; scopes {sorted(set(g.values()))}")
    if small:
        problems.append(f"{coop}: {small} shared figures have 1 to 4 contributors")
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
