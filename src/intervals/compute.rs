//! The `intervals` table: one row per connection per quarter-hour, from the received tables.
//!
//! Polars loads the received readings and keeps, per key, the delivery that counts (highest
//! `delivery_seq`); the register arithmetic (differences per meter, exact spreading) runs over
//! the sorted columns in Rust, where integer exactness is easy to see and test.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use chrono_tz::Tz;

use super::days::day_registers;
use super::derive::weight;
use super::load::{load, Extra, Readings};
use super::plan::Window;
use super::series::{
    differences, Quality, QuarterEnergy, RegisterReading, StepProblem, QUARTER_US,
};
use crate::domain::sun::daylight_weight;
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

    /// Makes room for the quarter-hours `first..=last` at once (exactly: growing a slot at a
    /// time doubled the vector, and held old and new while it moved).
    pub fn cover(&mut self, first: i64, last: i64) {
        if last < first {
            return;
        }
        if self.slots.is_empty() {
            self.first = first;
            let n = usize::try_from((last - first) / QUARTER_US).unwrap_or(0) + 1;
            self.slots = vec![None; n];
            return;
        }
        if first < self.first {
            let extra = ((self.first - first) / QUARTER_US) as usize;
            self.slots.reserve_exact(extra);
            self.slots.splice(0..0, std::iter::repeat_n(None, extra));
            self.first = first;
        }
        let i = usize::try_from((last - self.first) / QUARTER_US).unwrap_or(0);
        if i >= self.slots.len() {
            self.slots.reserve_exact(i + 1 - self.slots.len());
            self.slots.resize(i + 1, None);
        }
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

/// Runs [`differences`] over each series (key, meter) of `r` for register column `col` and
/// files the quarter-hours under the connection `owner(key)`.
fn energies_of(
    r: &Readings,
    col: usize,
    owner: &dyn Fn(&str) -> Option<(String, i64)>,
    profile: &dyn Fn(&str, i64, i64) -> Vec<u64>,
    register: &'static str,
    problems: &mut Vec<Problem>,
) -> Energies {
    let mut out: Energies = HashMap::new();
    let mut start = 0;
    let n = r.series.len();
    while start < n {
        let mut end = start + 1;
        while end < n && r.series[end] == r.series[start] {
            end += 1;
        }
        let key = &r.names[r.series[start] as usize].0;
        if let Some((ean, max_wh)) = owner(key) {
            let readings: Vec<RegisterReading> = (start..end)
                .map(|i| RegisterReading {
                    t_us: r.t[i],
                    value_wh: r.values[col][i],
                    quality: r.quality[i],
                })
                .collect();
            let (energies, steps) =
                differences(&readings, max_wh, &|first, n| profile(&ean, first, n));
            problems.extend(steps.into_iter().map(|step| Problem {
                key: key.to_string(),
                register,
                step,
            }));
            let map = out.entry(ean).or_default();
            let starts = energies.iter().map(|e| e.start_us);
            if let (Some(first), Some(last)) = (starts.clone().min(), starts.max()) {
                map.cover(first, last);
            }
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
    let by_inst: HashMap<&str, &Connection> = registry.installations().collect();
    let eans: Vec<String> = registry
        .connections
        .iter()
        .map(|c| c.ean.as_str().to_string())
        .collect();
    let installation_ids: Vec<String> = by_inst.keys().map(|k| k.to_string()).collect();
    let grid_owner = |ean: &str| by_ean.get(ean).map(|c| (ean.to_string(), c.capacity_w / 4));
    // A production register cannot step more than the panels and inverter can deliver in a
    // quarter-hour; a battery register not more than grid and panels together can charge it.
    let production_owner = |id: &str| {
        by_inst
            .get(id)
            .map(|c| (c.ean.as_str().to_string(), c.production_capacity_w / 4))
    };
    let battery_owner = |id: &str| {
        by_inst.get(id).map(|c| {
            (
                c.ean.as_str().to_string(),
                (c.capacity_w + c.production_capacity_w) / 4,
            )
        })
    };

    // Grid readings that count, plus the daily tariff registers as readings at local midnight
    // (quality `derived`) where no reading stands at that time: they split long holes per day
    // and fill days whose quarter-hours expired.
    let epoch = crate::domain::time::EPOCH_DAY;
    let mut anchors = Vec::new();
    for ((ean, day), (meter, imp, exp)) in day_registers(lake, since.map(|s| s.1))? {
        if !by_ean.contains_key(ean.as_str()) {
            continue;
        }
        let date = epoch + chrono::Duration::days(i64::from(day));
        let t = micros(crate::domain::time::local_midnight_utc(date, tz));
        if since.is_some_and(|(a, _)| t < a) {
            continue;
        }
        anchors.push(Extra {
            key: ean,
            meter,
            t,
            values: vec![imp, exp],
            quality: Quality::Derived,
        });
    }
    let installations = load(
        lake,
        &INSTALLATION_READINGS,
        ("installation_id", "p_meter"),
        &["p_wh", "battery_charge_wh", "battery_discharge_wh"],
        "seq",
        None,
        &installation_ids,
        since,
        Vec::new(),
    )?;
    let production = energies_of(
        &installations,
        0,
        &production_owner,
        &|_, _, n| vec![1; n as usize],
        "production",
        &mut problems,
    );
    let charge = energies_of(
        &installations,
        1,
        &battery_owner,
        &|_, _, n| vec![1; n as usize],
        "battery_charge",
        &mut problems,
    );
    let discharge = energies_of(
        &installations,
        2,
        &battery_owner,
        &|_, _, n| vec![1; n as usize],
        "battery_discharge",
        &mut problems,
    );
    drop(installations);
    let mut battery: HashMap<String, BTreeMap<i64, i64>> = HashMap::new();
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
    lap("installations");
    let grid = load(
        lake,
        &GRID_READINGS,
        ("ean", "meter_id"),
        &["import_wh", "export_wh"],
        "delivery_seq",
        Some("quality"),
        &eans,
        since,
        anchors,
    )?;
    lap("grid loaded");
    // Derived days: delivered energy takes the household profile; fed-back energy the shape of
    // what the connection could feed back: its installation's measured production plus battery
    // discharge when every quarter-hour of the hole has a measured production (one unit for the
    // whole hole), else the daylight at the cooperative's latitude.
    let starts = |first: i64, n: i64| (0..n).map(move |k| first + k * QUARTER_US);
    let consumption =
        |_: &str, first: i64, n: i64| starts(first, n).map(|s| weight(s, tz)).collect();
    let feed_back = |ean: &str, first: i64, n: i64| -> Vec<u64> {
        let at =
            |m: &HashMap<String, QuarterMap>, s: i64| m.get(ean).and_then(|q| q.get(&s)).copied();
        let measured: Option<Vec<u64>> = starts(first, n)
            .map(|s| {
                let p = at(&production, s)
                    .filter(|e| e.quality == Quality::Measured)?
                    .wh?;
                let d = at(&discharge, s).and_then(|e| e.wh).unwrap_or(0);
                Some((p + d).max(0) as u64)
            })
            .collect();
        match measured {
            Some(w) if w.iter().any(|x| *x > 0) => w,
            _ => starts(first, n).map(daylight_weight).collect(),
        }
    };
    let imports = energies_of(&grid, 0, &grid_owner, &consumption, "import", &mut problems);
    let exports = energies_of(&grid, 1, &grid_owner, &feed_back, "export", &mut problems);
    drop(grid);
    lap("grid energies");
    // In EAN order: each day's rows come out sorted as the table is, and the writer's sort
    // finds nothing to do.
    let mut order: Vec<usize> = (0..registry.connections.len()).collect();
    order.sort_by(|a, b| {
        registry.connections[*a]
            .ean
            .as_str()
            .cmp(registry.connections[*b].ean.as_str())
    });
    // Per connection its days, then the rows in a vector of exactly their number: pushed one
    // by one, the vector of a year of 50 connections doubled past 2 million rows and held old
    // and new while it moved (up to three times what it needed, the largest part of a
    // transform's peak memory).
    let mut days = Vec::new();
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
                days.push((index, date, src));
            }
            date = date.succ_opt().expect("date in range");
        }
    }
    let quarters = |date: NaiveDate| {
        let (start, end) = local_day_bounds(date, tz);
        usize::try_from((micros(end) - micros(start)) / QUARTER_US).unwrap_or(0)
    };
    let mut rows = Vec::with_capacity(days.iter().map(|(_, d, _)| quarters(*d)).sum());
    for (index, date, src) in &days {
        day_rows(&registry.connections[*index], *date, tz, src, &mut rows);
    }
    lap("rows");
    Ok((rows, problems))
}

