//! The nightly report for one local day D, written the morning after: data completeness per
//! source, rejected records, per cable the day's energy and voltage figures with charts, and
//! the night's job runs.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use polars::prelude::*;

use super::charts::{
    line_chart, Line, LineChart, BLUE_L, GREEN_MATCHED, GREY, ORANGE_T, PURPLE, RED,
};
use super::doc::{Block, Cell, Doc, Value};
use super::{floats, ints, rows, strings, write_file, Written};
use crate::domain::time::{local_day_bounds, micros};
use crate::error::Result;
use crate::lake::schema::{
    CABLE_BALANCE_15M, CABLE_BALANCE_DAILY, INSTALLATION_GAPS, INTERVALS, REJECTED, RUNS,
};
use crate::lake::Lake;
use crate::received::state::{
    GridState, InstallationsState, GRID_STATE, INSTALLATIONS_STATE as INSTALLATIONS,
};
use crate::registry::{Connection, Registry};
use crate::status::{days_left, WARN_DAYS};

/// Whether `c` belongs to the cooperative on `date`.
pub fn member_on(c: &Connection, date: NaiveDate) -> bool {
    c.member_from.is_none_or(|f| date >= f) && c.member_until.is_none_or(|u| date <= u)
}

fn date_is(d: NaiveDate) -> Expr {
    col("date").cast(DataType::Date).eq(lit(d))
}

