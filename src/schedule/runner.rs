//! `vaten schedule`: the long-running loop around [`Core`].
//!
//! tokio-cron-scheduler is the timer: for the core's next wake-up it gets a one-shot job at
//! that instant, which only sends a message (it rounds the delay down to whole seconds; the
//! rest is slept here). The fire times themselves come from
//! [`super::cron`] (local time, right across DST), and catch-up, overlap and retries from
//! [`Core`]: the library does none of those right on its own. Jobs run on their own OS thread
//! (Polars work never runs on the async runtime); one at a time, as they share the lake's lock.
//! SIGINT/SIGTERM: no new jobs; a running job gets `grace_s` to finish; if it does not, the
//! process exits anyway: the lake's journal leaves it as before or as after that job.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use polars::prelude::*;
use tokio::sync::mpsc;
use tokio_cron_scheduler::{Job, JobScheduler};

use super::core::{Core, Decision};
use super::definition::{JobDef, Task};
use crate::commands::{self, Context};
use crate::error::{Error, Result};
use crate::lake::runs::RunRecord;
use crate::lake::schema::RUNS;
use crate::lake::Lake;

enum Msg {
    Wake,
    Finished { ok: bool },
    Stop(&'static str),
}

/// Runs one job's task through the same code as the command line (each records its run).
pub fn run_task(ctx: &Context, task: Task) -> Result<()> {
    match task {
        Task::IngestGrid => ctx
            .grid_key()
            .and_then(|key| commands::ingest_grid(ctx, key))
            .map(drop),
        Task::IngestInstallations => commands::ingest_installations(ctx).map(drop),
        Task::Transform => commands::transform(ctx, crate::intervals::Scope::Incremental).map(drop),
        Task::ReportNightly => commands::report_nightly(ctx, commands::yesterday(ctx)).map(drop),
        Task::ReportYearly => {
            // The last year that has ended (the job runs early in January).
            let today = crate::domain::time::local_date(ctx.clock.now(), ctx.config.tz());
            commands::report_yearly(ctx, chrono::Datelike::year(&today) - 1).map(drop)
        }
    }
}

/// Per `_runs` job: the start of its last successful (ok or warning) run.
pub fn last_successes(lake: &Lake) -> Result<HashMap<String, DateTime<Utc>>> {
    let Some(lf) = lake.scan(&RUNS)? else {
        return Ok(HashMap::new());
    };
    let df = lf
        .filter(
            col("status")
                .eq(lit("ok"))
                .or(col("status").eq(lit("warning"))),
        )
        .group_by([col("job")])
        .agg([col("started_at").cast(DataType::Int64).max()])
        .collect()?;
    let jobs = df.column("job")?.str()?.clone();
    let started = df.column("started_at")?.i64()?.clone();
    Ok((0..df.height())
        .filter_map(|i| {
            Some((
                jobs.get(i)?.to_string(),
                crate::domain::time::from_micros(started.get(i)?),
            ))
        })
        .collect())
}

fn record_skip(ctx: &Context, job: &JobDef, why: &str) {
    let now = ctx.clock.now();
    let record = RunRecord {
        run_id: crate::lake::txn::new_txid(),
        job: job.task.name().to_string(),
        started_at: now,
        finished_at: now,
        status: "skipped".into(),
        rows_in: 0,
        rows_out: 0,
        message: format!("{} (pipeline job `{}`)", why, job.name),
    };
    let written = Lake::open_for_write(
        &ctx.config.lake,
        "schedule",
        Duration::from_secs_f64(ctx.config.lock_wait_s.max(0.0)),
    )
    .and_then(|lake| lake.record_run(&record));
    if let Err(e) = written {
        tracing::warn!("could not record the skipped firing of {}: {e}", job.name);
    }
}

/// Runs the pipeline until SIGINT or SIGTERM.
pub fn schedule(ctx: Context, jobs: Vec<JobDef>, grace: Duration) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let ctx = Arc::new(ctx);
    // Polars work (reading `_runs`) stays off the runtime's threads.
    let last = last_successes(&Lake::open_read(&ctx.config.lake))?;
    rt.block_on(async move {
        let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
        for (kind, name) in [
            (tokio::signal::unix::SignalKind::terminate(), "SIGTERM"),
            (tokio::signal::unix::SignalKind::interrupt(), "SIGINT"),
        ] {
            let mut sig = tokio::signal::unix::signal(kind)?;
            let tx = tx.clone();
            tokio::spawn(async move {
                if sig.recv().await.is_some() {
                    let _ = tx.send(Msg::Stop(name));
                }
            });
        }
        let timer = JobScheduler::new().await.map_err(sched_err)?;
        timer.start().await.map_err(sched_err)?;
        let mut core = Core::new(jobs, &last, ctx.clock.now());
        let mut armed: Option<DateTime<Utc>> = None;
        let mut skips: Vec<(JobDef, String)> = Vec::new();
        tracing::info!("schedule: {} jobs; waiting for their times", core.job_count());
        loop {
            let now = ctx.clock.now();
            for d in core.step(now) {
                match d {
                    Decision::Start { job, attempt } => {
                        let def = core.job(job).clone();
                        tracing::info!(job = %def.name, attempt, "starting");
                        let (ctx, tx) = (ctx.clone(), tx.clone());
                        std::thread::spawn(move || {
                            let result = run_task(&ctx, def.task);
                            if let Err(e) = &result {
                                tracing::error!(job = %def.name, attempt, "failed: {e}");
                            }
                            let _ = tx.send(Msg::Finished { ok: result.is_ok() });
                        });
                    }
                    Decision::Skip { job, why } => {
                        tracing::warn!(job = %core.job(job).name, "{why}");
                        skips.push((core.job(job).clone(), why));
                    }
                }
            }
            // Skipped firings are recorded once the lake's lock is free.
            if core.running().is_none() {
                for (job, why) in skips.drain(..) {
                    let ctx = ctx.clone();
                    tokio::task::spawn_blocking(move || record_skip(&ctx, &job, &why))
                        .await
                        .map_err(|e| Error::Usage(format!("schedule: {e}")))?;
                }
            }
            if let Some(wake) = core.next_wake() {
                if armed != Some(wake) {
                    let wait = (wake - ctx.clock.now()).to_std().unwrap_or_default();
                    let tx = tx.clone();
                    let job = Job::new_one_shot_at_instant(std::time::Instant::now() + wait, move |_, _| {
                        let _ = tx.send(Msg::Wake);
                    })
                    .map_err(sched_err)?;
                    timer.add(job).await.map_err(sched_err)?;
                    armed = Some(wake);
                }
            }
            match rx.recv().await {
                Some(Msg::Wake) => {
                    // The library truncates a one-shot's delay to whole seconds, so it may
                    // fire up to a second early: sleep the rest here.
                    if let Some(early) = armed.and_then(|w| (w - ctx.clock.now()).to_std().ok()) {
                        tokio::time::sleep(early).await;
                    }
                }
                Some(Msg::Finished { ok }) => core.finished(ok, ctx.clock.now()),
                Some(Msg::Stop(signal)) => {
                    tracing::info!("{signal}: no new jobs");
                    core.stop();
                    break;
                }
                None => {
                    core.stop();
                    break;
                }
            }
        }
        if let Some(job) = core.running() {
            let name = core.job(job).name.clone();
            tracing::info!(job = %name, "waiting up to {:.0} s for the running job", grace.as_secs_f64());
            let ended = tokio::time::timeout(grace, async {
                while let Some(m) = rx.recv().await {
                    if matches!(m, Msg::Finished { .. }) {
                        return;
                    }
                }
            })
            .await;
            if ended.is_err() {
                tracing::warn!(job = %name, "did not finish within the grace period: abandoned (the lake stays as before it)");
                std::process::exit(0);
            }
        }
        tracing::info!("schedule stopped");
        Ok(())
    })
}

fn sched_err(e: tokio_cron_scheduler::JobSchedulerError) -> Error {
    Error::Usage(format!("scheduler: {e}"))
}
