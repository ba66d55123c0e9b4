//! Pipeline definitions (`pipelines/*.toml`): the jobs, when they fire, what they wait for and
//! how they are retried. A definition that names an unknown task or job, carries a bad cron
//! expression or has a dependency cycle is refused with file, line and problem.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use serde::Deserialize;
use toml::Spanned;

use super::cron::Schedule;
use crate::error::{Error, Result};

/// The project's default pipeline, used when the configured folder does not exist.
pub const DEFAULT_PIPELINE: &str = include_str!("../../pipelines/nightly.toml");

/// What a job runs: the commands of the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    IngestGrid,
    IngestInstallations,
    Transform,
    ReportNightly,
    ReportYearly,
    Retain,
    Compact,
    Publish,
}

impl Task {
    pub const ALL: [Task; 8] = [
        Task::IngestGrid,
        Task::IngestInstallations,
        Task::Transform,
        Task::ReportNightly,
        Task::ReportYearly,
        Task::Retain,
        Task::Compact,
        Task::Publish,
    ];

    /// Its name in definitions, and the `job` of its records in `_runs`.
    pub fn name(self) -> &'static str {
        match self {
            Task::IngestGrid => "ingest-grid",
            Task::IngestInstallations => "ingest-installations",
            Task::Transform => "transform",
            Task::ReportNightly => "report-nightly",
            Task::ReportYearly => "report-yearly",
            Task::Retain => "retain",
            Task::Compact => "compact",
            Task::Publish => "publish",
        }
    }

    fn parse(s: &str) -> Option<Task> {
        Task::ALL.into_iter().find(|t| t.name() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Attempts in all (1: no retry).
    pub attempts: u32,
    /// Wait between attempts.
    pub backoff_s: f64,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 1,
            backoff_s: 0.0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct JobDef {
    pub name: String,
    pub task: Task,
    /// When it fires (local time); `None` for a job that only follows others.
    pub schedule: Option<Schedule>,
    /// Jobs that must have succeeded since this one last started before it runs.
    pub after: Vec<String>,
    pub retry: Retry,
    /// `vaten schedule` ends an attempt that runs longer (the job runs in a process of its own,
    /// which is killed; the lake's journal leaves it as before that job).
    pub timeout_s: f64,
    /// `file:line` of its definition, for messages.
    pub origin: String,
}

/// A job's timeout when its definition names none: four hours, far above a nightly pass.
pub const DEFAULT_TIMEOUT_S: f64 = 4.0 * 3_600.0;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    job: Vec<Spanned<RawJob>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    name: Spanned<String>,
    run: Spanned<String>,
    schedule: Option<Spanned<String>>,
    #[serde(default)]
    after: Vec<Spanned<String>>,
    retry: Option<Retry>,
    timeout_s: Option<f64>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Loads every `*.toml` in `dir` (sorted), or the built-in default when `dir` does not exist.
pub fn load(dir: &Path, tz: Tz) -> Result<Vec<JobDef>> {
    let mut sources: Vec<(String, String)> = Vec::new();
    if dir.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f)?;
            sources.push((f.display().to_string(), text));
        }
        if sources.is_empty() {
            return Err(Error::Usage(format!(
                "{}: no pipeline definitions (*.toml) in this folder",
                dir.display()
            )));
        }
    } else {
        tracing::info!(
            "{} does not exist: using the built-in nightly pipeline",
            dir.display()
        );
        sources.push((
            "(built-in) pipelines/nightly.toml".into(),
            DEFAULT_PIPELINE.into(),
        ));
    }
    parse(&sources, tz)
}

