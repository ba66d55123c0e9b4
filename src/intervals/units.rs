//! What the transform computes at a time, and which of them together.
//!
//! A *unit* is a cable, or, when a cable's readings over the days recomputed are more than one
//! unit may hold, a group of its connections (in EAN order, each connection whole with its
//! installation): memory is bounded by the group, not by the largest cable. A group writes
//! its connections' `intervals` rows as files of its own in the cable's day partitions (a
//! partition may hold several files of one cable); the cable's marts are finished once all its
//! groups are done, from their daily rows and their parts of the cable balance.
//!
//! Units go in *batches* whose received rows are held in memory together (see `spill`), and
//! the units of a batch are computed side by side, two at a time.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use chrono_tz::Tz;

use super::plan::{Window, LOOKBACK_DAYS};
use super::spill::{BatchKeys, RECEIVED_READS};
use crate::domain::time::{from_micros, local_date};
use crate::error::Result;
use crate::lake::schema::INSTALLATION_READINGS;
use crate::registry::{Connection, Registry};

/// The connections whose received rows a full recompute holds in memory at once: a year of
/// 100 connections is a few hundred MB. A connection with an installation counts twice (the
/// installation's readings are about as many again).
const PREFETCH_CONNECTIONS: usize = 100;

/// The most connections (counted as [`PREFETCH_CONNECTIONS`] counts them) one unit computes
/// over a year: half a batch, so a batch keeps both workers busy. A cable of 25 connections,
/// two thirds with an installation (42), is computed whole; one of 333 in 12 groups.
const GROUP_SERIES: usize = PREFETCH_CONNECTIONS / 2;

/// The most days a batch is sized for (a full recompute counts as this many).
const YEAR_DAYS: usize = 366;

/// A cable, or a group of its connections.
#[derive(Debug)]
pub struct Unit {
    pub cable: String,
    pub window: Option<Window>,
    /// What its held rows go by (`Lake::focus`): `<i>:<cable>`, or `<i>:<cable>#<n>` for a
    /// group, `i` its place in the transform's order (a cable id may hold `#`: the place keeps
    /// names apart).
    pub name: String,
    /// The connections it computes (all on `cable`).
    pub registry: Registry,
    /// Its place among the cable's units: (index, how many). `(0, 1)` for a whole cable.
    pub part: (usize, usize),
}

impl Unit {
    /// Whether it is its cable's last unit: the cable's marts can then be finished.
    pub fn last(&self) -> bool {
        self.part.0 + 1 == self.part.1
    }

    /// Its connections, one with an installation counting twice.
    pub fn series(&self) -> usize {
        self.registry.connections.iter().map(series).sum()
    }
}

fn series(c: &Connection) -> usize {
    1 + usize::from(c.installation.is_some())
}

