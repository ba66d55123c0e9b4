//! Checks a page's objects against the contract and the registry. What fits becomes rows of
//! the received tables; what does not becomes a `rejected` row with a stable reason code. The
//! checks that need the series around a reading (registers going backwards, steps above a
//! connection's capacity) belong to the interval computation, not here.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{DayObject, IntervalObject, ObjectKind, RejectionObject};
use crate::domain::energy::{register_to_wh, EnergyUnit};
use crate::domain::time::{
    implausible_day, is_quarter_hour, local_date, local_date_of_interval_end, parse_rfc3339_utc,
};
use crate::domain::Ean;
use crate::received::erased::Erased;
use crate::received::{GridDay, GridReading, Received, Rejected};
use crate::registry::Registry;

pub const QUALITIES: &[&str] = &["measured", "estimated", "derived"];

/// The objects that carry registers of one EAN for one day in one unit.
trait RegisterObject: for<'de> Deserialize<'de> {
    fn header(&self) -> (&str, &str, &str);
}

impl RegisterObject for IntervalObject {
    fn header(&self) -> (&str, &str, &str) {
        (&self.ean, &self.query_date, &self.unit)
    }
}

impl RegisterObject for DayObject {
    fn header(&self) -> (&str, &str, &str) {
        (&self.ean, &self.query_date, &self.unit)
    }
}

/// The `source` column value for rejected objects of each kind.
pub fn source_name(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Interval => "grid-interval",
        ObjectKind::Day => "grid-day",
        ObjectKind::Rejection => "grid-rejection",
    }
}

pub fn kind_of_source(source: &str) -> Option<ObjectKind> {
    match source {
        "grid-interval" => Some(ObjectKind::Interval),
        "grid-day" => Some(ObjectKind::Day),
        "grid-rejection" => Some(ObjectKind::Rejection),
        _ => None,
    }
}

/// Validation context of one delivery (a page or a history response).
pub struct Validator<'a> {
    pub registry: &'a Registry,
    pub now: DateTime<Utc>,
    pub tz: Tz,
    pub received_at: DateTime<Utc>,
    pub cursor: String,
    /// A day more than this many days before its connection's `member_from` is implausible.
    pub days_before_member: i64,
    /// Erased participants' identifiers: their objects are left out entirely (not even a
    /// `rejected` row, which would hold the EAN again).
    pub erased: Option<&'a Erased>,
}

