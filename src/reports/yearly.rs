//! The public yearly energy report: cooperative totals, months, cables, completeness and the
//! methods. Privacy: no EAN, participant id or single household's figure; a cable with fewer
//! than [`MIN_CONNECTIONS`] connections is only counted within "other cables" (and left out
//! of the per-cable table altogether when those together are still fewer).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::NaiveDate;
use polars::prelude::*;

use super::charts::{line_chart, Line, LineChart, BLUE_L, GREEN_MATCHED, ORANGE_T, PURPLE, RED};
use super::doc::{kwh, Block, Cell, Doc, Value};
use super::{ints, rows, strings, write_file, Written};
use crate::error::Result;
use crate::lake::schema::{CABLE_BALANCE_DAILY, CONSUMPTION_DAILY, TAX_BASE_YEARLY};
use crate::lake::Lake;
use crate::marts::rates::{Rates, Regime};
use crate::registry::Registry;

/// The smallest group of connections the public report shows figures of.
pub const MIN_CONNECTIONS: usize = 5;

/// Name of the merged group of small cables.
pub const OTHER: &str = "other cables";

/// Month names for tables and charts.
pub const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn year_is(year: i32) -> Expr {
    col("year").cast(DataType::Int64).eq(lit(i64::from(year)))
}

/// The year's rows of `consumption_daily` with a `month` column.
pub fn daily(lake: &Lake, year: i32) -> Result<DataFrame> {
    rows(
        lake,
        &CONSUMPTION_DAILY,
        year_is(year),
        &[
            col("*"),
            col("date")
                .cast(DataType::Date)
                .dt()
                .month()
                .cast(DataType::Int64)
                .alias("month"),
        ],
    )
}

fn sum(v: &[Option<i64>]) -> i64 {
    v.iter().flatten().sum()
}

/// Σ of a money column; `None` when any value is null (a year without rates) or none exist.
pub fn sum_money(v: &[Option<i64>]) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    v.iter().copied().sum()
}