fn between_us(name: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Expr {
    let t = col(name).cast(DataType::Int64);
    t.clone()
        .gt_eq(lit(micros(from)))
        .and(t.lt(lit(micros(to))))
}

/// Writes `reports/nightly/D.html` and `D.md`.
pub fn nightly(
    lake: &Lake,
    registry: &Registry,
    tz: Tz,
    date: NaiveDate,
    now: DateTime<Utc>,
    out: &Path,
) -> Result<Written> {
    let mut doc = Doc::new(format!("vaten nightly report {date}"));
    doc.para(format!(
        "Local day {date} (Europe/Amsterdam calendar day), written {} UTC. Energy in kWh to the Wh.",
        now.format("%Y-%m-%d %H:%M")
    ));
    retention(lake, now, &mut doc)?;
    // Authorisations that end soon: renewed in time, or the data stops.
    let ending = registry.consents_ending(date + Duration::days(1), 30);
    if !ending.is_empty() {
        doc.push(Block::Warning(format!(
            "Consents ending within 30 days: {}.",
            ending.join("; ")
        )));
    }
    completeness(lake, registry, date, &mut doc)?;
    installations(lake, registry, tz, date, &mut doc)?;
    rejected(lake, date, &mut doc)?;
    cables(lake, registry, tz, date, &mut doc)?;
    runs(lake, tz, date, &mut doc)?;
    let dir = out.join("nightly");
    let html = dir.join(format!("{date}.html"));
    let md = dir.join(format!("{date}.md"));
    write_file(out, &html, &doc.html())?;
    write_file(out, &md, &doc.markdown())?;
    Ok(Written {
        files: vec![html, md],
    })
}

fn retention(lake: &Lake, now: DateTime<Utc>, doc: &mut Doc) -> Result<()> {
    let grid: Option<GridState> = lake.read_state(GRID_STATE)?;
    match grid.and_then(|g| g.last_success_at) {
        Some(t) if days_left(t, now) < WARN_DAYS => doc.push(Block::Warning(format!(
            "The grid operator's feed was last drained {}: {:.1} days left before quarter-hours not pulled yet expire (10-day retention). Pull now.",
            t.format("%Y-%m-%d %H:%M UTC"),
            days_left(t, now)
        ))),
        Some(_) => {}
        None => doc.push(Block::Warning(
            "The grid operator's feed has never been drained: quarter-hours older than 10 days are gone.".into(),
        )),
    }
    Ok(())
}

/// Per source: connections complete, estimated (holes spread, derived days) or missing.
fn completeness(lake: &Lake, registry: &Registry, date: NaiveDate, doc: &mut Doc) -> Result<()> {
    let df = rows(
        lake,
        &INTERVALS,
        date_is(date),
        &[col("ean"), col("l_quality"), col("p_quality")],
    )?;
    // ean → (rows, l missing, l spread, p missing, p spread)
    let mut per: HashMap<String, [i64; 5]> = HashMap::new();
    let (ean, lq, pq) = (
        strings(&df, "ean")?,
        strings(&df, "l_quality")?,
        strings(&df, "p_quality")?,
    );
    for i in 0..ean.len() {
        let e = per.entry(ean[i].clone()).or_default();
        e[0] += 1;
        e[1] += i64::from(lq[i] == "missing");
        e[2] += i64::from(lq[i] == "estimated" || lq[i] == "derived");
        e[3] += i64::from(pq[i] == "missing");
        e[4] += i64::from(pq[i] == "estimated" || pq[i] == "derived");
    }
    let members: Vec<&Connection> = registry
        .connections
        .iter()
        .filter(|c| member_on(c, date))
        .collect();
    let classify = |c: &Connection, missing: usize, spread: usize| -> usize {
        match per.get(c.ean.as_str()) {
            None => 2,
            Some(e) if e[missing] > 0 => 2,
            Some(e) if e[spread] > 0 => 1,
            Some(_) => 0,
        }
    };
    let mut rows_out = Vec::new();
    for (source, conns, (m, s)) in [
        ("grid", members.clone(), (1, 2)),
        (
            "installations",
            members
                .iter()
                .copied()
                .filter(|c| c.installation.is_some())
                .collect::<Vec<_>>(),
            (3, 4),
        ),
    ] {
        let mut counts = [0i64; 3];
        for c in &conns {
            counts[classify(c, m, s)] += 1;
        }
        rows_out.push(vec![
            Cell::text(if source == "grid" {
                "grid operator (L, T)"
            } else {
                "installations (P)"
            }),
            Cell::fig(
                format!("{source}.connections"),
                Value::Count(conns.len() as i64),
            ),
            Cell::fig(format!("{source}.complete"), Value::Count(counts[0])),
            Cell::fig(format!("{source}.estimated"), Value::Count(counts[1])),
            Cell::fig(format!("{source}.missing"), Value::Count(counts[2])),
        ]);
    }
    doc.heading("Data completeness");
    doc.para("Per connection that is a member on the day: complete (every quarter-hour measured), estimated (holes spread between known readings or days derived from the daily registers) or missing (a quarter-hour still unknown, or no data at all).");
    doc.table(
        &["source", "connections", "complete", "estimated", "missing"],
        rows_out,
    );
    Ok(())
}

fn installations(
    lake: &Lake,
    registry: &Registry,
    tz: Tz,
    date: NaiveDate,
    doc: &mut Doc,
) -> Result<()> {
    let state: InstallationsState = lake.read_state(INSTALLATIONS)?.unwrap_or_default();
    let known: Vec<&str> = registry.installations().map(|(id, _)| id).collect();
    let offline: Vec<(String, DateTime<Utc>)> = state
        .iter()
        .filter(|(id, _)| known.contains(&id.as_str()))
        .filter_map(|(id, s)| s.offline_since.map(|t| (id.clone(), t)))
        .collect();
    doc.heading("Installations offline and lost readings");
    doc.table(
        &["installations offline now"],
        vec![vec![Cell::fig(
            "installations.offline",
            Value::Count(offline.len() as i64),
        )]],
    );
    if !offline.is_empty() {
        doc.table(
            &["installation", "offline since"],
            offline
                .iter()
                .map(|(id, t)| {
                    vec![
                        Cell::text(id),
                        Cell::text(t.format("%Y-%m-%d %H:%M UTC").to_string()),
                    ]
                })
                .collect(),
        );
    }
    let (from, _) = local_day_bounds(date, tz);
    let (_, to) = local_day_bounds(date + Duration::days(1), tz);
    let gaps = rows(
        lake,
        &INSTALLATION_GAPS,
        between_us("detected_at", from, to),
        &[col("installation_id"), col("after_seq"), col("resumed_seq")],
    )?;
    let (id, after, resumed) = (
        strings(&gaps, "installation_id")?,
        ints(&gaps, "after_seq")?,
        ints(&gaps, "resumed_seq")?,
    );
    doc.para("Gaps detected on the day or the morning after: readings an installation no longer had when it was asked (lost for good).");
    let mut gap_rows = vec![vec![
        Cell::text("all"),
        Cell::fig("gaps.count", Value::Count(id.len() as i64)),
        Cell::text(""),
    ]];
    for i in 0..id.len() {
        gap_rows.push(vec![
            Cell::text(&id[i]),
            Cell::text(after[i].map_or("?".into(), |s| format!("after seq {s}"))),
            Cell::text(resumed[i].map_or("not resumed".into(), |s| format!("resumed at seq {s}"))),
        ]);
    }
    doc.table(&["installation", "gaps", ""], gap_rows);
    Ok(())
}

fn rejected(lake: &Lake, date: NaiveDate, doc: &mut Doc) -> Result<()> {
    let d = col("date").cast(DataType::Date);
    let df = match lake.scan(&REJECTED)? {
        Some(lf) => lf
            .filter(
                d.clone()
                    .gt_eq(lit(date))
                    .and(d.lt_eq(lit(date + Duration::days(1)))),
            )
            .group_by([col("source"), col("reason")])
            .agg([len().cast(DataType::Int64).alias("n")])
            .sort(["source", "reason"], SortMultipleOptions::default())
            .collect()?,
        None => DataFrame::empty(),
    };
    let (source, reason, n) = (
        strings(&df, "source")?,
        strings(&df, "reason")?,
        ints(&df, "n")?,
    );
    let total: i64 = n.iter().flatten().sum();
    let mut out = vec![vec![
        Cell::text("all"),
        Cell::text(""),
        Cell::fig("rejected.total", Value::Count(total)),
    ]];
    for i in 0..source.len() {
        out.push(vec![
            Cell::text(&source[i]),
            Cell::text(&reason[i]),
            Cell::fig(
                format!("rejected.{}.{}", source[i], reason[i]),
                Value::Count(n[i].unwrap_or(0)),
            ),
        ]);
    }
    doc.heading("Rejected records");
    doc.para("Received on the day or the morning after and kept in `rejected` with their reason (nothing is dropped; `vaten replay-rejected` re-examines them).");
    doc.table(&["source", "reason", "records"], out);
    Ok(())
}

const CABLE_FIGURES: [(&str, &str); 11] = [
    ("l_wh", "L (delivered)"),
    ("t_wh", "T (fed back)"),
    ("p_wh", "P (solar)"),
    ("v_wh", "V (consumption)"),
    ("matched_wh", "matched"),
    ("local_share", "local share"),
    ("peak_import_wh", "peak import (¼ h)"),
    ("peak_export_wh", "peak export (¼ h)"),
    ("quarters_below_v_low", "¼ h below limit"),
    ("quarters_above_v_high", "¼ h above limit"),
    ("connection_quarters_derived", "derived ¼ h"),
];

fn cable_value(
    name: &str,
    ints: &BTreeMap<&str, Vec<Option<i64>>>,
    share: &[Option<f64>],
    i: usize,
) -> Value {
    match name {
        "local_share" => Value::Share(share[i]),
        n if n.contains("quarters") => Value::Count(ints[n][i].unwrap_or(0)),
        n => Value::Wh(ints[n][i].unwrap_or(0)),
    }
}

fn cables(lake: &Lake, registry: &Registry, tz: Tz, date: NaiveDate, doc: &mut Doc) -> Result<()> {
    let df = rows(lake, &CABLE_BALANCE_DAILY, date_is(date), &[col("*")])?;
    let ids = strings(&df, "cable_id")?;
    let mut int_cols = BTreeMap::new();
    for (name, _) in CABLE_FIGURES.iter().filter(|(n, _)| *n != "local_share") {
        int_cols.insert(*name, ints(&df, name)?);
    }
    let share = floats(&df, "local_share")?;
    doc.heading("Street cables");
    doc.para("Per cable, over the cooperative's connections on it: matched = Σ min(ΣL, ΣT) per quarter-hour, the energy one participant fed back and another took; local share = matched / L; peaks per quarter-hour at the cable's end of the transformer; quarter-hours whose voltage went beyond the limits agreed for the cable; derived ¼ h: connection-quarter-hours known only from daily registers, whose timing is modelled (a household profile for L, production or daylight for T), so matched energy and peaks on such days are estimates.");
    let mut table = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let mut row = vec![Cell::text(id)];
        for (name, _) in CABLE_FIGURES {
            row.push(Cell::fig(
                format!("cable.{id}.{name}"),
                cable_value(name, &int_cols, &share, i),
            ));
        }
        table.push(row);
    }
    let mut head = vec!["cable"];
    head.extend(CABLE_FIGURES.iter().map(|(_, h)| *h));
    doc.table(&head, table);
    if ids.is_empty() {
        doc.para("No cable figures for this day yet (no data transformed).");
    }
    for id in &ids {
        charts(lake, registry, tz, date, id, doc)?;
    }
    Ok(())
}

