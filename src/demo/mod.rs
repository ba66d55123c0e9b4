//! `vaten demo`: the whole pipeline on a simulated cooperative, with no setup.
//!
//! The street-cable simulation (`crate::simulation`, driving the firmware's controller) runs
//! day by day; what it measures goes out as the real world delivers it: each day's
//! quarter-hour registers to a local fake grid operator (with a meter exchange, a day first
//! delivered with estimates and corrected later, a rejection, an unknown EAN), each
//! installation's readings into its fake endpoint backed by the firmware's ring buffer (one
//! of them unreachable for the first weeks). Every 7 simulated days, and after the last, the
//! nightly pass runs at 09:30 the next morning on the simulated clock: the same jobs as
//! `vaten run`. Then the yearly report. The simulation's ground truth per connection and day
//! is written next to the lake (`simulation/truth.csv`).

mod feed;

use std::path::{Path, PathBuf};

use chrono::{Datelike, Duration, NaiveDate, NaiveTime};
use clap::Args;

use crate::clock::Clock;
use crate::commands::{self, Context};
use crate::config::{Config, Secret};
use crate::domain::time::{local_date, local_midnight_utc, AMSTERDAM};
use crate::error::{Error, Result};
use crate::fake::serve::write_private;
use crate::fake::synth::dates_ending;
use crate::fake::{Behaviour, FakeGridOperator, FakeInstallations, FeedEntry};
use crate::lake::schema::{GRID_DAYS, GRID_READINGS, INSTALLATION_READINGS, REJECTED, RUNS};
use crate::lake::Lake;
use crate::registry::{Cable, Connection, Installation, Registry, DEFAULT_CAPACITY_W};
use crate::simulation::{cooperative_scenario, Simulation};
use feed::{Exchange, GridFeed, Truth};
use serde_json::json;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder for the demo's registry, lake and configuration (replaced on every run).
    #[arg(long, default_value = "vaten-demo")]
    pub dir: PathBuf,
    /// Number of connections in the cooperative.
    #[arg(long, default_value_t = 60)]
    pub connections: usize,
    /// Number of days simulated, ending with --end.
    #[arg(long, default_value_t = 60)]
    pub days: u32,
    /// Last simulated day (default: yesterday, local time).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub end: Option<NaiveDate>,
    /// Seed of the simulation: same seed and period, same lake.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Simulation step in seconds for loads and production (controllers and voltages are
    /// recomputed at least every 10 s within it).
    #[arg(long, default_value_t = 60.0)]
    pub step_s: f64,
}

const MARKER: &str = ".vaten-demo";

/// Days between two nightly passes of the demo.
const PASS_EVERY_DAYS: usize = 7;

