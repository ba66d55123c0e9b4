//! Grid-operator ingestion: the bulk feed (`vaten ingest grid`), the history endpoint
//! (`vaten backfill`) and the replay of rejected records a registry change has cured.
//!
//! Each page is one lake change holding its rows *and* the advanced cursor, so the cursor can
//! never run ahead of what is stored, and a killed run resumes exactly where it stopped.

use std::collections::{BTreeMap, HashSet};

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{Int64Type, TimestampMicrosecondType};
use chrono::{DateTime, NaiveDate};
use chrono_tz::Tz;
use serde_json::Value;

use super::api::{ObjectKind, RawBulkPage};
use super::client::{BulkPage, FetchError, GridClient};
use super::validate::{kind_of_source, Validator};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::lake::parquet_io::read_columns;
use crate::lake::schema::REJECTED;
use crate::lake::Lake;
use crate::received::erased::Erased;
use crate::received::{Received, ReceivedIndex, StoreCounts};
use crate::registry::Registry;

pub use crate::received::state::{GridState, GRID_STATE as STATE_NAME};
/// The longest cursor accepted (the service's are tens of bytes).
const MAX_CURSOR_BYTES: usize = 4096;
/// Empty pages in a row that say there is more, before the feed counts as not advancing.
const MAX_EMPTY_PAGES: usize = 100;
/// Rejection reasons a registry change can cure.
pub const REPLAYABLE: &[&str] = &["unknown_ean"];

/// Counts of one ingest, for the log, the summary and `_runs`.
#[derive(Debug, Default, Clone)]
pub struct IngestReport {
    pub pages: usize,
    pub objects: usize,
    pub readings_in: usize,
    pub stored: StoreCounts,
    pub unknown_at_service: Vec<String>,
    /// The ingest reached its deadline before the feed was drained.
    pub stopped_early: Option<String>,
    /// Objects about erased participants, left out.
    pub left_out_erased: usize,
    /// Bulk pages read the slower way, as JSON values (see `api`).
    pub pages_as_values: usize,
}

impl IngestReport {
    pub fn message(&self) -> String {
        let s = &self.stored;
        let mut m = format!(
            "{} pages, {} objects, {} readings received; stored {} readings, {} day registers, {} rejected; {} readings repeated what was stored",
            self.pages, self.objects, self.readings_in, s.readings, s.days, s.rejected, s.readings_repeated
        );
        if self.pages_as_values > 0 {
            m += &format!(
                "; {} page(s) read the slower way, as JSON values (-v says why)",
                self.pages_as_values
            );
        }
        if self.left_out_erased > 0 {
            m += &format!(
                "; {} object(s) about erased participants left out",
                self.left_out_erased
            );
        }
        if !self.unknown_at_service.is_empty() {
            m += &format!(
                "; unknown at the grid operator: {}",
                self.unknown_at_service.join(", ")
            );
        }
        if let Some(why) = &self.stopped_early {
            m = format!("stopped early: {why}; {m}");
        }
        m
    }
}

pub struct GridIngest<'a> {
    pub lake: &'a Lake,
    pub registry: &'a Registry,
    pub client: &'a GridClient,
    pub clock: Clock,
    pub tz: Tz,
    pub rt: &'a tokio::runtime::Runtime,
    /// One bulk ingest stops after the page in hand once this much time has passed.
    pub deadline: std::time::Duration,
    /// `implausible_days_before_member` of the configuration.
    pub days_before_member: u32,
    /// Erased participants, whose objects are left out.
    pub erased: &'a Erased,
}

/// Dropped, it stops a page being fetched ahead.
type Stop = tokio::sync::oneshot::Sender<()>;

fn fetch_failed(e: FetchError) -> Error {
    Error::Grid(e.to_string())
}

/// A page of the bulk feed after validation: its objects are rows or rejections now, and its
/// JSON is freed.
struct CheckedPage {
    next_cursor: String,
    has_more: bool,
    objects: usize,
    /// The `delivery_seq` of its first object, and the one after its last.
    seq_from: i64,
    seq_to: i64,
    received: Received,
    /// Read as JSON values (the typed parse failed, or something in it was refused).
    as_values: bool,
}

