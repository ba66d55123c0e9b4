//! What a transform must recompute.
//!
//! The derived tables of a cable depend only on that cable's received data, and a quarter-hour
//! depends only on the readings of its series around it: the previous and the next reading of
//! the same meter. So when new received files arrive, the quarter-hours that can change start
//! at the reading before the earliest new one (a hole before new data is spread anew) and run
//! to the end of the data. A cable is recomputed from that day on, starting its series at an
//! anchor early enough that each series still running then has a reading at or before it:
//! every recomputed day is then exactly what a full recompute gives.
//!
//! `_state/transform.json` remembers which received files the derived tables reflect and a
//! fingerprint of the registry, the rates and this code; anything else changed means a full
//! recompute.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};

use chrono::{Duration, NaiveDate};
use chrono_tz::Tz;
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::domain::time::{from_micros, local_date, local_midnight_utc, micros};
use crate::error::Result;
use crate::lake::schema::{GRID_DAYS, GRID_READINGS, INSTALLATION_READINGS};
use crate::lake::{Lake, TableSpec};
use crate::marts::rates::Rates;
use crate::registry::Registry;

/// Bump when a change in this stage's code changes its output: stored lakes then get a full
/// recompute on their next transform.
const TRANSFORM_VERSION: u32 = 5;

/// The received tables the derived tables are computed from.
pub const INPUTS: [&TableSpec; 3] = [&GRID_READINGS, &GRID_DAYS, &INSTALLATION_READINGS];

/// The received tables whose readings form one series per (key, meter): the daily registers
/// are readings of the same grid meter as the quarter-hour registers (at local midnight), so a
/// new reading of either kind is placed among the readings of both.
const SERIES_GROUPS: [&[&TableSpec]; 2] =
    [&[&GRID_READINGS, &GRID_DAYS], &[&INSTALLATION_READINGS]];

/// How far back a query first looks for the reading before a day (partition pruning); it looks
/// at the whole history only when that was not enough.
pub(super) const LOOKBACK_DAYS: i64 = 7;

/// How far back the search for the reading before new data looks first: a nightly run's
/// meters nearly all have one the day before (a week, then the whole history, for the rest).
const FIRST_LOOKBACK_DAYS: i64 = 1;

/// What `vaten transform` was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Only what newly received data touches (a full recompute the first time).
    Incremental,
    /// Everything.
    Full,
    /// The local days `from..=to`, for every cable.
    Range { from: NaiveDate, to: NaiveDate },
}

/// The days of one cable to recompute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Window {
    pub from: NaiveDate,
    pub to: Option<NaiveDate>,
}

impl Window {
    pub fn contains(&self, d: NaiveDate) -> bool {
        d >= self.from && self.to.is_none_or(|t| d <= t)
    }

    /// Whether a day of the local calendar `year` is recomputed: the derived files of other
    /// years stay as they are.
    pub fn touches_year(&self, year: i32) -> bool {
        use chrono::Datelike;
        year >= self.from.year() && self.to.is_none_or(|t| year <= t.year())
    }

    /// Whether a day of the calendar months `first..=last` of `year` is recomputed: a
    /// `consumption_daily` file of other months stays as it is.
    pub fn touches_months(&self, year: i32, first: u32, last: u32) -> bool {
        use chrono::Datelike;
        let at = |d: NaiveDate| (d.year(), d.month());
        (year, last) >= at(self.from) && self.to.is_none_or(|t| (year, first) <= at(t))
    }
}

#[derive(Debug)]
pub enum Plan {
    Full,
    /// Per cable the days to recompute; cables not named stay as they are.
    Cables(BTreeMap<String, Window>),
}

/// The name of `_state/transform.json`.
pub const TRANSFORM_STATE: &str = "transform";

/// `_state/transform.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TransformState {
    pub fingerprint: String,
    /// Per received table: the files (relative to the lake root) the derived tables reflect.
    pub inputs: BTreeMap<String, BTreeSet<String>>,
    /// Local days before this one are sealed: their derived rows are final and never
    /// recomputed, whatever changes (`vaten retain` removed what they were computed from).
    #[serde(default)]
    pub sealed_before: Option<NaiveDate>,
}

