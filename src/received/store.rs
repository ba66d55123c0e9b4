//! Storing received rows: a delivery that repeats what is already stored adds nothing, one
//! that changes anything is kept whole (every real delivery stays visible), and the same
//! rejection is never stored twice.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int64Type, TimestampMicrosecondType};
use chrono::NaiveDate;

use super::rows::{
    by_date, days_batch, gaps_batch, installation_readings_batch, readings_batch, rejected_batch,
    GridDay, GridReading, Received, Rejected,
};
use crate::error::Result;
use crate::lake::parquet_io::read_columns;
use crate::lake::schema::{
    GRID_DAYS, GRID_READINGS, INSTALLATION_GAPS, INSTALLATION_READINGS, REJECTED,
};
use crate::lake::{Lake, Txn};

/// Seeded per process (some names come from the network), and fast on integer keys.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// The winning (highest `delivery_seq`) values per key of what the lake holds, loaded lazily
/// per partition date, and updated as rows are staged.
#[derive(Default)]
pub struct ReceivedIndex {
    names: HashMap<String, u32>,
    readings: HashMap<ReadingKey, Winner<ReadingValues>>,
    reading_dates: HashSet<NaiveDate>,
    days: HashMap<(u32, u32, NaiveDate), Winner<[i64; 4]>>,
    day_dates: HashSet<NaiveDate>,
    rejected_ids: Option<HashSet<String>>,
}

/// (ean, meter_id, t) with names interned.
type ReadingKey = (u32, u32, i64);
/// (import_wh, export_wh, quality interned).
type ReadingValues = (i64, i64, u32);

#[derive(Clone, Copy)]
struct Winner<V> {
    seq: i64,
    values: V,
}

/// Keeps `w` for `key` unless a later delivery already wins there.
fn keep_latest<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, Winner<V>>, key: K, w: Winner<V>) {
    match map.get_mut(&key) {
        Some(old) if old.seq > w.seq => {}
        Some(old) => *old = w,
        None => {
            map.insert(key, w);
        }
    }
}

/// What staging a [`Received`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StoreCounts {
    pub readings: usize,
    pub readings_repeated: usize,
    pub days: usize,
    pub days_repeated: usize,
    pub installation_readings: usize,
    pub gaps: usize,
    pub rejected: usize,
    pub rejected_repeated: usize,
}

impl StoreCounts {
    pub fn add(&mut self, o: StoreCounts) {
        self.readings += o.readings;
        self.readings_repeated += o.readings_repeated;
        self.days += o.days;
        self.days_repeated += o.days_repeated;
        self.installation_readings += o.installation_readings;
        self.gaps += o.gaps;
        self.rejected += o.rejected;
        self.rejected_repeated += o.rejected_repeated;
    }

    pub fn rows_out(&self) -> usize {
        self.readings + self.days + self.installation_readings + self.gaps + self.rejected
    }
}

