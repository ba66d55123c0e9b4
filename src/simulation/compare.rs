//! `vaten simulate`: one cable under several settings, side by side — the numbers for the
//! talks with the grid operator about per-cable voltage limits.

use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use clap::Args;

use std::collections::BTreeMap;

use super::cable::Typical;
use super::{cooperative_scenario, weather::unit, CableStats, Scenario, Simulation};
use crate::error::Result;
use crate::feeders::Topology;
use crate::reports::charts::{line_chart, Line, LineChart, BLUE_L, GREEN_MATCHED, ORANGE_T, RED};

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// A cable of the registry (`--config`): its connections and installations, laid as the
    /// registry's `feeders.csv` says (else 25 m apart, single-phase in turn). Without it, a
    /// synthetic cable of --houses houses.
    #[arg(long, value_name = "ID")]
    pub cable: Option<String>,
    /// Rank the cable's nodes without an installation by how much one more installation
    /// there helps (needs --cable): a table, rank-positions.csv and rank-positions.svg.
    #[arg(long, requires = "cable")]
    pub rank_positions: bool,
    /// Houses on the synthetic cable (25 m apart, single-phase over the three phases).
    #[arg(long, default_value_t = 30)]
    pub houses: usize,
    /// Days simulated from --from.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// First day (default: 1 January of last year).
    #[arg(long, alias = "start", value_name = "YYYY-MM-DD")]
    pub from: Option<NaiveDate>,
    /// Last day simulated, inclusive (instead of --days), e.g. a season.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub to: Option<NaiveDate>,
    /// Agreed limits as LOW:HIGH volts; the first pair is the reference, each further pair
    /// is another setting. Default: the cable's limits in the registry, else 226:244.
    #[arg(long, value_name = "LOW:HIGH")]
    pub limits: Vec<String>,
    /// The typical installation's battery (for the registry's installations and the ranked
    /// positions).
    #[arg(long, default_value_t = 10_000.0, value_name = "WH")]
    pub battery_wh: f64,
    /// The typical installation's panels, peak watts.
    #[arg(long, default_value_t = 4_000.0, value_name = "W")]
    pub panels_w: f64,
    #[arg(long, default_value_t = 60.0)]
    pub step_s: f64,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Folder for simulate.md and simulate.svg.
    #[arg(long, default_value = "vaten-simulate")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    pub name: String,
    pub controllers: bool,
    pub pv_priority: bool,
    /// Share of the houses with an installation (battery and controller), chosen at random
    /// for the seed; `None`: the installations as the scenario has them.
    pub installed_share: Option<f64>,
    pub v_low_v: f64,
    pub v_high_v: f64,
}

/// The baseline without controllers, the default, `pv_priority` off, fewer and more
/// installations, and each pair of limits in `limits` beyond the first.
pub fn settings(limits: &[(f64, f64)]) -> Vec<Setting> {
    let (lo, hi) = limits.first().copied().unwrap_or((226.0, 244.0));
    let s = |name: &str, controllers, pv_priority, share, lo, hi| Setting {
        name: name.into(),
        controllers,
        pv_priority,
        installed_share: share,
        v_low_v: lo,
        v_high_v: hi,
    };
    let mut out = vec![
        s("no controllers (baseline)", false, true, None, lo, hi),
        s(
            &format!("controllers {lo:.0}–{hi:.0} V"),
            true,
            true,
            None,
            lo,
            hi,
        ),
        s("  pv_priority off", true, false, None, lo, hi),
        s(
            "  1/3 with installation",
            true,
            true,
            Some(1.0 / 3.0),
            lo,
            hi,
        ),
        s("  all with installation", true, true, Some(1.0), lo, hi),
    ];
    for &(l, h) in limits.iter().skip(1) {
        out.push(s(
            &format!("controllers {l:.0}–{h:.0} V"),
            true,
            true,
            None,
            l,
            h,
        ));
    }
    out
}

