//! `vaten erase --participant ID` (or `--ean EAN`): a participant's right to erasure.
//!
//! In one journaled change: every row that names one of their EANs or installation ids is
//! removed from every table that has rows per connection, received and derived, including the
//! `rejected` payloads that mention them; `_runs` messages keep their record with each mention
//! replaced by `[erased]`; only their yearly tax
//! figures of the last `keep_tax_years` years stay (`tax_base_yearly`, which the tax
//! administration may ask for; a recompute carries them over). Their identifiers are added to `_state/erased.json` as salted
//! hashes, so a feed that still carries them stores nothing of it. The transform's bookkeeping
//! learns which input files went away, so the removal does not look like new data and starts no
//! recompute. The cable tables are sums over a cable's connections and are left as they are;
//! so are published yearly reports (aggregates over 5 or more connections). Their statements
//! are deleted after the change is committed (running the erasure again finishes that).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch, StringArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Int64Type};

use crate::error::{Error, Result};
use crate::intervals::plan::{TransformState, TRANSFORM_STATE};
use crate::lake::parquet_io::{read_all, write_sorted};
use crate::lake::schema::{
    ALL_TABLES, CABLE_BALANCE_15M, CABLE_BALANCE_DAILY, RUNS, TAX_BASE_YEARLY,
};
use crate::lake::Lake;
use crate::received::erased::{Erased, ERASED_STATE};
use crate::registry::Registry;

/// Whom to erase.
#[derive(Debug, Clone)]
pub struct Subject {
    /// Their EANs and installation ids.
    pub ids: BTreeSet<String>,
    /// Their participant id, when known (for their statements).
    pub participant: Option<String>,
}

impl Subject {
    /// A participant of the registry, with every connection and installation of theirs.
    pub fn participant(registry: &Registry, participant: &str) -> Result<Self> {
        let ids = registry.participant_ids(participant);
        if ids.is_empty() {
            return Err(Error::Usage(format!(
                "participant `{participant}` is not in the registry (erase by --ean instead)"
            )));
        }
        Ok(Subject {
            ids,
            participant: Some(participant.to_string()),
        })
    }

    /// One EAN (and its installation, when the registry still lists it).
    pub fn ean(registry: &Registry, ean: &str) -> Result<Self> {
        let ean = crate::domain::Ean::parse(ean).map_err(|e| Error::Usage(e.to_string()))?;
        let mut ids = BTreeSet::from([ean.as_str().to_string()]);
        let conn = registry.connection(ean.as_str());
        if let Some(i) = conn.and_then(|c| c.installation.as_ref()) {
            ids.insert(i.id.clone());
        }
        // Their statements, when no other connection of theirs remains.
        let participant = conn.map(|c| c.participant_id.clone()).filter(|p| {
            registry
                .connections
                .iter()
                .filter(|c| &c.participant_id == p)
                .count()
                == 1
        });
        Ok(Subject { ids, participant })
    }
}

/// What an erasure did, in counts only (this goes to `_runs`).
#[derive(Debug, Default)]
pub struct Erasure {
    pub rows_removed: usize,
    pub files_rewritten: usize,
    pub files_removed: usize,
    pub tax_rows_kept: usize,
    /// `_runs` records whose messages named them, now with `[erased]` instead.
    pub runs_redacted: usize,
    pub statements_removed: usize,
}

impl Erasure {
    pub fn message(&self) -> String {
        format!(
            "erasure of one participant: {} rows removed ({} files rewritten, {} removed), {} yearly tax rows kept by law, {} run messages redacted, {} statements deleted",
            self.rows_removed,
            self.files_rewritten,
            self.files_removed,
            self.tax_rows_kept,
            self.runs_redacted,
            self.statements_removed
        )
    }
}

/// Rows of `batch` that name one of `ids`: an id column equal to one, or a text column
/// (payload, message, detail) containing one.
fn naming(batch: &RecordBatch, ids: &BTreeSet<String>) -> BooleanArray {
    let mut hit = vec![false; batch.num_rows()];
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if field.data_type() != &DataType::Utf8 {
            continue;
        }
        let exact = matches!(field.name().as_str(), "ean" | "installation_id" | "key");
        let text = matches!(field.name().as_str(), "payload" | "message" | "detail");
        if !exact && !text {
            continue;
        }
        let values = column.as_string::<i32>();
        for (i, h) in hit.iter_mut().enumerate() {
            if *h || values.is_null(i) {
                continue;
            }
            let v = values.value(i);
            *h = if exact {
                ids.contains(v)
            } else {
                ids.iter().any(|id| mentions(v, id))
            };
        }
    }
    BooleanArray::from(hit)
}

/// Whether `text` holds `id` as a whole token (`inst-a` is not in `inst-ab`, nor an EAN in a
/// longer number).
fn mentions(text: &str, id: &str) -> bool {
    find_token(text, id).is_some()
}

/// Where `id` first occurs in `text` as a whole token.
fn find_token(text: &str, id: &str) -> Option<usize> {
    let part = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    text.match_indices(id).map(|(at, _)| at).find(|&at| {
        let before = text[..at].chars().next_back();
        let after = text[at + id.len()..].chars().next();
        !before.is_some_and(part) && !after.is_some_and(part)
    })
}

/// `text` with every whole-token mention of one of `ids` replaced by `[erased]`.
fn redact(text: &str, ids: &BTreeSet<String>) -> String {
    let mut out = text.to_string();
    for id in ids {
        while let Some(at) = find_token(&out, id) {
            out.replace_range(at..at + id.len(), "[erased]");
        }
    }
    out
}

