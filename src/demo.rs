//! `vaten demo`: the pipeline on a built-in cooperative, with no setup. A fake grid operator
//! on 127.0.0.1 serves generated quarter-hour data (with a service rejection and an object for
//! an EAN outside the registry, as real feeds have); the ingest runs through the same code as
//! `vaten ingest grid`. The street-cable simulation will replace the generated data.

use std::path::Path;

use chrono::Utc;
use serde_json::json;

use crate::cli::{DemoArgs, FakeGridArgs};
use crate::clock::Clock;
use crate::commands::{self, Context};
use crate::config::{Config, Secret};
use crate::domain::time::{local_date, AMSTERDAM};
use crate::error::{Error, Result};
use crate::fake::synth::{cooperative, dates_ending, feed};
use crate::fake::{FakeGridOperator, FeedEntry};
use crate::lake::schema::{GRID_DAYS, GRID_READINGS, REJECTED};
use crate::lake::Lake;

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
    let (registry, mut meters) = cooperative(args.connections);
    registry.write(&args.dir.join("registry"))?;

    let key = format!("demo-{}", uuid::Uuid::new_v4().simple());
    let server = FakeGridOperator::spawn(&key, 0)?;
    let dates = dates_ending(end, args.days);
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
             [grid]\nbase_url = \"{}\"\napi_key_env = \"VATEN_DEMO_GRID_API_KEY\"\npage_limit = 200\n",
            server.url()
        ),
    )?;
    let ctx = Context::load(Config::load(&config_path)?, clock)?;
    let started = Utc::now();
    let report = commands::ingest_grid(&ctx, Secret::new(key))?;
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
    println!("  grid_readings: {} rows", rows(&GRID_READINGS)?);
    println!("  grid_days:     {} rows", rows(&GRID_DAYS)?);
    println!(
        "  rejected:      {} rows (see reason and detail)",
        rows(&REJECTED)?
    );
    println!("lake:   {}", ctx.config.lake.display());
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
    server.push(feed(
        &mut meters,
        &dates_ending(end, args.days),
        AMSTERDAM,
        args.seed,
    ));
    println!("{}", server.url());
    tracing::info!(
        objects = server.feed_len(),
        "fake grid operator serving at {}",
        server.url()
    );
    loop {
        std::thread::park();
    }
}
