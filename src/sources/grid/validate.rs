//! Checks a page's objects against the contract and the registry. What fits becomes rows of
//! the received tables; what does not becomes a `rejected` row with a stable reason code. The
//! checks that need the series around a reading (registers going backwards, steps above a
//! connection's capacity) belong to the interval computation, not here.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{
    DayObject, IntervalObject, Item, ObjectKind, RejectionObject, TypedBulkPage, TypedItem,
};
use crate::domain::energy::{register_to_wh, EnergyUnit};
use crate::domain::time::{
    implausible_day, is_quarter_hour, local_date, local_date_of_interval_end, parse_rfc3339_utc,
};
use crate::domain::Ean;
use crate::received::erased::Erased;
use crate::received::{GridDay, GridReading, Received, Rejected};
use crate::registry::Registry;

pub const QUALITIES: &[&str] = &["measured", "estimated", "derived"];

/// `text` with every erased EAN in it (a run of exactly 18 digits) replaced by `[erased]`.
fn redact_eans(text: &str, erased: &Erased) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() == 18 && erased.contains(run) {
            out.push_str("[erased]");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Why an object or an item is refused: its reason code and detail.
struct Refusal {
    reason: &'static str,
    detail: String,
    /// The `rejected` row keeps only the object's header (no consent: not even the readings).
    header_only: bool,
}

impl Refusal {
    fn new(reason: &'static str, detail: String) -> Self {
        Refusal {
            reason,
            detail,
            header_only: false,
        }
    }
}

/// What the item checks read of an item, parsed as values or typed.
trait ItemFields {
    fn time(&self) -> Option<DateTime<Utc>>;
    /// `t` as received, for a refusal's detail.
    fn time_text(&self) -> String;
    fn registers(&self) -> (Option<f64>, Option<f64>);
    /// `r180` and `r280` as received, for a refusal's detail.
    fn registers_text(&self) -> (String, String);
    fn quality(&self) -> &str;
}

impl ItemFields for Item {
    fn time(&self) -> Option<DateTime<Utc>> {
        parse_rfc3339_utc(&self.t)
    }
    fn time_text(&self) -> String {
        self.t.clone()
    }
    fn registers(&self) -> (Option<f64>, Option<f64>) {
        (self.r180.as_f64(), self.r280.as_f64())
    }
    fn registers_text(&self) -> (String, String) {
        (self.r180.to_string(), self.r280.to_string())
    }
    fn quality(&self) -> &str {
        &self.quality
    }
}

impl ItemFields for TypedItem {
    fn time(&self) -> Option<DateTime<Utc>> {
        Some(self.t)
    }
    fn time_text(&self) -> String {
        self.t.to_rfc3339()
    }
    fn registers(&self) -> (Option<f64>, Option<f64>) {
        (Some(self.r180), Some(self.r280))
    }
    fn registers_text(&self) -> (String, String) {
        (self.r180.to_string(), self.r280.to_string())
    }
    fn quality(&self) -> &str {
        self.quality.name()
    }
}

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
        // However the EAN came (a number, with spaces, first of an object sent as an array, as
        // serde reads one), it is recognised.
        let ean = match raw {
            Value::Array(fields) => fields.first(),
            _ => raw.get("ean"),
        };
        self.erased.is_some_and(|e| match ean {
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
        // An erased participant's EAN is kept nowhere, whatever field it came in. A rejection
        // about them (keyed by their EAN, or by none: an object that names them under a key
        // spelled otherwise) is left out; one about another connection that mentions them
        // keeps its row with their EAN replaced by `[erased]`.
        let (detail, payload) = match self.erased.filter(|e| !e.is_empty()) {
            Some(erased) if [&detail, &payload].iter().any(|t| self.names_erased(t)) => {
                if key.trim().is_empty() || self.names_erased(key) {
                    out.left_out_erased += 1;
                    return;
                }
                (redact_eans(&detail, erased), redact_eans(&payload, erased))
            }
            _ if self.names_erased(key) => {
                out.left_out_erased += 1;
                return;
            }
            _ => (detail, payload),
        };
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

    /// Whether `text` holds an erased participant's EAN: a run of exactly 18 digits.
    fn names_erased(&self, text: &str) -> bool {
        let Some(erased) = self.erased.filter(|e| !e.is_empty()) else {
            return false;
        };
        text.split(|c: char| !c.is_ascii_digit())
            .any(|run| run.len() == 18 && erased.contains(run))
    }

    /// The object-level checks: the EAN's shape and registry membership, and the date.
    /// Returns the query date when the object may proceed.
    fn object_date(&self, ean: &str, query_date: &str) -> Result<NaiveDate, Refusal> {
        if let Err(e) = Ean::parse(ean) {
            return Err(Refusal::new("bad_ean", e.to_string()));
        }
        let Some(conn) = self.registry.connection(ean) else {
            let detail = format!("EAN {ean} is not in the registry");
            return Err(Refusal::new("unknown_ean", detail));
        };
        let Ok(date) = query_date.parse::<NaiveDate>() else {
            let detail = format!("query_date `{query_date}` is not a date (YYYY-MM-DD)");
            return Err(Refusal::new("bad_date", detail));
        };
        if let Some(why) = implausible_day(date, conn.member_from, self.days_before_member) {
            let detail = format!("query_date {date} {why}");
            return Err(Refusal::new("implausible_time", detail));
        }
        // Only what the holder authorised is kept; of the rest not even the readings.
        if !conn.consents_to(date) {
            let detail = format!("no consent covers {date} for {ean}");
            return Err(Refusal {
                header_only: true,
                ..Refusal::new("no_consent", detail)
            });
        }
        // Local midnight of `date` lies after now exactly when `date` is after today.
        if date > local_date(self.now, self.tz) {
            let detail = format!("query_date {date} lies in the future");
            return Err(Refusal::new("future_time", detail));
        }
        Ok(date)
    }

    fn unit_of(unit: &str) -> Result<EnergyUnit, Refusal> {
        EnergyUnit::parse(unit)
            .ok_or_else(|| Refusal::new("bad_unit", format!("unit `{unit}` is neither kWh nor Wh")))
    }

    /// The object-level checks of an object read as a value; a refusal becomes its
    /// `rejected` row (with the whole object as payload, or only its header when no consent
    /// covers it).
    fn check_object(
        &self,
        out: &mut Received,
        (kind, seq): (ObjectKind, i64),
        raw: &Value,
        (ean, query_date, unit): (&str, &str, &str),
    ) -> Option<(NaiveDate, EnergyUnit)> {
        let checked = self
            .object_date(ean, query_date)
            .and_then(|date| Ok((date, Self::unit_of(unit)?)));
        match checked {
            Ok(ok) => Some(ok),
            Err(r) => {
                let payload = if r.header_only {
                    json!({"ean": ean, "meter_id": raw.get("meter_id"),
                        "query_date": query_date, "unit": raw.get("unit"), "readings": "left out"})
                    .to_string()
                } else {
                    raw.to_string()
                };
                self.reject(out, (kind, seq), ean, r.reason, r.detail, payload);
                None
            }
        }
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
        let (date, unit) = self.check_object(out, (kind, seq), raw, obj.header())?;
        Some((obj, date, unit))
    }

    /// One item's time and registers in Wh, or why it is refused. `seen` holds the times of
    /// the object's items before it.
    fn check_item(
        &self,
        item: &impl ItemFields,
        (date, unit): (NaiveDate, EnergyUnit),
        seen: &mut HashSet<DateTime<Utc>>,
        meter_id: &str,
    ) -> Result<(DateTime<Utc>, i64, i64), Refusal> {
        let Some(t) = item.time() else {
            let detail = format!(
                "t `{}` is not an RFC 3339 time with offset",
                item.time_text()
            );
            return Err(Refusal::new("bad_time", detail));
        };
        if !is_quarter_hour(t) {
            let detail = format!("t {} is not on a quarter-hour", item.time_text());
            return Err(Refusal::new("not_quarter_hour", detail));
        }
        if t > self.now {
            let detail = format!("t {} lies in the future", item.time_text());
            return Err(Refusal::new("future_time", detail));
        }
        if local_date_of_interval_end(t, self.tz) != date {
            let detail = format!(
                "t {} does not close a quarter-hour of {date}",
                item.time_text()
            );
            return Err(Refusal::new("outside_day", detail));
        }
        let (r180, r280) = item.registers();
        let import = r180.and_then(|v| register_to_wh(v, unit));
        let export = r280.and_then(|v| register_to_wh(v, unit));
        let (Some(import_wh), Some(export_wh)) = (import, export) else {
            let (r180, r280) = item.registers_text();
            let detail = format!("r180 {r180} / r280 {r280} must be non-negative numbers");
            return Err(Refusal::new("bad_value", detail));
        };
        if !QUALITIES.contains(&item.quality()) {
            let detail = format!(
                "quality `{}` is not one of {}",
                item.quality(),
                QUALITIES.join(", ")
            );
            return Err(Refusal::new("bad_quality", detail));
        }
        if !seen.insert(t) {
            let detail = format!("t {} appears twice for meter {meter_id}", item.time_text());
            return Err(Refusal::new("duplicate_time", detail));
        }
        Ok((t, import_wh, export_wh))
    }

    /// The rows of an interval object's items. A refused item goes to `refused`, which says
    /// whether to go on (`false`: no rows at all).
    fn interval_rows<'i, I: ItemFields>(
        &self,
        (ean, meter_id): (&str, &str),
        items: &'i [I],
        (date, unit, seq): (NaiveDate, EnergyUnit, i64),
        mut refused: impl FnMut(&'i I, Refusal) -> bool,
    ) -> Option<Vec<GridReading>> {
        let mut rows = Vec::with_capacity(items.len());
        let mut seen = HashSet::with_capacity(items.len());
        // Shared by the object's rows: one allocation per text and object, not per reading.
        let (ean_text, meter_text): (Arc<str>, Arc<str>) = (ean.into(), meter_id.into());
        let cursor: Arc<str> = self.cursor.as_str().into();
        let mut quality: Option<Arc<str>> = None;
        for item in items {
            let (t, import_wh, export_wh) =
                match self.check_item(item, (date, unit), &mut seen, meter_id) {
                    Ok(ok) => ok,
                    Err(r) => match refused(item, r) {
                        true => continue,
                        false => return None,
                    },
                };
            let quality = match &quality {
                Some(q) if **q == *item.quality() => q.clone(),
                _ => quality.insert(item.quality().into()).clone(),
            };
            rows.push(GridReading {
                ean: ean_text.clone(),
                meter_id: meter_text.clone(),
                t_us: t.timestamp_micros(),
                import_wh,
                export_wh,
                quality,
                received_at_us: self.received_at.timestamp_micros(),
                delivery_seq: seq,
                cursor: cursor.clone(),
                date,
            });
        }
        Some(rows)
    }

    pub fn interval(&self, raw: &Value, seq: i64, out: &mut Received) {
        let kind = ObjectKind::Interval;
        let Some((obj, date, unit)) = self.admit::<IntervalObject>(raw, kind, seq, out) else {
            return;
        };
        let mut refused = Vec::new();
        let rows = self.interval_rows(
            (&obj.ean, &obj.meter_id),
            &obj.items,
            (date, unit, seq),
            |item, r| {
                refused.push((item, r));
                true
            },
        );
        for (item, r) in refused {
            let payload = json!({"ean": obj.ean, "meter_id": obj.meter_id,
                "query_date": obj.query_date, "unit": obj.unit, "item": item});
            self.reject(
                out,
                (kind, seq),
                &obj.ean,
                r.reason,
                r.detail,
                payload.to_string(),
            );
        }
        out.reading_objects.push(rows.unwrap_or_default());
    }

    /// A day object's row, or why it is refused.
    fn day_row(
        &self,
        obj: DayObject,
        (date, unit, seq): (NaiveDate, EnergyUnit, i64),
    ) -> Result<GridDay, Refusal> {
        let regs: Vec<Option<i64>> = [&obj.r181, &obj.r182, &obj.r281, &obj.r282]
            .iter()
            .map(|v| v.as_f64().and_then(|x| register_to_wh(x, unit)))
            .collect();
        let [Some(i1), Some(i2), Some(e1), Some(e2)] = regs[..] else {
            let detail = "r181/r182/r281/r282 must be non-negative numbers".to_string();
            return Err(Refusal::new("bad_value", detail));
        };
        Ok(GridDay {
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
        })
    }

    pub fn day(&self, raw: &Value, seq: i64, out: &mut Received) {
        let kind = ObjectKind::Day;
        let Some((obj, date, unit)) = self.admit::<DayObject>(raw, kind, seq, out) else {
            return;
        };
        let ean = obj.ean.clone();
        match self.day_row(obj, (date, unit, seq)) {
            Ok(row) => out.days.push(row),
            Err(r) => self.reject(out, (kind, seq), &ean, r.reason, r.detail, raw.to_string()),
        }
    }

    /// Feeds a delivery's objects (a page or a history response read as values), in their
    /// received order, through the checks, numbering them on from `seq`.
    pub fn values(&self, seq: &mut i64, sets: [(&[Value], ObjectKind); 3]) -> Received {
        let mut out = Received::default();
        for (objects, kind) in sets {
            for raw in objects {
                if self.is_erased(raw) {
                    out.left_out_erased += 1;
                    *seq += 1;
                    continue;
                }
                match kind {
                    ObjectKind::Interval => self.interval(raw, *seq, &mut out),
                    ObjectKind::Day => self.day(raw, *seq, &mut out),
                    ObjectKind::Rejection => self.rejection(raw, *seq, &mut out),
                }
                *seq += 1;
            }
        }
        out
    }

    /// The rows of a page parsed typed, numbering its objects on from `seq`; `None` (and `seq`
    /// untouched) when any interval or day object would be refused: the caller then validates
    /// the page as values, which records each refusal with its payload. Otherwise the rows are
    /// those [`Self::values`] gives.
    pub fn typed_page(&self, page: &TypedBulkPage, seq: &mut i64) -> Option<Received> {
        let mut out = Received::default();
        let mut next = *seq;
        let erased = |ean: &str| self.erased.is_some_and(|e| e.contains(ean.trim()));
        for obj in &page.intervals {
            if erased(&obj.ean) {
                out.left_out_erased += 1;
            } else {
                let date = self.object_date(&obj.ean, &obj.query_date).ok()?;
                let unit = Self::unit_of(&obj.unit).ok()?;
                let rows = self.interval_rows(
                    (&obj.ean, &obj.meter_id),
                    &obj.items,
                    (date, unit, next),
                    |_, _| false,
                )?;
                out.reading_objects.push(rows);
            }
            next += 1;
        }
        for obj in &page.days {
            if erased(&obj.ean) {
                out.left_out_erased += 1;
            } else {
                let date = self.object_date(&obj.ean, &obj.query_date).ok()?;
                let unit = Self::unit_of(&obj.unit).ok()?;
                let row = self.day_row(obj.clone().into(), (date, unit, next));
                out.days.push(row.ok()?);
            }
            next += 1;
        }
        for raw in &page.rejections {
            if self.is_erased(raw) {
                out.left_out_erased += 1;
            } else {
                self.rejection(raw, next, &mut out);
            }
            next += 1;
        }
        *seq = next;
        Some(out)
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::fake::synth;
    use crate::sources::grid::api::RawBulkPage;

    const TZ: Tz = chrono_tz::Europe::Amsterdam;

    /// A page of 4 connections × 2 days as the fake service sends it, with `edit` applied to
    /// its JSON, and the validator's registry.
    fn page(edit: impl Fn(&mut Value)) -> (String, Registry, Vec<String>) {
        let (registry, mut meters) = synth::cooperative(4);
        let (mut intervals, mut days) = (Vec::new(), Vec::new());
        for date in synth::dates_ending(NaiveDate::from_ymd_opt(2026, 3, 29).unwrap(), 2) {
            for m in meters.iter_mut() {
                days.push(synth::day_registers(m, date));
                intervals.push(synth::day_intervals(m, date, TZ, 7));
            }
        }
        let eans = meters.iter().map(|m| m.ean.clone()).collect::<Vec<_>>();
        let rejection = json!({"ean": eans[3], "query_date": "2026-03-28", "code": "NO_DATA", "text": "meter offline"});
        let mut page = json!({"next_cursor": "c-2", "has_more": false, "intervals": intervals,
            "days": days, "rejections": [rejection]});
        edit(&mut page);
        (page.to_string(), registry, eans)
    }

    fn validator<'a>(registry: &'a Registry, erased: &'a Erased) -> Validator<'a> {
        let now = Utc.with_ymd_and_hms(2026, 3, 30, 8, 0, 0).unwrap();
        Validator {
            registry,
            now,
            tz: TZ,
            received_at: now,
            cursor: "c-1".into(),
            days_before_member: 30,
            erased: Some(erased),
        }
    }

    fn as_values(v: &Validator, text: &str, seq: &mut i64) -> Received {
        let raw: RawBulkPage = serde_json::from_str(text).unwrap();
        v.values(
            seq,
            [
                (&raw.intervals, ObjectKind::Interval),
                (&raw.days, ObjectKind::Day),
                (&raw.rejections, ObjectKind::Rejection),
            ],
        )
    }

    /// The typed path gives the rows, rejections, counts and numbering the values path gives:
    /// over a DST day (92 quarter-hours), with an erased participant, a service rejection, an
    /// item of another quality and an object in Wh.
    #[test]
    fn a_page_read_typed_gives_what_it_gives_read_as_values() {
        let (text, registry, eans) = page(|p| {
            p["intervals"][0]["items"][5]["quality"] = json!("estimated");
            p["intervals"][1]["unit"] = json!("Wh");
            for item in p["intervals"][1]["items"].as_array_mut().unwrap() {
                for r in ["r180", "r280"] {
                    item[r] = json!((item[r].as_f64().unwrap() * 1000.0).round());
                }
            }
        });
        let mut erased = Erased::default();
        erased.add(&eans[2]);
        let v = validator(&registry, &erased);
        let parsed: TypedBulkPage = serde_json::from_str(&text).unwrap();
        let (mut seq_typed, mut seq_values) = (100, 100);
        let typed = v
            .typed_page(&parsed, &mut seq_typed)
            .expect("nothing refused");
        let values = as_values(&v, &text, &mut seq_values);
        // 8 interval, 8 day and 1 rejection objects; 2 + 2 of them about the erased one.
        assert_eq!((seq_typed, seq_values), (117, 117));
        assert_eq!(typed.left_out_erased, 4);
        // 2026-03-29 is the spring-forward day: 92 quarter-hours, the day before 96.
        assert_eq!(typed.reading_count(), 3 * (92 + 96));
        assert_eq!(typed.days.len(), 6);
        assert_eq!(typed.rejected.len(), 1);
        assert_eq!(typed.rejected[0].reason, "service_no_data");
        assert_eq!(&*typed.reading_objects[0][5].quality, "estimated");
        assert_eq!(format!("{typed:?}"), format!("{values:?}"));
        // The object sent in Wh gives the Wh the same object gives in kWh.
        let (kwh_text, ..) = page(|_| {});
        let kwh: TypedBulkPage = serde_json::from_str(&kwh_text).unwrap();
        let kwh = v.typed_page(&kwh, &mut 0).expect("nothing refused");
        let wh = |r: &Received| -> Vec<(i64, i64)> {
            r.reading_objects[1]
                .iter()
                .map(|g| (g.import_wh, g.export_wh))
                .collect()
        };
        assert_eq!(wh(&typed).len(), 96);
        assert_eq!(wh(&typed), wh(&kwh));
    }

    /// Objects sent as arrays (serde reads them in field order) read the same both ways, and
    /// an erased participant's are left out in that form too, however the EAN is padded.
    #[test]
    fn objects_sent_as_arrays_read_the_same_both_ways() {
        const INTERVAL: [&str; 5] = ["ean", "meter_id", "query_date", "unit", "items"];
        const DAY: [&str; 8] = [
            "ean",
            "meter_id",
            "query_date",
            "unit",
            "r181",
            "r182",
            "r281",
            "r282",
        ];
        let as_array = |o: &mut Value, fields: &[&str]| {
            *o = Value::Array(fields.iter().map(|f| o[*f].clone()).collect());
        };
        // Objects 0 and 4 of each list are meter 0's (erased), 1 is meter 1's.
        let (text, registry, eans) = page(|p| {
            let padded = format!(" {} ", p["intervals"][0]["ean"].as_str().unwrap());
            p["intervals"][0]["ean"] = json!(padded);
            as_array(&mut p["intervals"][0], &INTERVAL);
            as_array(&mut p["days"][4], &DAY);
            as_array(&mut p["intervals"][1], &INTERVAL);
        });
        assert!(text.contains(&format!("[\" {} \"", eans[0])));
        let mut erased = Erased::default();
        erased.add(&eans[0]);
        let v = validator(&registry, &erased);
        let parsed: TypedBulkPage = serde_json::from_str(&text).unwrap();
        let typed = v.typed_page(&parsed, &mut 0).expect("nothing refused");
        let values = as_values(&v, &text, &mut 0);
        assert_eq!(typed.left_out_erased, 4);
        assert_eq!(typed.reading_count(), 3 * (96 + 92));
        assert_eq!(typed.reading_objects[0].len(), 96);
        assert_eq!(&*typed.reading_objects[0][0].ean, eans[1]);
        assert_eq!(format!("{typed:?}"), format!("{values:?}"));
    }

    /// An erased participant's EAN is kept in no rejection, whatever field it comes in: an
    /// object that names it under another key is left out, not stored as malformed; another
    /// connection's rejection that mentions it is kept with the EAN redacted.
    #[test]
    fn a_rejection_naming_an_erased_ean_is_left_out() {
        let (text, registry, eans) = page(|p| {
            let obj = p["intervals"][0].as_object_mut().unwrap();
            let ean = obj.remove("ean").unwrap();
            obj.insert("EAN".into(), ean.clone());
            p["rejections"][0] = json!({"EAN": ean, "query_date": "2026-03-28", "code": "NO_DATA"});
            // Another connection's rejection that mentions them keeps its row, without them.
            let text = format!("meter moved from {}", ean.as_str().unwrap());
            let other = json!({"ean": p["intervals"][1]["ean"], "query_date": "2026-03-28",
                "code": "NO_DATA", "text": text});
            p["rejections"].as_array_mut().unwrap().push(other);
        });
        let mut erased = Erased::default();
        erased.add(&eans[0]);
        let v = validator(&registry, &erased);
        let values = as_values(&v, &text, &mut 0);
        let named = |r: &Rejected| {
            [&r.key, &r.detail, &r.payload]
                .iter()
                .any(|t| t.contains(&eans[0]))
        };
        assert_eq!(values.rejected.iter().filter(|r| named(r)).count(), 0);
        assert_eq!(values.rejected.len(), 1);
        assert_eq!(values.rejected[0].key, eans[1]);
        let expected = format!(
            "grid operator could not deliver 2026-03-28 for {}: meter moved from [erased]",
            eans[1]
        );
        assert_eq!(values.rejected[0].detail, expected);
        assert!(values.rejected[0]
            .payload
            .contains("meter moved from [erased]"));
        // Meter 0's other interval and two day objects, and the two under another key.
        assert_eq!(values.left_out_erased, 5);
        assert_eq!(values.reading_count(), 3 * (96 + 92));
    }

    /// One refused item makes the typed path give up (numbering untouched): the values path
    /// then keeps that item as a rejection and the object's other rows.
    #[test]
    fn a_refused_item_sends_the_page_to_the_values_path() {
        let (text, registry, _) = page(|p| {
            p["intervals"][0]["items"][7]["t"] = json!("2026-03-28T23:55:00+01:00");
        });
        let erased = Erased::default();
        let v = validator(&registry, &erased);
        let page: TypedBulkPage = serde_json::from_str(&text).unwrap();
        let mut seq = 100;
        assert!(v.typed_page(&page, &mut seq).is_none());
        assert_eq!(seq, 100);
        let values = as_values(&v, &text, &mut seq);
        assert_eq!(values.rejected.len(), 2);
        assert_eq!(values.rejected[0].reason, "not_quarter_hour");
        assert_eq!(values.reading_objects[0].len(), 95);
        assert_eq!(values.reading_count(), 4 * (92 + 96) - 1);
    }

    /// What the typed parse does not take (a quality it does not know or in serde's enum
    /// form, a register as text, a time without offset, a field the contract does not name)
    /// fails it, so the page is read as values: refused there, or (an unknown field) ignored.
    #[test]
    fn what_does_not_fit_the_typed_objects_fails_their_parse() {
        type Edit = (&'static str, fn(&mut Value));
        let edits: [Edit; 7] = [
            ("quality", |p| {
                p["intervals"][2]["items"][0]["quality"] = json!("Measured")
            }),
            ("enum form", |p| {
                p["intervals"][2]["items"][0]["quality"] = json!({"estimated": null})
            }),
            ("r180", |p| {
                p["intervals"][2]["items"][0]["r180"] = json!("12.5")
            }),
            ("t", |p| {
                p["intervals"][2]["items"][0]["t"] = json!("2026-03-28T01:00:00")
            }),
            ("item field", |p| {
                p["intervals"][2]["items"][0]["note"] = json!(1)
            }),
            ("day field", |p| p["days"][1]["note"] = json!("x")),
            ("page field", |p| p["note"] = json!([])),
        ];
        let erased = Erased::default();
        for (what, edit) in edits {
            let (text, registry, _) = page(edit);
            assert!(
                serde_json::from_str::<TypedBulkPage>(&text).is_err(),
                "{what}"
            );
            let v = validator(&registry, &erased);
            let values = as_values(&v, &text, &mut 0);
            // Each edit but the unknown fields refuses one thing (an item; the whole object
            // when its quality is not even text); every other reading is kept.
            let refused = usize::from(!what.ends_with("field"));
            assert_eq!(values.rejected.len(), 1 + refused, "{what}");
            let expected = 4 * (92 + 96) - if what == "enum form" { 96 } else { refused };
            assert_eq!(values.reading_count(), expected, "{what}");
        }
    }
}