pub fn run(args: &DemoArgs, clock: Clock) -> Result<()> {
    if args.connections == 0 || args.days == 0 {
        return Err(Error::Usage(
            "--connections and --days must be at least 1".into(),
        ));
    }
    prepare_dir(&args.dir)?;
    let tz = AMSTERDAM;
    let end = args
        .end
        .unwrap_or_else(|| local_date(clock.now(), tz).pred_opt().expect("date"));
    let dates = dates_ending(end, args.days);
    let cables = args.connections.clamp(1, 3);
    let scenario = cooperative_scenario(
        args.connections,
        cables,
        local_midnight_utc(dates[0], tz),
        args.step_s,
        args.seed,
    );
    let eans: Vec<String> = scenario.houses.iter().map(|h| h.ean.clone()).collect();
    let installed: Vec<bool> = scenario
        .houses
        .iter()
        .map(|h| h.battery_wh.is_some())
        .collect();

    // The registry, the installations' fake endpoints and their tokens.
    let installations = FakeInstallations::spawn()?;
    let mut tokens = String::from("[tokens]\n");
    let mut connections = Vec::new();
    for (i, h) in scenario.houses.iter().enumerate() {
        let installation = installed[i].then(|| {
            let id = format!("inst-{i:04}");
            let token = uuid::Uuid::new_v4().simple().to_string();
            installations.add(&id, &h.ean, &token, &format!("SDM120-{i:07}"));
            tokens += &format!("\"{id}\" = \"{token}\"\n");
            Installation {
                url: installations.url(&id),
                id,
            }
        });
        connections.push(Connection {
            ean: crate::domain::Ean::parse(&h.ean).map_err(|e| Error::Usage(e.to_string()))?,
            participant_id: format!("P{:04}", i + 1),
            cable_id: scenario.cables[h.cable].cable_id.clone(),
            installation,
            tax_credit: true,
            capacity_w: DEFAULT_CAPACITY_W,
            production_capacity_w: DEFAULT_CAPACITY_W,
            installation_http_public: false,
            installation_cert_sha256: None,
            consent_from: None,
            consent_until: None,
            member_from: None,
            member_until: None,
        });
    }
    let cable_rows = scenario
        .cables
        .iter()
        .map(|c| {
            (
                c.cable_id.clone(),
                Cable {
                    cable_id: c.cable_id.clone(),
                    substation: "TS-Noord".into(),
                    v_low_v: c.v_low_v,
                    v_high_v: c.v_high_v,
                },
            )
        })
        .collect();
    let registry = Registry::new(connections, cable_rows);
    registry.write(&args.dir.join("registry"))?;
    // The cables as the simulation lays them: `vaten simulate --cable` reads them back.
    let topologies: Vec<_> = scenario.cables.iter().map(|c| c.topology.clone()).collect();
    crate::feeders::write(&args.dir.join("registry"), &topologies)?;
    write_private(&args.dir.join("installation-tokens.toml"), &tokens)?;
    // One installation is unreachable for the first half of the passes; another loses what
    // it held, unfetched, at the start of the middle day (its storage wiped).
    let mut with_installation = (0..installed.len()).filter(|&i| installed[i]);
    let offline = with_installation.next().map(|i| format!("inst-{i:04}"));
    let wiped = with_installation.next().map(|i| format!("inst-{i:04}"));

    let key = format!("demo-{}", uuid::Uuid::new_v4().simple());
    let server = FakeGridOperator::spawn(&key, 0)?;
    let config_path = args.dir.join("vaten.toml");
    std::fs::write(
        &config_path,
        format!(
            "# Written by `vaten demo`; the grid operator and the installations are local fakes.\n\
             lake = \"lake\"\nregistry = \"registry\"\nreports = \"reports\"\n\n\
             [grid]\nbase_url = \"{}\"\napi_key_env = \"VATEN_DEMO_GRID_API_KEY\"\npage_limit = 200\n\n\
             [installations]\ntokens_file = \"installation-tokens.toml\"\ntimeout_s = 2\n",
            server.url()
        ),
    )?;

    // The imperfections: a meter exchange at noon of the middle day at the first house
    // without installation, one day of the first house first delivered with estimates.
    let middle = dates[dates.len() / 2];
    let noon = NaiveTime::from_hms_opt(12, 0, 0).expect("time");
    let exchange = installed.iter().position(|&x| !x).map(|house| Exchange {
        house,
        at: middle
            .and_time(noon)
            .and_local_timezone(tz)
            .single()
            .expect("noon exists")
            .with_timezone(&chrono::Utc),
    });
    let late_day = dates[(PASS_EVERY_DAYS - 1).min(dates.len().saturating_sub(2))];
    let mut grid = GridFeed::new(tz, eans.clone(), args.seed, exchange, Some((0, late_day)));
    let mut sim = Simulation::new(scenario);
    for h in 0..eans.len() {
        grid.start(h, &sim.houses[h].regs);
    }
    let mut truth = Truth::default();
    let started = std::time::Instant::now();
    println!(
        "vaten demo: simulating {} connections on {cables} cables, {} to {end}, with a nightly pass every {PASS_EVERY_DAYS} days",
        args.connections, dates[0]
    );
    let passes = args.days.div_ceil(PASS_EVERY_DAYS as u32) as usize;
    let mut pass = 0;
    let mut last_messages = Vec::new();
    let mut last_ctx = None;
    for (k, &date) in dates.iter().enumerate() {
        if let (Some(id), true) = (&wiped, date == middle) {
            installations.reset(id);
        }
        let day_start: Vec<_> = sim.houses.iter().map(|h| h.regs).collect();
        let mut quarters = Vec::new();
        sim.run_until(local_midnight_utc(date + Duration::days(1), tz), &mut |q| {
            quarters.push(*q)
        });
        for q in &quarters {
            grid.reading(q.house, q.t_end, &q.regs);
            if installed[q.house] {
                installations.record(
                    &format!("inst-{:04}", q.house),
                    q.t_end,
                    500_000 + q.regs.pv_wh as u64,
                    q.regs.charge_wh as u64,
                    q.regs.discharge_wh as u64,
                    q.soc_pct,
                    q.voltage,
                );
            }
        }
        let regs: Vec<_> = sim.houses.iter().map(|h| h.regs).collect();
        for h in 0..eans.len() {
            truth.record(h, date, day_start[h], regs[h]);
        }
        server.push(grid.end_day(date, &regs));
        if k == dates.len() - 1 {
            // What real feeds also carry: a connection the service may not serve, and data
            // for an EAN that is not (yet) in the registry.
            let stranger =
                crate::domain::Ean::with_check_digit("87168712999999999").expect("17 digits");
            server.push(std::mem::take(&mut grid.held));
            server.push([
                FeedEntry::rejection(
                    json!({"ean": eans[eans.len() - 1], "query_date": date.to_string(),
                    "code": "NO_CONSENT", "text": "no valid authorisation for this connection"}),
                ),
                FeedEntry::interval(json!({"ean": stranger.as_str(), "meter_id": "E-NEW",
                    "query_date": date.to_string(), "unit": "kWh", "items": []})),
            ]);
        }
        if (k + 1) % PASS_EVERY_DAYS == 0 || k == dates.len() - 1 {
            if let Some(id) = &offline {
                let away = pass < passes.div_ceil(2).max(1) && passes > 1 || passes == 1;
                installations.set_behaviour(
                    id,
                    if away {
                        Behaviour::Slow(std::time::Duration::from_secs(3))
                    } else {
                        Behaviour::Healthy
                    },
                );
            }
            // The next morning at 09:30, on the simulated clock.
            let morning = (date + Duration::days(1))
                .and_time(NaiveTime::from_hms_opt(9, 30, 0).expect("time"))
                .and_local_timezone(tz)
                .single()
                .expect("09:30 exists")
                .with_timezone(&chrono::Utc);
            // A running clock from there: the jobs of a pass get their own start times in `_runs`.
            let mut ctx =
                Context::load(Config::load(&config_path)?, Clock::Fixed(morning).running())?;
            ctx.grid_key = Some(Secret::new(key.clone()));
            if let Err(e) = commands::nightly_pass(&ctx) {
                last_messages.push(format!("pass {}: {e}", pass + 1));
            }
            let first = dates[k - k % PASS_EVERY_DAYS];
            println!(
                "  days {first} to {date} simulated; nightly pass {}/{passes}: {}",
                pass + 1,
                pass_summary(&Lake::open_read(&ctx.config.lake), morning)?
            );
            last_ctx = Some(ctx);
            pass += 1;
        }
    }
    // After the last pass, on its running clock.
    let Some(ctx) = last_ctx else {
        return Err(Error::Usage("the demo ran no pass".into()));
    };
    let yearly = commands::report_yearly(&ctx, end.year())?;
    std::fs::create_dir_all(args.dir.join("simulation"))?;
    std::fs::write(
        args.dir.join("simulation/truth.csv"),
        truth.csv(&eans, &installed),
    )?;
    let secs = started.elapsed().as_secs_f64();

    let lake = Lake::open_read(&ctx.config.lake);
    let rows = |spec| lake.read_table(spec).map(|df| df.height());
    println!(
        "done: {} connections on {cables} cables ({} with an installation), {} days ending {end}, simulated and run in {secs:.1} s",
        args.connections,
        installed.iter().filter(|x| **x).count(),
        args.days
    );
    println!(
        "  {pass} nightly passes (every {PASS_EVERY_DAYS} simulated days, at 09:30 the morning after); {} offline for the first half of them, {} wiped on {middle}",
        offline.as_deref().unwrap_or("no installation"),
        wiped.as_deref().unwrap_or("no installation")
    );
    for m in &last_messages {
        println!("  {m}");
    }
    println!("  grid_readings: {} rows", rows(&GRID_READINGS)?);
    println!(
        "  installation_readings: {} rows",
        rows(&INSTALLATION_READINGS)?
    );
    println!("  grid_days:     {} rows", rows(&GRID_DAYS)?);
    println!(
        "  rejected:      {} rows (see reason and detail)",
        rows(&REJECTED)?
    );
    print_cables(&lake)?;
    let nightly = ctx
        .config
        .reports
        .join("nightly")
        .join(format!("{end}.html"));
    println!("lake:    {}", ctx.config.lake.display());
    println!(
        "reports: {} (nightly), {} (yearly, public) and {} participant statements in {}",
        nightly.display(),
        yearly.files[0].display(),
        yearly.files.len() - 1,
        ctx.config.reports.join("private").display()
    );
    println!(
        "truth:   {} (the simulation's own figures per connection and day)",
        args.dir.join("simulation/truth.csv").display()
    );
    println!(
        "config:  {}  (the grid key is the demo's own; try: VATEN_CONFIG={} vaten status)",
        config_path.display(),
        config_path.display()
    );
    Ok(())
}