impl TransformState {
    /// Forgets input files a removal took away: gone files are no new data and no reason
    /// for a full recompute.
    pub fn forget(&mut self, removed: &BTreeSet<String>) {
        for files in self.inputs.values_mut() {
            files.retain(|f| !removed.contains(f));
        }
    }
}

/// The received files now in the lake, per table.
pub fn current_inputs(lake: &Lake) -> Result<BTreeMap<String, BTreeSet<String>>> {
    let mut out = BTreeMap::new();
    for spec in INPUTS {
        let files = lake
            .files(spec, None)?
            .into_iter()
            .map(|f| lake.rel(&f))
            .collect();
        out.insert(spec.name.to_string(), files);
    }
    Ok(out)
}

/// Registry, rates and code version: when one changes, every derived row may change.
pub fn fingerprint(registry: &Registry, rates: &Rates) -> String {
    // Debug output of ordered structures (Vec, BTreeMap) is stable; a hasher change between
    // Rust releases only costs one full recompute.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    TRANSFORM_VERSION.hash(&mut h);
    format!("{:?}{:?}", registry.connections, registry.cables).hash(&mut h);
    format!("{rates:?}").hash(&mut h);
    format!("v{TRANSFORM_VERSION}-{:016x}", h.finish())
}

/// Decides what to recompute: what [`plan_unsealed`] says, never a sealed day.
pub fn plan(
    lake: &Lake,
    registry: &Registry,
    tz: Tz,
    scope: Scope,
    state: Option<&TransformState>,
    now: (&str, &BTreeMap<String, BTreeSet<String>>),
) -> Result<Plan> {
    let planned = plan_unsealed(lake, registry, tz, scope, state, now)?;
    let Some(sealed) = state.and_then(|s| s.sealed_before) else {
        return Ok(planned);
    };
    let windows = match planned {
        Plan::Full => registry
            .cables_in_use()
            .into_iter()
            .map(|c| {
                (
                    c,
                    Window {
                        from: sealed,
                        to: None,
                    },
                )
            })
            .collect(),
        Plan::Cables(windows) => windows
            .into_iter()
            .filter_map(|(c, w)| {
                let from = w.from.max(sealed);
                let open = w.to.is_none_or(|t| t >= from);
                open.then_some((c, Window { from, to: w.to }))
            })
            .collect(),
    };
    Ok(Plan::Cables(windows))
}

/// What to recompute when no day is sealed.
fn plan_unsealed(
    lake: &Lake,
    registry: &Registry,
    tz: Tz,
    scope: Scope,
    state: Option<&TransformState>,
    now: (&str, &BTreeMap<String, BTreeSet<String>>),
) -> Result<Plan> {
    let cables = || registry.cables_in_use();
    match scope {
        Scope::Full => Ok(Plan::Full),
        // A range over derived tables written under another registry, rates or code (a lake
        // of an older version) would mix two kinds of files: everything is recomputed instead.
        Scope::Range { .. } if state.is_none_or(|s| s.fingerprint != now.0) => Ok(Plan::Full),
        Scope::Range { from, to } => Ok(Plan::Cables(
            cables()
                .into_iter()
                .map(|c| (c, Window { from, to: Some(to) }))
                .collect(),
        )),
        Scope::Incremental => {
            let (fingerprint, inputs) = now;
            let Some(state) = state.filter(|s| s.fingerprint == fingerprint) else {
                return Ok(Plan::Full);
            };
            // A received file that went away (a rewrite, a manual repair): start over.
            let mut new: BTreeMap<&str, Vec<String>> = BTreeMap::new();
            for (table, files) in inputs {
                let seen = state.inputs.get(table);
                if let Some(seen) = seen {
                    if !seen.is_subset(files) {
                        return Ok(Plan::Full);
                    }
                }
                new.insert(
                    table,
                    files
                        .iter()
                        .filter(|f| seen.is_none_or(|s| !s.contains(*f)))
                        .cloned()
                        .collect(),
                );
            }
            Ok(Plan::Cables(dirty(lake, registry, tz, &new)?))
        }
    }
}

