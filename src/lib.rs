//! vaten: the metering pipeline of a Dutch energy cooperative.
//!
//! Data flows one way: [`sources`] fetch from the grid operator (and, later, the
//! installations) → [`received`] tables in the [`lake`] → intervals → marts → reports.
//! [`commands`] wires the stages to the command line; [`fake`] holds the local servers that
//! tests and the demo talk to.

pub mod cli;
pub mod clock;
pub mod commands;
pub mod compact;
pub mod config;
pub mod demo;
pub mod domain;
pub mod erase;
pub mod error;
pub mod export;
pub mod fake;
pub mod feeders;
pub mod intervals;
pub mod lake;
pub mod marts;
pub mod outbox;
pub mod p1;
pub mod publish;
pub mod query;
pub mod received;
pub mod registry;
pub mod reports;
pub mod retain;
pub mod schedule;
pub mod simulation;
pub mod sources;
pub mod status;
#[cfg(zstd_pool)]
mod zstd_contexts;

pub use error::{Error, Result};
