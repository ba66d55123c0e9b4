//! Marts: tables for people, aggregated from `intervals`.
pub mod daily;
