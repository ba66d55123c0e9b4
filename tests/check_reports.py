#!/usr/bin/env python3
"""Independent check of a report: DuckDB recomputes every figure from the lake, and each must
equal the figure the report carries (`data-figure` / `data-value` on its cells), no more, no
fewer.

Usage: check_reports.py LAKE REGISTRY nightly DATE REPORT.html
       check_reports.py LAKE REGISTRY yearly YEAR REPORT.html
       check_reports.py LAKE REGISTRY statement YEAR REPORT.html PARTICIPANT
Prints the differences and exits 1 when there are any."""
import csv
import datetime as dt
import json
import os
import sys
from html.parser import HTMLParser

import duckdb

lake, registry, kind, when, report = sys.argv[1:6]
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")


class Figures(HTMLParser):
    def __init__(self):
        super().__init__()
        self.figures = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "data-figure" in a:
            key = a["data-figure"]
            assert key not in self.figures, f"figure {key} twice"
            v = a["data-value"]
            self.figures[key] = None if v == "null" else (float(v) if "." in v or "e" in v else int(v))


def table(name, partitioned=True):
    path = f"{lake}/{name}/*/*.parquet" if partitioned else f"{lake}/{name}/*.parquet"
    return f"read_parquet('{path}', hive_partitioning = {str(partitioned).lower()})"


def exists(name):
    return os.path.isdir(f"{lake}/{name}")


def q(sql):
    return con.execute(sql).fetchall()


def members(day):
    with open(f"{registry}/connections.csv") as f:
        out = []
        for r in csv.DictReader(f):
            lo, hi = r.get("member_from") or "0001-01-01", r.get("member_until") or "9999-12-31"
            if lo <= day <= hi:
                out.append(r)
        return out


def local_bounds(day):
    """UTC start of local day `day` (Europe/Amsterdam), as DuckDB computes it."""
    return q(f"SELECT timezone('UTC', timezone('Europe/Amsterdam', TIMESTAMP '{day} 00:00:00'))")[0][0]


expected = {}


def nightly(day):
    d = dt.date.fromisoformat(day)
    nxt, after = (d + dt.timedelta(days=1)).isoformat(), (d + dt.timedelta(days=2)).isoformat()
    ms = members(day)
    per = {}
    if exists("intervals"):
        for ean, n, lm, ls, pm, ps in q(f"""
            SELECT ean, count(*), count(*) FILTER (l_quality = 'missing'),
                   count(*) FILTER (l_quality IN ('estimated', 'derived')),
                   count(*) FILTER (p_quality = 'missing'),
                   count(*) FILTER (p_quality IN ('estimated', 'derived'))
            FROM {table('intervals')} WHERE CAST(date AS DATE) = DATE '{day}' GROUP BY ean"""):
            per[ean] = (n, lm, ls, pm, ps)
    for source, conns, (m, s) in [("grid", ms, (1, 2)),
                                  ("installations", [c for c in ms if c["installation_id"]], (3, 4))]:
        counts = [0, 0, 0]
        for c in conns:
            e = per.get(c["ean"])
            counts[2 if e is None or e[m] > 0 else 1 if e[s] > 0 else 0] += 1
        expected[f"{source}.connections"] = len(conns)
        expected[f"{source}.complete"], expected[f"{source}.estimated"], expected[f"{source}.missing"] = counts
    state = f"{lake}/_state/installations.json"
    known = {c["installation_id"] for c in members(day) if c["installation_id"]}
    with open(state) if os.path.exists(state) else open(os.devnull) as f:
        text = f.read()
    offline = [i for i, s in (json.loads(text) if text else {}).items()
               if s.get("offline_since") and i in known]
    expected["installations.offline"] = len(offline)
    lo, hi = local_bounds(day), local_bounds(after)
    expected["gaps.count"] = q(f"""SELECT count(*) FROM {table('installation_gaps', False)}
        WHERE detected_at >= TIMESTAMPTZ '{lo}+00' AND detected_at < TIMESTAMPTZ '{hi}+00'""")[0][0] \
        if exists("installation_gaps") else 0
    total = 0
    if exists("rejected"):
        for source, reason, n in q(f"""SELECT source, reason, count(*) FROM {table('rejected')}
                WHERE CAST(date AS DATE) BETWEEN DATE '{day}' AND DATE '{nxt}' GROUP BY ALL"""):
            expected[f"rejected.{source}.{reason}"] = n
            total += n
    expected["rejected.total"] = total
    if exists("cable_balance_daily"):
        cols = ["l_wh", "t_wh", "p_wh", "v_wh", "matched_wh", "local_share", "peak_import_wh",
                "peak_export_wh", "quarters_below_v_low", "quarters_above_v_high",
                "connection_quarters_derived"]
        for row in q(f"""SELECT cable_id, {', '.join(cols)} FROM {table('cable_balance_daily')}
                         WHERE CAST(date AS DATE) = DATE '{day}'"""):
            for c, v in zip(cols, row[1:]):
                expected[f"cable.{row[0]}.{c}"] = v
    # The runs started on the day or the day after, before the run that wrote this report.
    lo, hi = local_bounds(day), local_bounds(after)
    runs = table("_runs", False)
    for status in ["failed", "warning", "ok"]:
        expected[f"runs.{status}"] = q(f"""SELECT count(*) FROM {runs} WHERE status = '{status}'
            AND started_at >= TIMESTAMPTZ '{lo}+00' AND started_at < TIMESTAMPTZ '{hi}+00'
            AND started_at < (SELECT max(started_at) FROM {runs} WHERE job = 'report-nightly')""")[0][0]


