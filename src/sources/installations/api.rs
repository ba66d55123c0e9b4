//! The wire format of `docs/interfaces/installation.md`, shared by the client and the
//! fake installations. Readings stay `serde_json::Value`s until checked one by one, so one bad
//! reading is rejected without losing the rest of the page.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A response of `GET {installation_url}/v1/readings`.
#[derive(Debug, Deserialize)]
pub struct RawPage {
    pub installation_id: String,
    pub ean: String,
    pub readings: Vec<Value>,
    pub next_after: u64,
    pub has_more: bool,
    #[serde(default)]
    pub gap: bool,
}

/// One quarter-hour reading.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reading {
    pub seq: u64,
    pub p_meter: String,
    pub t: String,
    pub p_wh: u64,
    pub battery_charge_wh: u64,
    pub battery_discharge_wh: u64,
    pub soc_pct: Option<f64>,
    pub voltage_avg_v: Option<f64>,
    pub voltage_min_v: Option<f64>,
    pub voltage_max_v: Option<f64>,
}

/// A reading as kept between fetching and checking: typed when it parsed (compact), the raw
/// JSON with the parse error when it did not (for `rejected`).
#[derive(Debug)]
pub enum Item {
    Parsed(Reading),
    Unparsed { raw: Value, error: String },
}

/// A page with its readings parsed as far as they go.
#[derive(Debug)]
pub struct Page {
    pub installation_id: String,
    pub ean: String,
    pub items: Vec<Item>,
    pub next_after: u64,
    pub has_more: bool,
    pub gap: bool,
}

impl From<RawPage> for Page {
    fn from(raw: RawPage) -> Self {
        let items = raw
            .readings
            .into_iter()
            .map(|v| match Reading::deserialize(&v) {
                Ok(r) => Item::Parsed(r),
                Err(e) => Item::Unparsed {
                    raw: v,
                    error: e.to_string(),
                },
            })
            .collect();
        Page {
            installation_id: raw.installation_id,
            ean: raw.ean,
            items,
            next_after: raw.next_after,
            has_more: raw.has_more,
            gap: raw.gap,
        }
    }
}