/// Parses definitions given as (file name, text); all problems at once.
pub fn parse(sources: &[(String, String)], tz: Tz) -> Result<Vec<JobDef>> {
    let mut problems = Vec::new();
    let mut jobs: Vec<JobDef> = Vec::new();
    // (file:line, job, the job it waits for), checked once all jobs are known.
    let mut refs: Vec<(String, String, String)> = Vec::new();
    for (file, text) in sources {
        let raw: RawFile = match toml::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                let line = e.span().map_or(1, |s| line_of(text, s.start));
                problems.push(format!("{file}:{line}: {}", e.message()));
                continue;
            }
        };
        for j in raw.job {
            let line = line_of(text, j.span().start);
            let j = j.into_inner();
            let at = |s: &std::ops::Range<usize>| format!("{file}:{}", line_of(text, s.start));
            let name = j.name.get_ref().clone();
            if jobs.iter().any(|o| o.name == name) {
                problems.push(format!(
                    "{}: job `{name}` is defined twice",
                    at(&j.name.span())
                ));
            }
            let task = Task::parse(j.run.get_ref());
            if task.is_none() {
                problems.push(format!(
                    "{}: job `{name}` runs unknown task `{}` (known: {})",
                    at(&j.run.span()),
                    j.run.get_ref(),
                    Task::ALL.map(Task::name).join(", ")
                ));
            }
            let schedule = match &j.schedule {
                Some(s) => match Schedule::parse(s.get_ref(), tz) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        problems.push(format!("{}: job `{name}`: {e}", at(&s.span())));
                        None
                    }
                },
                None => None,
            };
            if j.schedule.is_none() && j.after.is_empty() {
                problems.push(format!(
                    "{file}:{line}: job `{name}` has neither `schedule` nor `after`: it would never run"
                ));
            }
            let retry = j.retry.unwrap_or_default();
            let in_range = (1..=100).contains(&retry.attempts)
                && retry.backoff_s.is_finite()
                && (0.0..=86_400.0).contains(&retry.backoff_s);
            if !in_range {
                problems.push(format!(
                    "{file}:{line}: job `{name}`: retry needs attempts from 1 to 100 and backoff_s from 0 to 86400"
                ));
            }
            let timeout_s = j.timeout_s.unwrap_or(DEFAULT_TIMEOUT_S);
            if !(timeout_s.is_finite() && timeout_s > 0.0 && timeout_s <= 7.0 * 86_400.0) {
                problems.push(format!(
                    "{file}:{line}: job `{name}`: timeout_s {timeout_s} must be above 0 and at most 604800 (7 days)"
                ));
            }
            for a in &j.after {
                refs.push((at(&a.span()), name.clone(), a.get_ref().clone()));
            }
            jobs.push(JobDef {
                name,
                task: task.unwrap_or(Task::Transform),
                schedule,
                after: j.after.iter().map(|a| a.get_ref().clone()).collect(),
                retry,
                timeout_s,
                origin: format!("{file}:{line}"),
            });
        }
    }
    for (at, job, dep) in &refs {
        if !jobs.iter().any(|j| &j.name == dep) {
            problems.push(format!("{at}: job `{job}` waits for unknown job `{dep}`"));
        }
    }
    if problems.is_empty() {
        if let Some(cycle) = find_cycle(&jobs) {
            let first = jobs.iter().find(|j| j.name == cycle[0]).expect("job");
            problems.push(format!(
                "{}: dependency cycle: {}",
                first.origin,
                cycle.join(" → ")
            ));
        }
    }
    if problems.is_empty() {
        Ok(jobs)
    } else {
        Err(Error::Usage(format!(
            "pipeline definitions refused:\n{}",
            problems.join("\n")
        )))
    }
}

