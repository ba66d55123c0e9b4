//! `vaten simulate`: one cable under several settings, side by side — the numbers for the
//! talks with the grid operator about per-cable voltage limits.

use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use clap::Args;

use super::{cooperative_scenario, weather::unit, CableStats, Scenario, Simulation};
use crate::error::Result;
use crate::reports::charts::{line_chart, Line, LineChart, BLUE_L, GREEN_MATCHED, ORANGE_T, RED};

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Houses on the cable (25 m apart, over three phases).
    #[arg(long, default_value_t = 30)]
    pub houses: usize,
    /// Days simulated from --start.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// First day (default: 1 January of last year).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub start: Option<NaiveDate>,
    /// Agreed limits as LOW:HIGH volts; the first pair is the reference, each further pair
    /// is another setting. Default 226:244.
    #[arg(long, value_name = "LOW:HIGH")]
    pub limits: Vec<String>,
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
    /// Share of the houses with an installation (battery and controller).
    pub installed_share: f64,
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
        s("no controllers (baseline)", false, true, 2.0 / 3.0, lo, hi),
        s(
            &format!("controllers {lo:.0}–{hi:.0} V"),
            true,
            true,
            2.0 / 3.0,
            lo,
            hi,
        ),
        s("  pv_priority off", true, false, 2.0 / 3.0, lo, hi),
        s("  1/3 with installation", true, true, 1.0 / 3.0, lo, hi),
        s("  all with installation", true, true, 1.0, lo, hi),
    ];
    for &(l, h) in limits.iter().skip(1) {
        out.push(s(
            &format!("controllers {l:.0}–{h:.0} V"),
            true,
            true,
            2.0 / 3.0,
            l,
            h,
        ));
    }
    out
}

/// The scenario of one setting: the same houses, weather and panels every time; only the
/// installations, the controllers and the limits change.
pub fn scenario(
    houses: usize,
    start: DateTime<Utc>,
    step_s: f64,
    seed: u64,
    s: &Setting,
) -> Scenario {
    let mut sc = cooperative_scenario(houses, 1, start, step_s, seed);
    sc.controllers = s.controllers;
    sc.pv_priority = s.pv_priority;
    sc.cables[0].v_low_v = s.v_low_v;
    sc.cables[0].v_high_v = s.v_high_v;
    for (i, h) in sc.houses.iter_mut().enumerate() {
        let installed = unit(seed, i as u64 + 99) < s.installed_share;
        h.battery_wh = installed.then_some(10_000.0);
        if installed && h.pv_kwp == 0.0 {
            h.pv_kwp = 4.0;
        }
    }
    sc
}

/// Runs every setting (on two threads) for `days`.
pub fn compare(
    houses: usize,
    days: u32,
    start: DateTime<Utc>,
    step_s: f64,
    seed: u64,
    settings: &[Setting],
) -> Vec<CableStats> {
    let end = start + chrono::Duration::days(i64::from(days));
    let run = |s: &Setting| {
        let mut sim = Simulation::new(scenario(houses, start, step_s, seed, s));
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

/// `vaten simulate`.
pub fn command(args: &SimulateArgs, clock: crate::clock::Clock) -> Result<()> {
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
    if limits.is_empty() {
        limits.push((226.0, 244.0));
    }
    if args.houses == 0 || args.days == 0 || args.step_s <= 0.0 {
        return Err(Error::Usage(
            "--houses, --days and --step-s must be positive".into(),
        ));
    }
    let tz = crate::domain::time::AMSTERDAM;
    let start = args.start.unwrap_or_else(|| {
        let y = chrono::Datelike::year(&crate::domain::time::local_date(clock.now(), tz)) - 1;
        chrono::NaiveDate::from_ymd_opt(y, 1, 1).expect("1 January")
    });
    let settings = settings(&limits);
    let began = std::time::Instant::now();
    let stats = compare(
        args.houses,
        args.days,
        crate::domain::time::local_midnight_utc(start, tz),
        args.step_s,
        args.seed,
        &settings,
    );
    let mut md = format!(
        "# One cable, {} houses, {} days from {start} (seed {})\n\n",
        args.houses, args.days, args.seed
    );
    md += &table(&settings, &stats);
    md += "\nChart: #1… are the settings in the order of the table.\n";
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(args.out.join("simulate.md"), &md)?;
    std::fs::write(args.out.join("simulate.svg"), chart(&settings, &stats)?)?;
    println!("{md}");
    println!(
        "simulated {} settings in {:.1} s; written: {} and {}",
        settings.len(),
        began.elapsed().as_secs_f64(),
        args.out.join("simulate.md").display(),
        args.out.join("simulate.svg").display()
    );
    Ok(())
}

/// The comparison as a Markdown table.
pub fn table(settings: &[Setting], stats: &[CableStats]) -> String {
    let mut o = String::from(
        "| setting | ¼ h outside EN 50160 | ¼ h above band | ¼ h below band | matched kWh | local share | peak import kW | peak export kW | battery throughput kWh | setpoint reversals / controller-hour | oscillating steps |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
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
            "| {} | {} | {} | {} | {:.1} | {share:.1} % | {:.1} | {:.1} | {:.1} | {reversals} | {} |\n",
            s.name,
            r.quarters_outside_en50160,
            r.quarters_above_band,
            r.quarters_below_band,
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
        let run = |s: &Setting| {
            let mut sc = scenario(30, start, 60.0, 7, s);
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
