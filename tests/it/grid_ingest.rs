//! `vaten ingest grid` against the fake grid operator: the scripted 3-day feed, idempotence,
//! rejections and their replay, backfill, and the API key never leaking.

use serde_json::Value;
use vaten::fake::FeedEntry;

use crate::common::*;
use crate::feeds::*;

const NOW_1: &str = "2026-10-27T10:00:00Z";
const NOW_2: &str = "2026-10-28T10:00:00Z";

/// The scripted feed: A, B, C over 24–26 October 2026 (25 October has 100 quarter-hours),
/// B's meter exchanged on the 26th at 12:00, C refused on the 25th, day registers for A.
/// Returns A's first delivery of the 24th, to be corrected later.
fn three_day_feed(env: &Env) -> Value {
    let mut a = meter(EAN_A, "MA1", 5_000_000, true);
    let mut b = meter(EAN_B, "MB1", 9_000_000, false);
    let mut b_new = meter(EAN_B, "MB2", 3, false);
    let mut c = meter(EAN_C, "MC1", 1_000_000, true);
    let mut first_a = Value::Null;
    for date in ["2026-10-24", "2026-10-25", "2026-10-26"] {
        env.server.push([day(&a, date)]);
        let mut obj_a = intervals(&mut a, date);
        if date == "2026-10-24" {
            // The service filled a hole itself; a later delivery brings the measured values.
            for item in obj_a["items"].as_array_mut().unwrap()[40..48].iter_mut() {
                item["quality"] = "estimated".into();
            }
            first_a = obj_a.clone();
        }
        env.server.push([FeedEntry::interval(obj_a)]);
        if date == "2026-10-26" {
            let (old, new) = exchange(&mut b, &mut b_new, date, "12:00:00+01:00");
            assert_eq!((items(&old), items(&new)), (48, 49));
            env.server
                .push([FeedEntry::interval(old), FeedEntry::interval(new)]);
        } else {
            env.server
                .push([FeedEntry::interval(intervals(&mut b, date))]);
        }
        if date == "2026-10-25" {
            env.server.push([rejection(EAN_C, date, "NO_CONSENT")]);
        } else {
            env.server
                .push([FeedEntry::interval(intervals(&mut c, date))]);
        }
    }
    first_a
}

fn corrected(first: &Value) -> Value {
    let mut v = first.clone();
    for item in v["items"].as_array_mut().unwrap().iter_mut() {
        item["quality"] = "measured".into();
    }
    v
}

