//! The arrival-order property: whatever order the received data arrives in, and however it is
//! cut into nightly batches, the incremental transform after the last batch (and, for some
//! seeds, after every batch) equals a full recompute, table by table.
//!
//! Each seed generates a cooperative of four connections on two cables (one with an
//! installation) over seven days: complete days, days with holes, days missing for good (their
//! daily registers come instead), days first delivered with estimates and corrected later, a
//! meter exchange, and always a hole of five days whose later daily registers arrive in the
//! very last batch (late `grid_days` inside a hole). Installation readings arrive as the
//! installation uploads them, with the installation sometimes refusing the cooperative (401).
//! The seven days take turns by seed: a week around the 100-quarter-hour day of October, and
//! two weeks that start on the 2nd of a month, after three complete days that arrive in the
//! first batch: the end of October (the later windows leave October's daily file alone and
//! still count it in the yearly tax base; asserted) and the end of the year (they leave 2026's
//! files alone, the year netting ends). Bounded: `VATEN_ARRIVAL_SEEDS` runs more seeds.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use vaten::fake::{Behaviour, FakeInstallations, FeedEntry};
use vaten::registry::{Installation, Registry};

use crate::common::*;
use crate::feeds::*;
use crate::incremental::{derived, same};

/// Seven days in a row, and what a test needs to know of them.
struct Week {
    /// Days before, complete (quarter-hours and registers of every meter, and the registers
    /// that close them) in the first batch.
    before: &'static [&'static str],
    /// Where there are days before: what of `consumption_daily`'s files (a part of their path)
    /// the later windows, which all start on the 1st or later, leave alone.
    kept: Option<&'static str>,
    days: [&'static str; 7],
    /// The day after the last, whose register closes it.
    end: &'static str,
    /// The end of the first quarter-hour (00:15 local on the first day), in UTC.
    first_end: &'static str,
    /// The local offset at noon of the first five days (a meter exchange's time).
    noon_offset: &'static str,
    /// Quarter-hours in the seven days.
    quarters: usize,
    /// The day the batches arrive (from 10:00 UTC, two minutes apart).
    arrive: &'static str,
}

const WEEKS: [Week; 3] = [
    // Summer time ends on the 25th: a day of 100 quarter-hours.
    Week {
        before: &[],
        kept: None,
        days: [
            "2026-10-20",
            "2026-10-21",
            "2026-10-22",
            "2026-10-23",
            "2026-10-24",
            "2026-10-25",
            "2026-10-26",
        ],
        end: "2026-10-27",
        first_end: "2026-10-19T22:15:00Z",
        noon_offset: "+02:00",
        quarters: 7 * 96 + 4,
        arrive: "2026-10-28",
    },
    Week {
        before: &["2026-10-30", "2026-10-31", "2026-11-01"],
        kept: Some("~2026-10.."),
        days: [
            "2026-11-02",
            "2026-11-03",
            "2026-11-04",
            "2026-11-05",
            "2026-11-06",
            "2026-11-07",
            "2026-11-08",
        ],
        end: "2026-11-09",
        first_end: "2026-11-01T23:15:00Z",
        noon_offset: "+01:00",
        quarters: 7 * 96,
        arrive: "2026-11-10",
    },
    Week {
        before: &["2026-12-30", "2026-12-31", "2027-01-01"],
        kept: Some("year=2026/"),
        days: [
            "2027-01-02",
            "2027-01-03",
            "2027-01-04",
            "2027-01-05",
            "2027-01-06",
            "2027-01-07",
            "2027-01-08",
        ],
        end: "2027-01-09",
        first_end: "2027-01-01T23:15:00Z",
        noon_offset: "+01:00",
        quarters: 7 * 96,
        arrive: "2027-01-10",
    },
];

fn cooperative(fake: &FakeInstallations) -> Registry {
    let mut reg = registry(&[EAN_A, EAN_B, EAN_C, EAN_D]);
    add_second_cable(&mut reg);
    for c in &mut reg.connections[2..] {
        c.cable_id = "K2".into();
    }
    fake.add("inst-a", EAN_A, "tok", "SDM120-A");
    reg.connections[0].installation = Some(Installation {
        id: "inst-a".into(),
        url: fake.url("inst-a"),
    });
    Registry::new(reg.connections, reg.cables)
}

