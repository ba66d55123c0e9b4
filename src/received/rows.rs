//! Rows of the received tables, as the sources produce them, and their Arrow batches.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use chrono::NaiveDate;

use crate::lake::schema::{
    GRID_DAYS, GRID_READINGS, INSTALLATION_GAPS, INSTALLATION_READINGS, REJECTED,
};

/// One quarter-hour register reading from the grid operator (`grid_readings`). The texts are
/// shared: the 96 readings of an object carry one EAN, meter, quality and cursor, and an
/// allocation per text and reading was a fifth of the ingest's time.
#[derive(Debug, Clone, PartialEq)]
pub struct GridReading {
    pub ean: Arc<str>,
    pub meter_id: Arc<str>,
    /// End of the quarter-hour, µs since the epoch (UTC).
    pub t_us: i64,
    pub import_wh: i64,
    pub export_wh: i64,
    pub quality: Arc<str>,
    pub received_at_us: i64,
    pub delivery_seq: i64,
    pub cursor: Arc<str>,
    /// Partition: local day of the quarter-hour.
    pub date: NaiveDate,
}

/// Daily tariff registers (`grid_days`).
#[derive(Debug, Clone, PartialEq)]
pub struct GridDay {
    pub ean: String,
    pub meter_id: String,
    pub date: NaiveDate,
    pub import_t1_wh: i64,
    pub import_t2_wh: i64,
    pub export_t1_wh: i64,
    pub export_t2_wh: i64,
    pub received_at_us: i64,
    pub delivery_seq: i64,
    pub cursor: String,
}

/// One quarter-hour reading of an installation (`installation_readings`).
#[derive(Debug, Clone, PartialEq)]
pub struct InstallationReading {
    pub installation_id: String,
    pub ean: String,
    pub p_meter: String,
    pub seq: i64,
    pub t_us: i64,
    pub p_wh: i64,
    pub battery_charge_wh: i64,
    pub battery_discharge_wh: i64,
    pub soc_pct: Option<f64>,
    pub voltage_avg_v: Option<f64>,
    pub voltage_min_v: Option<f64>,
    pub voltage_max_v: Option<f64>,
    pub received_at_us: i64,
    /// Partition: local day of the quarter-hour.
    pub date: NaiveDate,
}

/// Readings an installation no longer had when asked (`installation_gaps`).
#[derive(Debug, Clone, PartialEq)]
pub struct InstallationGap {
    pub installation_id: String,
    pub ean: String,
    /// The cursor the pipeline asked with.
    pub after_seq: i64,
    /// The first reading the installation still had.
    pub resumed_seq: Option<i64>,
    pub resumed_t_us: Option<i64>,
    pub detected_at_us: i64,
}

/// A record that could not be used (`rejected`), kept with its reason and payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub source: String,
    pub received_at_us: i64,
    pub key: String,
    pub reason: String,
    pub detail: String,
    pub payload: String,
    pub delivery_seq: Option<i64>,
    pub cursor: Option<String>,
    /// Partition: local day of `received_at`.
    pub date: NaiveDate,
}

impl Rejected {
    /// Identity of a rejection: the same record rejected for the same reason is one record.
    pub fn record_id(&self) -> String {
        record_id(&self.source, &self.reason, &self.payload)
    }
}

pub fn record_id(source: &str, reason: &str, payload: &str) -> String {
    // FNV-1a 64: stable across Rust versions and platforms, unlike the std hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [source, "\u{1f}", reason, "\u{1f}", payload] {
        for b in part.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// Everything one page (or one history response) produced, before deduplication.
#[derive(Debug, Default)]
pub struct Received {
    /// Interval objects: each inner vector is one delivered object (kept or skipped whole).
    pub reading_objects: Vec<Vec<GridReading>>,
    pub days: Vec<GridDay>,
    pub installation_readings: Vec<InstallationReading>,
    pub gaps: Vec<InstallationGap>,
    pub rejected: Vec<Rejected>,
    /// Objects about erased participants, left out without a trace but this count.
    pub left_out_erased: usize,
}

impl Received {
    pub fn reading_count(&self) -> usize {
        self.reading_objects.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.reading_objects.is_empty()
            && self.days.is_empty()
            && self.installation_readings.is_empty()
            && self.gaps.is_empty()
            && self.rejected.is_empty()
    }
}

fn ts(values: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
}
fn strings<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}
fn ints(values: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(values))
}

/// Groups rows by partition date.
pub fn by_date<T, F: Fn(&T) -> NaiveDate>(rows: Vec<T>, date: F) -> BTreeMap<NaiveDate, Vec<T>> {
    let mut out: BTreeMap<NaiveDate, Vec<T>> = BTreeMap::new();
    for r in rows {
        out.entry(date(&r)).or_default().push(r);
    }
    out
}