/// Writes `reports/yearly/Y/index.html` and the participants' statements.
pub fn yearly(
    lake: &Lake,
    registry: &Registry,
    rates: &Rates,
    year: i32,
    out: &Path,
    as_of: NaiveDate,
) -> Result<Written> {
    let d = daily(lake, year)?;
    let ty = rows(lake, &TAX_BASE_YEARLY, year_is(year), &[col("*")])?;
    let cbd = rows(
        lake,
        &CABLE_BALANCE_DAILY,
        year_is(year),
        &[
            col("*"),
            col("date")
                .cast(DataType::Date)
                .dt()
                .month()
                .cast(DataType::Int64)
                .alias("month"),
        ],
    )?;
    let mut doc = Doc::new(format!("Energy report {year}"));
    let regime = Regime::of_year(year);
    doc.para(format!(
        "The cooperative's energy in {year}, from the grid operator's smart-meter data and our own installations. \
         Energy in kWh to the Wh. No household can be recognised in this report: figures are sums over at least {MIN_CONNECTIONS} connections."
    ));
    let n_conn = strings(&d, "ean")?
        .into_iter()
        .collect::<BTreeSet<_>>()
        .len();
    if n_conn < MIN_CONNECTIONS && n_conn > 0 {
        doc.push(Block::Warning(format!(
            "Fewer than {MIN_CONNECTIONS} connections have data for {year}: the figures below are not published."
        )));
        return finish(doc, out, year, lake, registry, rates, as_of);
    }

    // Totals.
    let (v, l, t, p) = (
        ints(&d, "v_wh")?,
        ints(&d, "l_wh")?,
        ints(&d, "t_wh")?,
        ints(&d, "p_wh")?,
    );
    let matched = ints(&cbd, "matched_wh")?;
    doc.heading("The cooperative");
    doc.table(
        &["figure", "value"],
        vec![
            vec![
                Cell::text("connections with data"),
                Cell::fig("totals.connections", Value::Count(n_conn as i64)),
            ],
            vec![
                Cell::text("V: consumption (P + L − T)"),
                Cell::fig("totals.v_wh", Value::Wh(sum(&v))),
            ],
            vec![
                Cell::text("L: delivered by the grid"),
                Cell::fig("totals.l_wh", Value::Wh(sum(&l))),
            ],
            vec![
                Cell::text("T: fed back to the grid"),
                Cell::fig("totals.t_wh", Value::Wh(sum(&t))),
            ],
            vec![
                Cell::text("P: solar production"),
                Cell::fig("totals.p_wh", Value::Wh(sum(&p))),
            ],
            vec![
                Cell::text("matched on the street cables"),
                Cell::fig("totals.matched_wh", Value::Wh(sum(&matched))),
            ],
            vec![
                Cell::text("own use, exempt from energy tax (max(0, P − T) per connection)"),
                Cell::fig(
                    "totals.own_use_exempt_wh",
                    Value::Wh(sum(&ints(&ty, "own_use_exempt_wh")?)),
                ),
            ],
            vec![
                Cell::text(format!("taxable base ({} regime)", regime.as_str())),
                Cell::fig(
                    "totals.taxable_wh",
                    Value::Wh(sum(&ints(&ty, "taxable_wh")?)),
                ),
            ],
            vec![
                Cell::text("energy tax the exemption saved (excluding VAT)"),
                Cell::fig(
                    "totals.exemption_saving_ct",
                    Value::Cents(sum_money(&ints(&ty, "exemption_saving_ct")?)),
                ),
            ],
        ],
    );

    // Months.
    let month = ints(&d, "month")?;
    let cmonth = ints(&cbd, "month")?;
    let by_month = |vals: &[Option<i64>], months: &[Option<i64>]| -> BTreeMap<i64, i64> {
        let mut m = BTreeMap::new();
        for (v, mo) in vals.iter().zip(months) {
            if let Some(mo) = mo {
                *m.entry(*mo).or_insert(0) += v.unwrap_or(0);
            }
        }
        m
    };
    let series = [
        ("v_wh", "V", by_month(&v, &month)),
        ("l_wh", "L", by_month(&l, &month)),
        ("t_wh", "T", by_month(&t, &month)),
        ("p_wh", "P", by_month(&p, &month)),
        ("matched_wh", "matched", by_month(&matched, &cmonth)),
    ];
    // A month is published only when every month of the year has at least MIN_CONNECTIONS
    // connections with data: a small month would describe few households, and the year's
    // totals minus the other months would give it anyway.
    let mut per_month: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    for (mo, e) in month.iter().zip(strings(&d, "ean")?) {
        if let Some(mo) = mo {
            per_month.entry(*mo).or_default().insert(e);
        }
    }
    let small_month = per_month.values().any(|s| s.len() < MIN_CONNECTIONS);
    let months: BTreeSet<i64> = if small_month {
        BTreeSet::new()
    } else {
        per_month.keys().copied().collect()
    };
    doc.heading("Month by month");
    if small_month {
        doc.para(format!(
            "Not published for {year}: in some month fewer than {MIN_CONNECTIONS} connections had data, and a month's figures must never describe fewer."
        ));
    }
    let mut mrows = Vec::new();
    for m in &months {
        let mut row = vec![Cell::text(MONTHS[(*m - 1) as usize])];
        for (key, _, s) in &series {
            row.push(Cell::fig(
                format!("month.{m:02}.{key}"),
                Value::Wh(s.get(m).copied().unwrap_or(0)),
            ));
        }
        mrows.push(row);
    }
    doc.table(&["month", "V", "L", "T", "P", "matched"], mrows);
    if !months.is_empty() {
        let labels: Vec<String> = months
            .iter()
            .map(|m| MONTHS[(*m - 1) as usize].to_string())
            .collect();
        let colors = [PURPLE, BLUE_L, ORANGE_T, RED, GREEN_MATCHED];
        let svg = line_chart(&LineChart {
            title: format!("Energy per month, {year} (MWh)"),
            y_desc: "MWh".into(),
            x_labels: labels,
            label_every: 1,
            lines: series
                .iter()
                .zip(colors)
                .map(|((_, name, s), color)| Line {
                    name: name.to_string(),
                    points: months
                        .iter()
                        .enumerate()
                        .map(|(i, m)| (i as f64, s.get(m).copied().unwrap_or(0) as f64 / 1e6))
                        .collect(),
                    color,
                })
                .collect(),
        })?;
        doc.push(Block::Chart {
            svg,
            alt: format!("V, L, T, P and matched energy per month of {year}"),
        });
    }

    cables(&d, &cbd, &mut doc)?;

    // Completeness.
    doc.heading("Data completeness");
    let q = |n: &str| -> Result<Value> { Ok(Value::Count(sum(&ints(&d, n)?))) };
    doc.table(
        &[
            "quarter-hours measured",
            "estimated (spread)",
            "derived (daily registers)",
            "missing",
        ],
        vec![vec![
            Cell::fig("completeness.measured", q("intervals_measured")?),
            Cell::fig("completeness.estimated", q("intervals_estimated")?),
            Cell::fig("completeness.derived", q("intervals_derived")?),
            Cell::fig("completeness.missing", q("intervals_missing")?),
        ]],
    );
    methods(&mut doc, rates, year, regime);
    finish(doc, out, year, lake, registry, rates, as_of)
}

