//! `vaten export --participant ID --out DIR`: everything the lake holds about one participant
//! (the right of access): their rows of every table that has rows per connection, as CSV and
//! Parquet, the `rejected` records and `_runs` messages that name their EANs or installations,
//! their statements, and their lines of the registry. The folder is private (0700, files 0600):
//! it is personal data.

use std::path::Path;

use polars::prelude::*;

use crate::error::{Error, Result};
use crate::lake::schema::{ALL_TABLES, CABLE_BALANCE_15M, CABLE_BALANCE_DAILY};
use crate::lake::Lake;
use crate::registry::Registry;

/// What an export wrote: (table, rows).
#[derive(Debug, Default)]
pub struct Exported {
    pub tables: Vec<(String, usize)>,
    pub statements: usize,
}

fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

fn private_file(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    Ok(std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?)
}

pub fn export(
    lake: &Lake,
    registry: &Registry,
    registry_dir: &Path,
    reports: &Path,
    participant: &str,
    out: &Path,
) -> Result<Exported> {
    let conns: Vec<_> = registry
        .connections
        .iter()
        .filter(|c| c.participant_id == participant)
        .collect();
    if conns.is_empty() {
        return Err(Error::Usage(format!(
            "participant `{participant}` is not in the registry"
        )));
    }
    let ids = registry.participant_ids(participant);
    let wanted = Series::new("wanted".into(), ids.iter().cloned().collect::<Vec<_>>());
    private_dir(out)?;
    let mut exported = Exported::default();
    for spec in ALL_TABLES {
        // The cable tables are sums over a cable's connections, no one's own rows.
        if spec.name == CABLE_BALANCE_15M.name || spec.name == CABLE_BALANCE_DAILY.name {
            continue;
        }
        let Some(lf) = lake.scan(spec)? else { continue };
        let schema = lf.clone().collect_schema()?;
        // A row is theirs when an id column names them, or a text column mentions them.
        let mut theirs = lit(false);
        for column in ["ean", "installation_id", "key", "participant_id"] {
            if schema.contains(column) {
                theirs = theirs.or(col(column).is_in(lit(wanted.clone()).implode(false), false));
            }
        }
        for column in ["payload", "message", "detail"] {
            if schema.contains(column) {
                for id in &ids {
                    theirs = theirs.or(col(column).str().contains_literal(lit(id.clone())));
                }
            }
        }
        let mut df = lf.filter(theirs).collect()?;
        exported.tables.push((spec.name.to_string(), df.height()));
        if df.height() == 0 {
            continue;
        }
        CsvWriter::new(private_file(&out.join(format!("{}.csv", spec.name)))?).finish(&mut df)?;
        ParquetWriter::new(private_file(&out.join(format!("{}.parquet", spec.name)))?)
            .finish(&mut df)?;
    }
    // Their statements, per year.
    for (year, file) in crate::reports::statements::files_of(reports, participant) {
        let target = out.join(format!("statement-{year}.html"));
        std::io::copy(
            &mut std::fs::File::open(&file)?,
            &mut private_file(&target)?,
        )?;
        exported.statements += 1;
    }
    // Their lines of the registry, under its header.
    let text = std::fs::read_to_string(registry_dir.join("connections.csv"))?;
    let mut lines = text.lines();
    let mut registry_out = lines.next().unwrap_or_default().to_string() + "\n";
    for line in lines.filter(|l| conns.iter().any(|c| l.contains(c.ean.as_str()))) {
        registry_out += line;
        registry_out.push('\n');
    }
    use std::io::Write;
    private_file(&out.join("registry-connections.csv"))?.write_all(registry_out.as_bytes())?;
    Ok(exported)
}