#[test]
fn scripted_three_day_feed_lands_row_for_row() {
    let env = Env::new(&registry(&[EAN_A, EAN_B, EAN_C]));
    let first_a = three_day_feed(&env);
    assert_ok(&env.vaten(NOW_1, &["ingest", "grid"]));
    env.server.push([FeedEntry::interval(corrected(&first_a))]);
    assert_ok(&env.vaten(NOW_2, &["ingest", "grid"]));
    // Drained at NOW_2: 10 days of retention left then, 3 a week later (a warning).
    let status =
        |now: &str| String::from_utf8_lossy(&env.vaten(now, &["status"]).stdout).into_owned();
    assert!(
        status(NOW_2).contains("10.0 days left"),
        "{}",
        status(NOW_2)
    );
    let week_later = status("2026-11-04T10:00:00Z");
    assert!(
        week_later.contains("3.0 days left") && week_later.contains("WARNING"),
        "{week_later}"
    );

    let df = env
        .lake()
        .read_table(&vaten::lake::schema::GRID_READINGS)
        .unwrap();
    // By hand: A 96 + 100 + 96 and the corrected 24th again (96); B 96 + 100 + 48 + 49;
    // C 96 + 96 (the 25th refused).
    assert_eq!(df.height(), 388 + 293 + 192);
    let sql = |q: &str| -> polars::prelude::DataFrame {
        let mut ctx = polars::sql::SQLContext::new();
        ctx.register("r", df.clone().lazy());
        ctx.execute(q).unwrap().collect().unwrap()
    };
    use polars::prelude::*;
    // Both deliveries of the corrected day are kept, each whole, with its own received_at.
    let corrected_day = sql(&format!(
        "SELECT received_at, count(*) AS n, sum(CASE WHEN quality = 'estimated' THEN 1 ELSE 0 END) AS est \
         FROM r WHERE ean = '{EAN_A}' AND date = '2026-10-24' GROUP BY received_at ORDER BY received_at"
    ));
    assert_eq!(corrected_day.height(), 2);
    let n: Vec<i64> = corrected_day
        .column("n")
        .unwrap()
        .cast(&DataType::Int64)
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    assert_eq!(n, vec![96, 96]);
    let est: Vec<i64> = corrected_day
        .column("est")
        .unwrap()
        .cast(&DataType::Int64)
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    assert_eq!(est, vec![8, 0]);
    // The DST day has 100 distinct quarter-hours, the repeated hour twice (00:15Z and 01:15Z
    // are both 02:15 local).
    let dst = sql(&format!(
        "SELECT count(DISTINCT t) AS n FROM r WHERE ean = '{EAN_B}' AND date = '2026-10-25'"
    ));
    assert_eq!(
        dst.column("n")
            .unwrap()
            .cast(&DataType::Int64)
            .unwrap()
            .i64()
            .unwrap()
            .get(0),
        Some(100)
    );
    // The meter exchange: two meters on the 26th, both with a reading at 11:00Z (12:00 local).
    let ex = sql(&format!(
        "SELECT meter_id, count(*) AS n, min(import_wh) AS lo FROM r WHERE ean = '{EAN_B}' AND date = '2026-10-26' GROUP BY meter_id ORDER BY meter_id"
    ));
    let meters: Vec<String> = ex
        .column("meter_id")
        .unwrap()
        .str()
        .unwrap()
        .no_null_iter()
        .map(String::from)
        .collect();
    assert_eq!(meters, vec!["MB1", "MB2"]);
    let lo = ex.column("lo").unwrap().i64().unwrap().get(1).unwrap();
    assert!(lo < 200, "the new meter starts near zero, got {lo}");
    // Every row names the run that stored it: the first ingest stored A's first delivery of
    // the 24th, the second its correction, and both runs are the ingest-grid records of _runs.
    let stored_by = sql(&format!(
        "SELECT DISTINCT run_id FROM r WHERE ean = '{EAN_A}' AND date = '2026-10-24' ORDER BY run_id"
    ));
    let stored_by: Vec<String> = stored_by
        .column("run_id")
        .unwrap()
        .str()
        .unwrap()
        .no_null_iter()
        .map(String::from)
        .collect();
    let runs = env.lake().read_table(&vaten::lake::schema::RUNS).unwrap();
    let mut ingests: Vec<String> = runs
        .lazy()
        .filter(col("job").eq(lit("ingest-grid")))
        .collect()
        .unwrap()
        .column("run_id")
        .unwrap()
        .str()
        .unwrap()
        .no_null_iter()
        .map(String::from)
        .collect();
    ingests.sort();
    assert_eq!(stored_by, ingests);
    assert_eq!(
        sql("SELECT count(*) AS n FROM r WHERE run_id IS NULL")
            .column("n")
            .unwrap()
            .cast(&DataType::Int64)
            .unwrap()
            .i64()
            .unwrap()
            .get(0),
        Some(0)
    );

    let rows = lake_rows(&env.lake());
    assert_eq!(rows["grid_days"].len(), 3);
    assert_eq!(rows["rejected"].len(), 1);
    assert!(
        rows["rejected"][0].contains("reason=service_no_consent;"),
        "{:?}",
        rows["rejected"]
    );
    assert!(rows["rejected"][0].contains(&format!("key={EAN_C};")));
}

