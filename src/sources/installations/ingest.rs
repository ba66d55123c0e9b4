//! Installation ingestion (`vaten ingest installations`): every installation in the registry
//! is pulled from its cursor; what fits lands in `installation_readings`, what does not in
//! `rejected`, lost readings in `installation_gaps`. Each bounded batch of installations is one
//! lake change together with their advanced cursors, so a cursor never runs ahead of what is
//! stored.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{json, Value};

use super::api::{Item, Page, Reading};
use super::fetch::{fetch_all, End, Fetched, Job};
use super::transport::{judge, Transport};
use crate::clock::Clock;
use crate::config::{InstallationsConfig, Secret};
use crate::domain::time::{
    implausible_day, is_quarter_hour, local_date, local_date_of_interval_end, parse_rfc3339_utc,
};
use crate::error::Result;
use crate::lake::Lake;
use crate::received::{
    InstallationGap, InstallationReading, Received, ReceivedIndex, Rejected, StoreCounts,
};
use crate::registry::{Connection, Registry};

pub use crate::received::state::{
    InstallationState, InstallationsState, LastReading, INSTALLATIONS_STATE as STATE_NAME,
};
pub const SOURCE: &str = "installation";

/// What a pass did, for the log, `_runs` and tests.
#[derive(Debug, Default, Clone)]
pub struct PassReport {
    pub installations: usize,
    pub complete: usize,
    pub readings_in: usize,
    pub stored: StoreCounts,
    /// (installation id, what went wrong), for warnings.
    pub problems: Vec<(String, String)>,
    pub gaps: Vec<String>,
}

impl PassReport {
    pub fn message(&self) -> String {
        let mut m = format!(
            "{} installations, {} complete; {} readings received, {} stored, {} rejected",
            self.installations,
            self.complete,
            self.readings_in,
            self.stored.installation_readings,
            self.stored.rejected
        );
        for (id, p) in &self.problems {
            m += &format!("; {id}: {p}");
        }
        for g in &self.gaps {
            m += &format!("; gap: {g}");
        }
        m
    }
}

/// Checks one installation's pages against the contract and the registry.
struct Checker<'a> {
    conn: &'a Connection,
    id: &'a str,
    now: DateTime<Utc>,
    tz: Tz,
    received_at: DateTime<Utc>,
    days_before_member: i64,
}

/// The calendar of a pass: the zone of local days, and how far before a connection's
/// `member_from` a reading may lie and still be plausible.
#[derive(Debug, Clone, Copy)]
pub struct Calendar {
    pub tz: Tz,
    pub days_before_member: i64,
}

