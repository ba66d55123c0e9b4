//! Local stand-ins for the outside world, following the contracts: used by the tests, the
//! benchmarks and `vaten demo`. They listen on 127.0.0.1 only.
pub mod grid_operator;
pub mod installations;
pub mod synth;

pub use grid_operator::{FakeGridOperator, Fault, FeedEntry, Retention};
pub use installations::{Behaviour, FakeInstallations};
