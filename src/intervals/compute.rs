//! The `intervals` table: one row per connection per quarter-hour, from the received tables.
//!
//! Polars loads the received readings and keeps, per key, the delivery that counts (highest
//! `delivery_seq`); the register arithmetic (differences per meter, exact spreading) runs over
//! the sorted columns in Rust, where integer exactness is easy to see and test.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::NaiveDate;
use chrono_tz::Tz;
use polars::prelude::*;

use super::days::day_registers;
use super::derive::weight;
use super::plan::Window;
use super::series::{
    differences, Quality, QuarterEnergy, RegisterReading, StepProblem, QUARTER_US,
};
use crate::domain::time::{from_micros, local_date, local_day_bounds, micros};
use crate::error::Result;
use crate::lake::schema::{GRID_READINGS, INSTALLATION_READINGS};
use crate::lake::Lake;
use crate::registry::{Connection, Registry};

/// One row of `intervals`.
#[derive(Debug, Clone, PartialEq)]
pub struct IntervalRow {
    /// Index of the connection in the registry passed to [`compute`]: the ids are strings
    /// only where they are written (millions of rows carry 4 bytes, not three strings).
    pub conn: u32,
    pub start_us: i64,
    pub l_wh: Option<i64>,
    pub t_wh: Option<i64>,
    pub p_wh: Option<i64>,
    pub v_wh: Option<i64>,
    pub l_quality: Quality,
    /// `None` for a connection without installation.
    pub p_quality: Option<Quality>,
    /// Battery charge minus discharge (Wh) when the installation reported both; not a column
    /// of `intervals`, used by the cable balance.
    pub battery_net_wh: Option<i64>,
    pub date: NaiveDate,
}

/// A step that could not be used, for `rejected`.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub key: String,
    pub register: &'static str,
    pub step: StepProblem,
}

/// (ean, meter_id, t µs, import Wh, export Wh, quality) of one grid reading that counts.
type GridRow = (Arc<str>, Arc<str>, i64, i64, i64, Arc<str>);

/// Per connection: quarter-hour start → energy, for one register.
type Energies = HashMap<String, QuarterMap>;

/// One connection's quarter-hour energies, indexed densely by quarter-hour (a vector, not a
/// tree: lookups and inserts are O(1) and the memory is contiguous).
#[derive(Debug, Default)]
pub struct QuarterMap {
    first: i64,
    slots: Vec<Option<QuarterEnergy>>,
}

impl QuarterMap {
    pub fn get(&self, start_us: &i64) -> Option<&QuarterEnergy> {
        if self.slots.is_empty() || *start_us < self.first {
            return None;
        }
        let i = usize::try_from((start_us - self.first) / QUARTER_US).ok()?;
        self.slots.get(i)?.as_ref()
    }

    pub fn insert(&mut self, start_us: i64, e: QuarterEnergy) {
        if self.slots.is_empty() {
            self.first = start_us;
        } else if start_us < self.first {
            let extra = ((self.first - start_us) / QUARTER_US) as usize;
            self.slots.splice(0..0, std::iter::repeat_n(None, extra));
            self.first = start_us;
        }
        let i = ((start_us - self.first) / QUARTER_US) as usize;
        if i >= self.slots.len() {
            self.slots.resize(i + 1, None);
        }
        self.slots[i] = Some(e);
    }

    /// Starts of the first and last quarter-hour held.
    pub fn bounds(&self) -> Option<(i64, i64)> {
        let first = self.slots.iter().position(Option::is_some)?;
        let last = self.slots.iter().rposition(Option::is_some)?;
        Some((
            self.first + first as i64 * QUARTER_US,
            self.first + last as i64 * QUARTER_US,
        ))
    }

    pub fn iter(&self) -> impl Iterator<Item = (i64, &QuarterEnergy)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(move |(i, e)| e.as_ref().map(|e| (self.first + i as i64 * QUARTER_US, e)))
    }
}

