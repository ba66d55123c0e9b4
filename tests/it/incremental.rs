//! `vaten transform` incremental and with `--from/--to`: the derived tables always equal a
//! full recompute over the same received data, and a cable without new data is left alone.

use std::collections::BTreeMap;
use std::path::PathBuf;

use vaten::fake::synth::Meter;
use vaten::fake::{FakeInstallations, FeedEntry};
use vaten::lake::schema::{
    CABLE_BALANCE_15M, CABLE_BALANCE_DAILY, CONSUMPTION_DAILY, INTERVALS, TAX_BASE_YEARLY,
};
use vaten::registry::Installation;

use crate::common::*;
use crate::feeds::*;

const DERIVED: [&str; 5] = [
    INTERVALS.name,
    CONSUMPTION_DAILY.name,
    TAX_BASE_YEARLY.name,
    CABLE_BALANCE_15M.name,
    CABLE_BALANCE_DAILY.name,
];

/// The derived tables' rows (and the rejections the transform adds).
pub fn derived(env: &Env) -> BTreeMap<String, Vec<String>> {
    let mut rows = lake_rows(&env.lake());
    rows.retain(|t, _| DERIVED.contains(&t.as_str()) || t == "rejected");
    rows
}

/// Files of the derived tables whose name says they belong to `cable`.
fn files_of(env: &Env, cable: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for t in DERIVED {
        out.extend(
            files_below(&env.lake_dir().join(t))
                .into_iter()
                .filter(|f| {
                    f.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with(&format!("{cable}~"))
                }),
        );
    }
    out.sort();
    out
}

/// Asserts equal tables, showing a few differing rows rather than all of them.
pub fn same(a: &BTreeMap<String, Vec<String>>, b: &BTreeMap<String, Vec<String>>, what: &str) {
    for (t, rows) in a {
        if rows == &b[t] {
            continue;
        }
        let only_a: Vec<_> = rows.iter().filter(|r| !b[t].contains(r)).take(3).collect();
        let only_b: Vec<_> = b[t].iter().filter(|r| !rows.contains(r)).take(3).collect();
        assert!(
            rows.len() == b[t].len() && only_a.is_empty() && only_b.is_empty(),
            "{t}: {what} differs from a full recompute ({} vs {} rows)\nonly {what}: {only_a:#?}\nonly full: {only_b:#?}",
            rows.len(),
            b[t].len()
        );
    }
}