/// Per (key, meter): a time in µs.
type ByMeter = HashMap<(String, String), i64>;

/// The earliest new reading per series in the new files of `spec`.
fn earliest_new(lake: &Lake, spec: &TableSpec, files: &[String], tz: Tz) -> Result<ByMeter> {
    let mut out: ByMeter = HashMap::new();
    for f in files {
        let df = LazyFrame::scan_parquet(
            PlRefPath::new(lake.root().join(f).display().to_string()),
            ScanArgsParquet::default(),
        )?;
        let (key, meter) = series_columns(spec);
        let with_t = if spec.name == GRID_DAYS.name {
            // A day register is a reading at local midnight of its partition's day.
            let day = partition_date(f).unwrap_or_default();
            df.select([col(key), col(meter)])
                .with_column(lit(micros(local_midnight_utc(day, tz))).alias("t"))
        } else {
            df.select([col(key), col(meter), col("t").cast(DataType::Int64)])
        };
        let agg = with_t
            .group_by([col(key), col(meter)])
            .agg([col("t").min()])
            .collect()?;
        for (k, m, t) in triples(&agg, key, meter, "t")? {
            let e = out.entry((k, m)).or_insert(t);
            *e = (*e).min(t);
        }
    }
    Ok(out)
}

/// The date of a `date=YYYY-MM-DD` partition file (relative path).
pub fn partition_date(rel: &str) -> Option<NaiveDate> {
    rel.split('/')
        .find_map(|p| p.strip_prefix("date="))
        .and_then(|d| d.parse().ok())
}

fn series_columns(spec: &TableSpec) -> (&'static str, &'static str) {
    if spec.name == INSTALLATION_READINGS.name {
        ("installation_id", "p_meter")
    } else {
        ("ean", "meter_id")
    }
}

fn triples(df: &DataFrame, key: &str, meter: &str, t: &str) -> Result<Vec<(String, String, i64)>> {
    let (k, m) = (df.column(key)?.str()?, df.column(meter)?.str()?);
    let t = df.column(t)?.cast(&DataType::Int64)?;
    let t = t.i64()?;
    Ok((0..df.height())
        .filter_map(|i| Some((k.get(i)?.to_string(), m.get(i)?.to_string(), t.get(i)?)))
        .collect())
}

/// A table's readings as (key, meter, t µs), day registers as readings at local midnight;
/// only `keys`, and only partitions from `since` when given.
fn readings(
    lake: &Lake,
    spec: &TableSpec,
    keys: &[String],
    since: Option<NaiveDate>,
    tz: Tz,
) -> Result<Option<LazyFrame>> {
    let Some(lf) = lake.scan_from(spec, since)? else {
        return Ok(None);
    };
    let (key, meter) = series_columns(spec);
    let wanted = lit(Series::new("wanted".into(), keys)).implode(false);
    let mut lf = lf.filter(col(key).is_in(wanted, false));
    if let Some(since) = since {
        lf = lf.filter(col("date").cast(DataType::Date).gt_eq(lit(since)));
    }
    Ok(Some(if spec.name == GRID_DAYS.name {
        // Local midnight as UTC µs: midnight UTC of the date, minus the offset at that moment.
        // The offset is looked up per distinct date in Rust (few), then joined.
        let df = lf
            .select([col(key), col(meter), col("date").cast(DataType::Date)])
            .collect()?;
        let dates = df.column("date")?.cast(&DataType::Int32)?;
        let epoch = crate::domain::time::EPOCH_DAY;
        let t: Vec<Option<i64>> = dates
            .i32()?
            .iter()
            .map(|d| {
                d.map(|d| micros(local_midnight_utc(epoch + Duration::days(i64::from(d)), tz)))
            })
            .collect();
        let mut df = df.select([key, meter])?;
        df.with_column(Column::new("t".into(), t))?;
        df.lazy()
    } else {
        lf.select([col(key), col(meter), col("t").cast(DataType::Int64)])
    }))
}