/// Reads a table's register series, the winning delivery per (key, meter, t), sorted.
#[allow(clippy::too_many_arguments)]
fn series(
    lake: &Lake,
    spec: &crate::lake::TableSpec,
    key: &str,
    meter: &str,
    regs: &[&str],
    seq: &str,
    only: &[String],
    since: Option<(i64, NaiveDate)>,
) -> Result<Option<DataFrame>> {
    let Some(lf) = lake.scan(spec)? else {
        return Ok(None);
    };
    // Only the keys asked for (one cable's connections at a time keeps memory bounded).
    let wanted = lit(Series::new("wanted".into(), only)).implode(false);
    let mut lf = lf.filter(col(key).is_in(wanted, false));
    if let Some((since_us, first_partition)) = since {
        // The partition filter lets the scan skip older files altogether.
        lf = lf
            .filter(col("date").cast(DataType::Date).gt_eq(lit(first_partition)))
            .filter(col("t").cast(DataType::Int64).gt_eq(lit(since_us)));
    }
    let mut cols = vec![col(key), col(meter), col("t").cast(DataType::Int64)];
    cols.extend(regs.iter().map(|r| col(*r)));
    if spec.name == GRID_READINGS.name {
        cols.push(col("quality"));
    }
    let df = lf
        .sort([key, meter, "t", seq], SortMultipleOptions::default())
        .unique_stable_generic(
            Some(vec![col(key), col(meter), col("t")]),
            UniqueKeepStrategy::Last,
        )
        .select(cols)
        .collect()?;
    Ok(Some(df))
}

/// A string column with equal values sharing one allocation.
fn strs(df: &DataFrame, name: &str) -> Result<Vec<Arc<str>>> {
    let mut seen: HashMap<&str, Arc<str>> = HashMap::new();
    let mut last: Option<Arc<str>> = None;
    let col = df.column(name)?.str()?;
    Ok(col
        .iter()
        .map(|s| {
            let s = s.unwrap_or("");
            // The frame is sorted: most rows repeat the previous value.
            if let Some(l) = last.as_ref().filter(|l| &***l == s) {
                return l.clone();
            }
            let a = seen.entry(s).or_insert_with(|| Arc::from(s)).clone();
            last = Some(a.clone());
            a
        })
        .collect())
}

fn ints(df: &DataFrame, name: &str) -> Result<Vec<i64>> {
    Ok(df
        .column(name)?
        .cast(&DataType::Int64)?
        .i64()?
        .iter()
        .map(|v| v.unwrap_or(0))
        .collect())
}

/// Runs [`differences`] over each (key, meter) run of sorted rows and files the quarter-hours
/// under the connection `owner(key)`.
#[allow(clippy::too_many_arguments)]
fn energies_of(
    keys: &[Arc<str>],
    meters: &[Arc<str>],
    t: &[i64],
    values: &[i64],
    qualities: Option<&[Arc<str>]>,
    owner: &dyn Fn(&str) -> Option<(String, i64)>,
    profile: &dyn Fn(i64) -> u64,
    register: &'static str,
    problems: &mut Vec<Problem>,
) -> Energies {
    let mut out: Energies = HashMap::new();
    let mut start = 0;
    while start < keys.len() {
        let mut end = start + 1;
        while end < keys.len() && keys[end] == keys[start] && meters[end] == meters[start] {
            end += 1;
        }
        if let Some((ean, max_wh)) = owner(&keys[start]) {
            let readings: Vec<RegisterReading> = (start..end)
                .map(|i| RegisterReading {
                    t_us: t[i],
                    value_wh: values[i],
                    quality: qualities.map_or(Quality::Measured, |q| Quality::from_service(&q[i])),
                })
                .collect();
            let (energies, steps) = differences(&readings, max_wh, profile);
            problems.extend(steps.into_iter().map(|step| Problem {
                key: keys[start].to_string(),
                register,
                step,
            }));
            let map = out.entry(ean).or_default();
            for e in energies {
                // At a meter exchange the series meet but do not overlap; a measured value wins.
                match map.get(&e.start_us) {
                    Some(old) if old.quality <= e.quality => {}
                    _ => {
                        map.insert(e.start_us, e);
                    }
                }
            }
        }
        start = end;
    }
    out
}

