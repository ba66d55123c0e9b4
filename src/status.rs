//! `vaten status`: per source the last successful pull, the days left before the grid
//! operator's retention drops quarter-hours not pulled yet, offline installations, and the last
//! run of every job. A reader: no lock, no change.

use chrono::{DateTime, Utc};
use polars::prelude::*;

use crate::clock::Clock;
use crate::error::Result;
use crate::lake::schema::RUNS;
use crate::lake::Lake;
use crate::received::state::{
    GridState, InstallationsState, GRID_STATE, INSTALLATIONS_STATE as INSTALLATIONS,
};

/// Days the grid operator keeps quarter-hour data.
pub const RETENTION_DAYS: f64 = 10.0;
/// Below this many days left, status and the nightly report warn.
pub const WARN_DAYS: f64 = 4.0;

/// Days left before quarter-hours received after `last_drained` start to expire.
pub fn days_left(last_drained: DateTime<Utc>, now: DateTime<Utc>) -> f64 {
    RETENTION_DAYS - (now - last_drained).num_seconds() as f64 / 86_400.0
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// The status as lines of text.
pub fn report(lake: &Lake, clock: Clock) -> Result<Vec<String>> {
    let now = clock.now();
    let mut out = Vec::new();
    let grid: Option<GridState> = lake.read_state(GRID_STATE)?;
    match grid.and_then(|g| g.last_success_at) {
        Some(t) => {
            let left = days_left(t, now);
            let warn = if left < WARN_DAYS { "  WARNING: pull soon, quarter-hours are about to expire" } else { "" };
            out.push(format!("grid: feed last drained {}; {left:.1} days left before unpulled quarter-hours expire{warn}", when(t)));
        }
        None => out.push("grid: never drained; quarter-hours older than 10 days are already gone at the grid operator".into()),
    }
    let installations: InstallationsState = lake.read_state(INSTALLATIONS)?.unwrap_or_default();
    let offline: Vec<String> = installations
        .iter()
        .filter_map(|(id, s)| s.offline_since.map(|t| format!("{id} since {}", when(t))))
        .collect();
    out.push(format!(
        "installations: {} known, {} offline{}{}",
        installations.len(),
        offline.len(),
        if offline.is_empty() { "" } else { ": " },
        offline.join(", ")
    ));
    if let Some(lf) = lake.scan(&RUNS)? {
        let df = lf
            .sort(["started_at"], SortMultipleOptions::default())
            .group_by_stable([col("job")])
            .agg([
                col("finished_at").last(),
                col("status").last(),
                col("message").last(),
            ])
            .sort(["job"], SortMultipleOptions::default())
            .collect()?;
        let s = |n: &str| -> Result<Column> { Ok(df.column(n)?.cast(&DataType::String)?) };
        let (job, fin, status, msg) = (s("job")?, s("finished_at")?, s("status")?, s("message")?);
        for i in 0..df.height() {
            let get = |c: &Column| {
                c.str()
                    .ok()
                    .and_then(|c| c.get(i))
                    .unwrap_or("")
                    .to_string()
            };
            out.push(format!(
                "last {}: {} at {}: {}",
                get(&job),
                get(&status),
                get(&fin),
                get(&msg)
            ));
        }
    }
    Ok(out)
}
