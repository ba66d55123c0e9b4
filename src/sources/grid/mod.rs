//! The grid operator's smart-meter data API: L and T for every connection.
pub mod api;
pub mod client;
pub mod ingest;
pub mod validate;

pub use client::GridClient;
pub use ingest::{replay_rejected, GridIngest, GridState, IngestReport};