/// The readings of a series group's tables as one frame of (key, meter, t µs).
fn group_readings(
    lake: &Lake,
    group: &[&TableSpec],
    keys: &[String],
    since: Option<NaiveDate>,
    tz: Tz,
) -> Result<Option<LazyFrame>> {
    let mut frames = Vec::new();
    for spec in group {
        if let Some(lf) = readings(lake, spec, keys, since, tz)? {
            frames.push(lf);
        }
    }
    Ok(match frames.len() {
        0 => None,
        1 => frames.pop(),
        _ => Some(concat(frames, UnionArgs::default())?),
    })
}

/// Per key: a time in µs.
type ByKey = HashMap<String, i64>;

/// For the keys in `new` (earliest new reading per key): the latest reading before it in any
/// table of the group and of any meter of that key (a meter exchange, or a daily register of
/// another meter that the interval computation sets aside, ties the meters of a key together),
/// or the new reading itself for a key without an earlier one.
fn previous(lake: &Lake, group: &[&TableSpec], new: &ByKey, tz: Tz) -> Result<ByKey> {
    if new.is_empty() {
        return Ok(HashMap::new());
    }
    let (key, _) = series_columns(group[0]);
    // Keys whose latest reading before their new one lies in the scanned days: that reading
    // is the latest of all history too (every older one is older still).
    let query = |keys: &[String], since: Option<NaiveDate>| -> Result<ByKey> {
        let Some(lf) = group_readings(lake, group, keys, since, tz)? else {
            return Ok(HashMap::new());
        };
        let (k, t): (Vec<&str>, Vec<i64>) =
            keys.iter().map(|k| (k.as_str(), new[k.as_str()])).unzip();
        let frame = DataFrame::new_infer_height(vec![
            Column::new(key.into(), k),
            Column::new("t_new".into(), t),
        ])?;
        let df = lf
            .join(
                frame.lazy(),
                [col(key)],
                [col(key)],
                JoinArgs::new(JoinType::Inner),
            )
            .filter(col("t").lt(col("t_new")))
            .group_by([col(key)])
            .agg([col("t").max()])
            .collect()?;
        let (k, t) = (
            df.column(key)?.str()?,
            df.column("t")?.cast(&DataType::Int64)?,
        );
        let t = t.i64()?;
        Ok((0..df.height())
            .filter_map(|i| Some((k.get(i)?.to_string(), t.get(i)?)))
            .collect())
    };
    let earliest = new.values().min().copied().unwrap_or_default();
    let first_day = local_date(from_micros(earliest), tz);
    // The day before first (a nightly run: nearly every meter read then), then a week, then
    // the whole history, each for the keys still without an answer: the scans read few days.
    let mut found: ByKey = HashMap::new();
    for since in [
        Some(first_day - Duration::days(FIRST_LOOKBACK_DAYS)),
        Some(first_day - Duration::days(LOOKBACK_DAYS)),
        None,
    ] {
        let missing: Vec<String> = new
            .keys()
            .filter(|k| !found.contains_key(*k))
            .cloned()
            .collect();
        if missing.is_empty() {
            break;
        }
        found.extend(query(&missing, since)?);
    }
    Ok(new
        .iter()
        .map(|(k, t)| (k.clone(), found.get(k).copied().unwrap_or(*t)))
        .collect())
}

