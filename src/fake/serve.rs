//! `vaten fake-grid` and `vaten fake-installations`: the fake servers on their own, serving
//! generated data until stopped (for benchmarks and trying clients by hand).

use std::path::{Path, PathBuf};

use chrono::{NaiveDate, Utc};
use clap::Args;

use crate::domain::time::{local_date, AMSTERDAM};
use crate::error::{Error, Result};
use crate::fake::synth::{cooperative, cooperative_on, dates_ending, feed};
use crate::fake::{FakeGridOperator, FakeInstallations};
use crate::registry::Installation;

#[derive(Debug, Args)]
pub struct FakeGridArgs {
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Street cables the connections are spread over (connection i on cable i mod N).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=10_000))]
    pub cables: u16,
    #[arg(long, default_value_t = 10)]
    pub days: u32,
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub end: Option<NaiveDate>,
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Environment variable holding the key the fake server expects.
    #[arg(long, default_value = "VATEN_GRID_API_KEY")]
    pub api_key_env: String,
    /// Write the matching registry (connections.csv, cables.csv) here.
    #[arg(long)]
    pub registry_out: PathBuf,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Serve only the days after the first K (their registers continue where those ended)...
    #[arg(long, default_value_t = 0)]
    pub skip_days: u32,
    /// ...and of those at most N (a year is served in chunks: all at once it would not fit in
    /// memory as JSON).
    #[arg(long)]
    pub only_days: Option<u32>,
    /// Hold back the last N of the days (the nightly benchmark's "new day")...
    #[arg(long, default_value_t = 0)]
    pub hold_days: u32,
    /// ...until this file exists.
    #[arg(long)]
    pub release_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct FakeInstallationsArgs {
    /// Installations of a generated cooperative (ignored with --registry).
    #[arg(long, default_value_t = 200)]
    pub count: usize,
    /// Give installations to two of every three connections of this registry (e.g. the one
    /// `vaten fake-grid` wrote) instead of generating a cooperative.
    #[arg(long, value_name = "DIR")]
    pub registry: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    pub days: u32,
    /// Last day of readings (Europe/Amsterdam day; default: yesterday).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub end: Option<NaiveDate>,
    /// Serve only the days after the first K: registers and sequence numbers continue where
    /// those ended, as if the installations had been read all along...
    #[arg(long, default_value_t = 0)]
    pub skip_days: u32,
    /// ...and of those at most N (an installation keeps 30 × 96 readings: 29 days always fit).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=31))]
    pub only_days: Option<u32>,
    /// Listen on this port (0: any free one). A fixed port keeps the registry's URLs the same
    /// from one run to the next.
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Write the matching registry (connections.csv, cables.csv) here.
    #[arg(long)]
    pub registry_out: PathBuf,
    /// Write the tokens file (mode 0600) here.
    #[arg(long)]
    pub tokens_out: PathBuf,
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
    let (registry, mut meters) = cooperative_on(args.connections, usize::from(args.cables));
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
    // Whole Europe/Amsterdam days, as the fake grid operator serves them (92, 96 or 100
    // quarter-hours each): the first reading closes the first quarter-hour of the first day.
    let skip = args.skip_days.min(args.days);
    let served = args
        .only_days
        .map_or(args.days - skip, |n| n.min(args.days - skip));
    let day = |k: u32| {
        let date = end - chrono::Duration::days(i64::from(args.days) - 1 - i64::from(k));
        crate::domain::time::local_midnight_utc(date, AMSTERDAM)
    };
    let quarters = |from: u32, to: u32| ((day(to) - day(from)).num_minutes() / 15) as usize;
    let first_end = |k: u32| day(k) + chrono::Duration::minutes(15);
    if quarters(skip, skip + served) > super::installations::KEPT {
        // As a real one, an installation keeps the latest 30 × 96 readings: the oldest go.
        tracing::warn!("an installation keeps 30 × 96 readings: the oldest of the days asked go");
    }
    let fake = FakeInstallations::spawn_on(args.port)?;
    let (mut registry, with_installation): (_, Box<dyn Fn(usize) -> bool>) = match &args.registry {
        Some(dir) => (
            crate::registry::Registry::load(dir)?,
            Box::new(|i| i % 3 != 2),
        ),
        None => (cooperative(args.count).0, Box::new(|_| true)),
    };
    let mut tokens = String::from("[tokens]\n");
    for (i, c) in registry.connections.iter_mut().enumerate() {
        if !with_installation(i) {
            continue;
        }
        let id = format!("inst-{i:04}");
        let token = uuid::Uuid::new_v4().simple().to_string();
        fake.add(&id, c.ean.as_str(), &token, &format!("SDM120-{i:07}"));
        // The skipped days turn the registers and the numbering on; the installation then
        // holds only the days served.
        fake.produce(&id, first_end(0), quarters(0, skip), i as u64);
        fake.reset(&id);
        fake.produce(
            &id,
            first_end(skip),
            quarters(skip, skip + served),
            i as u64,
        );
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
pub fn write_private(path: &Path, text: &str) -> Result<()> {
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
