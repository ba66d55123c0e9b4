//! The wire format of `docs/interfaces/grid-operator.md`, shared by the client and the
//! fake server. A page is parsed two ways:
//! - first straight into typed objects ([`TypedBulkPage`]: no JSON value per reading, the
//!   quarter-hour's time parsed while reading), which is how nearly every page arrives;
//! - when that fails, or when any of its objects is refused, as JSON values ([`RawBulkPage`]),
//!   each object on its own, so one object that does not fit is rejected with its payload
//!   without losing the rest of the page.
//!
//! Both give the same rows (see `Validator::typed_page`). A refused object's payload is the
//! value written back by serde_json (`raw_value`, which axum already enables, could keep the
//! exact text; not used yet).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::domain::time::parse_rfc3339_utc;

/// A page of the bulk feed, objects still untyped.
#[derive(Debug, Deserialize)]
pub struct RawBulkPage {
    pub next_cursor: String,
    pub has_more: bool,
    pub intervals: Vec<Value>,
    pub days: Vec<Value>,
    pub rejections: Vec<Value>,
}

/// A page of the bulk feed whose interval and day objects all parsed as the contract says.
/// The typed objects take no field they do not know: serde skips an unknown field without the
/// checks a JSON value gets (UTF-8, depth, number range), so a page with one is read as values.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypedBulkPage {
    pub next_cursor: String,
    pub has_more: bool,
    pub intervals: Vec<TypedInterval>,
    pub days: Vec<TypedDay>,
    /// Always rejected rows, whose payload is the object as received.
    pub rejections: Vec<Value>,
}

/// An interval object whose items all carry a valid time, numeric registers and a known
/// quality (anything else fails the typed parse, and the page is read as values).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypedInterval {
    pub ean: String,
    pub meter_id: String,
    pub query_date: String,
    pub unit: String,
    pub items: Vec<TypedItem>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypedItem {
    #[serde(deserialize_with = "rfc3339")]
    pub t: DateTime<Utc>,
    pub r180: f64,
    pub r280: f64,
    #[serde(default, deserialize_with = "quality")]
    pub quality: Quality,
}

/// A day object with no field the contract does not name (see [`TypedBulkPage`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypedDay {
    pub ean: String,
    pub meter_id: String,
    pub query_date: String,
    pub unit: String,
    pub r181: Value,
    pub r182: Value,
    pub r281: Value,
    pub r282: Value,
}

impl From<TypedDay> for DayObject {
    fn from(d: TypedDay) -> Self {
        DayObject {
            ean: d.ean,
            meter_id: d.meter_id,
            query_date: d.query_date,
            unit: d.unit,
            r181: d.r181,
            r182: d.r182,
            r281: d.r281,
            r282: d.r282,
        }
    }
}

/// The qualities the contract knows (`validate::QUALITIES`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Quality {
    #[default]
    Measured,
    Estimated,
    Derived,
}

impl Quality {
    pub fn name(self) -> &'static str {
        match self {
            Quality::Measured => "measured",
            Quality::Estimated => "estimated",
            Quality::Derived => "derived",
        }
    }
}

/// A quality, only as one of the three texts (serde's enum form would also take
/// `{"estimated": null}`, which the values path refuses).
fn quality<'de, D: Deserializer<'de>>(d: D) -> Result<Quality, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = Quality;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("measured, estimated or derived")
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
            match s {
                "measured" => Ok(Quality::Measured),
                "estimated" => Ok(Quality::Estimated),
                "derived" => Ok(Quality::Derived),
                _ => Err(E::custom("not a quality the contract knows")),
            }
        }
    }
    d.deserialize_str(Visitor)
}

/// An RFC 3339 time with offset, as `validate` reads `t`.
fn rfc3339<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = DateTime<Utc>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an RFC 3339 time with offset")
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
            parse_rfc3339_utc(s).ok_or_else(|| E::custom("not an RFC 3339 time with offset"))
        }
    }
    d.deserialize_str(Visitor)
}

/// A response of the history endpoint, objects still untyped.
#[derive(Debug, Deserialize)]
pub struct RawHistory {
    pub intervals: Vec<Value>,
    pub days: Vec<Value>,
    pub rejections: Vec<Value>,
}

/// Quarter-hour registers of one EAN and meter for one local day.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IntervalObject {
    pub ean: String,
    pub meter_id: String,
    pub query_date: String,
    pub unit: String,
    pub items: Vec<Item>,
}

/// One quarter-hour: `t` is its end; registers are kept as JSON values so that a value that
/// is not a number is rejected item by item instead of failing the object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Item {
    pub t: String,
    pub r180: Value,
    pub r280: Value,
    #[serde(default = "measured")]
    pub quality: String,
}

fn measured() -> String {
    "measured".into()
}

/// Tariff registers at 00:00 local at the start of `query_date`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DayObject {
    pub ean: String,
    pub meter_id: String,
    pub query_date: String,
    pub unit: String,
    pub r181: Value,
    pub r182: Value,
    pub r281: Value,
    pub r282: Value,
}

/// The service could not deliver an EAN/day.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RejectionObject {
    pub ean: String,
    pub query_date: String,
    pub code: String,
    #[serde(default)]
    pub text: String,
}

/// The three kinds of object a page carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Interval,
    Day,
    Rejection,
}

impl ObjectKind {
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Interval => "interval",
            ObjectKind::Day => "day",
            ObjectKind::Rejection => "rejection",
        }
    }
}
