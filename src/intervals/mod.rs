//! From received registers to quarter-hour energies: the `intervals` stage.
pub mod compute;
pub mod days;
pub mod derive;
pub mod load;
pub mod plan;
pub mod series;
pub mod shared;
pub mod spill;
pub mod spread;
pub mod units;
pub mod write;

pub use plan::Scope;
pub use write::{transform, TransformReport};
