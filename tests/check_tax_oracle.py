#!/usr/bin/env python3
"""Money oracle: recomputes the energy tax of every connection-year from `intervals`, the
registry and the rates CSV, with plain Python and exact decimals, and compares it with
`tax_base_yearly` to the cent. Shares no code with vaten.

Usage: check_tax_oracle.py LAKE REGISTRY RATES_CSV
Prints every disagreement and exits 1 when there is any; prints what it covered otherwise."""
import csv
import datetime as dt
import sys
from decimal import Decimal, ROUND_HALF_UP, ROUND_FLOOR

import duckdb

lake, registry, rates_csv = sys.argv[1:4]
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")


def half_up(x):
    """Decimal euros-cents to whole cents, half away from zero."""
    return int(Decimal(x).quantize(Decimal(1), rounding=ROUND_HALF_UP))


# Rates: year -> {"brackets": [(from_wh, to_wh or None, eur_per_kwh or None, confirmed)],
#                 "reduction": (eur, confirmed) or None}
rates = {}
with open(rates_csv) as f:
    for r in csv.DictReader(f):
        y = rates.setdefault(int(r["year"]), {"brackets": [], "reduction": None})
        if r["kind"] == "bracket":
            lo = Decimal(r["from_kwh"]) * 1000
            hi = Decimal(r["to_kwh"]) * 1000 if r["to_kwh"].strip() else None
            rate = Decimal(r["eur"]) if r["eur"].strip() else None
            y["brackets"].append((lo, hi, rate, r["confirmed"] == "true"))
        else:
            y["reduction"] = (Decimal(r["eur"]), r["confirmed"] == "true")

connections = {}
with open(f"{registry}/connections.csv") as f:
    for r in csv.DictReader(f):
        connections[r["ean"]] = r


def member_days(c, year):
    first, last = dt.date(year, 1, 1), dt.date(year, 12, 31)
    lo = max(first, dt.date.fromisoformat(c["member_from"])) if c.get("member_from") else first
    hi = min(last, dt.date.fromisoformat(c["member_until"])) if c.get("member_until") else last
    return max(0, (hi - lo).days + 1)


def tax_cents(year_rates, wh, days, year_days):
    """(tax on `wh` with bracket bounds pro-rated to the membership (floored to the Wh), whether
    every bracket reached is confirmed); the tax is None when the energy reaches a bracket
    without a rate."""
    total, confirmed = Decimal(0), True
    for lo, hi, rate, ok in year_rates["brackets"]:
        lo_p = (lo * days / year_days).to_integral_value(rounding=ROUND_FLOOR)
        hi_p = None if hi is None else (hi * days / year_days).to_integral_value(rounding=ROUND_FLOOR)
        part = (Decimal(wh) if hi_p is None else min(Decimal(wh), hi_p)) - lo_p
        if part > 0:
            if rate is None:
                return None, False
            total += part / 1000 * rate  # kWh × EUR/kWh
            confirmed = confirmed and ok
    return half_up(total * 100), confirmed


sums = con.execute(f"""
    SELECT ean, year(date) AS y, sum(l_wh), sum(t_wh), sum(p_wh), count(*) - count(p_wh)
    FROM read_parquet('{lake}/intervals/*/*.parquet', hive_partitioning = true)
    GROUP BY 1, 2 ORDER BY 1, 2""").fetchall()
lake_rows = {(r[0], r[1]): tuple(r[2:]) for r in con.execute(f"""
    SELECT ean, year, taxable_wh, own_use_exempt_wh, energy_tax_ct, tax_credit_ct,
           net_energy_tax_ct, exemption_saving_ct, rates_confirmed
    FROM read_parquet('{lake}/tax_base_yearly/*.parquet')""").fetchall()}

problems, covered = [], set()
for ean, year, l, t, p, p_missing in sums:
    c = connections[ean]
    days = member_days(c, year)
    year_days = (dt.date(year + 1, 1, 1) - dt.date(year, 1, 1)).days
    netting = year <= 2026  # net metering ends on 1 January 2027
    taxable = max(0, l - t) if netting else l
    has_p = bool(c.get("installation_id")) and p_missing == 0 and p is not None
    own_use = max(0, p - t) if has_p else 0
    yr = rates.get(year)
    if yr is None or days == 0:
        expected = (taxable, own_use, None, None, None, None, False)
    else:
        tax, tax_ok = tax_cents(yr, taxable, days, year_days)
        with_own, _ = tax_cents(yr, taxable + own_use, days, year_days)
        credit_right = c.get("tax_credit", "true") in ("", "true")
        if not credit_right:
            credit, credit_ok = 0, True
        elif yr["reduction"] is None:
            credit, credit_ok = None, False
        else:
            amount, credit_ok = yr["reduction"]
            credit = half_up(amount * 100 * days / year_days)
        net = None if tax is None or credit is None else tax - credit
        saving = None if tax is None or with_own is None else with_own - tax
        # Confirmed: the brackets the taxable energy reached, and the reduction.
        confirmed = tax is not None and tax_ok and credit_ok
        expected = (taxable, own_use, tax, credit, net, saving, confirmed)
    got = lake_rows.get((ean, year))
    if got != expected:
        problems.append(f"{ean} {year}: lake {got}, oracle {expected} "
                        f"(L {l}, T {t}, P {p if has_p else None}, days {days}/{year_days})")
    covered.add(f"{year}:{'netting' if netting else 'no_netting'}")
    if c.get("member_from") and int(c["member_from"][:4]) == year:
        covered.add(f"joins {c['member_from']}")
    if c.get("member_until") and int(c["member_until"][:4]) == year:
        covered.add(f"leaves {c['member_until']}")
    if taxable > 50_000_000:
        covered.add("business above 50,000 kWh")
    elif c.get("tax_credit") == "false":
        covered.add("household without reduction")
    if own_use > 0:
        covered.add("own use")
    if yr is not None and yr["reduction"] is None:
        covered.add(f"{year} without a reduction in the rates")
missing = set(lake_rows) - {(e, y) for e, y, *_ in sums}
problems += [f"{k}: in tax_base_yearly, no intervals" for k in sorted(missing)]
if problems:
    print("\n".join(problems))
    sys.exit(1)
print(f"{len(sums)} connection-years agree to the cent; covered: {', '.join(sorted(covered))}")