/// Per cable, the first day newly received files can change.
fn dirty(
    lake: &Lake,
    registry: &Registry,
    tz: Tz,
    new: &BTreeMap<&str, Vec<String>>,
) -> Result<BTreeMap<String, Window>> {
    let cable_of_ean: HashMap<&str, &str> = registry
        .connections
        .iter()
        .map(|c| (c.ean.as_str(), c.cable_id.as_str()))
        .collect();
    let ean_of_inst: HashMap<&str, &str> = registry
        .installations()
        .map(|(id, c)| (id, c.ean.as_str()))
        .collect();
    let mut out: BTreeMap<String, Window> = BTreeMap::new();
    let mut dirty_from = |ean: &str, t: i64| {
        // One day earlier than strictly needed: a reading at midnight ends the previous day's
        // last quarter-hour.
        let from = local_date(from_micros(t), tz) - Duration::days(1);
        let cable = cable_of_ean[ean].to_string();
        let w = out.entry(cable).or_insert(Window { from, to: None });
        w.from = w.from.min(from);
    };
    let started = std::time::Instant::now();
    let lap = |what: &str, group: &str| {
        tracing::debug!(
            group,
            "planning {what}: {:.2} s",
            started.elapsed().as_secs_f64()
        );
    };
    // Per EAN, the time whose reading before it starts the grid's recompute: its earliest
    // new grid reading, or just after an installation's reading before its new ones. One
    // search answers both: the reading before a time never moves back as the time grows, so
    // the reading before the earlier time is the earlier of the two answers.
    let mut grid_new: ByKey = HashMap::new();
    for group in SERIES_GROUPS {
        let installations = group[0].name == INSTALLATION_READINGS.name;
        // The earliest new reading per key over every table of the group.
        let mut earliest: ByKey = HashMap::new();
        for spec in group {
            let files = new.get(spec.name).map(Vec::as_slice).unwrap_or_default();
            if files.is_empty() {
                continue;
            }
            for ((k, _), t) in earliest_new(lake, spec, files, tz)? {
                let e = earliest.entry(k).or_insert(t);
                *e = (*e).min(t);
            }
        }
        earliest.retain(|k, _| {
            if installations {
                ean_of_inst.contains_key(k.as_str())
            } else {
                cable_of_ean.contains_key(k.as_str())
            }
        });
        lap("earliest new readings", group[0].name);
        if !installations {
            for (ean, t) in earliest {
                let e = grid_new.entry(ean).or_insert(t);
                *e = (*e).min(t);
            }
            continue;
        }
        let before = previous(lake, group, &earliest, tz)?;
        lap("readings before them", group[0].name);
        // Production and battery discharge shape the fed-back energy of the connection's
        // derived grid days: a grid hole that spans the installation's changed quarter-hours
        // is spread anew from its start, the last grid reading at or before them.
        for (inst, t) in &before {
            let ean = ean_of_inst[inst.as_str()];
            dirty_from(ean, *t);
            let e = grid_new.entry(ean.to_string()).or_insert(t + 1);
            *e = (*e).min(t + 1);
        }
    }
    for (ean, t) in previous(lake, SERIES_GROUPS[0], &grid_new, tz)? {
        dirty_from(&ean, t);
    }
    lap("grid readings before them", SERIES_GROUPS[0][0].name);
    Ok(out)
}

/// The series (key, meter) of `readings` still running at `start` (a reading after it), each
/// with its last reading at or before `start` as `before` (null when it has none there).
fn running_at(readings: LazyFrame, (key, meter): (&str, &str), start: i64) -> LazyFrame {
    readings
        .group_by([col(key), col(meter)])
        .agg([
            col("t")
                .filter(col("t").lt_eq(lit(start)))
                .max()
                .alias("before"),
            col("t").max().alias("last"),
        ])
        .filter(col("last").gt(lit(start)))
}

/// The start of the readings a recompute from `from` must read: the earliest, over the
/// series still running at `from`'s start, of their last reading at or before it (in any
/// table of the series' group). See [`anchors`], taken over every cable of `registry`.
pub fn anchor(lake: &Lake, registry: &Registry, tz: Tz, from: NaiveDate) -> Result<i64> {
    let start = micros(local_midnight_utc(from, tz));
    Ok(anchors(lake, registry, tz, from)?
        .into_values()
        .fold(start, i64::min))
}