impl Validator<'_> {
    /// Whether `raw` is about an erased participant (see [`Erased`]).
    pub fn is_erased(&self, raw: &Value) -> bool {
        // However the EAN came (a number, with spaces), it is recognised.
        self.erased.is_some_and(|e| match raw.get("ean") {
            Some(Value::String(ean)) => e.contains(ean.trim()),
            Some(Value::Number(n)) => e.contains(&n.to_string()),
            _ => false,
        })
    }

    fn reject(
        &self,
        out: &mut Received,
        (kind, seq): (ObjectKind, i64),
        key: &str,
        reason: &str,
        detail: String,
        payload: String,
    ) {
        out.rejected.push(Rejected {
            source: source_name(kind).to_string(),
            received_at_us: self.received_at.timestamp_micros(),
            key: key.to_string(),
            reason: reason.to_string(),
            detail,
            payload,
            delivery_seq: Some(seq),
            cursor: Some(self.cursor.clone()),
            date: local_date(self.received_at, self.tz),
        });
    }

    /// Common object checks: the EAN's shape and registry membership, and the date. Returns
    /// the query date when the object may proceed.
    fn check_object(
        &self,
        out: &mut Received,
        kind: ObjectKind,
        raw: &Value,
        ean: &str,
        query_date: &str,
        seq: i64,
    ) -> Option<NaiveDate> {
        if let Err(e) = Ean::parse(ean) {
            self.reject(
                out,
                (kind, seq),
                ean,
                "bad_ean",
                e.to_string(),
                raw.to_string(),
            );
            return None;
        }
        let Some(conn) = self.registry.connection(ean) else {
            let detail = format!("EAN {ean} is not in the registry");
            self.reject(
                out,
                (kind, seq),
                ean,
                "unknown_ean",
                detail,
                raw.to_string(),
            );
            return None;
        };
        let Ok(date) = query_date.parse::<NaiveDate>() else {
            let detail = format!("query_date `{query_date}` is not a date (YYYY-MM-DD)");
            self.reject(out, (kind, seq), ean, "bad_date", detail, raw.to_string());
            return None;
        };
        if let Some(why) = implausible_day(date, conn.member_from, self.days_before_member) {
            let detail = format!("query_date {date} {why}");
            self.reject(
                out,
                (kind, seq),
                ean,
                "implausible_time",
                detail,
                raw.to_string(),
            );
            return None;
        }
        // Only what the holder authorised is kept; of the rest not even the readings.
        if !conn.consents_to(date) {
            let detail = format!("no consent covers {date} for {ean}");
            let header = json!({"ean": ean, "meter_id": raw.get("meter_id"),
                "query_date": query_date, "unit": raw.get("unit"), "readings": "left out"});
            self.reject(
                out,
                (kind, seq),
                ean,
                "no_consent",
                detail,
                header.to_string(),
            );
            return None;
        }
        // Local midnight of `date` lies after now exactly when `date` is after today.
        if date > local_date(self.now, self.tz) {
            let detail = format!("query_date {date} lies in the future");
            self.reject(
                out,
                (kind, seq),
                ean,
                "future_time",
                detail,
                raw.to_string(),
            );
            return None;
        }
        Some(date)
    }

    fn unit(
        &self,
        out: &mut Received,
        kind: ObjectKind,
        raw: &Value,
        ean: &str,
        unit: &str,
        seq: i64,
    ) -> Option<EnergyUnit> {
        let u = EnergyUnit::parse(unit);
        if u.is_none() {
            let detail = format!("unit `{unit}` is neither kWh nor Wh");
            self.reject(out, (kind, seq), ean, "bad_unit", detail, raw.to_string());
        }
        u
    }

    fn malformed(
        &self,
        out: &mut Received,
        kind: ObjectKind,
        raw: &Value,
        err: serde_json::Error,
        seq: i64,
    ) {
        let key = raw
            .get("ean")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let detail = format!("{} object does not match the contract: {err}", kind.name());
        self.reject(
            out,
            (kind, seq),
            &key,
            "malformed_record",
            detail,
            raw.to_string(),
        );
    }

    /// Parses a register object and runs the object-level checks; `None` when rejected.
    fn admit<T: RegisterObject>(
        &self,
        raw: &Value,
        kind: ObjectKind,
        seq: i64,
        out: &mut Received,
    ) -> Option<(T, NaiveDate, EnergyUnit)> {
        let obj = match T::deserialize(raw) {
            Ok(o) => o,
            Err(e) => {
                self.malformed(out, kind, raw, e, seq);
                return None;
            }
        };
        let (ean, query_date, unit) = obj.header();
        let date = self.check_object(out, kind, raw, ean, query_date, seq)?;
        let unit = self.unit(out, kind, raw, ean, unit, seq)?;
        Some((obj, date, unit))
    }

    pub fn interval(&self, raw: &Value, seq: i64, out: &mut Received) {
        let kind = ObjectKind::Interval;
        let Some((obj, date, unit)) = self.admit::<IntervalObject>(raw, kind, seq, out) else {
            return;
        };
        let mut rows = Vec::with_capacity(obj.items.len());
        let mut seen = HashSet::with_capacity(obj.items.len());
        for item in &obj.items {
            let item_payload = || {
                json!({"ean": obj.ean, "meter_id": obj.meter_id, "query_date": obj.query_date,
                       "unit": obj.unit, "item": item})
                .to_string()
            };
            let mut bad = |reason: &str, detail: String| {
                self.reject(out, (kind, seq), &obj.ean, reason, detail, item_payload());
            };
            let Some(t) = parse_rfc3339_utc(&item.t) else {
                bad(
                    "bad_time",
                    format!("t `{}` is not an RFC 3339 time with offset", item.t),
                );
                continue;
            };
            if !is_quarter_hour(t) {
                bad(
                    "not_quarter_hour",
                    format!("t {} is not on a quarter-hour", item.t),
                );
                continue;
            }
            if t > self.now {
                bad("future_time", format!("t {} lies in the future", item.t));
                continue;
            }
            if local_date_of_interval_end(t, self.tz) != date {
                bad(
                    "outside_day",
                    format!("t {} does not close a quarter-hour of {date}", item.t),
                );
                continue;
            }
            let import = item.r180.as_f64().and_then(|v| register_to_wh(v, unit));
            let export = item.r280.as_f64().and_then(|v| register_to_wh(v, unit));
            let (Some(import_wh), Some(export_wh)) = (import, export) else {
                bad(
                    "bad_value",
                    format!(
                        "r180 {} / r280 {} must be non-negative numbers",
                        item.r180, item.r280
                    ),
                );
                continue;
            };
            if !QUALITIES.contains(&item.quality.as_str()) {
                bad(
                    "bad_quality",
                    format!(
                        "quality `{}` is not one of {}",
                        item.quality,
                        QUALITIES.join(", ")
                    ),
                );
                continue;
            }
            if !seen.insert(t) {
                bad(
                    "duplicate_time",
                    format!("t {} appears twice for meter {}", item.t, obj.meter_id),
                );
                continue;
            }
            rows.push(GridReading {
                ean: obj.ean.clone(),
                meter_id: obj.meter_id.clone(),
                t_us: t.timestamp_micros(),
                import_wh,
                export_wh,
                quality: item.quality.clone(),
                received_at_us: self.received_at.timestamp_micros(),
                delivery_seq: seq,
                cursor: self.cursor.clone(),
                date,
            });
        }
        out.reading_objects.push(rows);
    }

    pub fn day(&self, raw: &Value, seq: i64, out: &mut Received) {
        let kind = ObjectKind::Day;
        let Some((obj, date, unit)) = self.admit::<DayObject>(raw, kind, seq, out) else {
            return;
        };
        let regs: Vec<Option<i64>> = [&obj.r181, &obj.r182, &obj.r281, &obj.r282]
            .iter()
            .map(|v| v.as_f64().and_then(|x| register_to_wh(x, unit)))
            .collect();
        let [Some(i1), Some(i2), Some(e1), Some(e2)] = regs[..] else {
            let detail = "r181/r182/r281/r282 must be non-negative numbers".to_string();
            return self.reject(
                out,
                (kind, seq),
                &obj.ean,
                "bad_value",
                detail,
                raw.to_string(),
            );
        };
        out.days.push(GridDay {
            ean: obj.ean,
            meter_id: obj.meter_id,
            date,
            import_t1_wh: i1,
            import_t2_wh: i2,
            export_t1_wh: e1,
            export_t2_wh: e2,
            received_at_us: self.received_at.timestamp_micros(),
            delivery_seq: seq,
            cursor: self.cursor.clone(),
        });
    }

    /// The service's own refusal to deliver an EAN/day is kept in `rejected` as
    /// `service_<code>` so that reports can show it; it carries no readings.
    pub fn rejection(&self, raw: &Value, seq: i64, out: &mut Received) {
        let kind = ObjectKind::Rejection;
        let obj: RejectionObject = match RejectionObject::deserialize(raw) {
            Ok(o) => o,
            Err(e) => return self.malformed(out, kind, raw, e, seq),
        };
        let reason = format!("service_{}", obj.code.to_ascii_lowercase());
        let detail = format!(
            "grid operator could not deliver {} for {}: {}",
            obj.query_date, obj.ean, obj.text
        );
        self.reject(out, (kind, seq), &obj.ean, &reason, detail, raw.to_string());
    }
}
