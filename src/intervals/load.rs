//! Loading the register readings that count: Polars reads the columns (filtered to one cable's
//! keys and, in a window, to recent partitions); the winning delivery per (key, meter, t) is
//! chosen here by sorting integer keys, not strings: every (key, meter) pair becomes a series
//! number, and rows sort by (series, t, delivery).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::NaiveDate;
use polars::prelude::*;

use super::series::Quality;
use crate::error::Result;
use crate::lake::{Lake, TableSpec};

/// The readings of one table in series order, one per (series, t).
#[derive(Debug, Default)]
pub struct Readings {
    /// Per row: its series (an index into `names`).
    pub series: Vec<u32>,
    pub t: Vec<i64>,
    /// Per register column asked for: the values.
    pub values: Vec<Vec<i64>>,
    pub quality: Vec<Quality>,
    /// Per series: (key, meter).
    pub names: Vec<(Arc<str>, Arc<str>)>,
}

/// An extra reading from elsewhere (a daily register at midnight): it counts only where the
/// table has no reading at that time.
pub struct Extra {
    pub key: String,
    pub meter: String,
    pub t: i64,
    pub values: Vec<i64>,
    pub quality: Quality,
}

/// Interns strings to small integers; rows of a sorted file repeat the previous value.
#[derive(Default)]
struct Interner {
    ids: HashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
    last: Option<(Arc<str>, u32)>,
}

impl Interner {
    fn id(&mut self, s: &str) -> u32 {
        if let Some((l, id)) = &self.last {
            if &**l == s {
                return *id;
            }
        }
        let id = match self.ids.get(s) {
            Some(&id) => id,
            None => {
                let a: Arc<str> = Arc::from(s);
                let id = self.names.len() as u32;
                self.names.push(a.clone());
                self.ids.insert(a, id);
                id
            }
        };
        self.last = Some((self.names[id as usize].clone(), id));
        id
    }
}

/// Reads `regs` of `spec` for the keys in `only` (from `since`: (µs, first partition)), adds
/// `extra`, and keeps per (key, meter, t) the highest `seq`.
#[allow(clippy::too_many_arguments)]
pub fn load(
    lake: &Lake,
    spec: &TableSpec,
    (key, meter): (&str, &str),
    regs: &[&str],
    seq: &str,
    quality: Option<&str>,
    only: &[String],
    since: Option<(i64, NaiveDate)>,
    extra: Vec<Extra>,
) -> Result<Readings> {
    let df = match lake.scan_from(spec, since.map(|(_, first_partition)| first_partition))? {
        None => DataFrame::empty(),
        Some(lf) => {
            let wanted = lit(Series::new("wanted".into(), only)).implode(false);
            let mut lf = lf.filter(col(key).is_in(wanted, false));
            if let Some((since_us, first_partition)) = since {
                // The partition filter lets the scan skip older files altogether.
                lf = lf
                    .filter(col("date").cast(DataType::Date).gt_eq(lit(first_partition)))
                    .filter(col("t").cast(DataType::Int64).gt_eq(lit(since_us)));
            }
            let mut cols = vec![
                col(key),
                col(meter),
                col("t").cast(DataType::Int64),
                col(seq).cast(DataType::Int64),
            ];
            cols.extend(regs.iter().map(|r| col(*r).cast(DataType::Int64)));
            if let Some(q) = quality {
                cols.push(col(q));
            }
            lf.select(cols).collect()?
        }
    };
    let n = df.height();
    let (mut keys, mut meters) = (Interner::default(), Interner::default());
    let mut pairs: HashMap<(u32, u32), u32> = HashMap::new();
    let mut names: Vec<(Arc<str>, Arc<str>)> = Vec::new();
    let mut series_of = |k: u32, m: u32, keys: &Interner, meters: &Interner| -> u32 {
        *pairs.entry((k, m)).or_insert_with(|| {
            names.push((
                keys.names[k as usize].clone(),
                meters.names[m as usize].clone(),
            ));
            (names.len() - 1) as u32
        })
    };
    let int = |name: &str| -> Result<Vec<i64>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        Ok(df
            .column(name)?
            .i64()?
            .iter()
            .map(|v| v.unwrap_or(0))
            .collect())
    };
    let mut series = Vec::with_capacity(n + extra.len());
    if n > 0 {
        let (kc, mc) = (df.column(key)?.str()?, df.column(meter)?.str()?);
        for (k, m) in kc.iter().zip(mc.iter()) {
            let (k, m) = (keys.id(k.unwrap_or("")), meters.id(m.unwrap_or("")));
            series.push(series_of(k, m, &keys, &meters));
        }
    }
    let mut t = int("t")?;
    let mut seqs = int(seq)?;
    let mut values: Vec<Vec<i64>> = regs.iter().map(|r| int(r)).collect::<Result<_>>()?;
    let mut qualities: Vec<Quality> = match quality {
        Some(q) if n > 0 => {
            let mut last: Option<(&str, Quality)> = None;
            df.column(q)?
                .str()?
                .iter()
                .map(|s| {
                    let s = s.unwrap_or("");
                    match last {
                        Some((l, q)) if l == s => q,
                        _ => {
                            let q = Quality::from_service(s);
                            last = Some((s, q));
                            q
                        }
                    }
                })
                .collect()
        }
        _ => vec![Quality::Measured; n],
    };
    for e in extra {
        let (k, m) = (keys.id(&e.key), meters.id(&e.meter));
        series.push(series_of(k, m, &keys, &meters));
        t.push(e.t);
        // Below every delivery: a reading at the same time wins.
        seqs.push(i64::MIN);
        for (v, x) in values.iter_mut().zip(e.values) {
            v.push(x);
        }
        qualities.push(e.quality);
    }
    let keep = winners(&series, names.len(), &t, &seqs);
    let pick = |v: &[i64]| -> Vec<i64> { keep.iter().map(|&i| v[i as usize]).collect() };
    Ok(Readings {
        series: keep.iter().map(|&i| series[i as usize]).collect(),
        t: pick(&t),
        values: values.iter().map(|v| pick(v)).collect(),
        quality: keep.iter().map(|&i| qualities[i as usize]).collect(),
        names,
    })
}