/// The scenario of one setting: the same houses, weather and panels every time; only the
/// installations, the controllers and the limits change.
pub fn scenario(base: &Scenario, s: &Setting, typical: Typical) -> Scenario {
    let mut sc = base.clone();
    sc.controllers = s.controllers;
    sc.pv_priority = s.pv_priority;
    sc.cables[0].v_low_v = s.v_low_v;
    sc.cables[0].v_high_v = s.v_high_v;
    if let Some(share) = s.installed_share {
        for (i, h) in sc.houses.iter_mut().enumerate() {
            let installed = unit(sc.seed, i as u64 + 99) < share;
            h.battery_wh = installed.then_some(typical.battery_wh);
            if installed && h.pv_kwp == 0.0 {
                h.pv_kwp = typical.panels_w / 1000.0;
            }
        }
    }
    sc
}

/// Runs every setting (on two threads) until `end`.
pub fn compare(
    base: &Scenario,
    end: DateTime<Utc>,
    settings: &[Setting],
    typical: Typical,
) -> Vec<CableStats> {
    let run = |s: &Setting| {
        let mut sim = Simulation::new(scenario(base, s, typical));
        sim.run_until(end, &mut |_| {});
        sim.stats[0]
    };
    let half = settings.len().div_ceil(2);
    let (a, b) = settings.split_at(half);
    std::thread::scope(|scope| {
        let first = scope.spawn(|| a.iter().map(run).collect::<Vec<_>>());
        let mut out: Vec<CableStats> = b.iter().map(run).collect();
        let mut all = first.join().expect("simulation thread");
        all.append(&mut out);
        all
    })
}

/// The registry a `--cable` run reads: its connections and cables, and `feeders.csv`.
pub struct RegistryCables {
    pub registry: crate::registry::Registry,
    pub feeders: Option<BTreeMap<String, Topology>>,
}