/// Everything the grid operator will deliver: the days before the week (for the first batch),
/// the week, and the daily registers held back for the last batch (the hole's).
fn deliveries(rng: &mut StdRng, week: &Week) -> [Vec<FeedEntry>; 3] {
    let mut meters = [
        meter(EAN_A, "MA1", 5_000_000, true),
        meter(EAN_B, "MB1", 2_000_000, true),
        meter(EAN_C, "MC1", 1_000_000, false),
        meter(EAN_D, "MD1", 7_000_000, true),
    ];
    // C's hole: five days without quarter-hours. The registers of its third to fifth day come
    // in the last batch: the reading before them is two days back, among the quarter-hours
    // (a planner looking only at daily registers recomputed too little).
    let hole = rng.gen_range(1..=2);
    // A's quarter-hours of the second to the sixth day are gone too, and only the daily
    // register of the third comes: a derived hole of four days from there. Its feed-back
    // follows A's production, whose readings from about noon of the fifth day on arrive in
    // the last batch: the hole is spread anew from its start, two days before the first late
    // production reading. B's meter exchange at noon of one of the first five days, on about
    // half the seeds.
    let exchange_day = rng.gen_bool(0.5).then(|| rng.gen_range(0..5));
    let mut b_new = meter(EAN_B, "MB2", 0, true);
    let mut before = Vec::new();
    for date in week.before {
        for m in meters.iter_mut() {
            before.push(day(m, date));
            before.push(FeedEntry::interval(intervals(m, date)));
        }
    }
    // The registers that close the days before come with them: arriving later, they would
    // start a window on the last day before (the reading before them is its last one).
    let early = !week.before.is_empty();
    if early {
        for m in &meters {
            before.push(day(m, week.days[0]));
        }
    }
    let (mut now, mut late) = (Vec::new(), Vec::new());
    for (k, date) in week.days.iter().enumerate() {
        for (i, m) in meters.iter_mut().enumerate() {
            let registers = day(m, date);
            if i == 2 && (hole..hole + 5).contains(&k) {
                intervals(m, date); // the meter runs on; its quarter-hours never arrive
                if k >= hole + 2 {
                    late.push(registers);
                }
                continue;
            }
            if i == 2 && k < hole {
                // Complete before the hole: the reading before the late registers is days back.
                now.push(FeedEntry::interval(intervals(m, date)));
                continue;
            }
            // The first day's registers came with the days before (if any).
            let closing = early && k == 0;
            if i == 0 && (1..=5).contains(&k) {
                intervals(m, date);
                if k == 2 {
                    now.push(registers);
                }
                continue;
            }
            if i == 1 && exchange_day == Some(k) {
                let at = format!("12:00:00{}", week.noon_offset);
                let (old, new) = exchange(m, &mut b_new, date, &at);
                now.push(FeedEntry::interval(old));
                now.push(FeedEntry::interval(new));
                *m = b_new.clone();
                continue;
            }
            let mut obj = intervals(m, date);
            let kind = rng.gen_range(0..10);
            // Daily registers now and then; always for a day whose quarter-hours never come.
            // (Drawn whether or not they are pushed: the October week's seeds keep their data.)
            if (kind == 0 || rng.gen_bool(0.3)) && !closing {
                now.push(registers);
            }
            match kind {
                0 => continue,
                // A hole inside the day.
                1 | 2 => {
                    let from = rng.gen_range(0..80);
                    let len = rng.gen_range(1..15);
                    obj["items"].as_array_mut().unwrap().drain(from..from + len);
                }
                // Estimated first, corrected by a later delivery.
                3 => {
                    let mut first = obj.clone();
                    for item in first["items"].as_array_mut().unwrap()[20..40].iter_mut() {
                        item["quality"] = "estimated".into();
                    }
                    now.push(FeedEntry::interval(first));
                }
                _ => {}
            }
            now.push(FeedEntry::interval(obj));
        }
    }
    // The register at the end of the last day, so that every day can close.
    for m in &meters {
        now.push(day(m, week.end));
    }
    now.shuffle(rng);
    [before, now, late]
}

