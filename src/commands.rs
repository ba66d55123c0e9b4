//! The pipeline's jobs as the command line runs them: each opens the lake for writing,
//! does its work and leaves a `_runs` record, whether it succeeded or not.

use chrono::NaiveDate;

use crate::clock::Clock;
use crate::config::{Config, Secret};
use crate::error::{Error, Result};
use crate::intervals::{self, Scope, TransformReport};
use crate::lake::runs::RunRecord;
use crate::lake::Lake;
use crate::marts::rates::Rates;
use crate::received::erased::Erased;
use crate::received::ReceivedIndex;
use crate::registry::Registry;
use crate::reports;
use crate::sources::exports;
use crate::sources::grid::ingest as grid_ingest;
use crate::sources::grid::{replay_rejected, GridClient, GridIngest, GridState, IngestReport};
use crate::sources::installations::{self, tokens, PassReport};

/// Everything a job needs, loaded once per command.
pub struct Context {
    pub config: Config,
    pub registry: Registry,
    pub clock: Clock,
    /// The grid operator's key when the caller has it (the demo's own fake); otherwise it is
    /// read from the environment variable the configuration names, when needed.
    pub grid_key: Option<Secret>,
}

impl Context {
    pub fn load(config: Config, clock: Clock) -> Result<Self> {
        let registry = Registry::load(&config.registry)?;
        Ok(Context {
            config,
            registry,
            clock,
            grid_key: None,
        })
    }

    /// The grid operator's API key.
    pub fn grid_key(&self) -> Result<Secret> {
        match &self.grid_key {
            Some(k) => Ok(k.clone()),
            None => crate::config::secret_from_env(&self.config.grid.api_key_env),
        }
    }

    fn open_lake(&self, what: &str) -> Result<Lake> {
        Lake::open_configured(&self.config, what)
    }
}

/// What a job reports for its `_runs` record.
pub trait JobReport {
    fn message(&self) -> String;
    /// Something needs attention though the job did its work (`_runs.status = warning`).
    fn has_warnings(&self) -> bool {
        false
    }
    fn rows_in(&self) -> usize;
    fn rows_out(&self) -> usize;
}

impl JobReport for IngestReport {
    fn message(&self) -> String {
        IngestReport::message(self)
    }
    fn has_warnings(&self) -> bool {
        self.stopped_early.is_some()
    }
    fn rows_in(&self) -> usize {
        self.readings_in
    }
    fn rows_out(&self) -> usize {
        self.stored.rows_out()
    }
}

impl JobReport for PassReport {
    fn message(&self) -> String {
        PassReport::message(self)
    }
    fn has_warnings(&self) -> bool {
        !self.problems.is_empty() || !self.gaps.is_empty()
    }
    fn rows_in(&self) -> usize {
        self.readings_in
    }
    fn rows_out(&self) -> usize {
        self.stored.rows_out()
    }
}

impl JobReport for TransformReport {
    fn message(&self) -> String {
        format!(
            "{} recompute of {} cable(s): intervals: {} quarter-hours ({} missing); consumption_daily: {} days; {} register steps rejected",
            self.mode, self.cables, self.intervals, self.missing, self.days, self.rejected
        )
    }
    fn rows_in(&self) -> usize {
        0
    }
    fn rows_out(&self) -> usize {
        self.intervals + self.days + self.rejected
    }
}

/// The message of a caught panic.
pub fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(no message)".into())
}

/// For the tests of the scheduler and `vaten run` only (debug builds; a release build ignores
/// it): `VATEN_INJECT_FAULT=panic:<job>` makes that job panic, `hang:<job>` makes it hang, as a
/// defect or a stuck call could.
fn inject_fault(job: &str) {
    if !cfg!(debug_assertions) {
        return;
    }
    let Ok(fault) = std::env::var("VATEN_INJECT_FAULT") else {
        return;
    };
    match fault.split_once(':') {
        Some(("panic", j)) if j == job => panic!("injected panic in {job}"),
        Some(("hang", j)) if j == job => loop {
            std::thread::sleep(std::time::Duration::from_secs(3_600));
        },
        _ => {}
    }
}

/// Jobs that store what the sources deliver: they run also on a lake that could not be
/// migrated (their rows carry today's columns; the migration takes the rest later).
const RECEIVING_JOBS: [&str; 4] = ["ingest-grid", "ingest-installations", "backfill", "import"];

