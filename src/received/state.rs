//! The sources' bookkeeping in `_state/`, published with the rows it covers: where each source
//! goes on from, and what the reports and `vaten status` show about the sources. It lives with
//! the received data (not with the sources) so that readers never depend on a source's code.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `_state/grid.json`.
pub const GRID_STATE: &str = "grid";
/// `_state/installations.json`.
pub const INSTALLATIONS_STATE: &str = "installations";

/// The grid source's bookkeeping in `_state/grid.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct GridState {
    /// Cursor of the next bulk page; `None` before the first page.
    pub cursor: Option<String>,
    /// Next `delivery_seq` to hand out.
    pub next_delivery_seq: i64,
    /// When the bulk feed was last drained completely.
    pub last_success_at: Option<DateTime<Utc>>,
}

/// Per-installation bookkeeping in `_state/installations.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct InstallationState {
    /// The last seq stored.
    pub after: u64,
    /// The last accepted reading's registers, for the "backwards" check across runs.
    pub last: Option<LastReading>,
    /// Since when the installation has not answered (cleared when it does).
    pub offline_since: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LastReading {
    pub p_meter: String,
    pub p_wh: u64,
    pub battery_charge_wh: u64,
    pub battery_discharge_wh: u64,
}

pub type InstallationsState = BTreeMap<String, InstallationState>;