/// Computes every connection's quarter-hours over the local days its data touches; with
/// `window`, from readings at or after its anchor (µs) and only the window's days.
pub fn compute(
    lake: &Lake,
    registry: &Registry,
    tz: Tz,
    window: Option<(i64, Window)>,
) -> Result<(Vec<IntervalRow>, Vec<Problem>)> {
    let clock = std::time::Instant::now();
    let lap =
        |what: &str| tracing::debug!("  compute {what}: {:.2} s", clock.elapsed().as_secs_f64());
    // Received partitions are local days of the interval's end: one day of margin.
    let since = window.map(|(a, _)| {
        (
            a,
            local_date(from_micros(a), tz) - chrono::Duration::days(1),
        )
    });
    let mut problems = Vec::new();
    let by_ean: HashMap<&str, &Connection> = registry
        .connections
        .iter()
        .map(|c| (c.ean.as_str(), c))
        .collect();
    let by_inst: HashMap<&str, &Connection> = registry
        .connections
        .iter()
        .filter_map(|c| c.installation.as_ref().map(|i| (i.id.as_str(), c)))
        .collect();
    let eans: Vec<String> = registry
        .connections
        .iter()
        .map(|c| c.ean.as_str().to_string())
        .collect();
    let installation_ids: Vec<String> = by_inst.keys().map(|k| k.to_string()).collect();
    let grid_owner = |ean: &str| by_ean.get(ean).map(|c| (ean.to_string(), c.capacity_w / 4));
    let inst_owner = |id: &str| {
        by_inst
            .get(id)
            .map(|c| (c.ean.as_str().to_string(), i64::MAX / 4))
    };

    // Grid readings that count, plus the daily tariff registers as readings at local midnight
    // (quality `derived`) where no reading stands at that time: they split long holes per day
    // and fill days whose quarter-hours expired.
    let mut grid: Vec<GridRow> = Vec::new();
    if let Some(df) = series(
        lake,
        &GRID_READINGS,
        "ean",
        "meter_id",
        &["import_wh", "export_wh"],
        "delivery_seq",
        &eans,
        since,
    )? {
        let (keys, meters, t) = (strs(&df, "ean")?, strs(&df, "meter_id")?, ints(&df, "t")?);
        let (imp, exp, quality) = (
            ints(&df, "import_wh")?,
            ints(&df, "export_wh")?,
            strs(&df, "quality")?,
        );
        for i in 0..keys.len() {
            grid.push((
                keys[i].clone(),
                meters[i].clone(),
                t[i],
                imp[i],
                exp[i],
                quality[i].clone(),
            ));
        }
    }
    lap("grid scanned");
    // `grid` is sorted by (ean, meter, t) as the scan returned it: anchors are looked up by
    // binary search rather than a set of every reading.
    let readings = grid.len();
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    for ((ean, day), (meter, imp, exp)) in day_registers(lake, since.map(|s| s.1))? {
        let date = epoch + chrono::Duration::days(i64::from(day));
        let t = micros(crate::domain::time::local_midnight_utc(date, tz));
        if since.is_some_and(|(a, _)| t < a) {
            continue;
        }
        let (ean, meter): (Arc<str>, Arc<str>) = (ean.into(), meter.into());
        let found = grid[..readings]
            .binary_search_by(|g| (&*g.0, &*g.1, g.2).cmp(&(&*ean, &*meter, t)))
            .is_ok();
        if !found {
            grid.push((ean, meter, t, imp, exp, Arc::from("derived")));
        }
    }
    grid.sort_by(|a, b| (&a.0, &a.1, a.2).cmp(&(&b.0, &b.1, b.2)));
    let keys: Vec<Arc<str>> = grid.iter().map(|g| g.0.clone()).collect();
    let meters: Vec<Arc<str>> = grid.iter().map(|g| g.1.clone()).collect();
    let t: Vec<i64> = grid.iter().map(|g| g.2).collect();
    let quality: Vec<Arc<str>> = grid.iter().map(|g| g.5.clone()).collect();
    let profile = |s: i64| weight(s, tz);
    let imports = energies_of(
        &keys,
        &meters,
        &t,
        &grid.iter().map(|g| g.3).collect::<Vec<_>>(),
        Some(&quality),
        &grid_owner,
        &profile,
        "import",
        &mut problems,
    );
    let exports = energies_of(
        &keys,
        &meters,
        &t,
        &grid.iter().map(|g| g.4).collect::<Vec<_>>(),
        Some(&quality),
        &grid_owner,
        &profile,
        "export",
        &mut problems,
    );
    drop(grid);
    lap("grid energies");
    let mut production = Energies::new();
    let mut battery: HashMap<String, BTreeMap<i64, i64>> = HashMap::new();
    if let Some(df) = series(
        lake,
        &INSTALLATION_READINGS,
        "installation_id",
        "p_meter",
        &["p_wh", "battery_charge_wh", "battery_discharge_wh"],
        "seq",
        &installation_ids,
        since,
    )? {
        let (keys, meters, t) = (
            strs(&df, "installation_id")?,
            strs(&df, "p_meter")?,
            ints(&df, "t")?,
        );
        production = energies_of(
            &keys,
            &meters,
            &t,
            &ints(&df, "p_wh")?,
            None,
            &inst_owner,
            &|_| 1,
            "production",
            &mut problems,
        );
        let charge = energies_of(
            &keys,
            &meters,
            &t,
            &ints(&df, "battery_charge_wh")?,
            None,
            &inst_owner,
            &|_| 1,
            "battery_charge",
            &mut problems,
        );
        let discharge = energies_of(
            &keys,
            &meters,
            &t,
            &ints(&df, "battery_discharge_wh")?,
            None,
            &inst_owner,
            &|_| 1,
            "battery_discharge",
            &mut problems,
        );
        for (ean, c) in charge {
            let Some(d) = discharge.get(&ean) else {
                continue;
            };
            let net = c
                .iter()
                .filter_map(|(s, ce)| Some((s, ce.wh? - d.get(&s)?.wh?)))
                .collect();
            battery.insert(ean, net);
        }
    }

    lap("installations");
    let mut rows = Vec::new();
    // In EAN order: each day's rows come out sorted as the table is, and the writer's sort
    // finds nothing to do.
    let mut order: Vec<usize> = (0..registry.connections.len()).collect();
    order.sort_by(|a, b| {
        registry.connections[*a]
            .ean
            .as_str()
            .cmp(registry.connections[*b].ean.as_str())
    });
    for index in order {
        let conn = &registry.connections[index];
        let ean = conn.ean.as_str();
        let src = Sources {
            conn: index as u32,
            l: imports.get(ean),
            x: exports.get(ean),
            p: production.get(ean),
            battery: battery.get(ean),
        };
        let starts = [src.l, src.x, src.p]
            .into_iter()
            .flatten()
            .filter_map(QuarterMap::bounds)
            .flat_map(|(a, b)| [a, b]);
        let (Some(first), Some(last)) = (starts.clone().min(), starts.max()) else {
            continue;
        };
        let mut date = local_date(from_micros(first), tz);
        let mut last_date = local_date(from_micros(last), tz);
        if let Some((_, w)) = window {
            date = date.max(w.from);
            last_date = w.to.map_or(last_date, |to| last_date.min(to));
        }
        while date <= last_date {
            let member = conn.member_from.is_none_or(|f| date >= f)
                && conn.member_until.is_none_or(|u| date <= u);
            if member {
                day_rows(conn, date, tz, &src, &mut rows);
            }
            date = date.succ_opt().expect("date in range");
        }
    }
    lap("rows");
    Ok((rows, problems))
}

