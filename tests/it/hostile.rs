//! What a hostile or broken grid operator can do to an ingest, and what it must not achieve:
//! the API key never follows a redirect, one absurd object does not stop the feed, a
//! `Retry-After` of 1e20 seconds does not hang or panic, and a cursor that does not advance
//! does not keep the ingest busy for ever.

use std::time::{Duration, Instant};

use serde_json::json;
use vaten::fake::{FakeGridOperator, Fault, FeedEntry};

use crate::common::*;
use crate::feeds::*;

fn grid_rows(env: &Env) -> usize {
    count(&env.lake(), "grid_readings")
}

#[test]
fn the_api_key_never_follows_a_redirect() {
    let env = Env::new(&registry(&[EAN_A]));
    let mut a = meter(EAN_A, "MA1", 100_000, true);
    env.server
        .push([FeedEntry::interval(intervals(&mut a, "2026-10-26"))]);
    // Another server on this machine, with a key of its own: it logs every request it gets.
    let elsewhere = FakeGridOperator::spawn("the-other-servers-key", 0).unwrap();
    env.server.set_faults(vec![Some(Fault::Redirect(format!(
        "{}/v1/readings-bulk",
        elsewhere.url()
    )))]);
    let out = env.vaten("2026-10-28T10:00:00Z", &["ingest", "grid"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("with a redirect (302) to http://127.0.0.1:")
            && err.contains("follows no redirect"),
        "{err}"
    );
    assert!(!err.contains(API_KEY));
    assert!(
        elsewhere.request_log().is_empty(),
        "the other server was asked: {:?}",
        elsewhere.request_log()
    );
    assert_eq!(grid_rows(&env), 0);
}

#[test]
fn absurdly_dated_objects_are_rejected_and_the_page_is_stored() {
    let env = Env::new(&registry(&[EAN_A, EAN_B]));
    let mut a = meter(EAN_A, "MA1", 100_000, true);
    let b = meter(EAN_B, "MB1", 200_000, true);
    let mut ancient = day(&b, "2026-10-26").value();
    ancient["query_date"] = json!("-262143-01-01");
    let mut year_one = intervals(&mut meter(EAN_B, "MB1", 1, false), "2026-10-26");
    year_one["query_date"] = json!("0001-01-01");
    env.server.push([
        FeedEntry::interval(intervals(&mut a, "2026-10-26")),
        FeedEntry::day(ancient),
        FeedEntry::interval(year_one),
        day(&a, "2026-10-27"),
    ]);
    let out = env.vaten("2026-10-28T10:00:00Z", &["ingest", "grid"]);
    assert_ok(&out);
    let rows = lake_rows(&env.lake());
    let implausible = rows["rejected"]
        .iter()
        .filter(|r| r.contains("reason=implausible_time;"))
        .count();
    assert_eq!(implausible, 2, "{:#?}", rows["rejected"]);
    assert_eq!(grid_rows(&env), 96);
    assert_eq!(rows["grid_days"].len(), 1);
    // The cursor advanced past the page: a second ingest finds nothing new.
    assert_ok(&env.vaten("2026-10-28T10:05:00Z", &["ingest", "grid"]));
    assert_eq!(lake_rows(&env.lake())["rejected"].len(), 2);
}

#[test]
fn a_retry_after_of_1e20_seconds_ends_the_request_at_once() {
    let env = Env::new(&registry(&[EAN_A]));
    env.server
        .set_faults(vec![Some(Fault::RetryAfter("1e20".into()))]);
    let started = Instant::now();
    let out = env.vaten("2026-10-28T10:00:00Z", &["ingest", "grid"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        stderr(&out).contains("rate limited (429)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        env.server.requests(),
        1,
        "no second attempt is worth a 1e20 s wait"
    );
}

/// Eight objects of 96 readings each, four to a page.
fn eight_objects(env: &Env) {
    let mut a = meter(EAN_A, "MA1", 100_000, true);
    for date in [
        "2026-10-19",
        "2026-10-20",
        "2026-10-21",
        "2026-10-22",
        "2026-10-23",
        "2026-10-24",
        "2026-10-25",
        "2026-10-26",
    ] {
        env.server
            .push([FeedEntry::interval(intervals(&mut a, date))]);
    }
}

#[test]
fn a_cursor_that_does_not_advance_ends_the_ingest() {
    let env = Env::new(&registry(&[EAN_A]));
    eight_objects(&env);
    // The second page comes back with the cursor it was asked with, saying there is more.
    env.server.set_faults(vec![None, Some(Fault::StuckCursor)]);
    let started = Instant::now();
    let out = env.vaten("2026-10-28T10:00:00Z", &["ingest", "grid"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        stderr(&out).contains("the bulk feed does not advance: page 2 gave the same cursor again"),
        "{}",
        stderr(&out)
    );
    // Both pages' readings are stored once: 8 days (the 25th has 100 quarter-hours).
    let all = 7 * 96 + 100;
    assert_eq!(grid_rows(&env), all);
    assert_eq!(env.server.requests(), 2);
    // A healthy server again: the repeated page is recognised, nothing is stored twice.
    env.server.set_faults(Vec::new());
    assert_ok(&env.vaten("2026-10-28T10:05:00Z", &["ingest", "grid"]));
    assert_eq!(grid_rows(&env), all);
}

#[test]
fn cursors_that_cycle_end_the_ingest() {
    let env = Env::new(&registry(&[EAN_A]));
    eight_objects(&env);
    // The second page points back to the start of the feed; the third (the first again)
    // points to a cursor this run has seen.
    env.server.set_faults(vec![None, Some(Fault::CycleCursor)]);
    let out = env.vaten("2026-10-28T10:00:00Z", &["ingest", "grid"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("went back to a cursor of this run"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.server.requests(), 3);
    assert_eq!(grid_rows(&env), 7 * 96 + 100);
}

#[test]
fn a_page_above_the_body_limit_is_asked_again_smaller() {
    // 96 readings of one day are about 9 KiB of JSON; four to a page about 36 KiB.
    let env = Env::with_settings(&registry(&[EAN_A]), "max_body_bytes = 16384");
    eight_objects(&env);
    assert_ok(&env.vaten("2026-10-28T10:00:00Z", &["ingest", "grid"]));
    assert_eq!(grid_rows(&env), 7 * 96 + 100);
    // Pages of 4 are refused, of 2 mostly taken (about 16 KiB), of 1 where two are too much;
    // the smaller limit stays for the run, so no page is downloaded too large twice: at most
    // the 8 objects in pages of 2 or 1, plus one refusal per halving (two here).
    let log = env.server.request_log();
    assert!((5..=7).contains(&log.len()), "{log:?}");

    // A single object above the limit ends the ingest, naming where it is.
    let env = Env::with_settings(&registry(&[EAN_A]), "max_body_bytes = 4096");
    eight_objects(&env);
    let out = env.vaten("2026-10-28T10:00:00Z", &["ingest", "grid"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the one object after cursor (start of the feed) is larger than [grid] max_body_bytes (4096 bytes)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(grid_rows(&env), 0);
}

#[test]
fn the_ingest_deadline_stops_after_the_page_in_hand() {
    // Each page answers after 0.3 s; the ingest may take 0.2 s: one page, then a stop.
    let env = Env::with_settings(&registry(&[EAN_A]), "deadline_s = 0.2");
    eight_objects(&env);
    env.server
        .set_faults(vec![Some(Fault::Slow(Duration::from_millis(300)))]);
    let out = env.vaten("2026-10-28T10:00:00Z", &["ingest", "grid"]);
    assert_ok(&out);
    assert!(stderr(&out).contains("deadline"), "{}", stderr(&out));
    assert_eq!(grid_rows(&env), 4 * 96);
    let runs = env.vaten(
        "2026-10-28T10:00:00Z",
        &[
            "query",
            "--format",
            "csv",
            "select status, message from _runs where job = 'ingest-grid'",
        ],
    );
    let text = String::from_utf8_lossy(&runs.stdout);
    assert!(
        text.contains("warning,\"stopped early: the ingest's deadline"),
        "{text}"
    );
    // The next run goes on from the stored cursor.
    env.server.set_faults(Vec::new());
    assert_ok(&env.vaten("2026-10-28T10:05:00Z", &["ingest", "grid"]));
    assert_eq!(grid_rows(&env), 7 * 96 + 100);
}