/// Writes the public report (noting what it restates) and the participants' statements.
fn finish(
    mut doc: Doc,
    out: &Path,
    year: i32,
    lake: &Lake,
    registry: &Registry,
    rates: &Rates,
    as_of: NaiveDate,
) -> Result<Written> {
    let path = out.join("yearly").join(year.to_string()).join("index.html");
    super::restated::mark(
        &mut doc,
        &as_of.to_string(),
        &format!("yearly report {year}"),
        super::restated::previous(&path).as_ref(),
    );
    write_file(&path, &doc.html())?;
    let mut written = Written { files: vec![path] };
    written
        .files
        .extend(super::statements::statements(lake, registry, rates, year, out, as_of)?.files);
    Ok(written)
}

/// Per cable (or "other cables"): the year's sums, local share and peaks.
fn cables(d: &DataFrame, cbd: &DataFrame, doc: &mut Doc) -> Result<()> {
    let mut conns: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (c, e) in strings(d, "cable_id")?.into_iter().zip(strings(d, "ean")?) {
        conns.entry(c).or_default().insert(e);
    }
    // Cables with fewer than MIN_CONNECTIONS go to "other cables". The totals are published
    // too, so totals minus the named cables would give "other cables" even when it is left
    // out: while that group has 1 to MIN_CONNECTIONS - 1 connections, the smallest named cable
    // joins it (complementary suppression). Ties: the later cable id first, deterministically.
    let mut named: BTreeSet<&str> = conns
        .iter()
        .filter(|(_, set)| set.len() >= MIN_CONNECTIONS)
        .map(|(c, _)| c.as_str())
        .collect();
    loop {
        let other: usize = conns
            .iter()
            .filter(|(c, _)| !named.contains(c.as_str()))
            .map(|(_, set)| set.len())
            .sum();
        if other == 0 || other >= MIN_CONNECTIONS {
            break;
        }
        let smallest = named
            .iter()
            .copied()
            .min_by_key(|c| (conns[*c].len(), std::cmp::Reverse(*c)));
        match smallest {
            Some(c) => {
                named.remove(c);
            }
            None => break,
        }
    }
    let group_of = |c: &str| -> String {
        if named.contains(c) {
            c.to_string()
        } else {
            OTHER.to_string()
        }
    };
    // group → (connections, l, matched, above, below, peak import, peak export)
    let mut g: BTreeMap<String, [i64; 7]> = BTreeMap::new();
    for (c, set) in &conns {
        g.entry(group_of(c)).or_default()[0] += set.len() as i64;
    }
    let ids = strings(cbd, "cable_id")?;
    let cols = [
        "l_wh",
        "matched_wh",
        "quarters_above_v_high",
        "quarters_below_v_low",
        "peak_import_wh",
        "peak_export_wh",
    ];
    let vals: Vec<Vec<Option<i64>>> = cols.iter().map(|c| ints(cbd, c)).collect::<Result<_>>()?;
    for (i, c) in ids.iter().enumerate() {
        let e = g.entry(group_of(c)).or_default();
        for j in 0..4 {
            e[j + 1] += vals[j][i].unwrap_or(0);
        }
        e[5] = e[5].max(vals[4][i].unwrap_or(0));
        e[6] = e[6].max(vals[5][i].unwrap_or(0));
    }
    let hidden = g
        .get(OTHER)
        .is_some_and(|e| (e[0] as usize) < MIN_CONNECTIONS);
    if hidden {
        g.remove(OTHER);
    }
    doc.heading("Street cables");
    doc.para("Local share = matched / L: the part of the energy delivered to participants on a cable that other participants on the same cable fed back in the same quarter-hour. Peaks are the largest quarter-hour of the cable's net import and export. Cables with fewer than 5 of our connections are counted together as \"other cables\".");
    let mut table = Vec::new();
    for (k, e) in &g {
        let share = (e[1] > 0).then(|| e[2] as f64 / e[1] as f64);
        table.push(vec![
            Cell::text(k),
            Cell::fig(format!("cable.{k}.connections"), Value::Count(e[0])),
            Cell::fig(format!("cable.{k}.l_wh"), Value::Wh(e[1])),
            Cell::fig(format!("cable.{k}.matched_wh"), Value::Wh(e[2])),
            Cell::fig(format!("cable.{k}.local_share"), Value::Share(share)),
            Cell::fig(
                format!("cable.{k}.quarters_above_v_high"),
                Value::Count(e[3]),
            ),
            Cell::fig(
                format!("cable.{k}.quarters_below_v_low"),
                Value::Count(e[4]),
            ),
            Cell::fig(format!("cable.{k}.peak_import_wh"), Value::Wh(e[5])),
            Cell::fig(format!("cable.{k}.peak_export_wh"), Value::Wh(e[6])),
        ]);
    }
    doc.table(
        &[
            "cable",
            "connections",
            "L",
            "matched",
            "local share",
            "¼ h above limit",
            "¼ h below limit",
            "peak import",
            "peak export",
        ],
        table,
    );
    if hidden {
        doc.para("The small cables together have fewer than 5 connections: their figures are only part of the cooperative's totals.");
    }
    Ok(())
}