/// `vaten simulate`.
pub fn command(
    args: &SimulateArgs,
    registry: Option<&RegistryCables>,
    clock: crate::clock::Clock,
) -> Result<()> {
    use crate::error::Error;
    let mut limits = Vec::new();
    for l in &args.limits {
        let parsed = l
            .split_once(':')
            .and_then(|(a, b)| Some((a.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?)))
            .filter(|(a, b)| a < b);
        match parsed {
            Some(p) => limits.push(p),
            None => {
                return Err(Error::Usage(format!(
                    "--limits {l}: expected LOW:HIGH volts, LOW below HIGH (e.g. 226:244)"
                )))
            }
        }
    }
    if args.houses == 0 || args.houses > 10_000 || args.days == 0 {
        return Err(Error::Usage(
            "--houses must be 1..=10000 and --days positive".into(),
        ));
    }
    // A step must close every quarter-hour exactly (and a NaN compares false).
    if !(args.step_s >= 1.0 && args.step_s <= 900.0 && 900.0 % args.step_s == 0.0) {
        return Err(Error::Usage(format!(
            "--step-s {}: seconds from 1 to 900 that divide 900 (e.g. 10, 60, 300)",
            args.step_s
        )));
    }
    if !(args.battery_wh > 0.0
        && args.battery_wh <= 1e6
        && args.panels_w >= 0.0
        && args.panels_w <= 1e6)
    {
        return Err(Error::Usage(
            "--battery-wh must be over 0 and --panels-w at least 0 (both at most 1,000,000)".into(),
        ));
    }
    let typical = Typical {
        battery_wh: args.battery_wh,
        panels_w: args.panels_w,
    };
    let tz = crate::domain::time::AMSTERDAM;
    let from = args.from.unwrap_or_else(|| {
        let y = chrono::Datelike::year(&crate::domain::time::local_date(clock.now(), tz)) - 1;
        chrono::NaiveDate::from_ymd_opt(y, 1, 1).expect("1 January")
    });
    let days = match args.to {
        Some(to) if to < from => {
            return Err(Error::Usage(format!("--to {to} is before --from {from}")))
        }
        Some(to) => (to - from).num_days() + 1,
        None => i64::from(args.days),
    };
    let start = crate::domain::time::local_midnight_utc(from, tz);
    let end = crate::domain::time::local_midnight_utc(from + chrono::Duration::days(days), tz);
    let (base, what) = match (&args.cable, registry) {
        (Some(id), Some(r)) => {
            let laid = if r.feeders.as_ref().is_some_and(|f| f.contains_key(id)) {
                "laid as feeders.csv says"
            } else {
                "no feeders.csv entry: 25 m apart"
            };
            let sc = super::cable::scenario(
                &r.registry,
                r.feeders.as_ref(),
                id,
                start,
                args.step_s,
                args.seed,
                typical,
            )?;
            let what = format!("Cable {id}, {} connections ({laid})", sc.houses.len());
            (sc, what)
        }
        _ => (
            cooperative_scenario(args.houses, 1, start, args.step_s, args.seed),
            format!("One cable, {} houses", args.houses),
        ),
    };
    if limits.is_empty() {
        limits.push((base.cables[0].v_low_v, base.cables[0].v_high_v));
    }
    std::fs::create_dir_all(&args.out)?;
    let began = std::time::Instant::now();
    if args.rank_positions {
        let mut base = base;
        base.cables[0].v_low_v = limits[0].0;
        base.cables[0].v_high_v = limits[0].1;
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let (before, ranked) = super::rank::rank(&base, end, typical, threads);
        let md = format!(
            "# {what}: ranked positions, {days} days from {from}, limits {:.0}–{:.0} V (seed {})\n\n{}",
            limits[0].0,
            limits[0].1,
            args.seed,
            super::rank::table(&before, &ranked)
        );
        let (csv, svg) = (
            args.out.join("rank-positions.csv"),
            args.out.join("rank-positions.svg"),
        );
        std::fs::write(&csv, super::rank::csv(&before, &ranked))?;
        std::fs::write(&svg, super::rank::svg(&base, &ranked))?;
        println!("{md}");
        println!(
            "simulated {} positions in {:.1} s ({}); written: {} and {}",
            ranked.len(),
            began.elapsed().as_secs_f64(),
            solver_line(&[before]),
            csv.display(),
            svg.display()
        );
        return Ok(());
    }
    let settings = settings(&limits);
    let stats = compare(&base, end, &settings, typical);
    let mut md = format!("# {what}, {days} days from {from} (seed {})\n\n", args.seed);
    md += &table(&settings, &stats);
    md += "\nChart: #1… are the settings in the order of the table.\n";
    std::fs::write(args.out.join("simulate.md"), &md)?;
    std::fs::write(args.out.join("simulate.svg"), chart(&settings, &stats)?)?;
    println!("{md}");
    println!(
        "simulated {} settings in {:.1} s ({}); written: {} and {}",
        settings.len(),
        began.elapsed().as_secs_f64(),
        solver_line(&stats),
        args.out.join("simulate.md").display(),
        args.out.join("simulate.svg").display()
    );
    Ok(())
}

/// How long one power flow of the cable took on average.
fn solver_line(stats: &[CableStats]) -> String {
    let (n, ns, unsolved) = stats.iter().fold((0u64, 0u64, 0u64), |(n, ns, u), s| {
        (n + s.solves, ns + s.solve_ns, u + s.unsolved_flows)
    });
    let mut line = format!(
        "{n} power flows, {:.1} µs each",
        ns as f64 / n.max(1) as f64 / 1000.0
    );
    if unsolved > 0 {
        line += &format!(
            "; WARNING: {unsolved} without a solution (the cable cannot carry the load; those quarter-hours count as beyond the limits)"
        );
    }
    line
}