#[test]
fn running_the_same_ingest_again_changes_nothing() {
    let env = Env::new(&registry(&[EAN_A, EAN_B, EAN_C]));
    three_day_feed(&env);
    assert_ok(&env.vaten(NOW_1, &["ingest", "grid"]));
    let first = lake_rows(&env.lake());
    assert_eq!(first["grid_readings"].len(), 292 + 293 + 192);
    assert_ok(&env.vaten(NOW_1, &["ingest", "grid"]));
    assert_eq!(lake_rows(&env.lake()), first, "a drained feed adds nothing");
    // The service delivers everything again from the start (a lost cursor): still the same.
    std::fs::remove_file(env.lake_dir().join("_state/grid.json")).unwrap();
    assert_ok(&env.vaten(NOW_1, &["ingest", "grid"]));
    assert_eq!(
        lake_rows(&env.lake()),
        first,
        "a repeated delivery adds nothing"
    );
    // And the history endpoint over the same days: nothing new either.
    assert_ok(&env.vaten(
        NOW_1,
        &["backfill", "--from", "2026-10-24", "--to", "2026-10-26"],
    ));
    assert_eq!(
        lake_rows(&env.lake()),
        first,
        "a backfill of stored days adds nothing"
    );
}

#[test]
fn bad_objects_are_rejected_and_unknown_ean_replays() {
    let env = Env::new(&registry(&[EAN_A]));
    let mut a = meter(EAN_A, "MA1", 100_000, true);
    let mut stranger = meter(EAN_D, "MD1", 200_000, false);
    let good = intervals(&mut a, "2026-10-26");
    let unknown = intervals(&mut stranger, "2026-10-26");
    let mut mwh = intervals(&mut a, "2026-10-27");
    mwh["unit"] = "MWh".into();
    let future = intervals(&mut a, "2026-10-29");
    env.server
        .push([good, unknown, mwh, future].map(FeedEntry::interval));
    assert_ok(&env.vaten(NOW_2, &["ingest", "grid"]));

    let rows = lake_rows(&env.lake());
    assert_eq!(
        rows["grid_readings"].len(),
        96,
        "only the good object is stored"
    );
    let reasons: Vec<&str> = rows["rejected"]
        .iter()
        .map(|r| field(r, "reason"))
        .collect();
    let mut sorted = reasons.clone();
    sorted.sort();
    assert_eq!(sorted, vec!["bad_unit", "future_time", "unknown_ean"]);

    // Nothing changes on replay while the registry does not know the EAN.
    assert_ok(&env.vaten(NOW_2, &["replay-rejected"]));
    assert_eq!(lake_rows(&env.lake()), rows);

    env.set_registry(&registry(&[EAN_A, EAN_D]));
    assert_ok(&env.vaten(NOW_2, &["replay-rejected"]));
    let after = lake_rows(&env.lake());
    assert_eq!(after["grid_readings"].len(), 96 + 96);
    assert_eq!(
        after["grid_readings"]
            .iter()
            .filter(|r| r.contains(EAN_D))
            .count(),
        96
    );
    assert_eq!(
        after["rejected"].len(),
        2,
        "the replayed record left rejected"
    );
    // Replaying again, or ingesting the same feed again, adds nothing.
    assert_ok(&env.vaten(NOW_2, &["replay-rejected"]));
    assert_eq!(lake_rows(&env.lake()), after);
}

#[test]
fn backfill_fills_from_history_and_records_unknown_eans() {
    let env = Env::new(&registry(&[EAN_A, EAN_B]));
    let mut a = meter(EAN_A, "MA1", 100_000, true);
    env.server.push([day(&a, "2026-10-26")]);
    env.server
        .push([FeedEntry::interval(intervals(&mut a, "2026-10-26"))]);
    env.server
        .push([FeedEntry::interval(intervals(&mut a, "2026-10-27"))]);
    // B is unknown at the service: 404, recorded, and the run goes on.
    let out = env.vaten(
        NOW_2,
        &["backfill", "--from", "2026-10-26", "--to", "2026-10-26"],
    );
    assert_ok(&out);
    let rows = lake_rows(&env.lake());
    assert_eq!(rows["grid_readings"].len(), 96, "only the asked day");
    assert_eq!(rows["grid_days"].len(), 1);
    assert!(
        stderr(&out).contains(EAN_B),
        "the 404 names the EAN: {}",
        stderr(&out)
    );
    let runs = env.lake().read_table(&vaten::lake::schema::RUNS).unwrap();
    let msg = runs
        .column("message")
        .unwrap()
        .str()
        .unwrap()
        .get(0)
        .unwrap()
        .to_string();
    assert!(
        msg.contains(&format!("unknown at the grid operator: {EAN_B}")),
        "{msg}"
    );
}

