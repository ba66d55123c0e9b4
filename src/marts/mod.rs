//! Marts: tables for people, aggregated from `intervals`.
pub mod cable;
pub mod daily;
pub mod rates;
pub mod tax;
pub mod vat;
pub mod yearly;