/// The comparison as a Markdown table.
pub fn table(settings: &[Setting], stats: &[CableStats]) -> String {
    let mut o = String::from(
        "| setting | ¼ h outside EN 50160 | ¼ h above band | ¼ h below band | ¼ h beyond band | matched kWh | local share | peak import kW | peak export kW | battery throughput kWh | setpoint reversals / controller-hour | oscillating steps |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (s, r) in settings.iter().zip(stats) {
        let share = if r.import_wh > 0 {
            r.matched_wh as f64 / r.import_wh as f64 * 100.0
        } else {
            0.0
        };
        let reversals = if r.controller_steps > 0 {
            format!(
                "{:.3}",
                r.setpoint_reversals as f64 / r.controller_steps as f64 * 60.0
            )
        } else {
            "–".into()
        };
        o += &format!(
            "| {} | {} | {} | {} | {} | {:.1} | {share:.1} % | {:.1} | {:.1} | {:.1} | {reversals} | {} |\n",
            s.name,
            r.quarters_outside_en50160,
            r.quarters_above_band,
            r.quarters_below_band,
            r.quarters_beyond_band,
            r.matched_wh as f64 / 1000.0,
            r.peak_import_w / 1000.0,
            r.peak_export_w / 1000.0,
            r.battery_throughput_wh as f64 / 1000.0,
            r.oscillating_steps,
        );
    }
    o
}

/// The comparison as an SVG chart: per setting, the quarter-hours beyond the band and the
/// peaks at the transformer.
pub fn chart(settings: &[Setting], stats: &[CableStats]) -> Result<String> {
    let pts = |f: &dyn Fn(&CableStats) -> f64| -> Vec<(f64, f64)> {
        stats
            .iter()
            .enumerate()
            .map(|(i, r)| (i as f64, f(r)))
            .collect()
    };
    line_chart(&LineChart {
        title: "Settings compared on one cable".into(),
        y_desc: "quarter-hours / kW".into(),
        x_labels: (1..=settings.len()).map(|i| format!("#{i}")).collect(),
        label_every: 1,
        lines: vec![
            Line {
                name: "¼ h above band".into(),
                points: pts(&|r| r.quarters_above_band as f64),
                color: RED,
            },
            Line {
                name: "¼ h below band".into(),
                points: pts(&|r| r.quarters_below_band as f64),
                color: BLUE_L,
            },
            Line {
                name: "peak export kW".into(),
                points: pts(&|r| r.peak_export_w / 1000.0),
                color: ORANGE_T,
            },
            Line {
                name: "peak import kW".into(),
                points: pts(&|r| r.peak_import_w / 1000.0),
                color: GREEN_MATCHED,
            },
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controllers_reduce_overvoltage_on_a_sunny_week_without_oscillating() {
        // 30 houses, a clear-sky-rich June week, 2 kWp more panels than usual on each roof.
        let start: DateTime<Utc> = "2026-06-15T00:00:00Z".parse().unwrap();
        let all = settings(&[(226.0, 244.0)]);
        let (baseline, with) = (&all[0], &all[1]);
        let base = cooperative_scenario(30, 1, start, 60.0, 7);
        let typical = Typical {
            battery_wh: 10_000.0,
            panels_w: 4_000.0,
        };
        let run = |s: &Setting| {
            let mut sc = scenario(&base, s, typical);
            for h in &mut sc.houses {
                h.pv_kwp += 2.0;
            }
            let mut sim = Simulation::new(sc);
            sim.run_until(start + chrono::Duration::days(7), &mut |_| {});
            sim.stats[0]
        };
        let (b, w) = (run(baseline), run(with));
        assert!(
            b.quarters_above_band > 20,
            "the baseline has overvoltage to reduce: {b:?}"
        );
        assert!(
            w.quarters_above_band < b.quarters_above_band,
            "{w:?} vs {b:?}"
        );
        // No sustained oscillation: a setpoint never zig-zags three steps in a row (it does
        // reverse when the load or the clouds turn, once, not step after step).
        assert!(w.controller_steps > 100_000);
        assert_eq!(w.oscillating_steps, 0, "{w:?}");
    }
}