fn last_transform_message(env: &Env, now: &str) -> String {
    let out = env.vaten(
        now,
        &[
            "query",
            "--format",
            "csv",
            "select message from _runs where job = 'transform' order by started_at desc limit 1",
        ],
    );
    assert_ok(&out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `consumption_daily`'s files whose path holds `week.kept` (none without).
fn kept_files(env: &Env, week: &Week) -> Vec<std::path::PathBuf> {
    let Some(part) = week.kept else {
        return Vec::new();
    };
    let mut files: Vec<_> = files_below(&env.lake_dir().join("consumption_daily"))
        .into_iter()
        .filter(|f| f.to_string_lossy().contains(part))
        .collect();
    files.sort();
    files
}

fn run_seed(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let fake = FakeInstallations::spawn().unwrap();
    let env = Env::new(&cooperative(&fake));
    env.with_tokens(&[("inst-a", "tok")]);
    let week = &WEEKS[(seed % 3) as usize];
    let [before, grid, late] = deliveries(&mut rng, week);
    // Cut into two to four batches at random places; the late registers come last.
    let mut cuts: Vec<usize> = (0..rng.gen_range(1..=3))
        .map(|_| rng.gen_range(0..=grid.len()))
        .collect();
    cuts.push(grid.len());
    cuts.sort_unstable();
    let mut batches: Vec<Vec<FeedEntry>> = Vec::new();
    let mut start = 0;
    for cut in cuts {
        batches.push(grid[start..cut].to_vec());
        start = cut;
    }
    batches.push(late);
    batches[0].splice(0..0, before);
    let every_batch = seed.is_multiple_of(2);
    let mut uploaded = 0;
    let quarters = week.quarters;
    let first_end: chrono::DateTime<chrono::Utc> = week.first_end.parse().unwrap();
    for (b, batch) in batches.iter().enumerate() {
        let now = format!("{}T10:{:02}:00Z", week.arrive, b * 2);
        env.server.push(batch.iter().cloned());
        // The installation uploads its readings up to about noon of the fifth day at first,
        // the rest at the end; and now and then refuses us.
        let upto = if b + 1 == batches.len() {
            quarters
        } else {
            4 * 96 + 48
        };
        if upto > uploaded {
            let t = first_end + chrono::Duration::minutes(15 * uploaded as i64);
            fake.produce("inst-a", t, upto - uploaded, seed);
            uploaded = upto;
        }
        let refuses = b + 1 < batches.len() && rng.gen_bool(0.3);
        fake.set_behaviour(
            "inst-a",
            if refuses {
                Behaviour::WrongToken
            } else {
                Behaviour::Healthy
            },
        );
        assert_ok(&env.vaten(&now, &["ingest"]));
        let kept_before = kept_files(&env, week);
        assert_ok(&env.vaten(&now, &["transform"]));
        if b > 0 && week.kept.is_some() {
            // The path the week is there for: the daily files of the month or year before the
            // windows stay as they are (a rewrite gives a file a new name).
            assert!(
                !kept_before.is_empty(),
                "seed {seed}: no daily file to keep"
            );
            assert_eq!(
                kept_files(&env, week),
                kept_before,
                "seed {seed}, batch {}: the daily files before the window were written again",
                b + 1
            );
        }
        if b > 0 {
            // Really incremental: a silent fall-back to full would make the test vacuous.
            let msg = last_transform_message(&env, &now);
            assert!(msg.contains("incremental recompute"), "seed {seed}: {msg}");
        }
        if every_batch || b + 1 == batches.len() {
            let incremental = derived(&env);
            assert_ok(&env.vaten(&now, &["transform", "--full"]));
            same(
                &incremental,
                &derived(&env),
                &format!(
                    "seed {seed}, after batch {} of {}: incremental",
                    b + 1,
                    batches.len()
                ),
            );
        }
    }
    assert!(
        !derived(&env)["intervals"].is_empty(),
        "seed {seed}: the cooperative has intervals"
    );
}

#[test]
fn incremental_equals_full_whatever_the_arrival_order() {
    let seeds: u64 = std::env::var("VATEN_ARRIVAL_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(9);
    for seed in 0..seeds {
        run_seed(seed);
    }
}
