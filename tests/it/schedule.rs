//! `vaten schedule` end to end, on the real clock with schedules of a few seconds (generous
//! margins): cycles in dependency order without overlap, the same lake as `vaten run` twice,
//! catch-up after downtime, a hanging job not started twice, a failing one retried, SIGTERM.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use vaten::fake::{Fault, FeedEntry};

use crate::common::*;
use crate::feeds::*;

/// (job, status, started_at µs, finished_at µs) of every run, by start.
fn runs(env: &Env) -> Vec<(String, String, i64, i64)> {
    use polars::prelude::*;
    let df = env.lake().read_table(&vaten::lake::schema::RUNS).unwrap();
    if df.height() == 0 {
        return Vec::new();
    }
    let s = |n: &str| df.column(n).unwrap().str().unwrap().clone();
    let t = |n: &str| {
        df.column(n)
            .unwrap()
            .cast(&DataType::Int64)
            .unwrap()
            .i64()
            .unwrap()
            .clone()
    };
    let (job, status, start, end) = (s("job"), s("status"), t("started_at"), t("finished_at"));
    let mut out: Vec<_> = (0..df.height())
        .map(|i| {
            (
                job.get(i).unwrap().to_string(),
                status.get(i).unwrap().to_string(),
                start.get(i).unwrap(),
                end.get(i).unwrap(),
            )
        })
        .collect();
    out.sort_by_key(|r| r.2);
    out
}

fn pipeline(env: &Env, text: &str) {
    let dir = env.dir.path().join("pipelines");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("test.toml"), text).unwrap();
    *env.extra_config.borrow_mut() = "[schedule]\npipelines = \"pipelines\"\ngrace_s = 20\n".into();
    env.write_config("");
}

/// A running `vaten schedule`, killed if a test fails before it is terminated.
struct Scheduler(Option<Child>);

