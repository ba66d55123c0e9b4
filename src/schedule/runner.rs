//! `vaten schedule`: the long-running loop around [`Core`].
//!
//! tokio-cron-scheduler is the timer: for the core's next wake-up it gets a one-shot job at
//! that instant, which only sends a message (it rounds the delay down to whole seconds; the
//! rest is slept here). The fire times themselves come from
//! [`super::cron`] (local time, right across DST), and catch-up, overlap and retries from
//! [`Core`]: the library does none of those right on its own. Each job runs as a `vaten` process
//! of its own (the same command line an operator would type), watched from a thread: a job that
//! panics or hangs cannot take the scheduler with it. One at a time, as they share the lake's
//! lock. A job past its `timeout_s` is killed and recorded as failed; so is one that ends
//! abnormally; the next firing runs. SIGINT/SIGTERM: no new jobs; a running job gets `grace_s`
//! to finish, then it is killed: the lake's journal leaves it as before or as after that job.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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
        Task::Retain => commands::retain(ctx, false).map(drop),
        Task::Compact => commands::compact(ctx).map(drop),
        Task::Publish => commands::publish(ctx, None).map(drop),
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
    record(ctx, job, &crate::lake::txn::new_txid(), "skipped", now, why);
}

/// Records a run of `job` that the job could not record itself (skipped, killed, crashed),
/// under `run_id`: for a started job the id it was given, which rows it stored carry.
fn record(
    ctx: &Context,
    job: &JobDef,
    run_id: &str,
    status: &str,
    started_at: DateTime<Utc>,
    why: &str,
) {
    let record = RunRecord {
        run_id: run_id.to_string(),
        job: job.task.name().to_string(),
        started_at,
        finished_at: ctx.clock.now().max(started_at),
        status: status.into(),
        rows_in: 0,
        rows_out: 0,
        message: format!("{} (pipeline job `{}`)", why, job.name),
    };
    let written =
        Lake::open_configured(&ctx.config, "schedule").and_then(|lake| lake.record_run(&record));
    if let Err(e) = written {
        tracing::warn!("could not record the {status} run of {}: {e}", job.name);
    }
}

/// Whether `_runs` holds the run `run_id` (a job that ended normally recorded itself).
fn recorded(ctx: &Context, run_id: &str) -> bool {
    let lake = Lake::open_read(&ctx.config.lake);
    let Ok(Some(runs)) = lake.scan(&RUNS) else {
        return false;
    };
    runs.filter(col("run_id").eq(lit(run_id.to_string())))
        .collect()
        .is_ok_and(|df| df.height() > 0)
}

/// How the scheduler starts a job: this `vaten` binary with the arguments every job shares
/// (configuration, log format and level).
#[derive(Debug, Clone)]
pub struct JobCommand {
    pub exe: std::path::PathBuf,
    pub common: Vec<std::ffi::OsString>,
}

impl JobCommand {
    fn command(&self, ctx: &Context, task: Task) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.exe);
        cmd.args(&self.common);
        // A clock set with --now keeps running in the job from where the scheduler's stands.
        if let crate::clock::Clock::Offset(_) = ctx.clock {
            cmd.arg("--now").arg(ctx.clock.now().to_rfc3339());
            cmd.arg("--clock-running");
        }
        match task {
            Task::IngestGrid => cmd.args(["ingest", "grid"]),
            Task::IngestInstallations => cmd.args(["ingest", "installations"]),
            Task::Transform => cmd.arg("transform"),
            Task::Retain => cmd.arg("retain"),
            Task::Compact => cmd.arg("compact"),
            Task::Publish => cmd.arg("publish"),
            Task::ReportNightly => cmd.args(["report", "nightly"]),
            Task::ReportYearly => {
                // The last year that has ended (the job runs early in January).
                let today = crate::domain::time::local_date(ctx.clock.now(), ctx.config.tz());
                let year = chrono::Datelike::year(&today) - 1;
                cmd.args(["report", "yearly", "--year", &year.to_string()])
            }
        };
        cmd.stdin(std::process::Stdio::null());
        cmd
    }
}

