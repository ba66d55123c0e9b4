//! The scheduler's decisions, without threads or clocks: given "now", which job starts, which
//! firing is skipped. The runner feeds it the time and the jobs' outcomes; the tests feed it
//! an invented clock.
//!
//! Rules: a scheduled job fires at most once per firing time (a missed stretch gives one run,
//! not one per missed time); at start, a job whose last success is older than its last
//! scheduled time runs once right away (catch-up), a job that never ran waits for its first
//! time; a job still running or waiting when its time comes again is not started again (the
//! skipped firing is reported); a failure is retried after the job's backoff until its
//! attempts are spent; a job with `after` runs once all of those succeeded since it last
//! started; one job runs at a time (they share the lake's lock).

use std::collections::{BTreeSet, HashMap, VecDeque};

use chrono::{DateTime, Duration, Utc};

use super::definition::JobDef;

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Start job `job` (index into the definitions), attempt `attempt` (1 = first).
    Start { job: usize, attempt: u32 },
    /// A firing of `job` was not started; `why` for the record.
    Skip { job: usize, why: String },
}

#[derive(Debug, Default)]
struct State {
    next_fire: Option<DateTime<Utc>>,
    /// Its time came (or catch-up): runs when its dependencies allow.
    fired: bool,
    /// Jobs it waits for that succeeded since it last started.
    done_since: BTreeSet<usize>,
    retry_at: Option<(DateTime<Utc>, u32)>,
    queued: bool,
}

pub struct Core {
    jobs: Vec<JobDef>,
    state: Vec<State>,
    /// Index of each job's dependencies.
    deps: Vec<Vec<usize>>,
    queue: VecDeque<(usize, u32)>,
    running: Option<(usize, u32, DateTime<Utc>)>,
    stopping: bool,
}

