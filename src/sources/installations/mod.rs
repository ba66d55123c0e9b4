//! The installations: P, battery registers, state of charge and cable voltage from each
//! household's controller, over its own internet connection.
pub mod api;
pub mod fetch;
pub mod ingest;
pub mod pinning;
pub mod tokens;
pub mod transport;

pub use ingest::{ingest, InstallationState, PassReport};
