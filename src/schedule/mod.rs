//! Scheduled jobs: the pipeline definitions of `pipelines/`, their fire times in local time,
//! and `vaten schedule` / `vaten run`.
pub mod core;
pub mod cron;
pub mod definition;
pub mod runner;

pub use definition::{load, JobDef, Task};