/// The most series × days one unit holds: [`GROUP_SERIES`] connections' years, or
/// `VATEN_GROUP_SERIES_DAYS` (a number from 1; tests, to split small cables and short windows).
fn group_budget() -> usize {
    std::env::var("VATEN_GROUP_SERIES_DAYS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(GROUP_SERIES * YEAR_DAYS)
}

/// The days a window reads (its days and the lookback before them), at most a year.
fn days(w: &Option<Window>, today: NaiveDate) -> usize {
    w.map_or(YEAR_DAYS, |w| {
        let to = w.to.unwrap_or(today).max(w.from);
        let n = (to - w.from).num_days() + 1 + LOOKBACK_DAYS + 2;
        usize::try_from(n).unwrap_or(YEAR_DAYS).min(YEAR_DAYS)
    })
}

/// The units of one cable: the cable whole when its series × days fit one unit's `budget`,
/// else groups of its connections in EAN order, each within it (a connection is never split,
/// so a group holds at least one).
fn units_of(
    cable: &str,
    window: Option<Window>,
    registry: &Registry,
    days: usize,
    budget: usize,
) -> Vec<Unit> {
    let mut conns: Vec<&Connection> = registry
        .connections
        .iter()
        .filter(|c| c.cable_id == cable)
        .collect();
    conns.sort_by(|a, b| a.ean.as_str().cmp(b.ean.as_str()));
    let total: usize = conns.iter().map(|c| series(c)).sum();
    let unit = |name: String, conns: Vec<Connection>, part| Unit {
        cable: cable.to_string(),
        window,
        name,
        registry: Registry::new(conns, registry.cables.clone()),
        part,
    };
    if total * days <= budget {
        let all = conns.into_iter().cloned().collect();
        return vec![unit(cable.to_string(), all, (0, 1))];
    }
    let per_group = (budget / days.max(1)).max(1);
    let mut groups: Vec<Vec<Connection>> = Vec::new();
    let (mut current, mut held) = (Vec::new(), 0);
    for c in conns {
        let n = series(c);
        if !current.is_empty() && held + n > per_group {
            groups.push(std::mem::take(&mut current));
            held = 0;
        }
        held += n;
        current.push(c.clone());
    }
    groups.push(current);
    let of = groups.len();
    groups
        .into_iter()
        .enumerate()
        .map(|(i, g)| unit(format!("{cable}#{i}"), g, (i, of)))
        .collect()
}

/// The cables' units in batches of at most [`PREFETCH_CONNECTIONS`] connections' years of
/// readings, in order (a cable's units one after the other): a full recompute holds up to 100
/// connections at once, a nightly run (a few days) every cable.
pub fn batches(
    windows: BTreeMap<String, Option<Window>>,
    registry: &Registry,
    today: NaiveDate,
) -> Vec<Vec<Unit>> {
    let budget = group_budget();
    let mut out: Vec<Vec<Unit>> = Vec::new();
    let (mut batch, mut held) = (Vec::new(), 0);
    let mut i = 0;
    for (cable, window) in windows {
        let days = days(&window, today);
        for mut unit in units_of(&cable, window, registry, days, budget) {
            unit.name = format!("{i}:{}", unit.name);
            i += 1;
            let n = unit.series() * days;
            if !batch.is_empty() && held + n > PREFETCH_CONNECTIONS * YEAR_DAYS {
                out.push(std::mem::take(&mut batch));
                held = 0;
            }
            held += n;
            batch.push(unit);
        }
    }
    if !batch.is_empty() {
        out.push(batch);
    }
    out
}

/// The windowed units of a batch whose received rows are held together, and from which day:
/// the earliest day any of their reads asks for (a day before its cable's anchor's, two before
/// its window, see `compute` and `voltages`). Units are taken from the most recent first while
/// the rows held (series × days up to `today`) stay within [`PREFETCH_CONNECTIONS`]
/// connection-years: a cable with late data from long ago, or an anchor far back, does not make
/// the batch hold every cable's history.
pub fn held_within_budget<'a>(
    batch: &'a [Unit],
    since: &BTreeMap<String, (i64, Window)>,
    today: NaiveDate,
    tz: Tz,
) -> (BTreeSet<&'a str>, NaiveDate) {
    let mut from: Vec<(NaiveDate, &Unit)> = batch
        .iter()
        .filter_map(|u| {
            let (a, w) = since.get(&u.cable)?;
            let day = (local_date(from_micros(*a), tz) - chrono::Duration::days(1))
                .min(w.from - chrono::Duration::days(2));
            Some((day, u))
        })
        .collect();
    from.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.name.cmp(&a.1.name)));
    let mut held = BTreeSet::new();
    let (mut connections, mut earliest) = (0, today);
    for (day, unit) in from {
        let days = usize::try_from((today - day).num_days().max(0) + 1).unwrap_or(usize::MAX);
        let n = connections + unit.series();
        if n.saturating_mul(days) > PREFETCH_CONNECTIONS * YEAR_DAYS {
            break;
        }
        held.insert(unit.name.as_str());
        connections = n;
        earliest = earliest.min(day);
    }
    (held, earliest)
}

/// Per received table (see [`RECEIVED_READS`]): the keys of each unit's connections, under
/// the unit's name (EANs; installation ids for the installations' readings).
pub fn batch_keys(units: &[&Unit]) -> BatchKeys {
    RECEIVED_READS
        .iter()
        .map(|(spec, _, _)| {
            units
                .iter()
                .map(|u| {
                    let keys = u
                        .registry
                        .connections
                        .iter()
                        .filter_map(|c| {
                            if spec.name == INSTALLATION_READINGS.name {
                                c.installation.as_ref().map(|i| i.id.clone())
                            } else {
                                Some(c.ean.as_str().to_string())
                            }
                        })
                        .collect();
                    (u.name.clone(), keys)
                })
                .collect()
        })
        .collect()
}