/// Per cable of `registry`, all recomputed from `from`: where its readings start, the earliest
/// over the cable's series still running at `from`'s start of their last reading at or before
/// it (or that start, when none has one). One scan per series group and lookback, not one per
/// cable.
pub fn anchors(
    lake: &Lake,
    registry: &Registry,
    tz: Tz,
    from: NaiveDate,
) -> Result<BTreeMap<String, i64>> {
    let start = micros(local_midnight_utc(from, tz));
    let mut out: BTreeMap<String, i64> = registry
        .connections
        .iter()
        .map(|c| (c.cable_id.clone(), start))
        .collect();
    let cable_of_ean: HashMap<String, &str> = registry
        .connections
        .iter()
        .map(|c| (c.ean.as_str().to_string(), c.cable_id.as_str()))
        .collect();
    let cable_of_inst: HashMap<String, &str> = registry
        .installations()
        .map(|(id, c)| (id.to_string(), c.cable_id.as_str()))
        .collect();
    let mut through_history = 0;
    for group in SERIES_GROUPS {
        let owner = if group[0].name == INSTALLATION_READINGS.name {
            &cable_of_inst
        } else {
            &cable_of_ean
        };
        let (key, meter) = series_columns(group[0]);
        let mut missing: Vec<String> = owner.keys().cloned().collect();
        // The day before first (nearly every series has a reading then), then a week, then
        // the whole history, each time for the series still without one. Whether a series
        // runs past the start does not depend on how far back a scan looks, and a reading
        // found in fewer days is the latest of all history (every older one is older still).
        for since in [
            Some(from - Duration::days(FIRST_LOOKBACK_DAYS)),
            Some(from - Duration::days(LOOKBACK_DAYS)),
            None,
        ] {
            if missing.is_empty() {
                break;
            }
            if since.is_none() {
                through_history += missing.len();
            }
            let Some(lf) = group_readings(lake, group, &missing, since, tz)? else {
                break;
            };
            let df = running_at(lf, (key, meter), start)
                .select([col(key), col("before").cast(DataType::Int64)])
                .collect()?;
            let (k, before) = (df.column(key)?.str()?, df.column("before")?.i64()?);
            let mut unanchored: BTreeSet<String> = BTreeSet::new();
            for (k, before) in k.iter().zip(before.iter()) {
                let Some((k, cable)) = k.and_then(|k| Some((k, owner.get(k)?))) else {
                    continue;
                };
                match before {
                    Some(b) => {
                        let a = out.entry(cable.to_string()).or_insert(start);
                        *a = (*a).min(b);
                    }
                    None => {
                        unanchored.insert(k.to_string());
                    }
                }
            }
            missing = unanchored.into_iter().collect();
        }
    }
    tracing::debug!(keys = through_history, "anchored through the whole history");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// A window reaches the months of its first and last day and those between, in any year.
    #[test]
    fn a_window_touches_the_months_it_spans() {
        let nightly = Window {
            from: day("2026-10-31"),
            to: None,
        };
        let one = |w: &Window, y, m| w.touches_months(y, m, m);
        assert!(!one(&nightly, 2026, 9));
        assert!(one(&nightly, 2026, 10));
        assert!(one(&nightly, 2026, 11));
        assert!(one(&nightly, 2027, 1));
        assert!(!one(&nightly, 2025, 12));
        assert!(nightly.touches_months(2026, 1, 10));
        assert!(!nightly.touches_months(2026, 1, 9));
        let range = Window {
            from: day("2025-12-31"),
            to: Some(day("2026-02-01")),
        };
        assert!(!one(&range, 2025, 11));
        assert!(one(&range, 2025, 12));
        assert!(one(&range, 2026, 1));
        assert!(one(&range, 2026, 2));
        assert!(!one(&range, 2026, 3));
        assert!(!one(&range, 2027, 1));
        assert!(range.touches_months(2026, 2, 12));
        assert!(!range.touches_months(2026, 3, 12));
        assert!(range.touches_months(2025, 1, 12));
        assert!(!range.touches_months(2025, 1, 11));
    }
}
