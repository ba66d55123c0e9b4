//! Importing real meter exports into the received tables, so history and tests can use real
//! data (`vaten import --format homewizard|dsmr-reader FILE --ean EAN`).
//!
//! - HomeWizard: 15-minute **cumulative** registers (Import/Export T1/T2, kWh) at local times
//!   without offset: kept as registers.
//! - DSMR-reader: **interval** kWh per hour (delivered and returned per tariff, `Hour Start`
//!   with offset): summed into a register that starts at 0.
//!
//! Both land in `grid_readings` under a `meter_id` naming the import, one delivery per local
//! day, so one path computes intervals for everything. Lines that cannot be read go to
//! `rejected` (source `import:<format>`).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::json;

use crate::domain::energy::{register_to_wh, EnergyUnit};
use crate::domain::time::{
    is_quarter_hour, local_date, local_date_of_interval_end, parse_rfc3339_utc,
};
use crate::error::{Error, Result};
use crate::received::{GridReading, Received, Rejected};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// HomeWizard P1 export: 15-minute cumulative registers, local time.
    Homewizard,
    /// DSMR-reader hourly export: energy per hour and tariff, with offsets.
    DsmrReader,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Homewizard => "homewizard",
            Format::DsmrReader => "dsmr-reader",
        }
    }
}

/// A register reading parsed from an export line.
struct Point {
    t: DateTime<Utc>,
    import_wh: i64,
    export_wh: i64,
}

fn kwh(s: &str) -> Option<i64> {
    register_to_wh(s.trim().parse::<f64>().ok()?, EnergyUnit::KWh)
}

/// Parses an export into register points; unreadable lines come back as (line, reason, text).
fn points(format: Format, text: &str, tz: Tz) -> (Vec<Point>, Vec<(usize, String, String)>) {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    let (mut import_sum, mut export_sum) = (0i64, 0i64);
    for (i, line) in text.lines().enumerate().skip(1) {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        let parsed = match format {
            Format::Homewizard => (|| {
                let local =
                    NaiveDateTime::parse_from_str(f.first()?.trim(), "%Y-%m-%d %H:%M").ok()?;
                // Local time without offset: the October hour is ambiguous; take the first.
                let t = tz
                    .from_local_datetime(&local)
                    .earliest()?
                    .with_timezone(&Utc);
                let (i1, i2, e1, e2) = (
                    kwh(f.get(1)?)?,
                    kwh(f.get(2)?)?,
                    kwh(f.get(3)?)?,
                    kwh(f.get(4)?)?,
                );
                Some(vec![Point {
                    t,
                    import_wh: i1.checked_add(i2)?,
                    export_wh: e1.checked_add(e2)?,
                }])
            })(),
            Format::DsmrReader => (|| {
                let start = parse_rfc3339_utc(f.first()?.trim())?;
                let (d1, d2, r1, r2) = (
                    kwh(f.get(1)?)?,
                    kwh(f.get(2)?)?,
                    kwh(f.get(3)?)?,
                    kwh(f.get(4)?)?,
                );
                let mut pts = Vec::with_capacity(2);
                if out.is_empty() {
                    pts.push(Point {
                        t: start,
                        import_wh: 0,
                        export_wh: 0,
                    });
                }
                // Checked: an export of absurd values is malformed, not an overflow.
                let (imported, exported) = (
                    import_sum.checked_add(d1.checked_add(d2)?)?,
                    export_sum.checked_add(r1.checked_add(r2)?)?,
                );
                (import_sum, export_sum) = (imported, exported);
                pts.push(Point {
                    t: start + chrono::Duration::hours(1),
                    import_wh: import_sum,
                    export_wh: export_sum,
                });
                Some(pts)
            })(),
        };
        match parsed {
            Some(pts) if pts.iter().all(|p| is_quarter_hour(p.t)) => out.extend(pts),
            Some(_) => bad.push((line_no, "not_quarter_hour".into(), line.to_string())),
            None => bad.push((line_no, "malformed_record".into(), line.to_string())),
        }
    }
    (out, bad)
}

/// The rows an export contributes: readings grouped as one delivery per local day.
pub fn read_export(
    format: Format,
    text: &str,
    file_name: &str,
    ean: &str,
    tz: Tz,
    now: DateTime<Utc>,
    first_seq: i64,
) -> Result<(Received, i64)> {
    let (pts, mut bad) = points(format, text, tz);
    if pts.is_empty() && !bad.is_empty() {
        return Err(Error::Usage(format!(
            "{file_name}: no readable {} lines (first problem on line {})",
            format.name(),
            bad[0].0
        )));
    }
    let meter_id: Arc<str> = format!("import:{}:{file_name}", format.name()).into();
    let source: Arc<str> = format!("import:{}", format.name()).into();
    let (ean, measured): (Arc<str>, Arc<str>) = (ean.into(), "measured".into());
    let mut days: BTreeMap<chrono::NaiveDate, Vec<GridReading>> = BTreeMap::new();
    for p in pts {
        let date = local_date_of_interval_end(p.t, tz);
        // Future and implausible readings (a clock at 1970) are rejected, not stored.
        let problem = if p.t > now {
            Some(("future_time", "lies in the future".to_string()))
        } else {
            crate::domain::time::implausible_day(date, None, 0).map(|why| ("implausible_time", why))
        };
        if let Some((reason, why)) = problem {
            bad.push((0, reason.into(), format!("{} {why}", p.t.to_rfc3339())));
            continue;
        }
        days.entry(date).or_default().push(GridReading {
            ean: ean.clone(),
            meter_id: meter_id.clone(),
            t_us: p.t.timestamp_micros(),
            import_wh: p.import_wh,
            export_wh: p.export_wh,
            quality: measured.clone(),
            received_at_us: now.timestamp_micros(),
            delivery_seq: 0,
            cursor: source.clone(),
            date,
        });
    }
    let mut seq = first_seq;
    let mut received = Received::default();
    for (_, mut rows) in days {
        for r in &mut rows {
            r.delivery_seq = seq;
        }
        seq += 1;
        received.reading_objects.push(rows);
    }
    for (line, reason, text) in bad {
        received.rejected.push(Rejected {
            source: source.to_string(),
            received_at_us: now.timestamp_micros(),
            key: ean.to_string(),
            reason,
            detail: if line == 0 {
                format!("{file_name}: a reading at {text}")
            } else {
                format!("{file_name}:{line}: not a {} line", format.name())
            },
            payload: json!({"file": file_name, "line": line, "text": text}).to_string(),
            delivery_seq: None,
            cursor: None,
            date: local_date(now, tz),
        });
    }
    Ok((received, seq))
}
