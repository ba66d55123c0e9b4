//! The wire format of `docs/interfaces/grid-operator.md`, shared by the client and the
//! fake server. The client parses a page's envelope first and each object on its own, so one
//! object that does not fit is rejected without losing the rest of the page. (Objects are
//! `serde_json::Value`s: `RawValue` would need serde_json's `raw_value` feature, which
//! rebuilds all of Polars.)

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A page of the bulk feed, objects still untyped.
#[derive(Debug, Deserialize)]
pub struct RawBulkPage {
    pub next_cursor: String,
    pub has_more: bool,
    pub intervals: Vec<Value>,
    pub days: Vec<Value>,
    pub rejections: Vec<Value>,
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
