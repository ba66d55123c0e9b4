//! Faults, kills and concurrent writers: the lake ends up as if nothing had gone wrong.

use std::time::{Duration, Instant};

use vaten::fake::{Fault, FeedEntry};

use crate::common::*;
use crate::feeds::*;

pub const NOW: &str = "2026-11-20T10:00:00Z";

/// A feed of 4 connections × 5 days (20 interval and 20 day objects; 10 pages of 4).
pub fn five_day_feed(env: &Env) {
    let mut meters: Vec<_> = [EAN_A, EAN_B, EAN_C, EAN_D]
        .iter()
        .enumerate()
        .map(|(i, e)| meter(e, &format!("M{i}"), 1_000_000 * (i as i64 + 1), i % 2 == 0))
        .collect();
    for date in [
        "2026-11-14",
        "2026-11-15",
        "2026-11-16",
        "2026-11-17",
        "2026-11-18",
    ] {
        for m in meters.iter_mut() {
            env.server
                .push([day(m, date), FeedEntry::interval(intervals(m, date))]);
        }
    }
}

pub fn reference_lake() -> std::collections::BTreeMap<String, Vec<String>> {
    let env = Env::new(&registry(&[EAN_A, EAN_B, EAN_C, EAN_D]));
    five_day_feed(&env);
    assert_ok(&env.vaten(NOW, &["ingest", "grid"]));
    let rows = lake_rows(&env.lake());
    assert_eq!(rows["grid_readings"].len(), 4 * 5 * 96);
    assert_eq!(rows["grid_days"].len(), 20);
    rows
}

#[test]
fn faults_in_a_third_of_the_responses_change_nothing() {
    let expected = reference_lake();
    let env = Env::new(&registry(&[EAN_A, EAN_B, EAN_C, EAN_D]));
    five_day_feed(&env);
    // 5 of every 9 responses are faults: 429, 500, a slow answer past the 1 s timeout, a
    // truncated body, a body without next_cursor.
    env.server.set_faults(vec![
        None,
        Some(Fault::RateLimited { retry_after_s: 1 }),
        None,
        Some(Fault::Status(500)),
        Some(Fault::Slow(Duration::from_millis(2500))),
        None,
        Some(Fault::Truncated),
        None,
        Some(Fault::MissingCursor),
    ]);
    let out = env.vaten(NOW, &["ingest", "grid"]);
    assert_ok(&out);
    assert_eq!(lake_rows(&env.lake()), expected);
    let log = env.server.request_log();
    let faults = log.iter().filter(|l| !l.ends_with("-> ok")).count();
    assert!(faults * 3 >= log.len(), "at least a third faulted: {log:?}");
    assert!(stderr(&out).contains("rate limited (429)"));
}

#[test]
fn a_server_that_always_fails_leaves_cursor_and_lake_alone() {
    let env = Env::new(&registry(&[EAN_A, EAN_B, EAN_C, EAN_D]));
    five_day_feed(&env);
    // First two pages arrive, so there is a cursor and data to keep.
    env.server.set_faults(vec![
        None,
        None,
        Some(Fault::Status(500)),
        Some(Fault::Status(500)),
        Some(Fault::Status(500)),
        Some(Fault::Status(500)),
        Some(Fault::Status(500)),
    ]);
    let out = env.vaten(NOW, &["ingest", "grid"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let state_before = std::fs::read(env.lake_dir().join("_state/grid.json")).unwrap();
    let rows_before = lake_rows(&env.lake());
    assert_eq!(
        rows_before["grid_readings"].len(),
        4 * 96,
        "two pages of 2 intervals + 2 days"
    );

    env.server.set_faults(vec![Some(Fault::Status(500))]);
    let requests_before = env.server.requests();
    let started = Instant::now();
    let out = env.vaten(NOW, &["ingest", "grid"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("after 5 attempts"), "{err}");
    assert_eq!(
        err.lines()
            .filter(|l| l.starts_with("vaten: error:"))
            .count(),
        1,
        "{err}"
    );
    assert_eq!(
        env.server.requests() - requests_before,
        5,
        "max_attempts = 5 requests, no more"
    );
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "bounded in time"
    );
    assert_eq!(
        std::fs::read(env.lake_dir().join("_state/grid.json")).unwrap(),
        state_before,
        "cursor unchanged"
    );
    assert_eq!(lake_rows(&env.lake()), rows_before, "lake unchanged");
    // The failure is on record.
    let runs = env.lake().read_table(&vaten::lake::schema::RUNS).unwrap();
    let statuses: Vec<&str> = runs
        .column("status")
        .unwrap()
        .str()
        .unwrap()
        .no_null_iter()
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == "failed").count(), 2);
}