type Quarters<'a> = Option<&'a QuarterMap>;

/// One connection's energies by quarter-hour start: import, export, production, battery net.
struct Sources<'a> {
    /// The connection's index in the registry.
    conn: u32,
    l: Quarters<'a>,
    x: Quarters<'a>,
    p: Quarters<'a>,
    battery: Option<&'a BTreeMap<i64, i64>>,
}

fn day_rows(conn: &Connection, date: NaiveDate, tz: Tz, src: &Sources, out: &mut Vec<IntervalRow>) {
    let (l, x, p) = (src.l, src.x, src.p);
    let (start, end) = local_day_bounds(date, tz);
    let get = |m: Quarters, s: i64| m.and_then(|m| m.get(&s)).copied();
    let has_installation = conn.installation.is_some();
    let mut s = micros(start);
    while s < micros(end) {
        let (le, xe) = (get(l, s), get(x, s));
        let l_wh = le.and_then(|e| e.wh);
        let t_wh = xe.and_then(|e| e.wh);
        let l_quality = match (le, xe, l_wh, t_wh) {
            (Some(a), Some(b), Some(_), Some(_)) => a.quality.max(b.quality),
            _ => Quality::Missing,
        };
        let (l_wh, t_wh) = if l_quality == Quality::Missing {
            (None, None)
        } else {
            (l_wh, t_wh)
        };
        let (p_wh, p_quality, v_wh) = if has_installation {
            let pe = get(p, s);
            let p_wh = pe.and_then(|e| e.wh);
            let q = if p_wh.is_some() {
                pe.map_or(Quality::Missing, |e| e.quality)
            } else {
                Quality::Missing
            };
            let v = match (p_wh, l_wh, t_wh) {
                (Some(p), Some(l), Some(t)) => Some(p + l - t),
                _ => None,
            };
            (p_wh, Some(q), v)
        } else {
            (None, None, l_wh)
        };
        out.push(IntervalRow {
            conn: src.conn,
            start_us: s,
            l_wh,
            t_wh,
            p_wh,
            v_wh,
            l_quality,
            p_quality,
            battery_net_wh: src.battery.and_then(|b| b.get(&s).copied()),
            date,
        });
        s += QUARTER_US;
    }
}