/// Runs `work` as job `job`, recording it in `_runs` (also when it fails).
fn run_job<R: JobReport>(
    lake: &Lake,
    job: &str,
    clock: Clock,
    work: impl FnOnce(&Lake) -> Result<R>,
) -> Result<R> {
    let started_at = clock.now();
    let run_id = lake.run_id().to_string();
    // A lake written by an older version is migrated first, as part of this run (recorded
    // with it, a failure included). A lake that cannot be migrated (an unreadable file)
    // still receives: the received data would otherwise run out of the sources' retention;
    // everything else waits until the file is dealt with.
    // The lake is only read or written through its own methods here; a panic leaves nothing
    // half-changed that the rest of the run would see (the change is journaled).
    let migration = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        crate::lake::migrate::migrate(lake)
    }))
    .unwrap_or_else(|panic| {
        Err(Error::Internal(format!(
            "the migration panicked: {}",
            panic_text(&panic)
        )))
    });
    let (migrated, unmigrated) = match migration {
        Ok(done) => (done, None),
        Err(e) => (None, Some(format!("could not be migrated: {e}"))),
    };
    // A panic inside the work is a failed run like any other: recorded, exit 1, the next
    // firing runs (the lake's journal leaves it as before the change in hand).
    let result = match &unmigrated {
        Some(why) if !RECEIVING_JOBS.contains(&job) => Err(Error::lake(lake.root(), why)),
        _ => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            inject_fault(job);
            work(lake)
        }))
        .unwrap_or_else(|panic| {
            Err(Error::Internal(format!(
                "{job} panicked: {}",
                panic_text(&panic)
            )))
        }),
    };
    let mut message = match &result {
        Ok(r) => r.message(),
        Err(e) => e.to_string(),
    };
    let mut before: Vec<String> = lake.recovered().to_vec();
    before.extend(migrated);
    if let (Some(why), Ok(_)) = (&unmigrated, &result) {
        tracing::warn!("{why}");
        before.push(why.clone());
    }
    if !before.is_empty() {
        message = format!("{}; {message}", before.join("; "));
    }
    let (rows_in, rows_out) = match &result {
        Ok(r) => (r.rows_in() as i64, r.rows_out() as i64),
        Err(_) => (0, 0),
    };
    let record = RunRecord {
        run_id,
        job: job.to_string(),
        started_at,
        finished_at: clock.now().max(started_at),
        status: match &result {
            Ok(r) if r.has_warnings() || unmigrated.is_some() => "warning",
            Ok(_) => "ok",
            Err(_) => "failed",
        }
        .to_string(),
        rows_in,
        rows_out,
        message,
    };
    if let Err(e) = lake.record_run(&record) {
        tracing::error!("could not record the run in _runs: {e}");
    }
    result
}

/// Runs `work` against the grid operator as job `job` (`what` names it in the lock).
fn grid_job(
    ctx: &Context,
    key: Secret,
    what: &str,
    job: &str,
    work: impl FnOnce(&GridIngest) -> Result<IngestReport>,
) -> Result<IngestReport> {
    let lake = ctx.open_lake(what)?;
    let client = GridClient::new(&ctx.config.grid, key);
    let rt = runtime()?;
    let erased = Erased::load(&lake)?;
    run_job(&lake, job, ctx.clock, |lake| {
        work(&GridIngest {
            erased: &erased,
            lake,
            registry: &ctx.registry,
            client: &client,
            clock: ctx.clock,
            tz: ctx.config.tz(),
            rt: &rt,
            deadline: std::time::Duration::from_secs_f64(ctx.config.grid.deadline_s),
            days_before_member: ctx.config.implausible_days_before_member,
        })
    })
}

/// `vaten ingest grid`: the bulk feed until drained.
pub fn ingest_grid(ctx: &Context, key: Secret) -> Result<IngestReport> {
    grid_job(ctx, key, "ingest grid", "ingest-grid", |g| g.ingest_bulk())
}