fn methods(doc: &mut Doc, rates: &Rates, year: i32, regime: Regime) {
    doc.heading("Methods");
    doc.para("Quarter-hour energy is the difference of consecutive register readings per meter (a meter exchange starts a new series); a hole between two known readings is spread over its quarter-hours exactly to the Wh (largest remainder), a day whose quarter-hours expired at the grid operator is spread from its daily registers: delivered energy by a household profile, fed-back energy by the installation's production and battery discharge, or by daylight at 52° N without an installation (the cable tables count such derived quarter-hours; matched energy and peaks on those days are estimates). Per quarter-hour and connection: V = P + L − T (V = L without installation).");
    doc.para(format!(
        "Energy tax: {} regime in {year}. {} Own use behind the meter, max(0, P − T) per connection and year, is never taxed. The reduction per connection and every bracket bound are pro-rated to the days of membership.",
        regime.as_str(),
        match regime {
            Regime::Netting => "Taxable is max(0, L − T) per connection (netting, up to and including 2026).",
            _ => "Taxable is L: netting ended on 1 January 2027.",
        }
    ));
    match rates.years.get(&year) {
        Some(r) => {
            let mut table = Vec::new();
            for b in &r.brackets {
                table.push(vec![
                    Cell::text(format!(
                        "{} – {} kWh",
                        kwh(b.from_wh).trim_end_matches(".000"),
                        if b.to_wh == crate::marts::rates::UNBOUNDED {
                            "…".into()
                        } else {
                            kwh(b.to_wh).trim_end_matches(".000").to_string()
                        }
                    )),
                    Cell::text(match b.rate_e5 {
                        Some(r) => format!(
                            "€ {}.{:05} per kWh, excluding VAT",
                            r / 100_000,
                            r % 100_000
                        ),
                        None => "unknown: no figure for connections that reach it".into(),
                    }),
                    Cell::text(if b.confirmed {
                        "confirmed"
                    } else {
                        "NOT confirmed"
                    }),
                ]);
            }
            if let Some((ct, confirmed)) = r.reduction {
                table.push(vec![
                    Cell::text("reduction per connection"),
                    Cell::text(format!("{} excluding VAT", super::doc::euros(ct))),
                    Cell::text(if confirmed {
                        "confirmed"
                    } else {
                        "NOT confirmed"
                    }),
                ]);
            }
            doc.table(&["bracket", "rate", "status"], table);
            if r.reduction.is_none() {
                doc.push(Block::Warning(format!(
                    "The rates file has no energy-tax reduction for {year}: connections entitled to it get no reduction and no net tax figure."
                )));
            }
            doc.para(format!("Sources: {}", r.sources.join("; ")));
        }
        None => doc.push(Block::Warning(format!(
            "No energy-tax rates for {year} in the rates file: money figures are not computed."
        ))),
    }
}
