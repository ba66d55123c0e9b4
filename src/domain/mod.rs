//! Domain types shared by every stage: EANs, energy, quarter-hours and local days, the
//! sun's daylight shape.
pub mod ean;
pub mod energy;
pub mod sun;
pub mod time;

pub use ean::Ean;
pub use energy::Wh;
