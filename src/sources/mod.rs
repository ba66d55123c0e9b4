//! Sources: where data comes from. Each turns what it fetches into rows of the received tables.
pub mod exports;
pub mod grid;
pub mod http;
pub mod installations;