/// How the jobs of the pass that started at `since` ended, from `_runs`: e.g.
/// `4 jobs ok, 1 with warnings (ingest-installations)`.
fn pass_summary(lake: &Lake, since: chrono::DateTime<chrono::Utc>) -> Result<String> {
    use polars::prelude::*;
    let Some(runs) = lake.scan(&RUNS)? else {
        return Ok("no job ran".into());
    };
    let df = runs
        .filter(
            col("started_at")
                .cast(DataType::Int64)
                .gt_eq(lit(since.timestamp_micros())),
        )
        .select([col("job"), col("status")])
        .collect()?;
    let (jobs, statuses) = (df.column("job")?.str()?, df.column("status")?.str()?);
    let mut ok = 0;
    let (mut warned, mut failed) = (Vec::new(), Vec::new());
    for (job, status) in jobs.iter().zip(statuses.iter()) {
        let job = job.unwrap_or("?").to_string();
        match status {
            Some("ok") => ok += 1,
            Some("warning") => warned.push(job),
            _ => failed.push(job),
        }
    }
    let mut line = format!("{ok} jobs ok");
    for (list, what) in [(warned, "with warnings"), (failed, "failed")] {
        if !list.is_empty() {
            line += &format!(", {} {what} ({})", list.len(), list.join(", "));
        }
    }
    Ok(line)
}