/// A cycle in the `after` graph, as job names ending where they started.
fn find_cycle(jobs: &[JobDef]) -> Option<Vec<String>> {
    let index: HashMap<&str, usize> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.name.as_str(), i))
        .collect();
    // 0 unvisited, 1 on the path, 2 done.
    let mut mark = vec![0u8; jobs.len()];
    fn visit(
        i: usize,
        jobs: &[JobDef],
        index: &HashMap<&str, usize>,
        mark: &mut [u8],
        path: &mut Vec<usize>,
    ) -> Option<Vec<String>> {
        mark[i] = 1;
        path.push(i);
        for dep in &jobs[i].after {
            let Some(&d) = index.get(dep.as_str()) else {
                continue;
            };
            if mark[d] == 1 {
                let from = path.iter().position(|&p| p == d).expect("on path");
                let mut cycle: Vec<String> =
                    path[from..].iter().map(|&p| jobs[p].name.clone()).collect();
                cycle.push(jobs[d].name.clone());
                return Some(cycle);
            }
            if mark[d] == 0 {
                if let Some(c) = visit(d, jobs, index, mark, path) {
                    return Some(c);
                }
            }
        }
        path.pop();
        mark[i] = 2;
        None
    }
    (0..jobs.len()).find_map(|i| {
        if mark[i] == 0 {
            visit(i, jobs, &index, &mut mark, &mut Vec::new())
        } else {
            None
        }
    })
}

/// The jobs in an order where each comes after those it waits for (for `vaten run`).
pub fn dependency_order(jobs: &[JobDef]) -> Vec<&JobDef> {
    let mut placed: BTreeMap<&str, ()> = BTreeMap::new();
    let mut out = Vec::new();
    while out.len() < jobs.len() {
        let before = out.len();
        for j in jobs {
            if !placed.contains_key(j.name.as_str())
                && j.after.iter().all(|a| placed.contains_key(a.as_str()))
            {
                placed.insert(&j.name, ());
                out.push(j);
            }
        }
        if out.len() == before {
            break; // a cycle: refused when loading
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const AMS: Tz = chrono_tz::Europe::Amsterdam;

    fn problems(text: &str) -> String {
        match parse(&[("p.toml".into(), text.into())], AMS) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_default_pipeline_loads_in_dependency_order() {
        let jobs = parse(&[("nightly.toml".into(), DEFAULT_PIPELINE.into())], AMS).unwrap();
        let order: Vec<&str> = dependency_order(&jobs)
            .iter()
            .map(|j| j.name.as_str())
            .collect();
        let pos = |n: &str| order.iter().position(|o| *o == n).unwrap();
        assert!(pos("ingest-grid") < pos("transform"));
        assert!(pos("ingest-installations") < pos("transform"));
        assert!(pos("transform") < pos("report-nightly"));
        assert_eq!(order.len(), jobs.len());
    }

    #[test]
    fn malformed_definitions_are_refused_with_file_line_and_problem() {
        let e =
            problems("[[job]]\nname = \"a\"\nrun = \"make-coffee\"\nschedule = \"0 9 * * *\"\n");
        assert!(
            e.contains("p.toml:3: job `a` runs unknown task `make-coffee`"),
            "{e}"
        );
        let e = problems("[[job]]\nname = \"a\"\nrun = \"transform\"\nschedule = \"0 25 * * *\"\n");
        assert!(
            e.contains("p.toml:4: job `a`: bad cron expression `0 25 * * *`"),
            "{e}"
        );
        let e = problems(
            "[[job]]\nname = \"a\"\nrun = \"transform\"\nafter = [\"b\"]\n\n[[job]]\nname = \"b\"\nrun = \"ingest-grid\"\nafter = [\"a\"]\n",
        );
        assert!(e.contains("p.toml:1: dependency cycle: a → b → a"), "{e}");
        let e = problems("[[job]]\nname = \"a\"\nrun = \"transform\"\nafter = [\"nope\"]\n");
        assert!(
            e.contains("p.toml:4: job `a` waits for unknown job `nope`"),
            "{e}"
        );
        let e = problems("[[job]]\nname = \"a\"\nrun = \"transform\"\nshedule = \"0 9 * * *\"\n");
        assert!(
            e.starts_with("pipeline definitions refused:\np.toml:4: unknown field `shedule`"),
            "{e}"
        );
        let e = problems("[[job]]\nname = \"a\"\nrun = \"transform\"\n");
        assert!(e.contains("neither `schedule` nor `after`"), "{e}");
    }
}