impl Checker<'_> {
    fn reject(&self, out: &mut Received, reason: &str, detail: String, payload: String) {
        out.rejected.push(Rejected {
            source: SOURCE.into(),
            received_at_us: self.received_at.timestamp_micros(),
            key: self.id.to_string(),
            reason: reason.into(),
            detail,
            payload,
            delivery_seq: None,
            cursor: None,
            date: local_date(self.received_at, self.tz),
        });
    }

    /// Validates a page's readings; returns false when the page is not this installation's.
    fn page(&self, page: &Page, state: &mut InstallationState, out: &mut Received) -> bool {
        let ean = self.conn.ean.as_str();
        if page.installation_id != self.id || page.ean != ean {
            for item in &page.items {
                let detail = format!(
                    "the endpoint answered as {} / {}, the registry has {} / {ean}",
                    page.installation_id, page.ean, self.id
                );
                let reading = item_json(item);
                let payload = json!({"installation_id": page.installation_id, "ean": page.ean, "reading": reading});
                self.reject(out, "installation_mismatch", detail, payload.to_string());
            }
            return false;
        }
        for item in &page.items {
            match item {
                Item::Parsed(r) => self.reading(r, state, out),
                Item::Unparsed { raw, error } => {
                    let payload = json!({"installation_id": self.id, "ean": ean, "reading": raw});
                    let detail = format!("reading does not match the contract: {error}");
                    self.reject(out, "malformed_record", detail, payload.to_string());
                }
            }
        }
        true
    }

    fn reading(&self, r: &Reading, state: &mut InstallationState, out: &mut Received) {
        let payload = || {
            json!({"installation_id": self.id, "ean": self.conn.ean.as_str(), "reading": r})
                .to_string()
        };
        if r.seq <= state.after {
            let detail = format!(
                "seq {} does not follow the last stored seq {}",
                r.seq, state.after
            );
            return self.reject(out, "seq_not_increasing", detail, payload());
        }
        let Some(t) = parse_rfc3339_utc(&r.t) else {
            return self.reject(
                out,
                "bad_time",
                format!("t `{}` is not an RFC 3339 time", r.t),
                payload(),
            );
        };
        if !is_quarter_hour(t) {
            return self.reject(
                out,
                "not_quarter_hour",
                format!("t {} is not on a quarter-hour", r.t),
                payload(),
            );
        }
        if t > self.now {
            return self.reject(
                out,
                "future_time",
                format!("t {} lies in the future", r.t),
                payload(),
            );
        }
        // The day the quarter-hour belongs to, as the partition has it.
        let day = local_date_of_interval_end(t, self.tz);
        if let Some(why) = implausible_day(day, self.conn.member_from, self.days_before_member) {
            return self.reject(
                out,
                "implausible_time",
                format!("t {} {why}", r.t),
                payload(),
            );
        }
        // Registers in whole Wh up to 2^53 (what a JSON number carries exactly; decades of any
        // real meter), state of charge in per cent, voltages of a low-voltage grid.
        const MAX_REGISTER: u64 = 1 << 53;
        let out_of_range = if [r.p_wh, r.battery_charge_wh, r.battery_discharge_wh]
            .iter()
            .any(|v| *v > MAX_REGISTER)
        {
            Some("a register above 2^53 Wh".to_string())
        } else {
            None
        };
        if let Some(why) = out_of_range {
            return self.reject(out, "bad_value", why, payload());
        }
        if let Some(last) = &state.last {
            let backwards = last.p_meter == r.p_meter
                && (r.p_wh < last.p_wh
                    || r.battery_charge_wh < last.battery_charge_wh
                    || r.battery_discharge_wh < last.battery_discharge_wh);
            if backwards {
                let detail = format!(
                    "registers went backwards on meter {} (P {} → {} Wh) without a meter exchange",
                    r.p_meter, last.p_wh, r.p_wh
                );
                return self.reject(out, "register_backwards", detail, payload());
            }
        }
        let wh = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        out.installation_readings.push(InstallationReading {
            installation_id: self.id.to_string(),
            ean: self.conn.ean.as_str().to_string(),
            p_meter: r.p_meter.clone(),
            seq: wh(r.seq),
            t_us: t.timestamp_micros(),
            p_wh: wh(r.p_wh),
            battery_charge_wh: wh(r.battery_charge_wh),
            battery_discharge_wh: wh(r.battery_discharge_wh),
            // A sensor quirk (a state of charge of 100.4 %, a voltage of −1) loses that value,
            // not the reading with its registers.
            soc_pct: r.soc_pct.filter(|s| (0.0..=100.0).contains(s)),
            voltage_avg_v: r.voltage_avg_v.filter(|v| (0.0..=1000.0).contains(v)),
            voltage_min_v: r.voltage_min_v.filter(|v| (0.0..=1000.0).contains(v)),
            voltage_max_v: r.voltage_max_v.filter(|v| (0.0..=1000.0).contains(v)),
            received_at_us: self.received_at.timestamp_micros(),
            date: local_date_of_interval_end(t, self.tz),
        });
        state.after = r.seq;
        state.last = Some(LastReading {
            p_meter: r.p_meter.clone(),
            p_wh: r.p_wh,
            battery_charge_wh: r.battery_charge_wh,
            battery_discharge_wh: r.battery_discharge_wh,
        });
    }
}

fn item_json(item: &Item) -> Value {
    match item {
        Item::Parsed(r) => serde_json::to_value(r).unwrap_or(Value::Null),
        Item::Unparsed { raw, .. } => raw.clone(),
    }
}

/// One pass over every installation in the registry.
pub fn ingest(
    lake: &Lake,
    registry: &Registry,
    cfg: &InstallationsConfig,
    tokens: &HashMap<String, Secret>,
    clock: Clock,
    calendar: Calendar,
    rt: &tokio::runtime::Runtime,
) -> Result<PassReport> {
    let tz = calendar.tz;
    let mut states: InstallationsState = lake.read_state(STATE_NAME)?.unwrap_or_default();
    let conns: Vec<&Connection> = registry
        .connections
        .iter()
        .filter(|c| c.installation.is_some())
        .collect();
    let mut report = PassReport {
        installations: conns.len(),
        ..Default::default()
    };
    // The pass's deadline holds for all batches together.
    let deadline = std::time::Instant::now() + Duration::from_secs_f64(cfg.deadline_s);
    let mut index = ReceivedIndex::default();
    // Plain http to private or VPN addresses: allowed, said once per run.
    let plain: Vec<&str> = conns
        .iter()
        .filter_map(|c| c.installation.as_ref().map(|i| (i, c)))
        .filter(|(i, c)| judge(&i.url, c.installation_http_public) == Transport::PlainPrivate)
        .map(|(i, _)| i.id.as_str())
        .collect();
    if !plain.is_empty() {
        tracing::warn!(
            "{} installation(s) pulled over plain http (unencrypted, private or VPN addresses): {}",
            plain.len(),
            plain.join(", ")
        );
    }
    // Bounded batches, each one lake change with the cursors it covers: memory follows the
    // batch (each installation's pages are bounded by its 30-day buffer), not the number of
    // installations times days; a killed pass keeps the batches it committed.
    for batch in conns.chunks(batch_size(cfg.concurrency)) {
        let jobs: Vec<Job> = batch
            .iter()
            .map(|c| {
                let inst = c.installation.as_ref().expect("filtered");
                Job {
                    url: inst.url.clone(),
                    token: tokens.get(&inst.id).cloned(),
                    after: states.get(&inst.id).map(|s| s.after).unwrap_or(0),
                    refused: match judge(&inst.url, c.installation_http_public) {
                        Transport::Refused(why) => Some(why),
                        _ => None,
                    },
                    pin: c.installation_cert_sha256,
                }
            })
            .collect();
        let fetched = rt.block_on(fetch_all(
            jobs,
            cfg.concurrency,
            Duration::from_secs_f64(cfg.timeout_s),
            deadline.saturating_duration_since(std::time::Instant::now()),
            cfg.page_limit,
            cfg.max_body_bytes,
        ));
        let now = clock.now();
        let mut received = Received::default();
        for (conn, f) in batch.iter().zip(fetched) {
            let id = conn.installation.as_ref().expect("filtered").id.as_str();
            let state = states.entry(id.to_string()).or_default();
            let checker = Checker {
                conn,
                id,
                now,
                tz,
                received_at: now,
                days_before_member: calendar.days_before_member,
            };
            apply_fetch(&checker, f, state, &mut received, &mut report);
        }
        let mut txn = lake.begin()?;
        let stored = index.stage(lake, &mut txn, received)?;
        lake.stage_state(&mut txn, STATE_NAME, &states)?;
        txn.commit()?;
        report.stored.add(stored);
    }
    for (id, problem) in &report.problems {
        tracing::warn!(installation = %id, "{problem}");
    }
    Ok(report)
}