/// `run_id`: the run storing the rows (`_runs`), in every row.
pub fn readings_batch(rows: &[GridReading], run_id: &str) -> RecordBatch {
    RecordBatch::try_new(
        GRID_READINGS.arrow_schema(),
        vec![
            strings(rows.iter().map(|r| &*r.ean)),
            strings(rows.iter().map(|r| &*r.meter_id)),
            ts(rows.iter().map(|r| r.t_us).collect()),
            ints(rows.iter().map(|r| r.import_wh)),
            ints(rows.iter().map(|r| r.export_wh)),
            strings(rows.iter().map(|r| &*r.quality)),
            ts(rows.iter().map(|r| r.received_at_us).collect()),
            ints(rows.iter().map(|r| r.delivery_seq)),
            strings(rows.iter().map(|r| &*r.cursor)),
            strings(rows.iter().map(|_| run_id)),
        ],
    )
    .expect("grid_readings batch matches its schema")
}

pub fn days_batch(rows: &[GridDay], run_id: &str) -> RecordBatch {
    RecordBatch::try_new(
        GRID_DAYS.arrow_schema(),
        vec![
            strings(rows.iter().map(|r| r.ean.as_str())),
            strings(rows.iter().map(|r| r.meter_id.as_str())),
            ints(rows.iter().map(|r| r.import_t1_wh)),
            ints(rows.iter().map(|r| r.import_t2_wh)),
            ints(rows.iter().map(|r| r.export_t1_wh)),
            ints(rows.iter().map(|r| r.export_t2_wh)),
            ts(rows.iter().map(|r| r.received_at_us).collect()),
            ints(rows.iter().map(|r| r.delivery_seq)),
            strings(rows.iter().map(|r| r.cursor.as_str())),
            strings(rows.iter().map(|_| run_id)),
        ],
    )
    .expect("grid_days batch matches its schema")
}

fn floats(values: impl Iterator<Item = Option<f64>>) -> ArrayRef {
    Arc::new(arrow::array::Float64Array::from_iter(values))
}

pub fn installation_readings_batch(rows: &[InstallationReading], run_id: &str) -> RecordBatch {
    RecordBatch::try_new(
        INSTALLATION_READINGS.arrow_schema(),
        vec![
            strings(rows.iter().map(|r| r.installation_id.as_str())),
            strings(rows.iter().map(|r| r.ean.as_str())),
            strings(rows.iter().map(|r| r.p_meter.as_str())),
            ints(rows.iter().map(|r| r.seq)),
            ts(rows.iter().map(|r| r.t_us).collect()),
            ints(rows.iter().map(|r| r.p_wh)),
            ints(rows.iter().map(|r| r.battery_charge_wh)),
            ints(rows.iter().map(|r| r.battery_discharge_wh)),
            floats(rows.iter().map(|r| r.soc_pct)),
            floats(rows.iter().map(|r| r.voltage_avg_v)),
            floats(rows.iter().map(|r| r.voltage_min_v)),
            floats(rows.iter().map(|r| r.voltage_max_v)),
            ts(rows.iter().map(|r| r.received_at_us).collect()),
            strings(rows.iter().map(|_| run_id)),
        ],
    )
    .expect("installation_readings batch matches its schema")
}

pub fn gaps_batch(rows: &[InstallationGap]) -> RecordBatch {
    let opt_ts = |v: Vec<Option<i64>>| -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC"))
    };
    RecordBatch::try_new(
        INSTALLATION_GAPS.arrow_schema(),
        vec![
            strings(rows.iter().map(|r| r.installation_id.as_str())),
            strings(rows.iter().map(|r| r.ean.as_str())),
            ints(rows.iter().map(|r| r.after_seq)),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.resumed_seq).collect::<Vec<_>>(),
            )),
            opt_ts(rows.iter().map(|r| r.resumed_t_us).collect()),
            ts(rows.iter().map(|r| r.detected_at_us).collect()),
        ],
    )
    .expect("installation_gaps batch matches its schema")
}

pub fn rejected_batch(rows: &[Rejected]) -> RecordBatch {
    let ids: Vec<String> = rows.iter().map(Rejected::record_id).collect();
    RecordBatch::try_new(
        REJECTED.arrow_schema(),
        vec![
            strings(rows.iter().map(|r| r.source.as_str())),
            ts(rows.iter().map(|r| r.received_at_us).collect()),
            strings(rows.iter().map(|r| r.key.as_str())),
            strings(rows.iter().map(|r| r.reason.as_str())),
            strings(rows.iter().map(|r| r.detail.as_str())),
            strings(rows.iter().map(|r| r.payload.as_str())),
            strings(ids.iter().map(String::as_str)),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.delivery_seq).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.cursor.as_deref()).collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("rejected batch matches its schema")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_id_is_stable_and_discriminating() {
        // FNV-1a 64 of the empty input is the offset basis; the separators make it differ.
        assert_ne!(
            record_id("grid", "bad_unit", "{}"),
            record_id("grid", "bad_unit", "{ }")
        );
        assert_ne!(
            record_id("grid", "bad_unit", "{}"),
            record_id("grid", "unknown_ean", "{}")
        );
        assert_eq!(record_id("a", "b", "c"), record_id("a", "b", "c"));
    }
}