impl Core {
    /// `last_success`: per `_runs` job name, the start of its last successful run.
    pub fn new(
        jobs: Vec<JobDef>,
        last_success: &HashMap<String, DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Self {
        let index: HashMap<&str, usize> = jobs
            .iter()
            .enumerate()
            .map(|(i, j)| (j.name.as_str(), i))
            .collect();
        let deps = jobs
            .iter()
            .map(|j| {
                j.after
                    .iter()
                    .filter_map(|a| index.get(a.as_str()).copied())
                    .collect()
            })
            .collect();
        let state = jobs
            .iter()
            .map(|j| {
                let mut s = State::default();
                if let Some(sched) = &j.schedule {
                    s.next_fire = sched.next_after(now);
                    let last_time = sched.last_at_or_before(now);
                    let last_ok = last_success.get(j.task.name());
                    // Catch-up only for a job that ran before and missed its last time.
                    s.fired = matches!((last_time, last_ok), (Some(t), Some(ok)) if *ok < t);
                }
                s
            })
            .collect();
        Core {
            jobs,
            state,
            deps,
            queue: VecDeque::new(),
            running: None,
            stopping: false,
        }
    }

    pub fn job_count(&self) -> usize {
        self.jobs.len()
    }

    pub fn job(&self, i: usize) -> &JobDef {
        &self.jobs[i]
    }

    /// What to do at `now`.
    pub fn step(&mut self, now: DateTime<Utc>) -> Vec<Decision> {
        let mut out = Vec::new();
        if self.stopping {
            return out;
        }
        for i in 0..self.jobs.len() {
            let due = self.state[i].next_fire.is_some_and(|t| t <= now);
            if due {
                let sched = self.jobs[i]
                    .schedule
                    .as_ref()
                    .expect("a job with a fire time");
                self.state[i].next_fire = sched.next_after(now);
                if let Some((_, _, since)) = self.running.filter(|r| r.0 == i) {
                    out.push(Decision::Skip {
                        job: i,
                        why: format!(
                            "still running since {}: this firing was not started",
                            since.format("%Y-%m-%d %H:%M:%S UTC")
                        ),
                    });
                } else if self.state[i].queued {
                    out.push(Decision::Skip {
                        job: i,
                        why: "still waiting for its turn: this firing was not started".into(),
                    });
                } else {
                    self.state[i].fired = true;
                }
            }
            if let Some((t, attempt)) = self.state[i].retry_at {
                if t <= now {
                    self.state[i].retry_at = None;
                    self.enqueue(i, attempt);
                }
            }
        }
        for i in 0..self.jobs.len() {
            let s = &self.state[i];
            let deps_done = self.deps[i].iter().all(|d| s.done_since.contains(d));
            let ready = match (&self.jobs[i].schedule, self.deps[i].is_empty()) {
                (Some(_), _) => s.fired && deps_done,
                (None, false) => deps_done,
                (None, true) => false,
            };
            let busy = s.queued || self.running.is_some_and(|r| r.0 == i);
            if ready && !busy {
                self.state[i].fired = false;
                self.state[i].done_since.clear();
                self.enqueue(i, 1);
            }
        }
        if self.running.is_none() {
            if let Some((job, attempt)) = self.queue.pop_front() {
                self.state[job].queued = false;
                self.running = Some((job, attempt, now));
                out.push(Decision::Start { job, attempt });
            }
        }
        out
    }

    fn enqueue(&mut self, job: usize, attempt: u32) {
        self.state[job].queued = true;
        self.queue.push_back((job, attempt));
    }

    /// The running job ended (`ok`: done, also with warnings).
    pub fn finished(&mut self, ok: bool, now: DateTime<Utc>) {
        let Some((job, attempt, _)) = self.running.take() else {
            return;
        };
        if ok {
            for (j, deps) in self.deps.iter().enumerate() {
                if deps.contains(&job) {
                    self.state[j].done_since.insert(job);
                }
            }
        } else if attempt < self.jobs[job].retry.attempts {
            let wait = Duration::milliseconds((self.jobs[job].retry.backoff_s * 1000.0) as i64);
            self.state[job].retry_at = Some((now + wait, attempt + 1));
        }
    }

    pub fn running(&self) -> Option<usize> {
        self.running.map(|r| r.0)
    }

    /// No new starts from now on.
    pub fn stop(&mut self) {
        self.stopping = true;
        self.queue.clear();
    }

    /// When `step` may have something new to do (besides a job ending).
    pub fn next_wake(&self) -> Option<DateTime<Utc>> {
        self.state
            .iter()
            .flat_map(|s| [s.next_fire, s.retry_at.map(|r| r.0)])
            .flatten()
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::definition::parse;

    const AMS: chrono_tz::Tz = chrono_tz::Europe::Amsterdam;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn jobs(text: &str) -> Vec<JobDef> {
        parse(&[("t.toml".into(), text.into())], AMS).unwrap()
    }

    const NIGHTLY: &str = r#"
[[job]]
name = "grid"
run = "ingest-grid"
schedule = "0 30 9 * * *"
retry = { attempts = 3, backoff_s = 60 }
[[job]]
name = "transform"
run = "transform"
after = ["grid"]
[[job]]
name = "report"
run = "report-nightly"
after = ["transform"]
"#;

    /// Runs the core on an invented clock from `from` for `minutes`, every job taking one
    /// minute and succeeding unless `fails(name, attempt)`; returns (minute, job, attempt).
    fn simulate(
        core: &mut Core,
        from: &str,
        minutes: i64,
        fails: impl Fn(&str, u32) -> bool,
    ) -> Vec<(i64, String, u32)> {
        let start = utc(from);
        let mut log = Vec::new();
        let mut ends: Option<(DateTime<Utc>, bool)> = None;
        for m in 0..=minutes {
            let now = start + Duration::minutes(m);
            if let Some((t, ok)) = ends {
                if t <= now {
                    core.finished(ok, now);
                    ends = None;
                }
            }
            for d in core.step(now) {
                if let Decision::Start { job, attempt } = d {
                    let name = core.job(job).name.clone();
                    ends = Some((now + Duration::minutes(1), !fails(&name, attempt)));
                    log.push((m, name, attempt));
                }
            }
        }
        log
    }

    #[test]
    fn a_job_that_never_ran_waits_for_its_time_then_its_dependents_follow() {
        let mut core = Core::new(jobs(NIGHTLY), &HashMap::new(), utc("2026-11-26T06:00:00Z"));
        // 09:30 local is 08:30 UTC: 150 minutes after the start.
        let log = simulate(&mut core, "2026-11-26T06:00:00Z", 24 * 60, |_, _| false);
        assert_eq!(
            log,
            [
                (150, "grid".to_string(), 1),
                (151, "transform".to_string(), 1),
                (152, "report".to_string(), 1)
            ]
        );
    }

    #[test]
    fn catch_up_runs_once_however_many_times_were_missed() {
        // Last success two days ago: the job missed two 09:30s and runs once, now.
        let last = HashMap::from([("ingest-grid".to_string(), utc("2026-11-24T08:31:00Z"))]);
        let mut core = Core::new(jobs(NIGHTLY), &last, utc("2026-11-26T12:00:00Z"));
        let log = simulate(&mut core, "2026-11-26T12:00:00Z", 60, |_, _| false);
        assert_eq!(log.iter().filter(|l| l.1 == "grid").count(), 1);
        assert_eq!(log[0], (0, "grid".to_string(), 1));
        assert_eq!(log.len(), 3, "then transform and report: {log:?}");
        // Up to date: nothing to catch up.
        let last = HashMap::from([("ingest-grid".to_string(), utc("2026-11-26T08:31:00Z"))]);
        let mut core = Core::new(jobs(NIGHTLY), &last, utc("2026-11-26T12:00:00Z"));
        assert!(simulate(&mut core, "2026-11-26T12:00:00Z", 60, |_, _| false).is_empty());
    }

    #[test]
    fn failures_are_retried_and_dependents_wait_for_success() {
        let mut core = Core::new(jobs(NIGHTLY), &HashMap::new(), utc("2026-11-26T08:29:00Z"));
        let log = simulate(&mut core, "2026-11-26T08:29:00Z", 200, |n, a| {
            n == "grid" && a < 3
        });
        let names: Vec<(i64, &str, u32)> =
            log.iter().map(|(m, n, a)| (*m, n.as_str(), *a)).collect();
        // 08:30 fails, retried after 60 s of backoff once it ended (08:31 → 08:32), again.
        assert_eq!(
            names,
            [
                (1, "grid", 1),
                (3, "grid", 2),
                (5, "grid", 3),
                (6, "transform", 1),
                (7, "report", 1)
            ]
        );
        // All attempts failing: no transform.
        let mut core = Core::new(jobs(NIGHTLY), &HashMap::new(), utc("2026-11-26T08:29:00Z"));
        let log = simulate(&mut core, "2026-11-26T08:29:00Z", 200, |n, _| n == "grid");
        assert_eq!(log.len(), 3);
        assert!(log.iter().all(|l| l.1 == "grid"));
    }

    #[test]
    fn a_job_still_running_is_not_started_again() {
        let defs = jobs(
            "[[job]]\nname = \"slow\"\nrun = \"ingest-grid\"\nschedule = \"*/10 * * * * *\"\n",
        );
        let t0 = utc("2026-11-26T10:00:00Z");
        let mut core = Core::new(defs, &HashMap::new(), t0);
        let at = |s: i64| t0 + Duration::seconds(s);
        assert_eq!(core.step(at(10)), [Decision::Start { job: 0, attempt: 1 }]);
        // It hangs for 35 s: the firings at 20 and 30 s are skipped, not queued.
        for s in [20, 30] {
            let d = core.step(at(s));
            assert!(
                matches!(&d[..], [Decision::Skip { job: 0, why }] if why.contains("still running")),
                "{d:?}"
            );
        }
        core.finished(true, at(35));
        assert!(
            core.step(at(35)).is_empty(),
            "no run owed for the skipped firings"
        );
        assert_eq!(core.step(at(40)), [Decision::Start { job: 0, attempt: 1 }]);
        core.stop();
        core.finished(true, at(41));
        assert!(core.step(at(50)).is_empty(), "stopping: nothing new");
    }
}