#[test]
fn api_key_never_leaks_into_logs_errors_or_files() {
    use vaten::fake::Fault;
    let env = Env::new(&registry(&[EAN_A]));
    let mut a = meter(EAN_A, "MA1", 100_000, true);
    env.server
        .push([FeedEntry::interval(intervals(&mut a, "2026-10-26"))]);
    env.server
        .push([FeedEntry::interval(intervals(&mut a, "2026-10-27"))]);
    env.server.set_faults(vec![
        Some(Fault::Status(500)),
        None,
        Some(Fault::Truncated),
        None,
    ]);
    let mut outputs = vec![
        env.vaten(NOW_2, &["-vv", "ingest", "grid"]),
        env.vaten(
            NOW_2,
            &[
                "--log-format",
                "json",
                "-v",
                "backfill",
                "--from",
                "2026-10-26",
                "--to",
                "2026-10-27",
            ],
        ),
    ];
    // A wrong key: 401, exit 1, and the message names neither key.
    let wrong = env
        .command(NOW_2, &["ingest", "grid"])
        .env(KEY_ENV, "wrong-Key-5e1d")
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(1));
    assert!(stderr(&wrong).contains("401"), "{}", stderr(&wrong));
    assert!(!stderr(&wrong).contains("wrong-Key-5e1d"));
    // Always failing: the retries are logged, the key is not.
    env.server.set_faults(vec![Some(Fault::Status(503))]);
    outputs.push(env.vaten(NOW_2, &["-vv", "ingest", "grid"]));
    for o in &outputs {
        let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(o));
        assert!(
            !text.contains(API_KEY),
            "the API key appeared in output:\n{text}"
        );
    }
    assert!(
        outputs.iter().any(|o| stderr(o).contains("retrying")),
        "retries are logged"
    );
    for f in files_below(env.dir.path()) {
        let bytes = std::fs::read(env.dir.path().join(&f)).unwrap();
        let hit = bytes
            .windows(API_KEY.len())
            .any(|w| w == API_KEY.as_bytes());
        assert!(!hit, "the API key is in {}", f.display());
    }
}

#[test]
fn retention_drops_old_quarter_hours_and_history_knows_quiet_eans() {
    use vaten::fake::Retention;
    let env = Env::new(&registry(&[EAN_A, EAN_B]));
    let mut a = meter(EAN_A, "MA1", 100_000, true);
    let old = intervals(&mut a, "2026-10-10");
    let old_day = day(&a, "2026-10-10");
    let recent = intervals(&mut a, "2026-10-26");
    env.server.push([
        FeedEntry::interval(old),
        old_day,
        FeedEntry::interval(recent),
    ]);
    // The service keeps quarter-hours 10 days and day registers 40 (counted from the 28th).
    env.server.set_retention(Some(Retention {
        today: d("2026-10-28"),
        interval_days: 10,
        day_days: 40,
    }));
    env.server.know_ean(EAN_B);
    assert_ok(&env.vaten(NOW_2, &["ingest", "grid"]));
    let rows = lake_rows(&env.lake());
    assert_eq!(
        rows["grid_readings"].len(),
        96,
        "the 10th's quarter-hours expired"
    );
    assert_eq!(rows["grid_days"].len(), 1, "its day registers did not");
    // B has no data but is known: the history answers empty, not 404.
    let out = env.vaten(
        NOW_2,
        &["backfill", "--from", "2026-10-20", "--to", "2026-10-27"],
    );
    assert_ok(&out);
    assert!(!stderr(&out).contains("does not know"), "{}", stderr(&out));
}

/// The same feed with the lake on the local S3-compatible server: the bucket holds the same rows.
#[test]
fn scripted_three_day_feed_lands_row_for_row_on_s3() {
    on_s3(scripted_three_day_feed_lands_row_for_row);
}