/// `vaten backfill --from --to`: the history endpoint for every connection.
pub fn backfill(
    ctx: &Context,
    key: Secret,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<IngestReport> {
    grid_job(ctx, key, "backfill", "backfill", |g| g.backfill(from, to))
}

/// `vaten ingest installations`: one pass over every installation in the registry.
pub fn ingest_installations(ctx: &Context) -> Result<PassReport> {
    let with_installation = ctx
        .registry
        .connections
        .iter()
        .any(|c| c.installation.is_some());
    let tokens = match &ctx.config.installations.tokens_file {
        Some(path) => tokens::load(path)?,
        None if with_installation => return Err(Error::Usage(
            "the registry lists installations but [installations] tokens_file is not configured"
                .into(),
        )),
        None => Default::default(),
    };
    let lake = ctx.open_lake("ingest installations")?;
    let rt = runtime()?;
    // An erased participant's installation is not asked, even while the registry still
    // lists it.
    let erased = Erased::load(&lake)?;
    let registry = if erased.is_empty() {
        ctx.registry.clone()
    } else {
        Registry::new(
            ctx.registry
                .connections
                .iter()
                .filter(|c| {
                    !erased.contains(c.ean.as_str())
                        && !c
                            .installation
                            .as_ref()
                            .is_some_and(|i| erased.contains(&i.id))
                })
                .cloned()
                .collect(),
            ctx.registry.cables.clone(),
        )
    };
    run_job(&lake, "ingest-installations", ctx.clock, |lake| {
        installations::ingest(
            lake,
            &registry,
            &ctx.config.installations,
            &tokens,
            ctx.clock,
            installations::ingest::Calendar {
                tz: ctx.config.tz(),
                days_before_member: i64::from(ctx.config.implausible_days_before_member),
            },
            &rt,
        )
    })
}

impl Context {
    /// The energy-tax rates: the configured file, else the project's own.
    pub fn rates(&self) -> Result<Rates> {
        match &self.config.tax.rates {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Error::Usage(format!(
                        "{}: cannot read the tax rates: {e}",
                        path.display()
                    ))
                })?;
                Rates::parse(&text, &path.display().to_string())
            }
            None => Ok(Rates::builtin()),
        }
    }
}

/// `vaten transform`: recomputes the derived tables (see [`Scope`]).
pub fn transform(ctx: &Context, scope: Scope) -> Result<TransformReport> {
    let rates = ctx.rates()?;
    let lake = ctx.open_lake("transform")?;
    run_job(&lake, "transform", ctx.clock, |lake| {
        intervals::transform(
            lake,
            &ctx.registry,
            &rates,
            ctx.clock,
            ctx.config.tz(),
            scope,
        )
    })
}

/// `vaten import --format F FILE --ean EAN`: a meter export into the received tables.
pub fn import_export(
    ctx: &Context,
    format: exports::Format,
    file: &std::path::Path,
    ean: &str,
) -> Result<IngestReport> {
    if ctx.registry.connection(ean).is_none() {
        return Err(Error::Usage(format!(
            "EAN {ean} is not in the registry; add it to connections.csv first"
        )));
    }
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::Usage(format!("{}: {e}", file.display())))?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lake = ctx.open_lake("import")?;
    // An erased participant stays erased: their meter's export is refused, not stored again
    // (the registry may still list them until the board removes the line). The erased set
    // is read under the write lock `open_lake` took: no erasure can finish in between. It
    // holds EANs: as for the grid operator's feed, a later occupant of an erased participant's
    // house is not received either (docs/operations.md).
    if Erased::load(&lake)?.contains(ean) {
        return Err(Error::Usage(format!(
            "EAN {ean} was erased (vaten erase): nothing of it is stored again"
        )));
    }
    run_job(&lake, "import", ctx.clock, |lake| {
        let mut state: GridState = lake
            .read_state(grid_ingest::STATE_NAME)?
            .unwrap_or_default();
        let (received, next_seq) = exports::read_export(
            format,
            &text,
            &name,
            ean,
            ctx.config.tz(),
            ctx.clock.now(),
            state.next_delivery_seq,
        )?;
        let mut report = IngestReport {
            pages: 1,
            objects: received.reading_objects.len(),
            readings_in: received.reading_count(),
            ..Default::default()
        };
        let mut txn = lake.begin()?;
        report.stored = ReceivedIndex::default().stage(lake, &mut txn, received)?;
        state.next_delivery_seq = next_seq;
        lake.stage_state(&mut txn, grid_ingest::STATE_NAME, &state)?;
        txn.commit()?;
        Ok(report)
    })
}

/// `vaten replay-rejected`.
pub fn replay(ctx: &Context) -> Result<IngestReport> {
    let lake = ctx.open_lake("replay-rejected")?;
    run_job(&lake, "replay-rejected", ctx.clock, |lake| {
        replay_rejected(
            lake,
            &ctx.registry,
            ctx.clock,
            ctx.config.tz(),
            i64::from(ctx.config.implausible_days_before_member),
        )
    })
}

/// The network side runs on a small runtime of its own; Polars and Parquet work stays on
/// the calling thread, never on the runtime's threads.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::from)
}