def yearly(year):
    cd, ty, cbd = table("consumption_daily"), table("tax_base_yearly", False), table("cable_balance_daily")
    y = f"year = {year}"
    # Cables: those with fewer than 5 connections together as "other cables"; while that group
    # has 1 to 4, the smallest named cable joins it (the later id first among equals), so that
    # the totals minus the named cables never describe fewer than 5.
    sizes = dict(q(f"SELECT cable_id, count(DISTINCT ean) FROM {cd} WHERE {y} GROUP BY cable_id"))
    named = {c for c, n in sizes.items() if n >= 5}
    while 0 < sum(n for c, n in sizes.items() if c not in named) < 5 and named:
        least = min(sizes[c] for c in named)
        named.remove(max(c for c in named if sizes[c] == least))
    q("CREATE TEMP TABLE grp (cable_id VARCHAR, g VARCHAR, n BIGINT)")
    for c, n in sizes.items():
        q(f"INSERT INTO grp VALUES ('{c}', '{c if c in named else 'other cables'}', {n})")
    # What may be shown: contributors none or at least 5; cells of group × month likewise.
    ok = lambda n: n == 0 or n >= 5
    n_p, n_t = q(f"""SELECT count(DISTINCT ean) FILTER (p_wh IS NOT NULL),
        count(DISTINCT ean) FILTER (t_wh > 0) FROM {cd} WHERE {y}""")[0]
    clipped, n_own = q(f"""SELECT count(DISTINCT ean) FILTER (taxable_wh > l_wh - t_wh),
        count(DISTINCT ean) FILTER (own_use_exempt_wh > 0) FROM {ty} WHERE {y}""")[0]
    t_without_p = q(f"""SELECT count(*) FROM (SELECT ean FROM {cd} WHERE {y} GROUP BY ean
        HAVING count(*) FILTER (t_wh > 0) > 0 AND count(p_wh) = 0)""")[0][0]
    p_ok, t_ok, clip_ok = ok(n_p), ok(n_t), ok(clipped)
    own_ok = ok(n_own) and ok(t_without_p)
    # Per cable group: connections that fed back, with an installation.
    group_counts = {g: (ft, fi) for g, ft, fi in q(f"""SELECT grp.g,
        count(DISTINCT ean) FILTER (t_wh > 0), count(DISTINCT ean) FILTER (p_wh IS NOT NULL)
        FROM {cd} JOIN grp USING (cable_id) WHERE {y} GROUP BY grp.g""")}
    groups_t_ok = all(ok(ft) for ft, _ in group_counts.values())
    cells = q(f"""
        SELECT count(DISTINCT ean), count(DISTINCT ean) FILTER (p_wh IS NOT NULL),
               count(DISTINCT ean) FILTER (t_wh > 0)
        FROM {cd} JOIN grp USING (cable_id) WHERE {y} GROUP BY grp.g, month(date)""")
    l_cells, p_cells, t_cells = (all(ok(c[i]) for c in cells) for i in range(3))
    p_col, t_col = p_ok and p_cells, t_ok and t_cells
    shown = {"v_wh": p_col and t_col, "l_wh": True, "t_wh": t_col, "p_wh": p_col, "matched_wh": t_col}
    n, v, l, t, p = q(f"SELECT count(DISTINCT ean), sum(v_wh), sum(l_wh), sum(t_wh), coalesce(sum(p_wh), 0) FROM {cd} WHERE {y}")[0]
    if 0 < n < 5:
        return  # too few connections: nothing is published
    expected.update({"totals.connections": n, "totals.l_wh": l})
    if p_ok and t_ok:
        expected["totals.v_wh"] = v
    if t_ok:
        expected["totals.t_wh"] = t
    if t_ok and groups_t_ok:
        expected["totals.matched_wh"] = q(f"SELECT sum(matched_wh) FROM {cbd} WHERE {y}")[0][0]
    if p_ok:
        expected["totals.p_wh"] = p
    own, tax, saving, nulls = q(f"""SELECT sum(own_use_exempt_wh), sum(taxable_wh), sum(exemption_saving_ct),
        count(*) FILTER (exemption_saving_ct IS NULL) FROM {ty} WHERE {y}""")[0]
    if p_ok and t_ok and own_ok:
        expected.update({"totals.own_use_exempt_wh": own,
                         "totals.exemption_saving_ct": None if nulls else saving})
    if t_ok and clip_ok:
        expected["totals.taxable_wh"] = tax
    matched = dict(q(f"SELECT month(date), sum(matched_wh) FROM {cbd} WHERE {y} GROUP BY 1"))
    for m, v, l, t, p in q(f"SELECT month(date), sum(v_wh), sum(l_wh), sum(t_wh), coalesce(sum(p_wh), 0) FROM {cd} WHERE {y} GROUP BY 1"):
        if not l_cells:
            break
        for k, val in [("v_wh", v), ("l_wh", l), ("t_wh", t), ("p_wh", p), ("matched_wh", matched.get(m, 0))]:
            if shown[k]:
                expected[f"month.{m:02}.{k}"] = val
    for g, n, l, m, above, below, pi, pe in q(f"""
        WITH s AS (SELECT grp.g, sum(l_wh) l, sum(matched_wh) m, sum(quarters_above_v_high) a,
                          sum(quarters_below_v_low) b, max(peak_import_wh) pi, max(peak_export_wh) pe
                   FROM {cbd} c JOIN grp USING (cable_id) WHERE {y} GROUP BY grp.g),
             k AS (SELECT g, sum(n) n FROM grp GROUP BY g)
        SELECT k.g, k.n, s.l, s.m, s.a, s.b, s.pi, s.pe FROM k JOIN s USING (g) WHERE k.n >= 5"""):
        fed_back, measured = (ok(c) for c in group_counts.get(g, (0, 0)))
        for key, val, shown in [("connections", n, True), ("l_wh", l, True), ("matched_wh", m, fed_back),
                                ("local_share", m / l if l else None, fed_back),
                                ("quarters_above_v_high", above, measured),
                                ("quarters_below_v_low", below, measured),
                                ("peak_import_wh", pi, fed_back), ("peak_export_wh", pe, fed_back)]:
            if shown:
                expected[f"cable.{g}.{key}"] = val
    for k in ["measured", "estimated", "derived", "missing"]:
        expected[f"completeness.{k}"] = q(f"SELECT sum(intervals_{k}) FROM {cd} WHERE {y}")[0][0]