type Quarters<'a> = Option<&'a QuarterMap>;

/// One connection's energies by quarter-hour start: import, export, production, battery net.
#[derive(Clone, Copy)]
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

#[cfg(test)]
mod tests {
    use super::*;

    fn e(k: i64, wh: i64) -> QuarterEnergy {
        QuarterEnergy {
            start_us: k * QUARTER_US,
            wh: Some(wh),
            quality: Quality::Measured,
        }
    }

    #[test]
    fn a_covered_quarter_map_holds_the_same_as_one_grown_a_slot_at_a_time() {
        let mut grown = QuarterMap::default();
        let mut covered = QuarterMap::default();
        covered.cover(10 * QUARTER_US, 19 * QUARTER_US);
        // Exactly the ten quarter-hours 10..=19, none held yet.
        assert_eq!(covered.slots.capacity(), 10);
        assert_eq!(covered.bounds(), None);
        for k in [12, 10, 19, 15] {
            grown.insert(k * QUARTER_US, e(k, k * 7));
            covered.insert(k * QUARTER_US, e(k, k * 7));
        }
        // Reaching back before the first and past the last: both ends move.
        covered.cover(8 * QUARTER_US, 21 * QUARTER_US);
        for k in [8, 21] {
            grown.insert(k * QUARTER_US, e(k, 1));
            covered.insert(k * QUARTER_US, e(k, 1));
        }
        let all = |m: &QuarterMap| -> Vec<(i64, Option<i64>)> {
            m.iter().map(|(s, e)| (s / QUARTER_US, e.wh)).collect()
        };
        assert_eq!(all(&covered), all(&grown));
        assert_eq!(
            all(&covered),
            [
                (8, Some(1)),
                (10, Some(70)),
                (12, Some(84)),
                (15, Some(105)),
                (19, Some(133)),
                (21, Some(1))
            ]
        );
        assert_eq!(covered.bounds(), Some((8 * QUARTER_US, 21 * QUARTER_US)));
        assert_eq!(covered.get(&(11 * QUARTER_US)), None);
        // An empty range changes nothing.
        covered.cover(30 * QUARTER_US, 29 * QUARTER_US);
        assert_eq!(covered.slots.len(), 14);
    }
}
