//! The one integration-test binary (each test binary links Polars: minutes each).
mod common;
mod demo;
mod feeds;
mod grid_ingest;
mod incremental;
mod independent_reader;
mod installations;
mod intervals;
mod p1_decode;
mod query;
mod real_data;
mod reports;
mod robustness;
mod schedule;
mod usage;
