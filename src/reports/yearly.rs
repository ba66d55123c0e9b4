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
    let groups = cable_groups(&d)?;
    let audit = Audit::of(&d, &ty, &groups)?;
    // A figure some connections do not contribute to (P: only installations; T: only who feed
    // back; the taxable base: clipped for net exporters) describes its contributors: it is
    // shown only when they are none or at least MIN_CONNECTIONS. V = P + L − T gives P or T
    // back from the others, so it goes with them.
    let hidden = |what: &str| {
        Cell::text(format!(
            "not published: {what} of fewer than {MIN_CONNECTIONS} connections"
        ))
    };
    let show = |ok: bool, key: &str, value: Value, what: &str| {
        if ok {
            Cell::fig(key, value)
        } else {
            hidden(what)
        }
    };
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
                show(
                    audit.p_ok && audit.t_ok,
                    "totals.v_wh",
                    Value::Wh(sum(&v)),
                    "the production or feed-back",
                ),
            ],
            vec![
                Cell::text("L: delivered by the grid"),
                Cell::fig("totals.l_wh", Value::Wh(sum(&l))),
            ],
            vec![
                Cell::text("T: fed back to the grid"),
                show(
                    audit.t_ok,
                    "totals.t_wh",
                    Value::Wh(sum(&t)),
                    "the feed-back",
                ),
            ],
            vec![
                Cell::text("P: solar production"),
                show(
                    audit.p_ok,
                    "totals.p_wh",
                    Value::Wh(sum(&p)),
                    "the production",
                ),
            ],
            vec![
                Cell::text("matched on the street cables"),
                show(
                    audit.t_ok && audit.groups_t_ok(),
                    "totals.matched_wh",
                    Value::Wh(sum(&matched)),
                    "the feed-back",
                ),
            ],
            vec![
                Cell::text("own use, exempt from energy tax (max(0, P − T) per connection)"),
                show(
                    audit.p_ok && audit.t_ok && audit.own_use_ok,
                    "totals.own_use_exempt_wh",
                    Value::Wh(sum(&ints(&ty, "own_use_exempt_wh")?)),
                    "the production",
                ),
            ],
            vec![
                Cell::text(format!("taxable base ({} regime)", regime.as_str())),
                show(
                    audit.t_ok && audit.clip_ok,
                    "totals.taxable_wh",
                    Value::Wh(sum(&ints(&ty, "taxable_wh")?)),
                    "the net exporters",
                ),
            ],
            vec![
                Cell::text("energy tax the exemption saved (excluding VAT)"),
                show(
                    audit.p_ok && audit.t_ok && audit.own_use_ok,
                    "totals.exemption_saving_ct",
                    Value::Cents(sum_money(&ints(&ty, "exemption_saving_ct")?)),
                    "the production",
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
    // Months are published only when every cable group × month cell has no connection or at
    // least MIN_CONNECTIONS: every published figure (totals, months, cable groups) is a sum of
    // whole cells, so any sum or difference of them that gives a group of connections gives
    // whole cells, each of at least MIN_CONNECTIONS. Per quantity: L's cells decide the rows,
    // P's and T's cells their columns (V and matched need both, or T).
    let (p_col, t_col) = (
        audit.p_ok && audit.p_cells_ok,
        audit.t_ok && audit.t_cells_ok,
    );
    let series: Vec<(&str, &str, BTreeMap<i64, i64>)> = [
        (p_col && t_col, ("v_wh", "V", by_month(&v, &month))),
        (true, ("l_wh", "L", by_month(&l, &month))),
        (t_col, ("t_wh", "T", by_month(&t, &month))),
        (p_col, ("p_wh", "P", by_month(&p, &month))),
        (
            t_col,
            ("matched_wh", "matched", by_month(&matched, &cmonth)),
        ),
    ]
    .into_iter()
    .filter_map(|(shown, s)| shown.then_some(s))
    .collect();
    let months: BTreeSet<i64> = if audit.l_cells_ok {
        audit.months.clone()
    } else {
        BTreeSet::new()
    };
    doc.heading("Month by month");
    if !audit.l_cells_ok {
        doc.para(format!(
            "Not published for {year}: in some month, on some cable (or the other cables together), fewer than {MIN_CONNECTIONS} connections had data, and no figure may describe fewer, not even by subtraction from another."
        ));
    } else if series.len() < 5 {
        doc.para(format!(
            "Only the columns whose every month and cable involve none or at least {MIN_CONNECTIONS} connections are shown (production comes from few installations, feed-back from few households)."
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
    let mut head = vec!["month"];
    head.extend(series.iter().map(|(_, name, _)| *name));
    doc.table(&head, mrows);
    if !months.is_empty() {
        let labels: Vec<String> = months
            .iter()
            .map(|m| MONTHS[(*m - 1) as usize].to_string())
            .collect();
        let color = |name: &str| match name {
            "V" => PURPLE,
            "L" => BLUE_L,
            "T" => ORANGE_T,
            "P" => RED,
            _ => GREEN_MATCHED,
        };
        let svg = line_chart(&LineChart {
            title: format!("Energy per month, {year} (MWh)"),
            y_desc: "MWh".into(),
            x_labels: labels,
            label_every: 1,
            lines: series
                .iter()
                .map(|(_, name, s)| Line {
                    name: name.to_string(),
                    points: months
                        .iter()
                        .enumerate()
                        .map(|(i, m)| (i as f64, s.get(m).copied().unwrap_or(0) as f64 / 1e6))
                        .collect(),
                    color: color(name),
                })
                .collect(),
        })?;
        doc.push(Block::Chart {
            svg,
            alt: format!("V, L, T, P and matched energy per month of {year}"),
        });
    }

    cables(&cbd, &groups, &audit, &mut doc)?;

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
        false,
    );
    write_file(out, &path, &doc.html())?;
    let mut written = Written { files: vec![path] };
    written
        .files
        .extend(super::statements::statements(lake, registry, rates, year, out, as_of)?.files);
    Ok(written)
}

/// What the public figures may show without describing fewer than MIN_CONNECTIONS
/// connections, alone or by subtraction (units: a connection's data in a month).
struct Audit {
    /// Connections with production data: none or at least MIN_CONNECTIONS.
    p_ok: bool,
    /// Connections that fed back: none or at least MIN_CONNECTIONS.
    t_ok: bool,
    /// Connections whose taxable base was clipped at 0 (net exporters under netting).
    clip_ok: bool,
    /// Connections with own use, and that feed back without an installation (both shape the
    /// own-use total next to the P and T totals).
    own_use_ok: bool,
    /// Per cable group: its connections that fed back, and those with an installation.
    group_t: BTreeMap<String, usize>,
    group_inst: BTreeMap<String, usize>,
    /// Every cable group × month cell has none or at least MIN_CONNECTIONS connections with
    /// data (L), with production (P), that fed back (T).
    l_cells_ok: bool,
    p_cells_ok: bool,
    t_cells_ok: bool,
    months: BTreeSet<i64>,
}

impl Audit {
    fn ok(n: usize) -> bool {
        n == 0 || n >= MIN_CONNECTIONS
    }

    /// Every cable group's feed-back may be shown (else the totals minus the shown groups
    /// would give a hidden one).
    fn groups_t_ok(&self) -> bool {
        self.group_t.values().all(|n| Self::ok(*n))
    }

    fn of(
        d: &DataFrame,
        ty: &DataFrame,
        groups: &BTreeMap<String, (String, usize)>,
    ) -> Result<Self> {
        let ok = Self::ok;
        let (ean, cable) = (strings(d, "ean")?, strings(d, "cable_id")?);
        let (month, p, t) = (ints(d, "month")?, ints(d, "p_wh")?, ints(d, "t_wh")?);
        // (group, month) → connections with data, with production, with feed-back.
        let mut cells: BTreeMap<(String, i64), [BTreeSet<&str>; 3]> = BTreeMap::new();
        // group → connections that fed back, with an installation.
        let mut by_group: BTreeMap<String, [BTreeSet<&str>; 2]> = BTreeMap::new();
        let (mut with_p, mut with_t) = (BTreeSet::new(), BTreeSet::new());
        for i in 0..ean.len() {
            let Some(m) = month[i] else { continue };
            let group = groups.get(&cable[i]).map_or(OTHER, |(g, _)| g.as_str());
            let cell = cells.entry((group.to_string(), m)).or_default();
            cell[0].insert(&ean[i]);
            let g = by_group.entry(group.to_string()).or_default();
            if p[i].is_some() {
                cell[1].insert(&ean[i]);
                with_p.insert(&ean[i]);
                g[1].insert(&ean[i]);
            }
            if t[i].unwrap_or(0) > 0 {
                cell[2].insert(&ean[i]);
                with_t.insert(&ean[i]);
                g[0].insert(&ean[i]);
            }
        }
        let (tl, tt, tx) = (
            ints(ty, "l_wh")?,
            ints(ty, "t_wh")?,
            ints(ty, "taxable_wh")?,
        );
        let (te, own) = (strings(ty, "ean")?, ints(ty, "own_use_exempt_wh")?);
        // Distinct connections (a connection may have a row per participant).
        let clipped: BTreeSet<&str> = (0..tl.len())
            .filter(|&i| tx[i].unwrap_or(0) > tl[i].unwrap_or(0) - tt[i].unwrap_or(0))
            .map(|i| te[i].as_str())
            .collect();
        let with_own_use: BTreeSet<&str> = (0..te.len())
            .filter(|&i| own[i].unwrap_or(0) > 0)
            .map(|i| te[i].as_str())
            .collect();
        let t_without_p = with_t.difference(&with_p).count();
        Ok(Audit {
            p_ok: ok(with_p.len()),
            t_ok: ok(with_t.len()),
            clip_ok: ok(clipped.len()),
            own_use_ok: ok(with_own_use.len()) && ok(t_without_p),
            group_t: by_group
                .iter()
                .map(|(g, s)| (g.clone(), s[0].len()))
                .collect(),
            group_inst: by_group
                .iter()
                .map(|(g, s)| (g.clone(), s[1].len()))
                .collect(),
            l_cells_ok: cells.values().all(|c| ok(c[0].len())),
            p_cells_ok: cells.values().all(|c| ok(c[1].len())),
            t_cells_ok: cells.values().all(|c| ok(c[2].len())),
            months: cells.keys().map(|(_, m)| *m).collect(),
        })
    }
}

/// Cable → the group it is published in: its own id when it has at least MIN_CONNECTIONS
/// connections, else "other cables". The totals are published too, so totals minus the named
/// cables would give "other cables" even when it is left out: while that group has 1 to
/// MIN_CONNECTIONS - 1 connections, the smallest named cable joins it (complementary
/// suppression). Ties: the later cable id first, deterministically.
fn cable_groups(d: &DataFrame) -> Result<BTreeMap<String, (String, usize)>> {
    Ok(cable_groups_of(
        strings(d, "cable_id")?.into_iter().zip(strings(d, "ean")?),
    ))
}

/// [`cable_groups`] of (cable, EAN) pairs: also what `vaten publish` shares per group.
pub fn cable_groups_of(
    pairs: impl IntoIterator<Item = (String, String)>,
) -> BTreeMap<String, (String, usize)> {
    let mut conns: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (c, e) in pairs {
        conns.entry(c).or_default().insert(e);
    }
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
    conns
        .iter()
        .map(|(c, set)| {
            let group = if named.contains(c.as_str()) {
                c.clone()
            } else {
                OTHER.to_string()
            };
            (c.clone(), (group, set.len()))
        })
        .collect()
}

/// Per cable (or "other cables"): the year's sums, local share and peaks.
fn cables(
    cbd: &DataFrame,
    groups: &BTreeMap<String, (String, usize)>,
    audit: &Audit,
    doc: &mut Doc,
) -> Result<()> {
    let group_of = |c: &str| -> String {
        groups
            .get(c)
            .map_or_else(|| OTHER.to_string(), |(g, _)| g.clone())
    };
    // group → (connections, l, matched, above, below, peak import, peak export)
    let mut g: BTreeMap<String, [i64; 7]> = BTreeMap::new();
    for (c, (_, n)) in groups {
        g.entry(group_of(c)).or_default()[0] += *n as i64;
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
        // What rests on the cable's feed-back (matched, local share, net peaks) only when its
        // feeding-back connections are none or 5+; voltages likewise with its installations.
        let fed_back = Audit::ok(audit.group_t.get(k).copied().unwrap_or(0));
        let measured = Audit::ok(audit.group_inst.get(k).copied().unwrap_or(0));
        let fig = |ok: bool, name: &str, value: Value| {
            if ok {
                Cell::fig(format!("cable.{k}.{name}"), value)
            } else {
                Cell::text("not published")
            }
        };
        table.push(vec![
            Cell::text(k),
            Cell::fig(format!("cable.{k}.connections"), Value::Count(e[0])),
            Cell::fig(format!("cable.{k}.l_wh"), Value::Wh(e[1])),
            fig(fed_back, "matched_wh", Value::Wh(e[2])),
            fig(fed_back, "local_share", Value::Share(share)),
            fig(measured, "quarters_above_v_high", Value::Count(e[3])),
            fig(measured, "quarters_below_v_low", Value::Count(e[4])),
            fig(fed_back, "peak_import_wh", Value::Wh(e[5])),
            fig(fed_back, "peak_export_wh", Value::Wh(e[6])),
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