/// A `_runs` batch with the mentions of `ids` in its messages redacted: the record of a run
/// stays (it is about the pipeline, and may name others too), the person goes.
fn redact_messages(batch: &RecordBatch, ids: &BTreeSet<String>) -> Result<RecordBatch> {
    let i = batch
        .schema()
        .index_of("message")
        .map_err(|e| Error::Internal(format!("_runs without a message column: {e}")))?;
    let messages = batch.column(i).as_string::<i32>();
    let redacted: StringArray = messages.iter().map(|m| m.map(|m| redact(m, ids))).collect();
    let mut columns = batch.columns().to_vec();
    columns[i] = Arc::new(redacted);
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

/// Erases `subject` from the lake (opened for writing) in one change, then deletes their
/// statements under `reports`. Tax rows of years from `keep_tax_from` on stay.
pub fn erase(
    lake: &Lake,
    subject: &Subject,
    reports: &Path,
    keep_tax_from: i64,
) -> Result<Erasure> {
    let mut done = Erasure::default();
    let mut txn = lake.begin()?;
    let mut removed_files = BTreeSet::new();
    for spec in ALL_TABLES {
        // Sums over a cable's connections: no one's own rows.
        if spec.name == CABLE_BALANCE_15M.name || spec.name == CABLE_BALANCE_DAILY.name {
            continue;
        }
        for file in lake.files(spec, None)? {
            let Some(batch) = read_all(&file)? else {
                continue;
            };
            let theirs = naming(&batch, &subject.ids);
            if spec.name == RUNS.name {
                let n = theirs.true_count();
                if n > 0 {
                    let staged = txn.staging_path("parquet");
                    write_sorted(&staged, spec, &redact_messages(&batch, &subject.ids)?)?;
                    txn.publish(&staged, lake.rel(&file));
                    done.files_rewritten += 1;
                    done.runs_redacted += n;
                }
                continue;
            }
            let mut remove: Vec<bool> = (0..batch.num_rows()).map(|i| theirs.value(i)).collect();
            if spec.name == TAX_BASE_YEARLY.name {
                let years = batch
                    .column_by_name("year")
                    .and_then(|c| c.as_primitive_opt::<Int64Type>())
                    .ok_or_else(|| {
                        Error::lake(&file, "tax_base_yearly without an int64 `year` column")
                    })?;
                for (i, r) in remove.iter_mut().enumerate() {
                    if *r && years.value(i) >= keep_tax_from {
                        *r = false;
                        done.tax_rows_kept += 1;
                    }
                }
            }
            let n = remove.iter().filter(|r| **r).count();
            if n == 0 {
                continue;
            }
            done.rows_removed += n;
            let rel = lake.rel(&file);
            let keep = BooleanArray::from(remove.iter().map(|r| !r).collect::<Vec<_>>());
            let rest = filter_record_batch(&batch, &keep)?;
            if rest.num_rows() == 0 {
                txn.remove(rel.clone());
                removed_files.insert(rel);
                done.files_removed += 1;
            } else {
                // The same name: for the transform's bookkeeping the file is still the one it
                // reflects (minus rows whose derived rows go too).
                let staged = txn.staging_path("parquet");
                write_sorted(&staged, spec, &rest)?;
                txn.publish(&staged, rel);
                done.files_rewritten += 1;
            }
        }
    }
    // Removed input files are not a reason to recompute (see `intervals::plan`).
    if let Some(mut state) = lake.read_state::<TransformState>(TRANSFORM_STATE)? {
        state.forget(&removed_files);
        lake.stage_state(&mut txn, TRANSFORM_STATE, &state)?;
    }
    // The installation pass's bookkeeping names installations.
    let installations: Option<crate::received::state::InstallationsState> =
        lake.read_state(crate::received::state::INSTALLATIONS_STATE)?;
    if let Some(mut states) = installations {
        let before = states.len();
        states.retain(|id, _| !subject.ids.contains(id));
        if states.len() != before {
            lake.stage_state(
                &mut txn,
                crate::received::state::INSTALLATIONS_STATE,
                &states,
            )?;
        }
    }
    let mut erased = Erased::load(lake)?;
    for id in &subject.ids {
        erased.add(id);
    }
    lake.stage_state(&mut txn, ERASED_STATE, &erased)?;
    txn.commit()?;
    if let Some(p) = &subject.participant {
        done.statements_removed = remove_statements(reports, p)?;
    }
    Ok(done)
}

/// Deletes `reports/private/statements/<year>/<participant>.html` of every year.
fn remove_statements(reports: &Path, participant: &str) -> Result<usize> {
    let mut n = 0;
    for (_, file) in crate::reports::statements::files_of(reports, participant) {
        match std::fs::remove_file(&file) {
            Ok(()) => n += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::{mentions, redact};
    use std::collections::BTreeSet;

    #[test]
    fn a_run_message_keeps_the_others() {
        let ids = BTreeSet::from(["871685900000000011".to_string(), "inst-a".to_string()]);
        assert_eq!(
            redact(
                "unknown: 871685900000000011, 871685900000000028; inst-a and inst-ab offline",
                &ids
            ),
            "unknown: [erased], 871685900000000028; [erased] and inst-ab offline"
        );
    }

    #[test]
    fn an_id_is_found_as_a_whole_token_only() {
        assert!(mentions(
            "unknown: 871685900000000011, x",
            "871685900000000011"
        ));
        assert!(mentions("{\"installation_id\":\"inst-a\"}", "inst-a"));
        assert!(!mentions("inst-ab offline", "inst-a"));
        assert!(!mentions("run 10 of 12", "1"));
        assert!(!mentions("8716859000000000112", "871685900000000011"));
    }
}