/// Installations per lake change in a pass: a few rounds of the concurrency.
fn batch_size(concurrency: usize) -> usize {
    (concurrency * 4).clamp(16, 256)
}

/// Checks one page of an installation's answer as a pass does, from an empty state (for the
/// fuzz tests: any page gives rows or rejections, never a panic).
pub fn check_page(
    conn: &Connection,
    page: &Page,
    now: DateTime<Utc>,
    calendar: Calendar,
) -> Received {
    let id = conn.installation.as_ref().map_or("", |i| i.id.as_str());
    let c = Checker {
        conn,
        id,
        now,
        tz: calendar.tz,
        received_at: now,
        days_before_member: calendar.days_before_member,
    };
    let mut state = InstallationState::default();
    let mut out = Received::default();
    c.page(page, &mut state, &mut out);
    out
}

fn apply_fetch(
    c: &Checker,
    f: Fetched,
    state: &mut InstallationState,
    out: &mut Received,
    report: &mut PassReport,
) {
    for (page, asked) in f.pages.iter().zip(&f.asked_after) {
        report.readings_in += page.items.len();
        if page.gap {
            let first = match page.items.first() {
                Some(Item::Parsed(r)) => Some(r),
                _ => None,
            };
            let resumed_t = first.as_ref().and_then(|r| parse_rfc3339_utc(&r.t));
            out.gaps.push(InstallationGap {
                installation_id: c.id.to_string(),
                ean: c.conn.ean.as_str().to_string(),
                after_seq: i64::try_from(*asked).unwrap_or(i64::MAX),
                resumed_seq: first.as_ref().and_then(|r| i64::try_from(r.seq).ok()),
                resumed_t_us: resumed_t.map(|t| t.timestamp_micros()),
                detected_at_us: c.received_at.timestamp_micros(),
            });
            let resumed = match (&first, resumed_t) {
                (Some(r), Some(t)) => {
                    format!("resumed at seq {} ({})", r.seq, t.format("%Y-%m-%dT%H:%MZ"))
                }
                _ => "nothing kept".into(),
            };
            report.gaps.push(format!(
                "{}: readings after seq {asked} were lost, {resumed}",
                c.id
            ));
        }
        if !c.page(page, state, out) {
            report.problems.push((
                c.id.to_string(),
                "the endpoint answered as another installation; its readings were rejected".into(),
            ));
            return;
        }
    }
    let problem = match f.end {
        End::Complete => None,
        End::Deadline => {
            Some("not finished before the pass's deadline; continues next run".to_string())
        }
        End::Offline(why) => Some(format!(
            "offline ({why}); its cursor stays, the next run catches up"
        )),
        End::Unauthorized => Some(
            "the installation refused our token (401): check its entry in the tokens file".into(),
        ),
        End::NoToken => Some("no token for this installation in the tokens file".into()),
        End::Refused(why) => Some(format!("not asked: {why}")),
        End::PageCap => Some(
            "more pages than 30 days of readings take; the rest waits for the next pass".into(),
        ),
        End::TooLarge(limit) => Some(format!(
            "its answer is larger than [installations] max_body_bytes ({limit} bytes): reading stopped there; its cursor stays"
        )),
        End::Broken { reason, body } => {
            let payload = json!({"installation_id": c.id, "body": body}).to_string();
            c.reject(out, "malformed_response", reason.clone(), payload);
            Some(reason)
        }
    };
    match problem {
        None => {
            report.complete += 1;
            state.offline_since = None;
            state.last_success_at = Some(c.received_at);
        }
        Some(p) => {
            if matches!(p.as_str(), s if s.starts_with("offline")) && state.offline_since.is_none()
            {
                state.offline_since = Some(c.received_at);
            }
            report.problems.push((c.id.to_string(), p));
        }
    }
}