/// Empties the demo folder, refusing to touch a folder the demo did not create.
fn prepare_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        let ours = dir.join(MARKER).exists();
        let empty = std::fs::read_dir(dir)?.next().is_none();
        if !ours && !empty {
            return Err(Error::Usage(format!(
                "{} exists and was not made by `vaten demo`; choose another --dir",
                dir.display()
            )));
        }
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join(MARKER),
        "made by vaten demo; replaced on every run\n",
    )?;
    Ok(())
}

/// Per cable over the period: V, L, T, P, matched energy and local share, quarter-hours beyond
/// the agreed voltage limits.
fn print_cables(lake: &Lake) -> Result<()> {
    use polars::prelude::*;
    let Some(lf) = lake.scan(&crate::lake::schema::CABLE_BALANCE_DAILY)? else {
        return Ok(());
    };
    let df = lf
        .group_by_stable([col("cable_id")])
        .agg([
            col("v_wh").sum(),
            col("l_wh").sum(),
            col("t_wh").sum(),
            col("p_wh").sum(),
            col("matched_wh").sum(),
            (col("quarters_below_v_low") + col("quarters_above_v_high"))
                .sum()
                .alias("beyond"),
        ])
        .sort(["cable_id"], SortMultipleOptions::default())
        .collect()?;
    println!("  per cable (kWh): cable     V        L        T        P  matched  local share  quarter-hours beyond limits");
    let kwh = |name: &str, i: usize| -> Result<f64> {
        Ok(df
            .column(name)?
            .cast(&DataType::Int64)?
            .i64()?
            .get(i)
            .unwrap_or(0) as f64
            / 1000.0)
    };
    for i in 0..df.height() {
        let cable = df
            .column("cable_id")?
            .str()?
            .get(i)
            .unwrap_or("")
            .to_string();
        let (l, m) = (kwh("l_wh", i)?, kwh("matched_wh", i)?);
        let share = if l > 0.0 {
            format!("{:.1} %", 100.0 * m / l)
        } else {
            "-".into()
        };
        println!(
            "                   {cable:<5} {:>8.0} {l:>8.0} {:>8.0} {:>8.0} {m:>8.0} {share:>12} {:>28}",
            kwh("v_wh", i)?,
            kwh("t_wh", i)?,
            kwh("p_wh", i)?,
            df.column("beyond")?.cast(&DataType::Int64)?.i64()?.get(i).unwrap_or(0)
        );
    }
    Ok(())
}