impl Drop for Scheduler {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start(env: &Env, now: &str) -> Scheduler {
    Scheduler(Some(
        env.command(now, &["schedule"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ))
}

/// Polls `done` every 200 ms for up to `secs`.
fn wait_for(secs: u64, mut done: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// SIGTERM, then the exit status (within a generous minute).
fn terminate(mut s: Scheduler) -> std::process::ExitStatus {
    let mut child = s.0.take().expect("running");
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    assert!(
        wait_for(60, || child.try_wait().unwrap().is_some()),
        "exits after SIGTERM"
    );
    let status = child.wait().unwrap();
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("SIGTERM: no new jobs"), "{err}");
    assert!(!err.contains(API_KEY), "the key never in the logs");
    status
}

const CYCLE: &str = r#"
[[job]]
name = "ingest-grid"
run = "ingest-grid"
schedule = "*/3 * * * * *"

[[job]]
name = "transform"
run = "transform"
after = ["ingest-grid"]

[[job]]
name = "report-nightly"
run = "report-nightly"
after = ["transform"]
"#;

#[test]
fn two_cycles_in_order_without_overlap_equal_vaten_run_twice() {
    let reg = registry(&[EAN_A, EAN_B]);
    let (sched, by_hand) = (Env::new(&reg), Env::new(&reg));
    pipeline(&sched, CYCLE);
    pipeline(&by_hand, CYCLE);
    let mut a = meter(EAN_A, "MA1", 100_000, true);
    let mut b = meter(EAN_B, "MB1", 200_000, false);
    let first = [
        FeedEntry::interval(intervals(&mut a, "2026-10-25")),
        FeedEntry::interval(intervals(&mut b, "2026-10-25")),
    ];
    let second = [
        FeedEntry::interval(intervals(&mut a, "2026-10-26")),
        FeedEntry::interval(intervals(&mut b, "2026-10-26")),
    ];
    sched.server.push(first.clone());
    by_hand.server.push(first);

    let child = start(&sched, "2026-10-27T10:00:00Z");
    let reports = |env: &Env| runs(env).iter().filter(|r| r.0 == "report-nightly").count();
    assert!(
        wait_for(60, || reports(&sched) >= 1),
        "a first cycle: {:?}",
        runs(&sched)
    );
    sched.server.push(second.clone());
    // A cycle whose ingest saw the second delivery, and its report.
    let stored = |env: &Env| count(&env.lake(), "grid_readings");
    // By hand: 100 readings per meter on the 25th (the long DST day), 96 on the 26th.
    assert!(
        wait_for(60, || stored(&sched) == 2 * 100 + 2 * 96),
        "{}",
        stored(&sched)
    );
    let after_second = reports(&sched);
    assert!(wait_for(60, || reports(&sched) > after_second));
    assert!(terminate(child).success(), "exit 0");

    let all = runs(&sched);
    // One job at a time, each run inside its own slot.
    for w in all.windows(2) {
        assert!(w[0].3 <= w[1].2, "overlap: {w:?}");
    }
    // Order: every transform follows an ingest that succeeded since the previous transform,
    // every report a transform.
    let mut ingested = false;
    let mut transformed = false;
    for (job, status, ..) in &all {
        assert_ne!(status, "failed", "{all:?}");
        match job.as_str() {
            "ingest-grid" => ingested = true,
            "transform" => {
                assert!(ingested, "transform without a new ingest: {all:?}");
                ingested = false;
                transformed = true;
            }
            "report-nightly" => {
                assert!(transformed, "report before its transform: {all:?}");
                transformed = false;
            }
            other => panic!("unexpected job {other}"),
        }
    }

    // By hand: `vaten run` twice around the same second delivery.
    assert_ok(&by_hand.vaten("2026-10-27T10:00:00Z", &["run"]));
    by_hand.server.push(second);
    assert_ok(&by_hand.vaten("2026-10-27T10:01:00Z", &["run"]));
    assert_eq!(lake_rows(&sched.lake()), lake_rows(&by_hand.lake()));
}

#[test]
fn catch_up_runs_the_missed_nightly_once_at_start() {
    let env = Env::new(&registry(&[EAN_A]));
    pipeline(
        &env,
        "[[job]]\nname = \"ingest-grid\"\nrun = \"ingest-grid\"\nschedule = \"0 30 9 * * *\"\n",
    );
    let mut a = meter(EAN_A, "MA1", 100_000, true);
    env.server
        .push([FeedEntry::interval(intervals(&mut a, "2026-10-25"))]);
    let now: DateTime<Utc> = Utc::now();
    let two_days_ago = (now - chrono::Duration::days(2)).to_rfc3339();
    assert_ok(&env.vaten(&two_days_ago, &["ingest", "grid"]));
    let grid_runs = |env: &Env| runs(env).iter().filter(|r| r.0 == "ingest-grid").count();
    assert_eq!(grid_runs(&env), 1);

    let child = start(&env, &now.to_rfc3339());
    assert!(wait_for(30, || grid_runs(&env) == 2), "caught up at start");
    // Once, not once per missed 09:30.
    std::thread::sleep(Duration::from_secs(3));
    assert!(terminate(child).success());
    assert_eq!(grid_runs(&env), 2);
}

#[test]
fn a_hanging_job_is_not_started_again_and_a_failing_one_is_retried() {
    // Hanging: six slow answers (0.9 s each, under the 1 s timeout) make one pull take over
    // five seconds while the job fires every two. 21 days in pages of 4: six requests.
    let env = Env::new(&registry(&[EAN_A]));
    pipeline(
        &env,
        "[[job]]\nname = \"ingest-grid\"\nrun = \"ingest-grid\"\nschedule = \"*/2 * * * * *\"\n",
    );
    let mut a = meter(EAN_A, "MA1", 100_000, true);
    let days = vaten::fake::synth::dates_ending(d("2026-10-25"), 21);
    env.server.push(
        days.iter()
            .map(|day| FeedEntry::interval(intervals(&mut a, &day.to_string())))
            .collect::<Vec<_>>(),
    );
    env.server
        .set_faults(vec![Some(Fault::Slow(Duration::from_millis(900))); 6]);
    let child = start(&env, "2026-10-27T10:00:00Z");
    let skipped = |env: &Env| runs(env).iter().filter(|r| r.1 == "skipped").count();
    assert!(wait_for(60, || skipped(&env) >= 2), "{:?}", runs(&env));
    assert!(terminate(child).success());
    let all = runs(&env);
    let real: Vec<_> = all.iter().filter(|r| r.1 != "skipped").collect();
    for w in real.windows(2) {
        assert!(w[0].3 <= w[1].2, "never two at once: {w:?}");
    }
    let first = real[0];
    assert!(
        first.3 - first.2 > 5_000_000,
        "the first pull hung for over 5 s: {first:?}"
    );

    // Failing: a wrong key fails at once; three attempts half a second apart, all recorded.
    let env = Env::new(&registry(&[EAN_A]));
    pipeline(
        &env,
        "[[job]]\nname = \"ingest-grid\"\nrun = \"ingest-grid\"\nschedule = \"*/30 * * * * *\"\nretry = { attempts = 3, backoff_s = 0.5 }\n",
    );
    let mut child = env.command("2026-10-27T10:00:00Z", &["schedule"]);
    let child = Scheduler(Some(
        child
            .env(KEY_ENV, "not-the-key")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let failed = |env: &Env| runs(env).iter().filter(|r| r.1 == "failed").count();
    assert!(wait_for(60, || failed(&env) >= 3), "{:?}", runs(&env));
    assert!(terminate(child).success());
    let f: Vec<_> = runs(&env).into_iter().filter(|r| r.1 == "failed").collect();
    assert!(
        f[2].2 - f[0].2 < 10_000_000,
        "retried, not waiting for the next firing: {f:?}"
    );
}

#[test]
fn check_prints_the_next_times_and_bad_definitions_are_refused() {
    let env = Env::new(&registry(&[EAN_A]));
    pipeline(
        &env,
        "[[job]]\nname = \"grid\"\nrun = \"ingest-grid\"\nschedule = \"0 30 2 * * *\"\n",
    );
    let out = env.vaten("2026-10-24T12:00:00Z", &["schedule", "--check"]);
    assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    // 02:30 on the 25th exists twice: once, in summer time.
    assert!(
        text.contains("next 2026-10-25 02:30:00 CEST, 2026-10-26 02:30:00 CET"),
        "{text}"
    );
    pipeline(
        &env,
        "[[job]]\nname = \"grid\"\nrun = \"ingest-grid\"\n\nschedule = \"0 30 25 * * *\"\n",
    );
    let out = env.vaten("2026-10-24T12:00:00Z", &["schedule"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("test.toml:5: job `grid`: bad cron expression"),
        "{}",
        stderr(&out)
    );
}

/// The `_runs` messages of a job's failed runs.
fn failures(env: &Env, job: &str) -> Vec<String> {
    let df = env.lake().read_table(&vaten::lake::schema::RUNS).unwrap();
    if df.height() == 0 {
        return Vec::new();
    }
    let s = |n: &str| df.column(n).unwrap().str().unwrap().clone();
    let (j, status, msg) = (s("job"), s("status"), s("message"));
    (0..df.height())
        .filter(|&i| j.get(i) == Some(job) && status.get(i) == Some("failed"))
        .map(|i| msg.get(i).unwrap().to_string())
        .collect()
}

/// A job that panics, and one that hangs past its timeout: each attempt is recorded as failed,
/// the next firing runs, and SIGTERM still ends the scheduler cleanly. Before, a panic never
/// sent the "finished" message (the scheduler waited for ever) and a hang had no limit.
#[test]
fn a_job_that_panics_or_hangs_is_recorded_and_the_next_firing_runs() {
    for (fault, said) in [
        ("panic:ingest-grid", "ingest-grid panicked: injected panic"),
        ("hang:ingest-grid", "timed out after 1.5 s and was ended"),
    ] {
        let env = Env::new(&registry(&[EAN_A]));
        pipeline(
            &env,
            "[[job]]\nname = \"ingest-grid\"\nrun = \"ingest-grid\"\nschedule = \"*/2 * * * * *\"\ntimeout_s = 1.5\n",
        );
        let child = Scheduler(Some(
            env.command("2026-10-27T10:00:00Z", &["schedule"])
                .env("VATEN_INJECT_FAULT", fault)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        ));
        assert!(
            wait_for(60, || failures(&env, "ingest-grid").len() >= 2),
            "{fault}: {:?}",
            runs(&env)
        );
        assert!(terminate(child).success(), "{fault}");
        let f = failures(&env, "ingest-grid");
        assert!(f.iter().all(|m| m.contains(said)), "{fault}: {f:?}");
    }
}

#[test]
fn vaten_run_with_a_panicking_job_exits_1_and_records_it() {
    let env = Env::new(&registry(&[EAN_A]));
    let out = env
        .command("2026-10-27T10:00:00Z", &["run"])
        .env("VATEN_INJECT_FAULT", "panic:transform")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("internal error: transform panicked: injected panic in transform"),
        "{}",
        stderr(&out)
    );
    assert_eq!(failures(&env, "transform").len(), 1);
}