impl ReceivedIndex {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.names.get(s) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.insert(s.to_string(), i);
        i
    }

    fn load_reading_date(&mut self, lake: &Lake, date: NaiveDate) -> Result<()> {
        if !self.reading_dates.insert(date) {
            return Ok(());
        }
        let cols = [
            "ean",
            "meter_id",
            "t",
            "import_wh",
            "export_wh",
            "quality",
            "delivery_seq",
        ];
        for file in lake.files(&GRID_READINGS, Some(&date.to_string()))? {
            for b in read_columns(&file, &cols)? {
                let (ean, meter) = (
                    b.column(0).as_string::<i32>(),
                    b.column(1).as_string::<i32>(),
                );
                let t = b.column(2).as_primitive::<TimestampMicrosecondType>();
                let (imp, exp) = (
                    b.column(3).as_primitive::<Int64Type>(),
                    b.column(4).as_primitive::<Int64Type>(),
                );
                let quality = b.column(5).as_string::<i32>();
                let seq = b.column(6).as_primitive::<Int64Type>();
                for i in 0..b.num_rows() {
                    let key = (self.id(ean.value(i)), self.id(meter.value(i)), t.value(i));
                    let q = self.id(quality.value(i));
                    let w = Winner {
                        seq: seq.value(i),
                        values: (imp.value(i), exp.value(i), q),
                    };
                    keep_latest(&mut self.readings, key, w);
                }
            }
        }
        Ok(())
    }

    fn load_day_date(&mut self, lake: &Lake, date: NaiveDate) -> Result<()> {
        if !self.day_dates.insert(date) {
            return Ok(());
        }
        let cols = [
            "ean",
            "meter_id",
            "import_t1_wh",
            "import_t2_wh",
            "export_t1_wh",
            "export_t2_wh",
            "delivery_seq",
        ];
        for file in lake.files(&GRID_DAYS, Some(&date.to_string()))? {
            for b in read_columns(&file, &cols)? {
                let (ean, meter) = (
                    b.column(0).as_string::<i32>(),
                    b.column(1).as_string::<i32>(),
                );
                let v = |c: usize, i: usize| b.column(c).as_primitive::<Int64Type>().value(i);
                for i in 0..b.num_rows() {
                    let key = (self.id(ean.value(i)), self.id(meter.value(i)), date);
                    let w = Winner {
                        seq: v(6, i),
                        values: [v(2, i), v(3, i), v(4, i), v(5, i)],
                    };
                    keep_latest(&mut self.days, key, w);
                }
            }
        }
        Ok(())
    }

    fn load_rejected(&mut self, lake: &Lake) -> Result<&mut HashSet<String>> {
        if self.rejected_ids.is_none() {
            let mut ids = HashSet::new();
            for file in lake.files(&REJECTED, None)? {
                for b in read_columns(&file, &["record_id"])? {
                    let col = b.column(0).as_string::<i32>();
                    ids.extend((0..col.len()).map(|i| col.value(i).to_string()));
                }
            }
            self.rejected_ids = Some(ids);
        }
        Ok(self.rejected_ids.as_mut().expect("just loaded"))
    }

    /// Forgets rejections that the change being staged removes from the table.
    pub fn forget_rejected(&mut self, lake: &Lake, ids: &HashSet<String>) -> Result<()> {
        self.load_rejected(lake)?.retain(|i| !ids.contains(i));
        Ok(())
    }

    /// The interned id of `s`, remembering the last text asked in `memo`: an object's rows
    /// share their EAN, meter and (mostly) quality, often as the same allocation.
    fn id_memo(&mut self, memo: &mut Option<(Arc<str>, u32)>, s: &Arc<str>) -> u32 {
        if let Some((m, i)) = memo {
            if Arc::ptr_eq(m, s) || **m == **s {
                return *i;
            }
        }
        let i = self.id(s);
        *memo = Some((s.clone(), i));
        i
    }

    /// Each row's key and values, names interned.
    fn keyed(&mut self, object: &[GridReading]) -> Vec<(ReadingKey, Winner<ReadingValues>)> {
        let (mut ean, mut meter, mut quality) = (None, None, None);
        object
            .iter()
            .map(|r| {
                let key = (
                    self.id_memo(&mut ean, &r.ean),
                    self.id_memo(&mut meter, &r.meter_id),
                    r.t_us,
                );
                let q = self.id_memo(&mut quality, &r.quality);
                let w = Winner {
                    seq: r.delivery_seq,
                    values: (r.import_wh, r.export_wh, q),
                };
                (key, w)
            })
            .collect()
    }

    /// Stages the new rows of `received` into `txn`; repeats are left out.
    pub fn stage(&mut self, lake: &Lake, txn: &mut Txn, received: Received) -> Result<StoreCounts> {
        debug_assert!(!lake.run_id().is_empty(), "rows are stored by a run");
        let mut counts = StoreCounts::default();
        let mut readings: Vec<GridReading> = Vec::new();
        for object in received.reading_objects {
            if object.is_empty() {
                continue;
            }
            for date in object.iter().map(|r| r.date).collect::<HashSet<_>>() {
                self.load_reading_date(lake, date)?;
            }
            // Repeated when every row equals what currently wins for its key.
            let keyed = self.keyed(&object);
            let repeats = keyed.iter().all(|(key, w)| {
                self.readings
                    .get(key)
                    .is_some_and(|old| old.values == w.values)
            });
            if repeats {
                counts.readings_repeated += object.len();
                continue;
            }
            self.readings.reserve(keyed.len());
            for (key, w) in keyed {
                keep_latest(&mut self.readings, key, w);
            }
            counts.readings += object.len();
            readings.extend(object);
        }
        let mut days: Vec<GridDay> = Vec::new();
        for d in received.days {
            self.load_day_date(lake, d.date)?;
            let key = (self.id(&d.ean), self.id(&d.meter_id), d.date);
            let values = [
                d.import_t1_wh,
                d.import_t2_wh,
                d.export_t1_wh,
                d.export_t2_wh,
            ];
            if self.days.get(&key).is_some_and(|w| w.values == values) {
                counts.days_repeated += 1;
                continue;
            }
            let w = Winner {
                seq: d.delivery_seq,
                values,
            };
            keep_latest(&mut self.days, key, w);
            counts.days += 1;
            days.push(d);
        }
        let mut rejected: Vec<Rejected> = Vec::new();
        let ids = self.load_rejected(lake)?;
        for r in received.rejected {
            if ids.insert(r.record_id()) {
                counts.rejected += 1;
                rejected.push(r);
            } else {
                counts.rejected_repeated += 1;
            }
        }
        for (date, rows) in by_date(readings, |r| r.date) {
            lake.stage_batch(
                txn,
                &GRID_READINGS,
                Some(&date.to_string()),
                &readings_batch(&rows, lake.run_id()),
            )?;
        }
        for (date, rows) in by_date(days, |r| r.date) {
            lake.stage_batch(
                txn,
                &GRID_DAYS,
                Some(&date.to_string()),
                &days_batch(&rows, lake.run_id()),
            )?;
        }
        // Installation readings come after the source's cursor: never a repeat.
        counts.installation_readings = received.installation_readings.len();
        for (date, rows) in by_date(received.installation_readings, |r| r.date) {
            let batch = installation_readings_batch(&rows, lake.run_id());
            lake.stage_batch(txn, &INSTALLATION_READINGS, Some(&date.to_string()), &batch)?;
        }
        if !received.gaps.is_empty() {
            counts.gaps = received.gaps.len();
            lake.stage_batch(txn, &INSTALLATION_GAPS, None, &gaps_batch(&received.gaps))?;
        }
        for (date, rows) in by_date(rejected, |r| r.date) {
            lake.stage_batch(
                txn,
                &REJECTED,
                Some(&date.to_string()),
                &rejected_batch(&rows),
            )?;
        }
        Ok(counts)
    }
}
