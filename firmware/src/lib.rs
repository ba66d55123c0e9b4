//! Firmware of a vaten installation: the voltage-responsive charger controller
//! ([`controller`]), its P1 smart-meter reader ([`p1`]) and its readings log ([`readings`]).
//!
//! Unconditionally `no_std` outside tests; no allocation; no panics on any input (parsing
//! paths use checked access only). Control math is `f32` (the Cortex-M4F has a
//! single-precision FPU); energy registers are `u64` Wh (an `f32` cannot hold 52,185 kWh to
//! the Wh). Configuration is kept apart from state: `config.step(&mut state, inputs)`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod controller;
pub mod p1;
pub mod readings;

#[cfg(test)]
mod tests;
