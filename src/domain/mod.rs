//! Domain types shared by every stage: EANs, energy, quarter-hours and local days.
pub mod ean;
pub mod energy;
pub mod time;

pub use ean::Ean;
pub use energy::Wh;
