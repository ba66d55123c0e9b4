//! The command line of `docs/configuration.md`. `main` stays tiny: parse, set up
//! logging, run, print one error chain, map it to the exit codes (0, 1, 2) of `docs/configuration.md`.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, NaiveDate, Utc};
use clap::{Parser, Subcommand, ValueEnum};

use crate::clock::Clock;
use crate::commands::{self, Context};
use crate::config::{secret_from_env, Config};
use crate::demo::DemoArgs;
use crate::error::{Error, Result};
use crate::fake::serve::{FakeGridArgs, FakeInstallationsArgs};
use crate::intervals::Scope;
use crate::simulation::compare::SimulateArgs;

#[derive(Debug, Parser)]
#[command(
    name = "vaten",
    version,
    about = "Metering pipeline of a Dutch energy cooperative",
    long_about = "vaten pulls delivered (L) and fed-back (T) energy of every connection from the grid \
operator, keeps it in a Parquet lake that analysts query with DuckDB, Polars or pandas, and \
computes consumption, the energy-tax base and per-cable balance from it.\n\n\
Start with `vaten demo`: it needs no configuration.",
    after_help = "Configuration: --config FILE, else $VATEN_CONFIG, else ./vaten.toml.\n\
Exit status: 0 done; 1 failed (one-line cause on stderr); 2 usage or configuration error."
)]
pub struct Cli {
    /// Configuration file (TOML).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    /// More detail in the log (-v: debug, -vv: trace; `vaten demo` logs only errors, -v shows
    /// its jobs' lines).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Fix "now" (RFC 3339) for replays and tests; the default is the system clock.
    #[arg(
        long,
        global = true,
        hide = true,
        env = "VATEN_NOW",
        value_name = "TIME"
    )]
    now: Option<String>,
    /// With --now: the clock runs on from there (the jobs `vaten schedule` starts).
    #[arg(long, global = true, hide = true)]
    clock_running: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole pipeline on a simulated cooperative, with local fake servers.
    ///
    /// Simulates the street cables (households, panels, batteries under the firmware's
    /// controller) day by day, serves what the meters measured from a fake grid operator and
    /// fake installations on 127.0.0.1, and every 7 simulated days runs the nightly pass (the
    /// jobs of `vaten run`), then the yearly report. Prints a summary per cable and where the
    /// lake, the reports and the simulation's ground truth are. Replaces --dir on every run.
    Demo(DemoArgs),
    /// Compare settings on one simulated street cable (for the voltage-limit talks).
    ///
    /// Runs the street-cable simulation with the real firmware controller under each setting:
    /// no controllers (baseline), the agreed limits, pv_priority off, a third and all houses
    /// with an installation, and every further --limits pair. Prints per setting the
    /// quarter-hours outside EN 50160 and outside the agreed band, matched energy and local
    /// share, peak import and export at the transformer, battery throughput, and writes the
    /// table and an SVG chart to --out.
    ///
    /// With --cable ID it simulates that cable of the registry (--config), laid as the
    /// registry's feeders.csv says (three phases and the neutral); with --rank-positions it
    /// ranks the cable's nodes by how much one more installation there reduces the
    /// quarter-hours beyond the cable's limits (a table, rank-positions.csv and .svg).
    Simulate(SimulateArgs),
    /// One nightly pass now: ingest grid and installations, transform, nightly report of
    /// yesterday.
    ///
    /// For cron or a systemd timer. A job that fails does not keep the others from
    /// running; the pass then exits 1.
    Run,
    /// Pull new data from the sources into the lake's received tables.
    ///
    /// `grid` follows the grid operator's bulk feed from the stored cursor until it is
    /// drained; each page is stored together with its cursor, so an interrupted ingest
    /// resumes where it stopped. `installations` pulls every installation in the registry
    /// concurrently from its own cursor; an offline, slow or misconfigured installation is a
    /// warning, never a failure. Without SOURCE, both.
    Ingest {
        #[arg(value_enum)]
        source: Option<Source>,
    },
    /// Fill local days FROM..=TO of every connection through the history endpoint.
    ///
    /// The grid operator keeps quarter-hours 10 days and daily registers 40 days; older
    /// days come back empty. What is already stored is not stored again.
    Backfill {
        /// First local day (YYYY-MM-DD).
        #[arg(long, value_name = "YYYY-MM-DD")]
        from: NaiveDate,
        /// Last local day (YYYY-MM-DD), inclusive.
        #[arg(long, value_name = "YYYY-MM-DD")]
        to: NaiveDate,
    },
    /// Recompute the derived tables from what was received.
    ///
    /// `intervals`: quarter-hour L, T, P and V per connection: register differences per meter
    /// (a meter exchange never gives a negative or huge value), the latest delivery of a
    /// reading wins, holes between known readings spread exactly (`estimated`), days whose
    /// quarter-hours expired spread from the daily registers (`derived`), steps a connection
    /// cannot carry or registers going backwards sent to `rejected` (their quarter-hours
    /// `missing`). Then `consumption_daily`, `tax_base_yearly`, `cable_balance_15m` and
    /// `cable_balance_daily`.
    ///
    /// By default only the days that newly received data can change, per cable (everything
    /// the first time, or after the registry or the tax rates changed); the result is always
    /// what a full recompute gives.
    Transform {
        /// First local day to recompute (YYYY-MM-DD); needs --to.
        #[arg(long, value_name = "YYYY-MM-DD", requires = "to")]
        from: Option<NaiveDate>,
        /// Last local day to recompute, inclusive; needs --from.
        #[arg(long, value_name = "YYYY-MM-DD", requires = "from")]
        to: Option<NaiveDate>,
        /// Recompute everything.
        #[arg(long, conflicts_with_all = ["from", "to"])]
        full: bool,
    },
    /// Load a real meter export into the received tables (history, tests).
    ///
    /// `homewizard`: 15-minute cumulative registers, kept as registers. `dsmr-reader`: energy
    /// per hour, summed into a register from 0. Both land in grid_readings under a meter_id
    /// naming the import; run `vaten transform` afterwards. Importing the same file again adds
    /// nothing.
    Import {
        #[arg(long, value_enum)]
        format: crate::sources::exports::Format,
        /// The export file.
        file: PathBuf,
        /// The connection the export belongs to (must be in the registry).
        #[arg(long)]
        ean: String,
    },
    /// Store rejected records that a registry change has made acceptable.
    ///
    /// Records rejected as `unknown_ean` whose EAN is now in connections.csv are validated
    /// again and stored with their original delivery order; they leave `rejected`.
    ReplayRejected,
    /// SQL over the lake's tables (Polars SQL), printed as a table or written for machines.
    ///
    /// Every table is registered under its name (grid_readings, intervals, consumption_daily,
    /// tax_base_yearly, cable_balance_daily, _runs, …), hive partition keys included as
    /// columns. Example: vaten query "SELECT cable_id, sum(matched_wh) FROM cable_balance_daily
    /// GROUP BY cable_id". An error in the SQL is one line on stderr and exit 1.
    Query {
        /// The SQL statement.
        sql: String,
        #[arg(long, value_enum, default_value_t = crate::query::Format::Table)]
        format: crate::query::Format,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Write the nightly report of a day, or the yearly report with the participant statements.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Freshness per source, offline installations, the last run of every job.
    ///
    /// Warns when fewer than 4 days are left before the grid operator's 10-day retention
    /// drops quarter-hours not pulled yet, and lists consents that end within 30 days.
    Status,
    /// Everything the lake holds about one participant, for their right of access.
    ///
    /// Their rows of every table with rows per connection (CSV and Parquet), the rejected
    /// records and run messages that name their EANs or installations, their statements and
    /// their registry lines, into a private folder (0700, files 0600).
    Export {
        /// The participant's id in the registry.
        #[arg(long)]
        participant: String,
        /// The folder to write (created).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Share the cooperative's aggregates with its federation, as hive Parquet.
    ///
    /// Per cable group and for the whole cooperative, per quarter-hour, day and month: L, T, P,
    /// V, matched energy, completeness and quarter-hours beyond the voltage limits, under
    /// `<out>/coop=<[federation] coop_id>/`. Whole months, once their last day has settled
    /// (`[federation] settle_days`), written once and never changed. No row per connection; a
    /// figure to which 1 to 4 connections contributed is withheld (null), for the whole day or
    /// month, so that no subtraction isolates it (docs/federation.md).
    Publish {
        /// The federation's folder, or its bucket `s3://bucket/prefix` (default: `[federation] out`).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Remove what `[retention]` says the lake keeps no longer, in one journaled change.
    ///
    /// Quarter-hour tables older than `quarter_hours_months` (their days stay in the daily and
    /// yearly tables and are sealed: never recomputed), `rejected` older than
    /// `rejected_months`, `_runs` older than `runs_months`. Every key is off by default.
    Retain {
        /// Say what would be removed; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Rewrite every partition's small files into one, in one journaled change.
    ///
    /// Nightly runs leave a file per table and partition each night; an analyst's query then
    /// opens hundreds. Rows stay as they are (equal tables before and after); derived tables
    /// keep one file per cable (`cable_balance_15m`: for all cables; `consumption_daily`: per
    /// cable and its files' months) and partition. Readers
    /// are held off only for the renames. The next transform recomputes nothing because of it.
    Compact,
    /// Erase a participant (right to erasure), in one journaled change.
    ///
    /// Removes every row that names their EANs or installation ids from every table with rows
    /// per connection (received and derived, rejected payloads included; run messages get
    /// `[erased]` in their place) and
    /// deletes their statements; keeps only their yearly tax figures of the last
    /// `--keep-tax-years` years. Their identifiers are remembered as salted hashes so that a
    /// feed still carrying them stores nothing of it. Cable tables (sums) and published
    /// reports keep their figures. Afterwards remove their lines from the registry.
    #[command(group(clap::ArgGroup::new("who").required(true).args(["participant", "ean"])))]
    Erase {
        /// The participant's id in the registry: all their connections.
        #[arg(long)]
        participant: Option<String>,
        /// One connection's EAN (also when the registry no longer lists it).
        #[arg(long)]
        ean: Option<String>,
        /// Years of yearly tax figures kept besides the current one (the tax
        /// administration's seven).
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(0..=100))]
        keep_tax_years: u32,
    },
    /// Run the pipeline definitions on their schedules until SIGINT or SIGTERM.
    ///
    /// Definitions: every `*.toml` in `[schedule] pipelines` (default `pipelines/` next to the
    /// configuration; the built-in nightly pipeline when that folder does not exist). Times are
    /// local and right across daylight-saving changes; a job that missed its time while the
    /// scheduler was down runs once at start; a job still running is not started again; failures
    /// are retried per job. On SIGINT/SIGTERM no new job starts and a running one gets
    /// `[schedule] grace_s` to finish; exit 0.
    Schedule {
        /// Check the definitions and print each job's next times, then exit.
        #[arg(long)]
        check: bool,
    },
    /// Tools for the P1 (smart-meter port) telegrams the installations read.
    #[command(subcommand)]
    P1(P1Command),
    /// Serve a generated feed as a fake grid operator until stopped (for benchmarks).
    #[command(hide = true)]
    FakeGrid(FakeGridArgs),
    /// Serve generated fake installations until stopped (for benchmarks).
    #[command(hide = true)]
    FakeInstallations(FakeInstallationsArgs),
}

#[derive(Debug, Subcommand)]
enum ReportCommand {
    /// The board's report of one local day: data completeness, rejected records, per cable
    /// the day's energy and voltages with charts, the night's job runs. HTML and Markdown in
    /// `<reports>/nightly/`; prints the paths.
    Nightly {
        /// The local day (YYYY-MM-DD); default: yesterday.
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<NaiveDate>,
    },
    /// The public energy report of a year (`<reports>/yearly/YYYY/index.html`: no EAN, no
    /// participant, no cable with fewer than 5 connections by name) and one private statement
    /// per participant (`<reports>/private/statements/YYYY/`).
    Yearly {
        #[arg(long)]
        year: i32,
    },
}

#[derive(Debug, Subcommand)]
enum P1Command {
    /// Decode a DSMR telegram with the firmware's parser and print it as JSON.
    ///
    /// Exits 1 on a bad CRC or a malformed telegram. Telegrams of DSMR before 4.0 carry no
    /// CRC: they are accepted and shown with "crc": "absent".
    Decode {
        /// File with the telegram, or `-` for standard input.
        file: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Source {
    /// The grid operator's bulk feed (L and T of every connection).
    Grid,
    /// Every installation's readings endpoint (P, battery, voltage).
    Installations,
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    // The demo speaks for itself (a line per simulated week, then a summary): what its jobs
    // log per page and per installation is in the demo lake's `_runs`, and on screen with -v.
    let quiet = matches!(cli.command, Command::Demo(_));
    init_logging(cli.log_format, cli.verbose.saturating_add(u8::from(!quiet)));
    // A defect anywhere is exit 1 with one line, as the exit codes promise (not Rust's 101).
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(cli)))
        .unwrap_or_else(|panic| {
            Err(anyhow::anyhow!(
                "internal error: {}",
                crate::commands::panic_text(&panic)
            ))
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The whole cause chain on one line; the library error decides the exit code.
            eprintln!("vaten: error: {e:#}");
            ExitCode::from(e.downcast_ref::<Error>().map_or(1, Error::exit_code))
        }
    }
}

/// `level` 0 shows errors only, 1 info (the default of every command but the demo), 2 debug,
/// 3 and more trace.
fn init_logging(format: LogFormat, level: u8) {
    let default = match level {
        0 => "error",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("VATEN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("vaten={default},warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.with_target(false).compact().init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn clock(now: &Option<String>) -> Result<Clock> {
    match now {
        None => Ok(Clock::System),
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| Clock::Fixed(t.with_timezone(&Utc)))
            .map_err(|e| Error::Usage(format!("--now `{s}` is not an RFC 3339 time: {e}"))),
    }
}

fn config_path(cli: &Cli) -> PathBuf {
    cli.config
        .clone()
        .or_else(|| std::env::var_os("VATEN_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("vaten.toml"))
}

/// The binary's top level: any error, with its chain (the library's errors keep their exit code).
fn run(cli: Cli) -> anyhow::Result<()> {
    Ok(dispatch(cli)?)
}

fn dispatch(cli: Cli) -> Result<()> {
    let clock = clock(&cli.now)?;
    let clock = if cli.clock_running {
        clock.running()
    } else {
        clock
    };
    match &cli.command {
        Command::Demo(args) => crate::demo::run(args, clock),
        Command::FakeGrid(args) => crate::fake::serve::serve_fake_grid(args),
        Command::FakeInstallations(args) => crate::fake::serve::serve_fake_installations(args),
        Command::P1(P1Command::Decode { file }) => {
            let json = crate::p1::decode_file(file)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&json).expect("JSON prints")
            );
            Ok(())
        }
        Command::Ingest { source } => {
            let ctx = Context::load(Config::load(&config_path(&cli))?, clock)?;
            let grid = match source {
                Some(Source::Grid) | None => {
                    let key = secret_from_env(&ctx.config.grid.api_key_env)?;
                    commands::ingest_grid(&ctx, key)
                        .map(|r| tracing::info!("ingest grid done: {}", r.message()))
                }
                Some(Source::Installations) => Ok(()),
            };
            // One failing source does not keep the other from being pulled.
            if matches!(source, Some(Source::Installations) | None) {
                let report = commands::ingest_installations(&ctx)?;
                tracing::info!("ingest installations done: {}", report.message());
            }
            grid
        }
        Command::Backfill { from, to } => {
            let ctx = Context::load(Config::load(&config_path(&cli))?, clock)?;
            let key = secret_from_env(&ctx.config.grid.api_key_env)?;
            let report = commands::backfill(&ctx, key, *from, *to)?;
            tracing::info!("backfill done: {}", report.message());
            Ok(())
        }
        Command::Run => {
            let ctx = Context::load(Config::load(&config_path(&cli))?, clock)?;
            commands::nightly_pass(&ctx)
        }
        Command::Simulate(args) => {
            let registry = match &args.cable {
                Some(_) => {
                    let config = Config::load(&config_path(&cli))?;
                    let registry = crate::registry::Registry::load(&config.registry)?;
                    let feeders = crate::feeders::load(&config.registry, &registry)?;
                    Some(crate::simulation::compare::RegistryCables { registry, feeders })
                }
                None => None,
            };
            crate::simulation::compare::command(args, registry.as_ref(), clock)
        }
        Command::Schedule { check } => {
            let ctx = Context::load(Config::load(&config_path(&cli))?, clock.running())?;
            let tz = ctx.config.tz();
            let jobs = crate::schedule::load(&ctx.config.schedule.pipelines, tz)?;
            if *check {
                let now = ctx.clock.now();
                for j in &jobs {
                    let when = match &j.schedule {
                        Some(s) => {
                            let mut t = now;
                            let next: Vec<String> = (0..3)
                                .filter_map(|_| {
                                    t = s.next_after(t)?;
                                    Some(
                                        t.with_timezone(&tz)
                                            .format("%Y-%m-%d %H:%M:%S %Z")
                                            .to_string(),
                                    )
                                })
                                .collect();
                            format!("`{}`: next {}", s.expr(), next.join(", "))
                        }
                        None => "when the jobs it waits for have succeeded".into(),
                    };
                    let after = if j.after.is_empty() {
                        String::new()
                    } else {
                        format!(" after {}", j.after.join(", "))
                    };
                    println!(
                        "{} ({}){after}: {when}; {} attempt(s)",
                        j.name,
                        j.task.name(),
                        j.retry.attempts
                    );
                }
                return Ok(());
            }
            let grace = std::time::Duration::from_secs_f64(ctx.config.schedule.grace_s.max(0.0));
            let mut common: Vec<std::ffi::OsString> =
                vec!["--config".into(), config_path(&cli).into()];
            if matches!(cli.log_format, LogFormat::Json) {
                common.extend(["--log-format".into(), "json".into()]);
            }
            common.extend((0..cli.verbose).map(|_| "-v".into()));
            let cmd = crate::schedule::runner::JobCommand {
                exe: std::env::current_exe()?,
                common,
            };
            crate::schedule::runner::schedule(ctx, jobs, grace, cmd)
        }
        Command::Report(which) => {
            let ctx = Context::load(Config::load(&config_path(&cli))?, clock)?;
            let written = match which {
                ReportCommand::Nightly { date } => commands::report_nightly(
                    &ctx,
                    date.unwrap_or_else(|| commands::yesterday(&ctx)),
                )?,
                ReportCommand::Yearly { year } => commands::report_yearly(&ctx, *year)?,
            };
            for f in &written.files {
                println!("{}", f.display());
            }
            Ok(())
        }
        Command::Transform { from, to, full } => {
            let scope = match (from, to) {
                (Some(from), Some(to)) if from > to => {
                    return Err(Error::Usage(format!("--from {from} is after --to {to}")))
                }
                (Some(from), Some(to)) => Scope::Range {
                    from: *from,
                    to: *to,
                },
                _ if *full => Scope::Full,
                _ => Scope::Incremental,
            };
            let ctx = Context::load(Config::load(&config_path(&cli))?, clock)?;
            let report = commands::transform(&ctx, scope)?;
            tracing::info!("transform done: {}", commands::JobReport::message(&report));
            Ok(())
        }
        Command::Import { format, file, ean } => {
            let ctx = Context::load(Config::load(&config_path(&cli))?, clock)?;
            let report = commands::import_export(&ctx, *format, file, ean)?;
            tracing::info!("import done: {}", report.message());
            Ok(())
        }
        Command::Query {
            sql,
            format,
            output,
        } => {
            crate::query::set_polars_environment(*format);
            let config = Config::load(&config_path(&cli))?;
            if let Some(out) = output {
                crate::query::refuse_inside_lake(out, &config.lake)?;
            }
            let lake = crate::lake::Lake::open_read_configured(&config)?;
            // From listing the files to the last row read: one state of the lake.
            let reading = lake.read_guard()?;
            let mut df = crate::query::run(&lake, sql)?;
            // Everything is read: a slow consumer of the output must not hold writers off.
            drop(reading);
            crate::query::write(&mut df, *format, output.as_deref())
        }
        Command::Export { participant, out } => {
            let config = Config::load(&config_path(&cli))?;
            let registry = crate::registry::Registry::load(&config.registry)?;
            let lake = crate::lake::Lake::open_read_configured(&config)?;
            crate::query::refuse_inside_lake(&out.join("x"), &config.lake)?;
            let _reading = lake.read_guard()?;
            let done = crate::export::export(
                &lake,
                &registry,
                &config.registry,
                &config.reports,
                participant,
                out,
            )?;
            for (table, rows) in &done.tables {
                println!("{table}: {rows} rows");
            }
            println!("statements: {}", done.statements);
            println!("written to {} (private: personal data)", out.display());
            Ok(())
        }
        Command::Retain { dry_run } => {
            let ctx = Context::load(Config::load(&config_path(&cli))?, clock)?;
            println!("{}", commands::retain(&ctx, *dry_run)?.message());
            Ok(())
        }
        Command::Compact => {
            let ctx = Context::load(Config::load(&config_path(&cli))?, clock)?;
            println!("{}", commands::compact(&ctx)?.message());
            Ok(())
        }
        Command::Publish { out } => {
            let ctx = Context::load(Config::load(&config_path(&cli))?, clock)?;
            let done = commands::publish(&ctx, out.as_deref())?;
            println!("{}", commands::JobReport::message(&done));
            Ok(())
        }
        Command::Erase {
            participant,
            ean,
            keep_tax_years,
        } => {
            let ctx = Context::load(Config::load(&config_path(&cli))?, clock)?;
            let subject = match (participant, ean) {
                (Some(p), _) => crate::erase::Subject::participant(&ctx.registry, p)?,
                (None, Some(e)) => crate::erase::Subject::ean(&ctx.registry, e)?,
                (None, None) => unreachable!("clap requires one"),
            };
            let done = commands::erase(&ctx, &subject, *keep_tax_years)?;
            println!("{}", done.message());
            println!("remove their lines from the registry; backups follow the lake's retention");
            Ok(())
        }
        Command::Status => {
            let config = Config::load(&config_path(&cli))?;
            let lake = crate::lake::Lake::open_read_configured(&config)?;
            let registry = crate::registry::Registry::load(&config.registry)?;
            let _reading = lake.read_guard()?;
            for line in crate::status::report(&lake, clock)? {
                println!("{line}");
            }
            let today = crate::domain::time::local_date(clock.now(), config.tz());
            for line in registry.consents_ending(today, 30) {
                println!("{line}");
            }
            Ok(())
        }
        Command::ReplayRejected => {
            let ctx = Context::load(Config::load(&config_path(&cli))?, clock)?;
            let report = commands::replay(&ctx)?;
            tracing::info!("replay-rejected done: {}", report.message());
            Ok(())
        }
    }
}