impl JobReport for reports::Written {
    fn message(&self) -> String {
        let names: Vec<String> = self
            .files
            .iter()
            .take(3)
            .map(|f| f.display().to_string())
            .collect();
        let more = self.files.len().saturating_sub(3);
        format!(
            "wrote {}{}",
            names.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        )
    }
    fn rows_in(&self) -> usize {
        0
    }
    fn rows_out(&self) -> usize {
        self.files.len()
    }
}

/// `vaten report nightly`: the report of local day `date` (a job in `_runs`).
pub fn report_nightly(ctx: &Context, date: NaiveDate) -> Result<reports::Written> {
    let lake = ctx.open_lake("nightly report")?;
    run_job(&lake, "report-nightly", ctx.clock, |lake| {
        reports::nightly::nightly(
            lake,
            &ctx.registry,
            ctx.config.tz(),
            date,
            ctx.clock.now(),
            &ctx.config.reports,
        )
    })
}

/// `vaten report yearly`: the public report of `year` and the participants' statements.
pub fn report_yearly(ctx: &Context, year: i32) -> Result<reports::Written> {
    let rates = ctx.rates()?;
    let lake = ctx.open_lake("yearly report")?;
    run_job(&lake, "report-yearly", ctx.clock, |lake| {
        reports::yearly::yearly(
            lake,
            &ctx.registry,
            &rates,
            year,
            &ctx.config.reports,
            crate::domain::time::local_date(ctx.clock.now(), ctx.config.tz()),
        )
    })
}

/// Yesterday in the configured time zone: the day a nightly run reports on.
pub fn yesterday(ctx: &Context) -> NaiveDate {
    crate::domain::time::local_date(ctx.clock.now(), ctx.config.tz())
        .pred_opt()
        .expect("a date after 0001-01-01")
}