/// The last `transform` run's message in `_runs`.
fn last_transform(env: &Env) -> String {
    let out = env.vaten(
        "2026-10-30T10:00:00Z",
        &[
            "query",
            "--format",
            "csv",
            "select message from _runs where job = 'transform' order by started_at desc limit 1",
        ],
    );
    assert_ok(&out);
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn incremental_and_range_equal_a_full_recompute() {
    incremental_and_range_equal_full(false);
}

/// The same runs with every cable computed a connection at a time (see
/// `intervals::units`), the incremental and range windows included: each cable's marts are
/// finished from its groups' parts and the old rows kept outside the window.
#[test]
fn incremental_and_range_equal_a_full_recompute_in_groups_of_connections() {
    incremental_and_range_equal_full(true);
}

fn incremental_and_range_equal_full(grouped: bool) {
    // Two cables: A and B (with an installation) on K1, C and D on K2.
    let mut reg = registry(&[EAN_A, EAN_B, EAN_C, EAN_D]);
    add_second_cable(&mut reg);
    for c in &mut reg.connections[2..] {
        c.cable_id = "K2".into();
    }
    let fake = FakeInstallations::spawn().unwrap();
    fake.add("inst-b", EAN_B, "tok", "SDM120-B");
    reg.connections[1].installation = Some(Installation {
        id: "inst-b".into(),
        url: fake.url("inst-b"),
    });
    let reg = vaten::registry::Registry::new(reg.connections, reg.cables);
    let env = Env::new(&reg);
    env.with_tokens(&[("inst-b", "tok")]);
    if grouped {
        // At most 9 series × days a unit: a connection a unit, even in a window of one day
        // (read with its 9 days of lookback).
        env.vars
            .borrow_mut()
            .push(("VATEN_GROUP_SERIES_DAYS", "9".into()));
        env.vars
            .borrow_mut()
            .push(("VATEN_LOG", "vaten=debug".into()));
    }

    let mut a = meter(EAN_A, "MA1", 5_000_000, true);
    let mut b = meter(EAN_B, "MB1", 2_000_000, true);
    let mut c = meter(EAN_C, "MC1", 1_000_000, false);
    let mut dm = meter(EAN_D, "MD1", 7_000_000, true);
    // First delivery, 29 September – 1 October and 20–23 October: C stops after the 1st (a
    // hole of 22 days, longer than the transform's first look back), D has day registers. K2's
    // September lies in a file of its own, which its later windows (in October) keep.
    let mut first = Vec::new();
    for date in ["2026-09-29", "2026-09-30", "2026-10-01"] {
        first.push(FeedEntry::interval(intervals(&mut c, date)));
        first.push(FeedEntry::interval(intervals(&mut dm, date)));
    }
    let mut b_day21 = None;
    for date in ["2026-10-20", "2026-10-21", "2026-10-22", "2026-10-23"] {
        first.push(FeedEntry::interval(intervals(&mut a, date)));
        let mut obj = intervals(&mut b, date);
        if date == "2026-10-21" {
            // Estimated by the grid operator at first; corrected later.
            b_day21 = Some(obj.clone());
            for item in obj["items"].as_array_mut().unwrap()[30..40].iter_mut() {
                item["quality"] = "estimated".into();
            }
        }
        first.push(FeedEntry::interval(obj));
        first.push(day(&dm, date));
        first.push(FeedEntry::interval(intervals(&mut dm, date)));
    }
    env.server.push(first);
    fake.produce("inst-b", "2026-10-20T00:00:00Z".parse().unwrap(), 3 * 96, 1);
    assert_ok(&env.vaten("2026-10-24T10:00:00Z", &["ingest"]));
    transform(&env, grouped, "2026-10-24T10:00:00Z", &["transform"]);
    assert!(last_transform(&env).contains("full recompute"));

    // Second delivery: only cable K2 gets data. C comes back on the 24th after its long hole
    // (with a hole at the start of the day), D goes on.
    let k2_september = |env: &Env| -> Vec<PathBuf> {
        files_of(env, "K2")
            .into_iter()
            .filter(|f| f.to_string_lossy().contains("~2026-09..09~"))
            .collect()
    };
    let september = k2_september(&env);
    assert_eq!(september.len(), 1, "{september:?}");
    let k1_files = files_of(&env, "K1");
    assert!(!k1_files.is_empty());
    let k1_balance = |env: &Env| -> Vec<String> {
        derived(env)[CABLE_BALANCE_15M.name]
            .iter()
            .filter(|r| r.contains("cable_id=K1;"))
            .cloned()
            .collect()
    };
    // K1's quarter-hours share their days' files with K2's (20-23 October).
    let k1_quarters = k1_balance(&env);
    assert_eq!(k1_quarters.len(), 4 * 96);
    let mut c24 = intervals(&mut c, "2026-10-24");
    c24["items"].as_array_mut().unwrap().drain(0..5);
    env.server.push([
        FeedEntry::interval(c24),
        day(&dm, "2026-10-24"),
        FeedEntry::interval(intervals(&mut dm, "2026-10-24")),
    ]);
    assert_ok(&env.vaten("2026-10-25T10:00:00Z", &["ingest", "grid"]));
    transform(&env, grouped, "2026-10-25T10:00:00Z", &["transform"]);
    let msg = last_transform(&env);
    assert!(msg.contains("incremental recompute of 1 cable"), "{msg}");
    assert_eq!(files_of(&env, "K1"), k1_files, "cable K1 had nothing new");
    assert_eq!(k2_september(&env), september, "K2's September is kept");
    assert_eq!(
        k1_balance(&env),
        k1_quarters,
        "K1's rows in the shared files stay"
    );
    let estimated_c = derived(&env)["intervals"]
        .iter()
        .filter(|r| r.contains(EAN_C) && r.contains("l_quality=estimated"))
        .count();
    // 22 whole days (2–23 October) and the quarter-hours of the 24th before its first
    // reading: all spread.
    assert!(estimated_c > 22 * 96, "{estimated_c}");

    // Third delivery: the correction of B's 21 October, the 24th for A and B, production.
    env.server.push([
        FeedEntry::interval(b_day21.unwrap()),
        FeedEntry::interval(intervals(&mut a, "2026-10-24")),
        FeedEntry::interval(intervals(&mut b, "2026-10-24")),
    ]);
    fake.produce("inst-b", "2026-10-23T00:00:00Z".parse().unwrap(), 2 * 96, 1);
    assert_ok(&env.vaten("2026-10-25T11:00:00Z", &["ingest"]));
    transform(&env, grouped, "2026-10-25T11:00:00Z", &["transform"]);
    let msg = last_transform(&env);
    assert!(msg.contains("incremental recompute of 1 cable"), "{msg}");
    // Nothing new: nothing recomputed.
    assert_ok(&env.vaten("2026-10-25T12:00:00Z", &["transform"]));
    assert!(last_transform(&env).contains("incremental recompute of 0 cable"));

    let incremental = derived(&env);
    assert!(incremental["intervals"]
        .iter()
        .all(|r| !(r.contains(EAN_B) && r.contains("l_quality=estimated"))));

    // A range recompute changes nothing either.
    transform(
        &env,
        grouped,
        "2026-10-25T12:05:00Z",
        &["transform", "--from", "2026-10-21", "--to", "2026-10-22"],
    );
    assert!(last_transform(&env).contains("range recompute of 2 cable"));
    same(&derived(&env), &incremental, "range");

    transform(
        &env,
        grouped,
        "2026-10-25T12:10:00Z",
        &["transform", "--full"],
    );
    assert!(last_transform(&env).contains("full recompute"));
    let full = derived(&env);
    for t in DERIVED {
        assert!(!full[t].is_empty(), "{t} has rows");
    }
    same(&incremental, &full, "incremental");
    // 29 September – 25 October: the days with intervals, up to the day of the run.
    one_shared_file_a_day(&env, 27);
    duckdb_recomputes_marts(&env);
    if grouped {
        // And the grouped runs equal the cables computed whole.
        env.vars.borrow_mut().clear();
        assert_ok(&env.vaten("2026-10-25T12:15:00Z", &["transform", "--full"]));
        same(&incremental, &derived(&env), "incremental in groups");
    }
}

/// A window within one calendar year leaves the daily tables' files of the other years as they
/// are (not read, not rewritten; a nightly run in November has last year's to skip) and
/// carries their yearly tax rows over: all of it equal to a full recompute.
#[test]
fn a_window_leaves_the_years_it_does_not_reach_alone() {
    let env = Env::new(&registry(&[EAN_A, EAN_C]));
    let mut a = meter(EAN_A, "MA1", 5_000_000, true);
    let mut c = meter(EAN_C, "MC1", 1_000_000, false);
    let mut first = Vec::new();
    for date in ["2025-12-30", "2025-12-31", "2026-01-01", "2026-01-02"] {
        first.push(FeedEntry::interval(intervals(&mut a, date)));
        first.push(FeedEntry::interval(intervals(&mut c, date)));
    }
    env.server.push(first);
    assert_ok(&env.vaten("2026-01-03T10:00:00Z", &["ingest", "grid"]));
    assert_ok(&env.vaten("2026-01-03T10:00:00Z", &["transform"]));
    // The files of the tables partitioned by year, of one year.
    let year_files = |year: &str| -> Vec<PathBuf> {
        let mut out = Vec::new();
        for t in [CONSUMPTION_DAILY.name, CABLE_BALANCE_DAILY.name] {
            out.extend(files_below(
                &env.lake_dir().join(t).join(format!("year={year}")),
            ));
        }
        out.sort();
        out
    };
    let (old_2025, old_2026) = (year_files("2025"), year_files("2026"));
    assert_eq!((old_2025.len(), old_2026.len()), (2, 2));

    // The 3rd of January: the window starts on the 2nd (its last reading comes before).
    env.server.push([
        FeedEntry::interval(intervals(&mut a, "2026-01-03")),
        FeedEntry::interval(intervals(&mut c, "2026-01-03")),
    ]);
    assert_ok(&env.vaten("2026-01-04T10:00:00Z", &["ingest", "grid"]));
    assert_ok(&env.vaten("2026-01-04T10:00:00Z", &["transform"]));
    let msg = last_transform(&env);
    assert!(msg.contains("incremental recompute of 1 cable"), "{msg}");
    assert_eq!(year_files("2025"), old_2025, "2025 is not rewritten");
    let new_2026 = year_files("2026");
    assert_ne!(new_2026, old_2026, "2026 is rewritten");
    // A range in 2025 leaves 2026 alone.
    assert_ok(&env.vaten(
        "2026-01-04T11:00:00Z",
        &["transform", "--from", "2025-12-31", "--to", "2025-12-31"],
    ));
    assert_eq!(year_files("2026"), new_2026, "2026 is not rewritten");
    assert_ne!(year_files("2025"), old_2025, "2025 is rewritten");

    // A damaged tax file: the years it would have carried over are computed again (and the
    // run goes on), not dropped.
    let tax_dir = env.lake_dir().join(TAX_BASE_YEARLY.name);
    let tax_files = files_below(&tax_dir);
    assert_eq!(tax_files.len(), 1, "one file of the cable's years");
    std::fs::write(tax_dir.join(&tax_files[0]), b"not parquet").unwrap();
    let before = year_files("2025");
    env.server.push([
        FeedEntry::interval(intervals(&mut a, "2026-01-04")),
        FeedEntry::interval(intervals(&mut c, "2026-01-04")),
    ]);
    assert_ok(&env.vaten("2026-01-05T10:00:00Z", &["ingest", "grid"]));
    let out = env.vaten("2026-01-05T10:00:00Z", &["transform"]);
    assert_ok(&out);
    assert!(stderr(&out).contains("computed again"), "{}", stderr(&out));
    // Its daily file is read for it, not written again (the window does not reach its month).
    assert_eq!(year_files("2025"), before, "2025's files stay");

    let incremental = derived(&env);
    // Both connections in both years: (ean, year) pairs of the carried and computed rows.
    let mut tax: Vec<(bool, bool)> = incremental[TAX_BASE_YEARLY.name]
        .iter()
        .map(|r| (r.contains(EAN_A), r.contains("year=2025;")))
        .collect();
    tax.sort();
    assert_eq!(
        tax,
        [(false, false), (false, true), (true, false), (true, true)]
    );
    assert_ok(&env.vaten("2026-01-05T12:00:00Z", &["transform", "--full"]));
    assert!(last_transform(&env).contains("full recompute"));
    same(&incremental, &derived(&env), "incremental");

    // A year whose daily file is gone keeps the yearly rows carried over.
    let daily_2025 = env
        .lake_dir()
        .join(CONSUMPTION_DAILY.name)
        .join("year=2025");
    std::fs::remove_dir_all(&daily_2025).unwrap();
    env.server.push([
        FeedEntry::interval(intervals(&mut a, "2026-01-05")),
        FeedEntry::interval(intervals(&mut c, "2026-01-05")),
    ]);
    assert_ok(&env.vaten("2026-01-06T10:00:00Z", &["ingest", "grid"]));
    assert_ok(&env.vaten("2026-01-06T10:00:00Z", &["transform"]));
    let tax_2025 = derived(&env)[TAX_BASE_YEARLY.name]
        .iter()
        .filter(|r| r.contains("year=2025;"))
        .count();
    assert_eq!(tax_2025, 2, "both connections' 2025 rows are still there");
}

/// `consumption_daily` holds a cable's year in files of calendar months: a window leaves the
/// files of the months it does not reach as they are (a nightly run rewrites this month's
/// days, not the year's), all of it equal to a full recompute. Past two such files they are
/// written again as one; a file of the whole year (as earlier versions wrote them) is written
/// again by months; a file holding a row of a month not its own is not trusted to stand for
/// its months (kept, that row would be there twice).
#[test]
fn a_window_leaves_the_months_it_does_not_reach_alone() {
    let env = Env::new(&registry(&[EAN_A, EAN_C]));
    let mut a = meter(EAN_A, "MA1", 5_000_000, true);
    let mut c = meter(EAN_C, "MC1", 1_000_000, false);
    let day = |d: &str| d.parse::<chrono::NaiveDate>().unwrap();
    // Days `from..=to` of both meters, ingested and transformed the morning after `to`.
    let run = |from: &str, to: &str, a: &mut Meter, c: &mut Meter| {
        let mut feed = Vec::new();
        for d in day(from).iter_days().take_while(|d| *d <= day(to)) {
            let d = d.to_string();
            feed.push(FeedEntry::interval(intervals(a, &d)));
            feed.push(FeedEntry::interval(intervals(c, &d)));
        }
        env.server.push(feed);
        let now = format!("{}T10:00:00Z", day(to).succ_opt().unwrap());
        assert_ok(&env.vaten(&now, &["ingest", "grid"]));
        assert_ok(&env.vaten(&now, &["transform"]));
    };
    let dir = env
        .lake_dir()
        .join(CONSUMPTION_DAILY.name)
        .join("year=2026");
    let names = || -> Vec<String> {
        let mut out: Vec<String> = files_below(&dir)
            .iter()
            .map(|f| f.to_string_lossy().into_owned())
            .collect();
        out.sort();
        out
    };
    let of = |names: &[String], months: &str| -> Vec<String> {
        names
            .iter()
            .filter(|n| n.starts_with(&format!("K1~2026-{months}~part-")))
            .cloned()
            .collect()
    };
    // October's file renamed as if it held September; its new name.
    let october_as_september = |names: &[String]| -> String {
        let october = &of(names, "10..10")[0];
        let misnamed = october.replace("~2026-10..10~", "~2026-09..09~");
        std::fs::rename(dir.join(october), dir.join(&misnamed)).unwrap();
        misnamed
    };
    // Equal to a full recompute (which writes the files again).
    let equals_full = |now: &str| {
        let incremental = derived(&env);
        assert_ok(&env.vaten(now, &["transform", "--full"]));
        assert!(last_transform(&env).contains("full recompute"));
        same(&incremental, &derived(&env), "incremental");
        incremental
    };
    // The first run computes all days: the months before the last as one file, the last as one.
    run("2026-08-30", "2026-10-01", &mut a, &mut c);
    let before = names();
    assert_eq!(
        (of(&before, "08..09").len(), of(&before, "10..10").len()),
        (1, 1),
        "{before:?}"
    );
    assert_eq!(before.len(), 2, "{before:?}");

    // October's file (the 1st) named as if it held September: the next window starts on the
    // 1st, so every row of it lies inside the window. Kept, they would stand twice.
    let misnamed = october_as_september(&before);
    run("2026-10-02", "2026-10-02", &mut a, &mut c);
    let after = names();
    assert!(!after.contains(&misnamed), "{after:?}");
    assert_eq!(after.len(), 2, "{after:?}");
    equals_full("2026-10-03T11:00:00Z");

    // A nightly run: the window starts in October; the summer's file is not rewritten, and
    // the year's tax base, read from it, is a full recompute's.
    let before = names();
    let (summer, october) = (of(&before, "08..09"), of(&before, "10..10"));
    run("2026-10-03", "2026-10-03", &mut a, &mut c);
    assert!(last_transform(&env).contains("incremental recompute of 1 cable"));
    let after = names();
    assert_eq!(of(&after, "08..09"), summer, "the summer stays");
    assert_eq!(of(&after, "10..10").len(), 1, "{after:?}");
    assert_ne!(of(&after, "10..10"), october, "October is rewritten");
    assert_eq!(after.len(), 2, "{after:?}");
    equals_full("2026-10-04T11:00:00Z");

    // The summer's file under a name without its months, as earlier versions wrote a year's
    // file: read and written again, by months (the window starts in October).
    let summer = of(&names(), "08..09");
    let unmarked = summer[0].replace("~2026-08..09~", "~");
    std::fs::rename(dir.join(&summer[0]), dir.join(&unmarked)).unwrap();
    run("2026-10-04", "2026-10-04", &mut a, &mut c);
    let after = names();
    assert!(!after.contains(&unmarked), "{after:?}");
    assert_eq!(of(&after, "08..09").len(), 1, "{after:?}");
    assert_eq!(after.len(), 2, "{after:?}");

    // October's file named as if it held September again: its rows of the 1st to the 3rd lie
    // outside the window (which starts on the 4th, the day of the reading before the new).
    let misnamed = october_as_september(&after);
    run("2026-10-05", "2026-10-05", &mut a, &mut c);
    let after = names();
    assert!(!after.contains(&misnamed), "{after:?}");
    assert_eq!(
        (of(&after, "08..09").len(), of(&after, "10..10").len()),
        (1, 1),
        "{after:?}"
    );
    assert_eq!(after.len(), 2, "{after:?}");

    // The summer's August rows moved by hand into a file without months: that file is
    // written again, and so is the summer's, which names August too (kept, the August rows
    // would be left out of the table, yet counted in the tax base).
    let summer = dir.join(&of(&after, "08..09")[0]);
    let batch = vaten::lake::parquet_io::read_all(&summer).unwrap().unwrap();
    let september = (day("2026-09-01") - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
        .num_days() as i32;
    let dates = batch.column_by_name("date").unwrap();
    let dates = dates
        .as_any()
        .downcast_ref::<arrow::array::Date32Array>()
        .unwrap();
    let in_august: arrow::array::BooleanArray =
        dates.iter().map(|d| Some(d.unwrap() < september)).collect();
    let in_september = arrow::compute::not(&in_august).unwrap();
    let keep = |mask| arrow::compute::filter_record_batch(&batch, mask).unwrap();
    let (august, rest) = (keep(&in_august), keep(&in_september));
    assert_eq!((august.num_rows(), rest.num_rows()), (4, 60));
    let by_hand = dir.join("K1~part-by-hand.parquet");
    vaten::lake::parquet_io::write_sorted(&by_hand, &CONSUMPTION_DAILY, &august).unwrap();
    vaten::lake::parquet_io::write_sorted(&summer, &CONSUMPTION_DAILY, &rest).unwrap();
    run("2026-10-06", "2026-10-06", &mut a, &mut c);
    let after = names();
    assert!(
        !after.contains(&"K1~part-by-hand.parquet".to_string()),
        "{after:?}"
    );
    assert_eq!(
        (of(&after, "08..09").len(), of(&after, "10..10").len()),
        (1, 1),
        "{after:?}"
    );
    assert_ne!(dir.join(&of(&after, "08..09")[0]), summer, "{after:?}");
    equals_full("2026-10-07T11:00:00Z");

    // Into December: October, November and December each get a file, then three files lie
    // before the window: they become one.
    run("2026-10-07", "2026-12-02", &mut a, &mut c);
    let after = names();
    assert_eq!(of(&after, "08..09").len(), 1, "{after:?}");
    assert_eq!(after.len(), 4, "{after:?}");
    run("2026-12-03", "2026-12-03", &mut a, &mut c);
    let after = names();
    assert_eq!(
        (
            of(&after, "08..11").len(),
            of(&after, "12..12").len(),
            after.len()
        ),
        (1, 1, 2),
        "{after:?}"
    );

    // A range in September: the months before it one file, September one, the months after
    // it one; December's file stays.
    let december = of(&after, "12..12");
    assert_ok(&env.vaten(
        "2026-12-04T11:00:00Z",
        &["transform", "--from", "2026-09-10", "--to", "2026-09-10"],
    ));
    let after = names();
    assert_eq!(of(&after, "12..12"), december, "{after:?}");
    for months in ["08..08", "09..09", "10..11"] {
        assert_eq!(of(&after, months).len(), 1, "{months}: {after:?}");
    }
    assert_eq!(after.len(), 4, "{after:?}");

    // 96 days of two connections, each day once.
    let incremental = equals_full("2026-12-04T12:00:00Z");
    assert_eq!(incremental[CONSUMPTION_DAILY.name].len(), 2 * 96);
}

/// `cable_balance_15m` after a full recompute: `days` day partitions, each one file for all
/// cables (`+all~…`), holding both cables' rows.
fn one_shared_file_a_day(env: &Env, days: usize) {
    let table = env.lake_dir().join(CABLE_BALANCE_15M.name);
    let mut partitions = std::collections::BTreeSet::new();
    for f in files_below(&table) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("+all~part-"), "{}", f.display());
        let partition = f.parent().unwrap().to_path_buf();
        assert!(partitions.insert(partition), "two files in {}", f.display());
    }
    assert_eq!(partitions.len(), days, "{partitions:?}");
    let rows = &derived(env)[CABLE_BALANCE_15M.name];
    for cable in ["K1", "K2"] {
        assert!(rows
            .iter()
            .any(|r| r.contains(&format!("cable_id={cable}"))));
    }
}

/// Runs a transform; in groups, checks the cables were computed in groups.
fn transform(env: &Env, grouped: bool, now: &str, args: &[&str]) {
    let out = env.vaten(now, args);
    assert_ok(&out);
    if grouped {
        assert!(
            stderr(&out).contains("large cables computed in"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn range_needs_both_ends_in_order() {
    let env = Env::new(&registry(&[EAN_A]));
    let out = env.vaten(
        "2026-10-25T12:00:00Z",
        &["transform", "--from", "2026-10-22", "--to", "2026-10-21"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("after --to"));
    let out = env.vaten(
        "2026-10-25T12:00:00Z",
        &["transform", "--from", "2026-10-22"],
    );
    assert_eq!(out.status.code(), Some(2));
}

/// Incremental equals full with the lake on the local S3-compatible server (read back from the bucket).
#[test]
fn incremental_and_range_equal_a_full_recompute_on_s3() {
    on_s3(incremental_and_range_equal_a_full_recompute);
}