def statement(year, pid):
    cd, ty = table("consumption_daily"), table("tax_base_yearly", False)
    w = f"year = {year} AND participant_id = '{pid}'"
    with_p = q(f"SELECT count(p_wh) > 0 FROM {cd} WHERE {w}")[0][0]
    for m, v, l, t, p in q(f"SELECT month(date), sum(v_wh), sum(l_wh), sum(t_wh), sum(p_wh) FROM {cd} WHERE {w} GROUP BY 1"):
        for k, val in [("v_wh", v), ("l_wh", l), ("t_wh", t)] + ([("p_wh", p or 0)] if with_p else []):
            expected[f"month.{m:02}.{k}"] = val
    # A money sum is null when any of the participant's rows has none (or there is no row).
    row = q(f"""SELECT coalesce(sum(own_use_exempt_wh), 0), coalesce(sum(taxable_wh), 0),
        CASE WHEN count(*) = count(energy_tax_ct) THEN sum(energy_tax_ct) END,
        CASE WHEN count(*) = count(tax_credit_ct) THEN sum(tax_credit_ct) END,
        CASE WHEN count(*) = count(net_energy_tax_ct) THEN sum(net_energy_tax_ct) END
        FROM {ty} WHERE {w}""")[0]
    net = row[4]
    expected.update({"tax.own_use_exempt_wh": row[0], "tax.taxable_wh": row[1],
                     "tax.energy_tax_ct": row[2], "tax.tax_credit_ct": row[3],
                     "tax.net_energy_tax_ct": net})
    # As a bill shows them: tax and reduction each with VAT and rounded, then their difference.
    if year >= 2013:
        from decimal import Decimal, ROUND_HALF_UP
        vat = lambda ct: None if ct is None else int(
            (Decimal(ct) * Decimal("1.21")).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        tax, credit = vat(row[2]), vat(row[3])
        expected["tax.energy_tax_incl_vat_ct"] = tax
        expected["tax.tax_credit_incl_vat_ct"] = credit
        expected["tax.net_energy_tax_incl_vat_ct"] = None if tax is None or credit is None else tax - credit
    for k in ["measured", "estimated", "derived", "missing"]:
        expected[f"completeness.{k}"] = q(f"SELECT coalesce(sum(intervals_{k}), 0) FROM {cd} WHERE {w}")[0][0]


if kind == "nightly":
    nightly(when)
elif kind == "yearly":
    yearly(int(when))
else:
    statement(int(when), sys.argv[6])

parser = Figures()
with open(report) as f:
    parser.feed(f.read())
got = parser.figures


def same(a, b):
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return abs(a - b) <= 1e-12 * max(1.0, abs(a), abs(b))
    return int(a) == int(b)


problems = [f"{k}: report {got.get(k, 'absent')!r}, lake {expected.get(k, 'absent')!r}"
            for k in sorted(set(got) | set(expected))
            if k not in got or k not in expected or not same(got[k], expected[k])]
if problems or not got:
    print(f"{len(problems)} of {len(set(got) | set(expected))} figures differ:")
    print("\n".join(problems[:20]))
    sys.exit(1)
print(f"{len(got)} figures agree")
