//! `vaten demo`: the pipeline on a built-in cooperative, with no setup. A fake grid operator
//! on 127.0.0.1 serves generated quarter-hour data (with a service rejection and an object for
//! an EAN outside the registry, as real feeds have), and fake installations (one of them
//! switched off) serve P, battery and voltage readings; the ingest runs through the same code
//! as `vaten ingest`, then `vaten transform` computes the intervals. The street-cable simulation
//! will replace the generated data.

use std::path::Path;

use chrono::Datelike;
use chrono::Utc;
use serde_json::json;

use crate::cli::{DemoArgs, FakeGridArgs, FakeInstallationsArgs};
use crate::clock::Clock;
use crate::commands::{self, Context};
use crate::config::{Config, Secret};
use crate::domain::time::{local_date, AMSTERDAM};
use crate::error::{Error, Result};
use crate::fake::synth::{cooperative, dates_ending, feed};
use crate::fake::{FakeGridOperator, FakeInstallations, FeedEntry};
use crate::lake::schema::{GRID_DAYS, GRID_READINGS, INSTALLATION_READINGS, REJECTED};
use crate::lake::Lake;
use crate::registry::Installation;

const MARKER: &str = ".vaten-demo";

pub fn run(args: &DemoArgs, clock: Clock) -> Result<()> {
    if args.connections == 0 || args.days == 0 {
        return Err(Error::Usage(
            "--connections and --days must be at least 1".into(),
        ));
    }
    prepare_dir(&args.dir)?;
    let end = args
        .end
        .unwrap_or_else(|| local_date(clock.now(), AMSTERDAM).pred_opt().expect("date"));
    let (mut registry, mut meters) = cooperative(args.connections);
    let dates = dates_ending(end, args.days);
    // Two in three connections have an installation behind the meter, served by local fakes;
    // one of them is switched off, as a real one sometimes is.
    let installations = FakeInstallations::spawn()?;
    let first_end = crate::domain::time::local_midnight_utc(dates[0], AMSTERDAM)
        + chrono::Duration::minutes(15);
    let quarters: usize = dates
        .iter()
        .map(|d| crate::domain::time::quarter_hours_in_day(*d, AMSTERDAM))
        .sum();
    let mut tokens = String::from("[tokens]\n");
    let mut offline = None;
    for (i, c) in registry
        .connections
        .iter_mut()
        .enumerate()
        .filter(|(i, _)| (i / 3) % 3 != 2)
    {
        let id = format!("inst-{i:04}");
        let token = uuid::Uuid::new_v4().simple().to_string();
        installations.add(&id, c.ean.as_str(), &token, &format!("SDM120-{i:07}"));
        installations.produce(&id, first_end, quarters, args.seed ^ i as u64);
        let url = if offline.is_none() && i > 0 {
            offline = Some(id.clone());
            installations.offline_url(&id)
        } else {
            installations.url(&id)
        };
        c.installation = Some(Installation {
            id: id.clone(),
            url,
        });
        tokens += &format!("\"{id}\" = \"{token}\"\n");
    }
    registry.write(&args.dir.join("registry"))?;
    write_private(&args.dir.join("installation-tokens.toml"), &tokens)?;

    let key = format!("demo-{}", uuid::Uuid::new_v4().simple());
    let server = FakeGridOperator::spawn(&key, 0)?;
    server.push(feed(&mut meters, &dates, AMSTERDAM, args.seed));
    // What real feeds also carry: a connection the service may not serve, and data for an
    // EAN that is not (yet) in the registry.
    let stranger = crate::domain::Ean::with_check_digit("87168712999999999").expect("17 digits");
    server.push([
        FeedEntry::rejection(
            json!({"ean": meters[0].ean, "query_date": end.to_string(), "code": "NO_CONSENT",
                                    "text": "no valid authorisation for this connection"}),
        ),
        FeedEntry::interval(
            json!({"ean": stranger.as_str(), "meter_id": "E-NEW", "query_date": end.to_string(),
                                   "unit": "kWh", "items": []}),
        ),
    ]);

    let config_path = args.dir.join("vaten.toml");
    std::fs::write(
        &config_path,
        format!(
            "# Written by `vaten demo`; the grid operator is a local fake.\n\
             lake = \"lake\"\nregistry = \"registry\"\nreports = \"reports\"\n\n\
             [grid]\nbase_url = \"{}\"\napi_key_env = \"VATEN_DEMO_GRID_API_KEY\"\npage_limit = 200\n\n\
             [installations]\ntokens_file = \"installation-tokens.toml\"\ntimeout_s = 2\n",
            server.url()
        ),
    )?;
    let ctx = Context::load(Config::load(&config_path)?, clock)?;
    let started = Utc::now();
    let report = commands::ingest_grid(&ctx, Secret::new(key))?;
    let pass = commands::ingest_installations(&ctx)?;
    let transformed = commands::transform(&ctx, crate::intervals::Scope::Incremental)?;
    let nightly = commands::report_nightly(&ctx, end)?;
    let yearly = commands::report_yearly(&ctx, end.year())?;
    let secs = (Utc::now() - started).num_milliseconds() as f64 / 1000.0;

    let lake = Lake::open_read(&ctx.config.lake);
    let rows = |spec| lake.read_table(spec).map(|df| df.height());
    println!(
        "vaten demo: {} connections, {} days ending {end}",
        args.connections, args.days
    );
    println!(
        "  grid feed: {} pages, {} readings received in {secs:.1} s",
        report.pages, report.readings_in
    );
    println!(
        "  installations: {} of {} complete, {} readings received ({} offline on purpose)",
        pass.complete,
        pass.installations,
        pass.readings_in,
        offline.as_deref().unwrap_or("none")
    );
    println!("  grid_readings: {} rows", rows(&GRID_READINGS)?);
    println!(
        "  installation_readings: {} rows",
        rows(&INSTALLATION_READINGS)?
    );
    println!("  grid_days:     {} rows", rows(&GRID_DAYS)?);
    println!(
        "  intervals:     {} rows ({} quarter-hours with L, T or P missing: an offline installation, or no reading yet)",
        transformed.intervals, transformed.missing
    );
    println!(
        "  rejected:      {} rows (see reason and detail)",
        rows(&REJECTED)?
    );
    print_cables(&lake)?;
    println!("lake:   {}", ctx.config.lake.display());
    println!(
        "reports: {} (nightly), {} (yearly, public) and {} participant statements in {}",
        nightly.files[0].display(),
        yearly.files[0].display(),
        yearly.files.len() - 1,
        ctx.config.reports.join("private").display()
    );
    println!(
        "config: {}  (try: VATEN_CONFIG={} vaten replay-rejected)",
        config_path.display(),
        config_path.display()
    );
    println!("query it, e.g.: duckdb -c \"SELECT ean, count(*) FROM read_parquet('{}/grid_readings/*/*.parquet', hive_partitioning=true) GROUP BY ean LIMIT 5\"", ctx.config.lake.display());
    Ok(())
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

/// `vaten fake-grid`: serves a generated feed until the process is stopped.
pub fn serve_fake_grid(args: &FakeGridArgs) -> Result<()> {
    let key = std::env::var(&args.api_key_env).map_err(|_| {
        Error::Usage(format!(
            "set {} to the key the fake server should expect",
            args.api_key_env
        ))
    })?;
    let end = args
        .end
        .unwrap_or_else(|| local_date(Utc::now(), AMSTERDAM).pred_opt().expect("date"));
    let (registry, mut meters) = cooperative(args.connections);
    registry.write(&args.registry_out)?;
    let server = FakeGridOperator::spawn(&key, args.port)?;
    let dates = dates_ending(end, args.days);
    let (skipped, dates) = dates.split_at((args.skip_days as usize).min(dates.len()));
    crate::fake::synth::advance(&mut meters, skipped, AMSTERDAM, args.seed);
    let dates = &dates[..args
        .only_days
        .map_or(dates.len(), |n| (n as usize).min(dates.len()))];
    let (now, held) = dates.split_at(dates.len().saturating_sub(args.hold_days as usize));
    server.push(feed(&mut meters, now, AMSTERDAM, args.seed));
    // The held days continue the same registers: generated now, served later.
    let mut held = Some(feed(&mut meters, held, AMSTERDAM, args.seed));
    println!("{}", server.url());
    tracing::info!(
        objects = server.feed_len(),
        "fake grid operator serving at {}",
        server.url()
    );
    loop {
        match (&args.release_file, held.is_some()) {
            (Some(file), true) => {
                if file.exists() {
                    server.push(held.take().unwrap_or_default());
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            _ => std::thread::park(),
        }
    }
}

/// `vaten fake-installations`: serves generated installations until the process is stopped.
pub fn serve_fake_installations(args: &FakeInstallationsArgs) -> Result<()> {
    let end = args
        .end
        .unwrap_or_else(|| local_date(Utc::now(), AMSTERDAM).pred_opt().expect("date"));
    let first_end = crate::domain::time::local_midnight_utc(end, chrono_tz::UTC)
        - chrono::Duration::days(i64::from(args.days) - 1)
        + chrono::Duration::minutes(15);
    let fake = FakeInstallations::spawn()?;
    let (mut registry, _) = cooperative(args.count);
    let mut tokens = String::from("[tokens]\n");
    for (i, c) in registry.connections.iter_mut().enumerate() {
        let id = format!("inst-{i:04}");
        let token = uuid::Uuid::new_v4().simple().to_string();
        fake.add(&id, c.ean.as_str(), &token, &format!("SDM120-{i:07}"));
        fake.produce(&id, first_end, 96 * args.days as usize, i as u64);
        c.installation = Some(Installation {
            id: id.clone(),
            url: fake.url(&id),
        });
        tokens += &format!("\"{id}\" = \"{token}\"\n");
    }
    registry.write(&args.registry_out)?;
    write_private(&args.tokens_out, &tokens)?;
    println!("{}", fake.url(""));
    loop {
        std::thread::park();
    }
}

/// Writes a file only its owner can read (mode 0600 from the start).
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
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