/// How many units of a batch are computed at once. Each holds its unit's frames, so memory
/// grows with it; two keep both cores of a small server busy (with the change's writer
/// threads encoding files meanwhile) within the memory a full recompute is allowed.
/// `VATEN_CABLE_WORKERS` (a number from 1) overrides it, so a benchmark or a test can compare
/// with one at a time.
pub fn workers() -> usize {
    std::env::var("VATEN_CABLE_WORKERS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(2)))
}

/// Runs `work` for every item of `batch`, `workers` at a time, and gives each outcome in the
/// batch's order up to the first error, so problems and the first error come out as one at a
/// time would give them. After an error or a panic no further item is started; a panic is
/// raised again here, with its own message, unless an error came before it in the batch's
/// order.
pub fn side_by_side<I: Sync, T: Send>(
    batch: &[I],
    workers: usize,
    work: impl Fn(&I) -> Result<T> + Sync,
) -> Vec<Result<T>> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    type Outcome<T> = std::thread::Result<Result<T>>;
    let outcomes: Vec<std::sync::Mutex<Option<Outcome<T>>>> =
        batch.iter().map(|_| std::sync::Mutex::new(None)).collect();
    let (next, failed) = (AtomicUsize::new(0), AtomicBool::new(false));
    std::thread::scope(|s| {
        for _ in 0..workers.clamp(1, batch.len().max(1)) {
            s.spawn(|| {
                // Items are taken in order, so every item before one taken has been taken.
                while !failed.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = batch.get(i) else {
                        break;
                    };
                    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(item)));
                    failed.fetch_or(!matches!(out, Ok(Ok(_))), Ordering::Relaxed);
                    *outcomes[i]
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(out);
                }
            });
        }
    });
    let mut out = Vec::new();
    for outcome in outcomes.into_iter().map_while(|o| {
        o.into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }) {
        match outcome {
            Ok(done) => {
                let stop = done.is_err();
                out.push(done);
                if stop {
                    break;
                }
            }
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::micros;
    use crate::registry::test_registry;

    fn cables(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("K{i}")).collect()
    }

    #[test]
    fn cables_side_by_side_come_out_in_the_batch_order_up_to_the_first_error() {
        let batch = cables(9);
        let names: Vec<String> = side_by_side(&batch, 2, |c| Ok(c.to_string()))
            .into_iter()
            .map(|d| d.unwrap())
            .collect();
        assert_eq!(names, batch, "every cable once, in order");
        // K4 fails: K0..K3 done, then K4's error, nothing after it (K5 may have run).
        let done = side_by_side(&batch, 2, |c| {
            if c == "K4" {
                Err(crate::error::Error::Internal("K4 failed".into()))
            } else {
                Ok(())
            }
        });
        assert_eq!(done.len(), 5);
        assert!(done[..4].iter().all(|d| d.is_ok()));
        assert!(done[4]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("K4 failed"));
        // An error before a panic in the batch's order is what one cable at a time meets.
        let done = side_by_side(&batch, 2, |c| match c.as_str() {
            "K1" => Err(crate::error::Error::Internal("K1 failed".into())),
            "K2" => panic!("K2 broke"),
            _ => Ok(()),
        });
        assert_eq!(done.len(), 2);
        assert!(done[1].is_err());
    }

    #[test]
    fn a_panic_while_computing_a_cable_is_raised_again_with_its_own_message() {
        let batch = cables(4);
        let caught = std::panic::catch_unwind(|| {
            side_by_side(&batch, 2, |c| {
                if c == "K2" {
                    panic!("cable K2 broke");
                }
                Ok(())
            })
        });
        let payload = caught.expect_err("the panic reaches the caller");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"cable K2 broke"));
    }

    fn full(cables: &[&str]) -> BTreeMap<String, Option<Window>> {
        cables.iter().map(|c| (c.to_string(), None)).collect()
    }

    #[test]
    fn a_large_cable_is_computed_in_groups_of_its_connections_within_the_budget() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        // K1: 25 connections, 8 with an installation: 33 series, whole. K2: 333 connections
        // (numbers 26..=358), 111 with one: 444 series, in groups of at most 50.
        let reg = test_registry(&[25, 333]);
        let all = batches(full(&["K1", "K2"]), &reg, today);
        let units: Vec<&Unit> = all.iter().flatten().collect();
        assert_eq!(units[0].name, "0:K1");
        assert_eq!((units[0].part, units[0].series()), ((0, 1), 33));
        let k2: Vec<&&Unit> = units.iter().filter(|u| u.cable == "K2").collect();
        // 444 series in groups of at most 50, none split: 9 (8 × 50 = 400 < 444; in EAN order
        // the series run 1, 2, 1, 1, 2, …, so the groups hold 49, 50 × 7 and 45).
        assert_eq!(k2.len(), 9);
        for (i, u) in k2.iter().enumerate() {
            assert_eq!(u.name, format!("{}:K2#{i}", i + 1));
            assert_eq!(u.part, (i, 9));
            assert!(u.series() <= 50, "{} holds {}", u.name, u.series());
            assert_eq!(u.last(), i == 8);
        }
        // Every connection of K2 once, in EAN order across the groups.
        let eans: Vec<&str> = k2
            .iter()
            .flat_map(|u| u.registry.connections.iter().map(|c| c.ean.as_str()))
            .collect();
        let mut sorted = eans.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!((eans.len(), &eans), (333, &sorted));
        assert_eq!(k2.iter().map(|u| u.series()).sum::<usize>(), 444);
        // Batches hold at most 100 series a year: K1 (33) and K2#0 (49), then two groups each.
        let sizes: Vec<usize> = all
            .iter()
            .map(|b| b.iter().map(Unit::series).sum())
            .collect();
        assert_eq!(sizes, [82, 100, 100, 100, 95]);
        // The same cable over a week is computed whole: 444 × 16 days fits 50 × 366.
        let week = Window {
            from: today - chrono::Duration::days(6),
            to: None,
        };
        let windows = [("K2".to_string(), Some(week))].into_iter().collect();
        let b = batches(windows, &reg, today);
        assert_eq!((b.len(), b[0].len(), b[0][0].part), (1, 1, (0, 1)));
        assert_eq!(b[0][0].name, "0:K2");
    }

    #[test]
    fn a_cable_reading_far_back_is_held_only_within_the_budget() {
        let tz: Tz = "Europe/Amsterdam".parse().unwrap();
        let today = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        let window = |days_back: i64| {
            let from = today - chrono::Duration::days(days_back);
            let start = micros(crate::domain::time::local_midnight_utc(from, tz));
            (start, Window { from, to: None })
        };
        let since: BTreeMap<String, (i64, Window)> = [
            ("K1".to_string(), window(1)),
            ("K2".to_string(), window(1)),
            ("K3".to_string(), window(400)),
        ]
        .into_iter()
        .collect();
        let units = |sizes: &[usize]| -> Vec<Unit> {
            let reg = test_registry(sizes);
            since
                .iter()
                .flat_map(|(c, (_, w))| units_of(c, Some(*w), &reg, 1, 1000 * YEAR_DAYS))
                .collect()
        };
        // 30 connections each, 10 with an installation: 40 series. 40 + 40 from 3 days back,
        // then K3 from 402 days back: 120 × 403 series-days pass the budget of 100 × 366, so
        // K3 reads its own files.
        let batch = units(&[30, 30, 30]);
        let (held, from) = held_within_budget(&batch, &since, today, tz);
        assert_eq!(held.into_iter().collect::<Vec<_>>(), ["K1", "K2"]);
        assert_eq!(from, today - chrono::Duration::days(3));
        // A small K3 (5 connections, 1 with an installation): 86 × 403 = 34,658 fits, and the
        // batch holds from K3's day on.
        let batch = units(&[30, 30, 5]);
        let (held, from) = held_within_budget(&batch, &since, today, tz);
        assert_eq!(held.len(), 3);
        assert_eq!(from, today - chrono::Duration::days(402));
    }
}