/// The day's balance (ΣL, ΣT, matched per quarter-hour) and voltage band of one cable.
fn charts(
    lake: &Lake,
    registry: &Registry,
    tz: Tz,
    date: NaiveDate,
    cable: &str,
    doc: &mut Doc,
) -> Result<()> {
    let df = match lake.scan(&CABLE_BALANCE_15M)? {
        Some(lf) => lf
            .filter(date_is(date).and(col("cable_id").eq(lit(cable))))
            .sort(["interval_start"], SortMultipleOptions::default())
            .collect()?,
        None => return Ok(()),
    };
    let start = ints(&df, "interval_start")?;
    let labels: Vec<String> = start
        .iter()
        .map(|s| {
            s.map(|s| {
                crate::domain::time::from_micros(s)
                    .with_timezone(&tz)
                    .format("%H:%M")
                    .to_string()
            })
            .unwrap_or_default()
        })
        .collect();
    let kwh = |name: &str| -> Result<Vec<(f64, f64)>> {
        Ok(ints(&df, name)?
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (i as f64, v as f64 / 1000.0)))
            .collect())
    };
    let svg = line_chart(&LineChart {
        title: format!("Cable {cable}: balance per quarter-hour, {date}"),
        y_desc: "kWh per quarter-hour".into(),
        x_labels: labels.clone(),
        label_every: 16,
        lines: vec![
            Line {
                name: "ΣL delivered".into(),
                points: kwh("l_wh")?,
                color: BLUE_L,
            },
            Line {
                name: "ΣT fed back".into(),
                points: kwh("t_wh")?,
                color: ORANGE_T,
            },
            Line {
                name: "matched".into(),
                points: kwh("matched_wh")?,
                color: GREEN_MATCHED,
            },
        ],
    })?;
    doc.push(Block::Chart {
        svg,
        alt: format!(
            "Cable {cable} on {date}: delivered, fed back and matched energy per quarter-hour"
        ),
    });
    let volts = |name: &str| -> Result<Vec<(f64, f64)>> {
        Ok(floats(&df, name)?
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (i as f64, v)))
            .collect())
    };
    let (vmin, vavg, vmax) = (
        volts("voltage_min_v")?,
        volts("voltage_avg_v")?,
        volts("voltage_max_v")?,
    );
    if vavg.is_empty() {
        return Ok(());
    }
    let n = labels.len() as f64 - 1.0;
    let mut lines = vec![
        Line {
            name: "maximum".into(),
            points: vmax,
            color: RED,
        },
        Line {
            name: "mean".into(),
            points: vavg,
            color: PURPLE,
        },
        Line {
            name: "minimum".into(),
            points: vmin,
            color: BLUE_L,
        },
    ];
    if let Some(c) = registry.cables.get(cable) {
        lines.push(Line {
            name: format!("agreed {:.0}–{:.0} V", c.v_low_v, c.v_high_v),
            points: vec![(0.0, c.v_high_v), (n, c.v_high_v)],
            color: GREY,
        });
        lines.push(Line {
            name: String::new(),
            points: vec![(0.0, c.v_low_v), (n, c.v_low_v)],
            color: GREY,
        });
    }
    let svg = line_chart(&LineChart {
        title: format!("Cable {cable}: voltage band at the installations, {date}"),
        y_desc: "V".into(),
        x_labels: labels,
        label_every: 16,
        lines,
    })?;
    doc.push(Block::Chart {
        svg,
        alt: format!("Cable {cable} on {date}: lowest, mean and highest voltage per quarter-hour against the agreed limits"),
    });
    Ok(())
}