/// `vaten run`: one complete pass of the pipeline definitions now, in dependency order: every
/// job due today (a job whose schedule has no time today, like the yearly report outside early
/// January, waits for its day). A job that fails does not keep the others from running; the
/// first failure is returned.
pub fn nightly_pass(ctx: &Context) -> Result<()> {
    let tz = ctx.config.tz();
    let jobs = crate::schedule::load(&ctx.config.schedule.pipelines, tz)?;
    let today = crate::domain::time::local_date(ctx.clock.now(), tz);
    let (start, end) = crate::domain::time::local_day_bounds(today, tz);
    let mut skipped: Vec<&str> = Vec::new();
    let mut first_error = None;
    for job in crate::schedule::definition::dependency_order(&jobs) {
        let not_today = job.schedule.as_ref().is_some_and(|s| {
            s.next_after(start - chrono::Duration::seconds(1))
                .is_none_or(|t| t >= end)
        });
        if not_today || job.after.iter().any(|a| skipped.contains(&a.as_str())) {
            skipped.push(&job.name);
            continue;
        }
        match crate::schedule::runner::run_task(ctx, job.task) {
            Ok(()) => tracing::info!(job = %job.name, "done"),
            Err(e) => {
                tracing::error!(job = %job.name, "failed: {e}");
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

impl JobReport for crate::erase::Erasure {
    fn message(&self) -> String {
        crate::erase::Erasure::message(self)
    }
    fn rows_in(&self) -> usize {
        0
    }
    fn rows_out(&self) -> usize {
        self.rows_removed
    }
}

/// `vaten erase`: see [`crate::erase`]. Tax rows of the current year and the
/// `keep_tax_years` before it stay.
pub fn erase(
    ctx: &Context,
    subject: &crate::erase::Subject,
    keep_tax_years: u32,
) -> Result<crate::erase::Erasure> {
    use chrono::Datelike;
    let lake = ctx.open_lake("erase")?;
    let this_year = crate::domain::time::local_date(ctx.clock.now(), ctx.config.tz()).year();
    let keep_from = i64::from(this_year) - i64::from(keep_tax_years);
    run_job(&lake, "erase", ctx.clock, |lake| {
        crate::erase::erase(lake, subject, &ctx.config.reports, keep_from)
    })
}

impl JobReport for crate::compact::Compaction {
    fn message(&self) -> String {
        crate::compact::Compaction::message(self)
    }
    fn has_warnings(&self) -> bool {
        !self.skipped.is_empty()
    }
    fn rows_in(&self) -> usize {
        self.rows
    }
    fn rows_out(&self) -> usize {
        self.rows
    }
}

/// `vaten compact`: see [`crate::compact`].
pub fn compact(ctx: &Context) -> Result<crate::compact::Compaction> {
    let lake = ctx.open_lake("compact")?;
    run_job(&lake, "compact", ctx.clock, crate::compact::compact)
}

impl JobReport for crate::retain::Retention {
    fn message(&self) -> String {
        crate::retain::Retention::message(self)
    }
    fn rows_in(&self) -> usize {
        0
    }
    fn rows_out(&self) -> usize {
        self.files
    }
}

/// `vaten retain`: see [`crate::retain`]. A dry run records no run: it changed nothing.
pub fn retain(ctx: &Context, dry_run: bool) -> Result<crate::retain::Retention> {
    let rates = ctx.rates()?;
    let lake = ctx.open_lake("retain")?;
    let setting = crate::retain::Setting {
        config: &ctx.config.retention,
        registry: &ctx.registry,
        rates: &rates,
        tz: ctx.config.tz(),
        today: crate::domain::time::local_date(ctx.clock.now(), ctx.config.tz()),
        dry_run,
    };
    if dry_run {
        return crate::retain::retain(&lake, &setting);
    }
    run_job(&lake, "retain", ctx.clock, |lake| {
        crate::retain::retain(lake, &setting)
    })
}

impl JobReport for crate::publish::Published {
    fn message(&self) -> String {
        let days = match (self.days.first(), self.days.last()) {
            (Some(a), Some(b)) if a == b => format!("published {a}"),
            (Some(a), Some(b)) => format!("published {} days, {a} to {b}", self.days.len()),
            _ => "no new settled day to publish".to_string(),
        };
        format!(
            "{days} to {} ({} day figures withheld: fewer than {} connections; {} settled days published before, left as they were)",
            self.folder.display(),
            self.withheld,
            crate::reports::yearly::MIN_CONNECTIONS,
            self.already
        ) + &self
            .uploaded
            .as_ref()
            .map(|u| format!("; {u}"))
            .unwrap_or_default()
    }
    fn rows_in(&self) -> usize {
        self.days.len()
    }
    fn rows_out(&self) -> usize {
        self.days.len()
    }
}

/// `vaten publish`: see [`crate::publish`]; `out` overrides `[federation] out`.
pub fn publish(ctx: &Context, out: Option<&std::path::Path>) -> Result<crate::publish::Published> {
    let fed = &ctx.config.federation;
    let Some(coop_id) = fed.coop_id.as_deref() else {
        return Err(Error::Usage(
            "[federation] coop_id is not configured: the id the federation knows the cooperative by".into(),
        ));
    };
    let Some(out) = out.or(fed.out.as_deref()) else {
        return Err(Error::Usage(
            "no folder to publish to: set [federation] out or pass --out".into(),
        ));
    };
    // A bucket: written into a local outbox first, then uploaded (`src/outbox.rs`).
    let bucket = match out.to_str().filter(|o| o.starts_with("s3://")) {
        Some(url) => {
            let at = crate::config::S3Location::parse(
                url,
                fed.s3.endpoint.clone(),
                fed.s3.region.clone(),
            )
            .map_err(|why| Error::Usage(format!("publish to {why}")))?;
            if let Some(lake) = &ctx.config.lake_remote {
                if lake.at.overlaps(&at) {
                    return Err(Error::Usage(format!(
                        "{url} overlaps the lake's {}: the federation gets its own prefix",
                        lake.at.url
                    )));
                }
            }
            Some(at)
        }
        None => None,
    };
    let out = match &bucket {
        Some(at) => at.local_copy(&ctx.config.cache_dir, "federation"),
        None => out.to_path_buf(),
    };
    crate::query::refuse_inside_lake(&out.join("x"), &ctx.config.lake)?;
    let today = crate::domain::time::local_date(ctx.clock.now(), ctx.config.tz());
    let last = today - chrono::Duration::days(i64::from(fed.settle_days));
    let lake = ctx.open_lake("publish")?;
    run_job(&lake, "publish", ctx.clock, |lake| {
        let outbox = bucket
            .as_ref()
            .map(crate::outbox::Outbox::connect)
            .transpose()?;
        if let Some(o) = &outbox {
            o.pull(&out, coop_id)?;
        }
        let mut done =
            crate::publish::publish(lake, &ctx.registry, coop_id, &fed.region, &out, last)?;
        if let (Some(o), Some(at)) = (&outbox, &bucket) {
            let up = o.push(&out, coop_id)?;
            done.uploaded = Some(format!(
                "uploaded {} files to {}/coop={coop_id} ({} already there, kept as they were)",
                up.new,
                at.url.trim_end_matches('/'),
                up.kept
            ));
        }
        Ok(done)
    })
}