#[test]
fn bad_key_and_bad_cursor_stop_at_once() {
    let env = Env::new(&registry(&[EAN_A]));
    five_day_feed(&env);
    let out = env
        .command(NOW, &["ingest", "grid"])
        .env(KEY_ENV, "nope")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("rejected the API key (401)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        env.server.requests(),
        0,
        "401 is not retried (and not counted by the server)"
    );
    assert_eq!(count(&env.lake(), "grid_readings"), 0);

    std::fs::create_dir_all(env.lake_dir().join("_state")).unwrap();
    std::fs::write(
        env.lake_dir().join("_state/grid.json"),
        r#"{"cursor":"garbage","next_delivery_seq":0}"#,
    )
    .unwrap();
    let out = env.vaten(NOW, &["ingest", "grid"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("/v1/readings-bulk (400): unknown cursor"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.server.requests(), 1);
}

#[test]
fn killed_ingests_resume_to_the_same_lake() {
    let expected = reference_lake();
    let env = Env::new(&registry(&[EAN_A, EAN_B, EAN_C, EAN_D]));
    five_day_feed(&env);
    // Slow every other response so the kills land at different stages of the run.
    env.server
        .set_faults(vec![None, Some(Fault::Slow(Duration::from_millis(400)))]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (stop, lake) = (stop.clone(), env.lake_dir());
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                seen.extend(stray_files_in_tables(&lake));
                std::thread::sleep(Duration::from_millis(2));
            }
            seen
        })
    };
    let mut kills = 0;
    for delay_ms in [150u64, 300, 450, 600, 750] {
        let mut child = env
            .command(NOW, &["ingest", "grid"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
        assert!(stray_files_in_tables(&env.lake_dir()).is_empty());
        env.after_kill();
    }
    assert!(kills >= 3, "most runs were killed mid-way ({kills})");
    assert_ok(&env.vaten(NOW, &["ingest", "grid"]));
    env.assert_nothing_staged();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        watcher.join().unwrap(),
        Vec::<std::path::PathBuf>::new(),
        "no temporary file ever inside a table"
    );
    assert_eq!(lake_rows(&env.lake()), expected);
    assert!(!env
        .lake_dir()
        .join("_journal")
        .read_dir()
        .map(|mut d| d.next().is_some())
        .unwrap_or(false));
    assert!(!env
        .lake_dir()
        .join("_staging")
        .read_dir()
        .map(|mut d| d.next().is_some())
        .unwrap_or(false));
}

#[test]
fn two_ingests_at_once_do_not_mix() {
    let expected = reference_lake();
    let env = Env::new(&registry(&[EAN_A, EAN_B, EAN_C, EAN_D]));
    five_day_feed(&env);
    // Slow pages keep the first ingest busy for longer than the second one's 1 s lock wait.
    env.server
        .set_faults(vec![Some(Fault::Slow(Duration::from_millis(300)))]);
    let first = env.command(NOW, &["ingest", "grid"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let second = env.vaten(NOW, &["ingest", "grid"]);
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success());
    assert_eq!(second.status.code(), Some(1), "{}", stderr(&second));
    let err = stderr(&second);
    assert!(
        err.contains("locked by another writer") && err.contains("running `vaten ingest grid`"),
        "{err}"
    );
    assert_eq!(lake_rows(&env.lake()), expected);
}

/// SIGKILLs during grid ingests with the lake on the local S3-compatible server: the bucket ends as one uninterrupted run's lake.
#[test]
fn killed_ingests_resume_to_the_same_lake_on_s3() {
    on_s3(killed_ingests_resume_to_the_same_lake);
}
