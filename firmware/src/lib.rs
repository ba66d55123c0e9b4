//! Firmware of a vaten installation: the voltage-responsive charger controller, its P1
//! (smart-meter port) reader and its readings log. Unconditionally `no_std` outside tests.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