/// The runs started on D and the day after (local), failures first: the night's pass and
/// everything since the report before, so that no failure goes unreported.
fn runs(lake: &Lake, tz: Tz, date: NaiveDate, doc: &mut Doc) -> Result<()> {
    let (from, _) = local_day_bounds(date, tz);
    let (_, to) = local_day_bounds(date + Duration::days(1), tz);
    let df = match lake.scan(&RUNS)? {
        Some(lf) => lf
            .filter(between_us("started_at", from, to))
            .with_column(
                when(col("status").eq(lit("failed")))
                    .then(lit(0))
                    .when(col("status").eq(lit("warning")))
                    .then(lit(1))
                    .otherwise(lit(2))
                    .alias("rank"),
            )
            .sort(["rank", "started_at"], SortMultipleOptions::default())
            .collect()?,
        None => DataFrame::empty(),
    };
    let (job, status, msg) = (
        strings(&df, "job")?,
        strings(&df, "status")?,
        strings(&df, "message")?,
    );
    let (started, finished) = (ints(&df, "started_at")?, ints(&df, "finished_at")?);
    let count = |s: &str| status.iter().filter(|x| x.as_str() == s).count() as i64;
    doc.heading("Job runs");
    doc.para(format!(
        "Runs started on {date} or {} (local), failures first.",
        date + Duration::days(1)
    ));
    doc.table(
        &["failed", "warning", "ok"],
        vec![vec![
            Cell::fig("runs.failed", Value::Count(count("failed"))),
            Cell::fig("runs.warning", Value::Count(count("warning"))),
            Cell::fig("runs.ok", Value::Count(count("ok"))),
        ]],
    );
    let t = |us: Option<i64>| {
        us.map(|us| {
            crate::domain::time::from_micros(us)
                .with_timezone(&tz)
                .format("%H:%M:%S")
                .to_string()
        })
        .unwrap_or_default()
    };
    doc.table(
        &["job", "status", "started", "finished", "message"],
        (0..job.len())
            .map(|i| {
                vec![
                    Cell::text(&job[i]),
                    Cell::text(&status[i]),
                    Cell::text(t(started[i])),
                    Cell::text(t(finished[i])),
                    Cell::text(&msg[i]),
                ]
            })
            .collect(),
    );
    Ok(())
}
