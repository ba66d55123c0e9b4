//! The received tables (`grid_readings`, `grid_days`, `rejected`): data as delivered,
//! append-only. Sources turn what they fetch into these rows; this module stores them.
pub mod erased;
pub mod rows;
pub mod state;
pub mod store;

pub use rows::{GridDay, GridReading, InstallationGap, InstallationReading, Received, Rejected};
pub use store::{ReceivedIndex, StoreCounts};