impl GridIngest<'_> {
    /// Validates `page`, asked with `cursor`, numbering its objects from `seq_from`.
    fn check_page(
        &self,
        page: BulkPage,
        cursor: Option<&str>,
        seq_from: i64,
    ) -> std::result::Result<CheckedPage, FetchError> {
        let v = self.validator(cursor.unwrap_or(""));
        let mut seq = seq_from;
        let values = |page: RawBulkPage, seq: &mut i64| {
            let objects = page.intervals.len() + page.days.len() + page.rejections.len();
            let received = v.values(
                seq,
                [
                    (&page.intervals, ObjectKind::Interval),
                    (&page.days, ObjectKind::Day),
                    (&page.rejections, ObjectKind::Rejection),
                ],
            );
            (page.next_cursor, page.has_more, objects, received, true)
        };
        let (next_cursor, has_more, objects, received, as_values) = match page {
            BulkPage::Typed { page, body } => match v.typed_page(&page, &mut seq) {
                Some(received) => {
                    let objects = page.intervals.len() + page.days.len() + page.rejections.len();
                    (page.next_cursor, page.has_more, objects, received, false)
                }
                None => {
                    // Something is refused: the page is read as values, to keep each refused
                    // object as it came (the typed page freed first).
                    drop(page);
                    tracing::debug!("bulk page read as JSON values: something in it is refused");
                    let raw = serde_json::from_slice::<RawBulkPage>(&body).map_err(|e| {
                        let at = cursor.unwrap_or("(start of the feed)").to_string();
                        FetchError::Unreadable(at, e.to_string())
                    })?;
                    values(raw, &mut seq)
                }
            },
            BulkPage::Values(page) => values(page, &mut seq),
        };
        Ok(CheckedPage {
            next_cursor,
            has_more,
            objects,
            seq_from,
            seq_to: seq,
            received,
            as_values,
        })
    }

    fn state(&self) -> Result<GridState> {
        Ok(self.lake.read_state(STATE_NAME)?.unwrap_or_default())
    }

    fn validator(&self, cursor: &str) -> Validator<'_> {
        let now = self.clock.now();
        Validator {
            registry: self.registry,
            now,
            tz: self.tz,
            received_at: now,
            cursor: cursor.to_string(),
            days_before_member: i64::from(self.days_before_member),
            erased: Some(self.erased),
        }
    }

    /// Pulls the bulk feed until it is drained, its deadline passes, or the server's cursor
    /// stops advancing (exit 1, after storing what was valid: a server repeating a page or
    /// cycling through cursors would otherwise keep the ingest busy for ever). A page larger
    /// than the body limit is asked again with half the `limit`, down to one object.
    pub fn ingest_bulk(&self) -> Result<IngestReport> {
        let started = std::time::Instant::now();
        // Retries, too, end at the deadline: one request cannot carry the ingest past it.
        if let Ok(mut until) = self.client.retries_until.lock() {
            *until = started.checked_add(self.deadline);
        }
        let mut state = self.state()?;
        let mut index = ReceivedIndex::default();
        let mut report = IngestReport::default();
        let mut seen: HashSet<String> = state.cursor.iter().cloned().collect();
        let mut limit = self.client.page_limit;
        // Pages in a row that brought nothing while saying there is more.
        let mut empty_in_a_row = 0;
        // Pages taken at a reduced limit: after a few the limit may grow again.
        let mut small_pages = 0;
        std::thread::scope(|scope| -> Result<()> {
            // A page fetched (and validated) ahead: the cursor and limit it was asked with, its
            // fetch, and what stops that fetch when dropped (every way out of the loop drops it,
            // so no exit waits for a request it will not use).
            type Fetching<'s> = std::thread::ScopedJoinHandle<
                's,
                Option<std::result::Result<CheckedPage, FetchError>>,
            >;
            let mut ahead: Option<(Option<String>, u32, Fetching<'_>, Stop)> = None;
            loop {
                let asked = state.cursor.clone();
                let fetched_ahead = match ahead.take() {
                    Some((cursor, at, fetching, stop)) if cursor == asked && at == limit => {
                        // A panic there is a defect, as it would be here: it goes on.
                        let page = fetching
                            .join()
                            .unwrap_or_else(|p| std::panic::resume_unwind(p));
                        drop(stop);
                        page
                    }
                    _ => None,
                };
                // Its objects were numbered on from this page's: used only if they still are.
                let seq_from = state.next_delivery_seq;
                let fetched = match fetched_ahead {
                    Some(Ok(page)) if page.seq_from != seq_from => None,
                    other => other,
                };
                let fetched = match fetched {
                    Some(page) => page,
                    None => self
                        .rt
                        .block_on(self.client.bulk_page(asked.as_deref(), limit))
                        .and_then(|page| self.check_page(page, asked.as_deref(), seq_from)),
                };
                let page = match fetched {
                    Ok(page) => page,
                    Err(FetchError::TooLarge(..)) if limit > 1 => {
                        limit = (limit / 2).max(1);
                        tracing::warn!(limit, "a bulk page was larger than [grid] max_body_bytes; asking again with a smaller limit");
                        continue;
                    }
                    Err(FetchError::TooLarge(_, bytes)) => {
                        return Err(Error::Grid(format!(
                            "the one object after cursor {} is larger than [grid] max_body_bytes ({bytes} bytes); raise the limit to take it",
                            asked.as_deref().unwrap_or("(start of the feed)")
                        )))
                    }
                    Err(e) => return Err(fetch_failed(e)),
                };
                // The smaller limit stays while the feed's objects are that large; after 8 pages it
                // is tried twice as large again (a single huge object does not slow a backlog).
                if limit < self.client.page_limit {
                    small_pages += 1;
                    if small_pages >= 8 {
                        limit = (limit * 2).min(self.client.page_limit);
                        small_pages = 0;
                    }
                }
                let objects = page.objects;
                // An opaque cursor is short; one of megabytes would ride along in every row.
                if page.next_cursor.len() > MAX_CURSOR_BYTES {
                    return Err(Error::Grid(format!(
                        "page {} carries a cursor of {} bytes (at most {MAX_CURSOR_BYTES}); stopping before storing it",
                        report.pages + 1,
                        page.next_cursor.len()
                    )));
                }
                // A cursor this run has already seen is not stored: the next run starts from the
                // last one that advanced.
                let repeated = page.has_more && seen.contains(&page.next_cursor);
                let next_cursor = if repeated {
                    asked.clone()
                } else {
                    Some(page.next_cursor.clone())
                };
                // The next page is fetched, parsed and validated on another thread while this one
                // is stored. Its cursor is stored only with its own rows, after these: if this
                // page fails, the page fetched ahead is stopped and dropped unstored.
                if page.has_more && !repeated && started.elapsed() < self.deadline {
                    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                    let fetch = next_cursor.clone();
                    let seq_next = page.seq_to;
                    let fetching = scope.spawn(move || {
                        let page = self.rt.block_on(async {
                            tokio::select! {
                                page = self.client.bulk_page(fetch.as_deref(), limit) => Some(page),
                                _ = stopped => None,
                            }
                        })?;
                        Some(page.and_then(|p| self.check_page(p, fetch.as_deref(), seq_next)))
                    });
                    ahead = Some((next_cursor.clone(), limit, fetching, stop));
                }
                let received = page.received;
                let seq = page.seq_to;
                report.pages += 1;
                report.pages_as_values += usize::from(page.as_values);
                report.objects += objects;
                report.readings_in += received.reading_count();
                report.left_out_erased += received.left_out_erased;
                let mut next = GridState {
                    cursor: next_cursor,
                    next_delivery_seq: seq,
                    last_success_at: state.last_success_at,
                };
                if !page.has_more {
                    next.last_success_at = Some(self.clock.now());
                }
                let mut txn = self.lake.begin()?;
                let counts = index.stage(self.lake, &mut txn, received)?;
                self.lake.stage_state(&mut txn, STATE_NAME, &next)?;
                txn.commit()?;
                tracing::info!(
                    page = report.pages,
                    objects,
                    readings = counts.readings,
                    rejected = counts.rejected,
                    repeated = counts.readings_repeated,
                    "grid page stored"
                );
                report.stored.add(counts);
                state = next;
                if !page.has_more {
                    break;
                }
                empty_in_a_row = if objects == 0 { empty_in_a_row + 1 } else { 0 };
                if empty_in_a_row > MAX_EMPTY_PAGES {
                    return Err(Error::Grid(format!(
                        "the bulk feed does not advance: {MAX_EMPTY_PAGES} pages in a row brought nothing yet said there was more; stopping"
                    )));
                }
                if repeated || !seen.insert(page.next_cursor.clone()) {
                    let how = if asked.as_deref() == Some(page.next_cursor.as_str()) {
                        "gave the same cursor again"
                    } else {
                        "went back to a cursor of this run"
                    };
                    return Err(Error::Grid(format!(
                        "the bulk feed does not advance: page {} {how} ({}) and says it has more; stored what was valid, stopping",
                        report.pages, page.next_cursor
                    )));
                }
                if started.elapsed() >= self.deadline {
                    let why = format!(
                        "the ingest's deadline ([grid] deadline_s = {} s) passed after {} pages; the next run goes on from the stored cursor",
                        self.deadline.as_secs_f64(),
                        report.pages
                    );
                    tracing::warn!("{why}");
                    report.stopped_early = Some(why);
                    break;
                }
            }
            Ok(())
        })?;
        Ok(report)
    }

    /// Fetches local days `from..=to` of every connection in the registry through the history
    /// endpoint. An EAN the service does not know is recorded and the others go on.
    pub fn backfill(&self, from: NaiveDate, to: NaiveDate) -> Result<IngestReport> {
        if from > to {
            return Err(Error::Usage(format!("--from {from} is after --to {to}")));
        }
        let mut index = ReceivedIndex::default();
        let mut report = IngestReport::default();
        for conn in &self.registry.connections {
            let ean = conn.ean.as_str();
            // An erased participant is not asked for, even while the registry lists them.
            if self.erased.contains(ean) {
                continue;
            }
            // Only the days the holder's consent covers are asked for.
            let (from, to) = (
                conn.consent_from.map_or(from, |f| from.max(f)),
                conn.consent_until.map_or(to, |u| to.min(u)),
            );
            if from > to {
                continue;
            }
            let (from_s, to_s) = (from.to_string(), to.to_string());
            let mut state = self.state()?;
            let mut seq = state.next_delivery_seq;
            let v = self.validator("history");
            let mut received = Received::default();
            for kind in ["interval", "day"] {
                let resp = match self
                    .rt
                    .block_on(self.client.history(ean, kind, &from_s, &to_s))
                {
                    Ok(r) => r,
                    Err(FetchError::NotFound(_)) => {
                        tracing::warn!(ean, "the grid operator does not know this EAN (404)");
                        report.unknown_at_service.push(ean.to_string());
                        break;
                    }
                    Err(e) => return Err(fetch_failed(e)),
                };
                let r = v.values(
                    &mut seq,
                    [
                        (&resp.intervals, ObjectKind::Interval),
                        (&resp.days, ObjectKind::Day),
                        (&resp.rejections, ObjectKind::Rejection),
                    ],
                );
                report.objects += resp.intervals.len() + resp.days.len() + resp.rejections.len();
                received.reading_objects.extend(r.reading_objects);
                received.days.extend(r.days);
                received.rejected.extend(r.rejected);
                report.left_out_erased += r.left_out_erased;
            }
            report.pages += 1;
            report.readings_in += received.reading_count();
            if received.is_empty() {
                continue;
            }
            let mut txn = self.lake.begin()?;
            let counts = index.stage(self.lake, &mut txn, received)?;
            state.next_delivery_seq = seq;
            self.lake.stage_state(&mut txn, STATE_NAME, &state)?;
            txn.commit()?;
            report.stored.add(counts);
        }
        Ok(report)
    }
}