/// The rows that count, in order of (series, t): per (series, second) the one with the highest
/// `seq` (the later row on a tie).
///
/// The rows are grouped by series with a counting sort (stable: a series' rows stay in the
/// order read, which is time order for files of consecutive days), and a series' run is sorted
/// only when it is not in order already: a year of readings is mostly sorted, and one general
/// sort of all its rows cost a fifth of loading them.
fn winners(series: &[u32], n_series: usize, t: &[i64], seqs: &[i64]) -> Vec<u32> {
    let second = |i: usize| t[i].div_euclid(1_000_000).clamp(0, (1 << 34) - 1);
    let mut starts = vec![0usize; n_series + 1];
    for &s in series {
        starts[s as usize + 1] += 1;
    }
    for s in 1..starts.len() {
        starts[s] += starts[s - 1];
    }
    let mut order: Vec<(i64, i64, u32)> = vec![(0, 0, 0); series.len()];
    let mut next = starts.clone();
    for (i, &s) in series.iter().enumerate() {
        order[next[s as usize]] = (second(i), seqs[i], i as u32);
        next[s as usize] += 1;
    }
    let mut keep: Vec<u32> = Vec::with_capacity(order.len());
    for run in starts.windows(2) {
        let run = &mut order[run[0]..run[1]];
        if !run.is_sorted() {
            run.sort_unstable();
        }
        for (k, w) in run.iter().enumerate() {
            if run.get(k + 1).is_none_or(|next| next.0 != w.0) {
                keep.push(w.2);
            }
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::winners;

    /// Against the rule written out the slow way: per (series, second) the row with the
    /// highest seq, ties to the later row, in order of series then second.
    #[test]
    fn the_highest_delivery_of_each_series_and_second_wins() {
        // Two series read out of order, a duplicate second in each, a tie on seq, a time
        // within the same second, and an extra reading (seq i64::MIN) under a delivery; a
        // third read in time order whose duplicate second falls in seq (in order by time, not
        // by delivery); a fourth wholly in order (no sort needed).
        let series = [1, 0, 1, 0, 0, 1, 0, 1, 0, 2, 2, 2, 3, 3];
        let t = [
            2_000_000,
            900_000_000,
            1_000_000,
            0,
            900_000_000,
            2_000_000,
            5_000_000,
            2_500_000,
            900_400_000,
            10_000_000,
            10_000_000,
            11_000_000,
            20_000_000,
            21_000_000,
        ];
        let seqs = [7, 3, 1, 1, 5, 7, 2, i64::MIN, 4, 5, 2, 1, 1, 1];
        let got = winners(&series, 4, &t, &seqs);
        // By hand. Series 0: rows 3 (0 s), 6 (5 s), and at 900 s rows 1 (seq 3), 4 (seq 5),
        // 8 (seq 4, 900.4 s, the same second): row 4. Series 1: row 2 (1 s), and at 2 s rows
        // 0 and 5 (seq 7 both: the later, 5) and 7 (2.5 s, seq MIN): row 5. Series 2: at 10 s
        // row 9 (seq 5 over 2), then 11. Series 3: rows 12 and 13.
        assert_eq!(got, vec![3, 6, 4, 2, 5, 9, 11, 12, 13]);
        // And the slow way: every row compared with every other (all times here are
        // non-negative and small, where a second is t / 10^6).
        let mut slow: Vec<u32> = (0..series.len())
            .filter(|&i| {
                (0..series.len()).all(|j| {
                    j == i
                        || series[j] != series[i]
                        || t[j] / 1_000_000 != t[i] / 1_000_000
                        || (seqs[j], j) < (seqs[i], i)
                })
            })
            .map(|i| i as u32)
            .collect();
        slow.sort_by_key(|&i| (series[i as usize], t[i as usize] / 1_000_000));
        assert_eq!(got, slow);
    }
}