/// Runs one attempt of `def` as a process, within its timeout; whether it succeeded. The
/// process records its own run in `_runs` when it ends normally (exit 0 or 1); anything else
/// is recorded here.
fn run_attempt(
    ctx: &Context,
    cmd: &JobCommand,
    def: &JobDef,
    running: &Mutex<Option<u32>>,
) -> bool {
    use std::os::unix::process::CommandExt;
    let started = ctx.clock.now();
    // The job's own run id: whether it recorded itself is then read from `_runs`.
    let run_id = crate::lake::txn::new_txid();
    let mut command = cmd.command(ctx, def.task);
    command.env("VATEN_RUN_ID", &run_id);
    // A process group of its own: a Ctrl-C or a service manager's SIGTERM to the scheduler's
    // group does not kill the job at once; the scheduler gives it `grace_s`.
    command.process_group(0);
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            record(
                ctx,
                def,
                &run_id,
                "failed",
                started,
                &format!("could not start the job's process: {e}"),
            );
            return false;
        }
    };
    if let Ok(mut r) = running.lock() {
        *r = Some(child.id());
    }
    let deadline = std::time::Instant::now() + Duration::from_secs_f64(def.timeout_s);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if std::time::Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(_) => break None,
        }
    };
    if let Ok(mut r) = running.lock() {
        *r = None;
    }
    match status.and_then(|s| s.code()) {
        Some(0) => true,
        Some(_) if recorded(ctx, &run_id) => false,
        _ if status.is_none() && recorded(ctx, &run_id) => false,
        _ if status.is_none() => {
            let why = format!("timed out after {} s and was ended", def.timeout_s);
            tracing::error!(job = %def.name, "{why}");
            record(ctx, def, &run_id, "failed", started, &why);
            false
        }
        _ => {
            let why = format!(
                "ended ({}) without recording its run; see the log",
                status.map_or("no status".into(), |s| s.to_string())
            );
            tracing::error!(job = %def.name, "{why}");
            record(ctx, def, &run_id, "failed", started, &why);
            false
        }
    }
}

/// Runs the pipeline until SIGINT or SIGTERM.
pub fn schedule(ctx: Context, jobs: Vec<JobDef>, grace: Duration, cmd: JobCommand) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let ctx = Arc::new(ctx);
    let cmd = Arc::new(cmd);
    // The process id of the job running now, to end it when the grace period runs out.
    let running = Arc::new(Mutex::new(None::<u32>));
    // Polars work (reading `_runs`) stays off the runtime's threads.
    let last = last_successes(&Lake::open_read_configured(&ctx.config)?)?;
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
                        let (ctx, tx, cmd, running) =
                            (ctx.clone(), tx.clone(), cmd.clone(), running.clone());
                        std::thread::spawn(move || {
                            // Whatever happens here, the loop hears that the job is over.
                            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                run_attempt(&ctx, &cmd, &def, &running)
                            }))
                            .unwrap_or(false);
                            if !ok {
                                tracing::error!(job = %def.name, attempt, "failed");
                            }
                            let _ = tx.send(Msg::Finished { ok });
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
                let pid = running.lock().ok().and_then(|r| *r);
                if let Some(pid) = pid {
                    // SAFETY: kill(2) on the pid of our own child process; no memory involved.
                    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                }
                // Its watcher records it (ended by a signal) and says so; then the lock is free.
                let _ = tokio::time::timeout(Duration::from_secs(10), async {
                    while let Some(m) = rx.recv().await {
                        if matches!(m, Msg::Finished { .. }) {
                            return;
                        }
                    }
                })
                .await;
                for (job, why) in skips.drain(..) {
                    let ctx = ctx.clone();
                    let _ = tokio::task::spawn_blocking(move || record_skip(&ctx, &job, &why)).await;
                }
                tracing::warn!(job = %name, "did not finish within the grace period: ended (the lake stays as before it)");
                std::process::exit(0);
            }
        }
        // Skipped firings still waiting for the lock: the job is over, the lock is free.
        for (job, why) in skips.drain(..) {
            let ctx = ctx.clone();
            let _ = tokio::task::spawn_blocking(move || record_skip(&ctx, &job, &why)).await;
        }
        tracing::info!("schedule stopped");
        Ok(())
    })
}

fn sched_err(e: tokio_cron_scheduler::JobSchedulerError) -> Error {
    Error::Usage(format!("scheduler: {e}"))
}