/// Re-examines rejected grid records whose reason a registry change can cure, stores what now
/// fits (with its original `received_at` and `delivery_seq`, so later deliveries still win)
/// and removes the replayed records from `rejected`, in one change.
pub fn replay_rejected(
    lake: &Lake,
    registry: &Registry,
    clock: Clock,
    tz: Tz,
    days_before_member: i64,
) -> Result<IngestReport> {
    let mut report = IngestReport::default();
    let mut received = Received::default();
    // Rows of erased participants went with them; a row that names one elsewhere (in its
    // payload) is left out again rather than stored with it.
    let erased = Erased::load(lake)?;
    // Files that lose replayed rows: (path, every batch's remaining rows).
    let mut rewrites: BTreeMap<String, (std::path::PathBuf, Vec<RecordBatch>)> = BTreeMap::new();
    let mut replayed_ids = HashSet::new();
    let all: Vec<&str> = REJECTED.columns.iter().map(|c| c.name).collect();
    for file in lake.files(&REJECTED, None)? {
        let mut remaining = Vec::new();
        let mut touched = false;
        for batch in read_columns(&file, &all)? {
            let col = |name: &str| batch.column(REJECTED.column_index(name));
            let (source, key, reason) = (
                col("source").as_string::<i32>(),
                col("key").as_string::<i32>(),
                col("reason").as_string::<i32>(),
            );
            let payload = col("payload").as_string::<i32>();
            let received_at = col("received_at").as_primitive::<TimestampMicrosecondType>();
            let seq = col("delivery_seq").as_primitive::<Int64Type>();
            let cursor = col("cursor").as_string::<i32>();
            let ids = col("record_id").as_string::<i32>();
            let mut keep = Vec::with_capacity(batch.num_rows());
            for i in 0..batch.num_rows() {
                let kind = kind_of_source(source.value(i));
                let cured = REPLAYABLE.contains(&reason.value(i))
                    && registry.connection(key.value(i)).is_some();
                let (Some(kind), true) = (kind, cured) else {
                    keep.push(true);
                    continue;
                };
                let Ok(raw) = serde_json::from_str::<Value>(payload.value(i)) else {
                    keep.push(true);
                    continue;
                };
                let at = DateTime::from_timestamp_micros(received_at.value(i))
                    .unwrap_or_else(|| clock.now());
                let v = Validator {
                    registry,
                    now: clock.now(),
                    tz,
                    received_at: at,
                    cursor: if cursor.is_null(i) {
                        String::new()
                    } else {
                        cursor.value(i).to_string()
                    },
                    days_before_member,
                    erased: Some(&erased),
                };
                let s = if seq.is_null(i) { 0 } else { seq.value(i) };
                let mut seq_var = s;
                let r = v.values(
                    &mut seq_var,
                    [(std::slice::from_ref(&raw), kind), (&[], kind), (&[], kind)],
                );
                report.objects += 1;
                report.readings_in += r.reading_count();
                received.reading_objects.extend(r.reading_objects);
                received.days.extend(r.days);
                received.rejected.extend(r.rejected);
                replayed_ids.insert(ids.value(i).to_string());
                keep.push(false);
            }
            touched |= keep.iter().any(|k| !k);
            remaining.push(filter_record_batch(&batch, &BooleanArray::from(keep))?);
        }
        if touched {
            rewrites.insert(lake.rel(&file), (file.clone(), remaining));
        }
    }
    if replayed_ids.is_empty() {
        return Ok(report);
    }
    let mut txn = lake.begin()?;
    for (rel, (file, batches)) in &rewrites {
        txn.remove(rel.clone());
        let kept = arrow::compute::concat_batches(&REJECTED.arrow_schema(), batches)?;
        if kept.num_rows() > 0 {
            let date = file
                .parent()
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("date="))
                .map(str::to_string);
            lake.stage_batch(&mut txn, &REJECTED, date.as_deref(), &kept)?;
        }
    }
    let mut index = ReceivedIndex::default();
    // The replayed records are leaving `rejected`; a new rejection of the same record for
    // another reason must still be stored.
    index.forget_rejected(lake, &replayed_ids)?;
    report.stored = index.stage(lake, &mut txn, received)?;
    txn.commit()?;
    report.pages = 1;
    Ok(report)
}
