//! Shared test harness: a temporary cooperative with its registry and configuration, a fake
//! grid operator on 127.0.0.1, the `vaten` binary, and lake comparisons read with Polars
//! (the writer is arrow-rs, so this is a second, independent reader).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use polars::prelude::*;
use vaten::fake::FakeGridOperator;
use vaten::lake::schema::ALL_TABLES;
use vaten::lake::Lake;
use vaten::registry::{Cable, Connection, Registry, DEFAULT_CAPACITY_W};

pub const KEY_ENV: &str = "VATEN_TEST_GRID_KEY";
/// A key no code path would produce by accident, so finding it anywhere is a leak.
pub const API_KEY: &str = "sekrit-Key-7f3a9c1e-do-not-print";

pub const EAN_A: &str = "871687120000000011";
pub const EAN_B: &str = "871687120000000028";
pub const EAN_C: &str = "871687120000000035";
pub const EAN_D: &str = "871687120000000042";

pub fn connection(ean: &str, participant: &str, cable: &str) -> Connection {
    Connection {
        ean: vaten::domain::Ean::parse(ean).unwrap(),
        participant_id: participant.into(),
        cable_id: cable.into(),
        installation: None,
        tax_credit: true,
        capacity_w: DEFAULT_CAPACITY_W,
        production_capacity_w: DEFAULT_CAPACITY_W,
        installation_http_public: false,
        installation_cert_sha256: None,
        consent_from: None,
        consent_until: None,
        member_from: None,
        member_until: None,
    }
}

/// The one street cable of the test cooperatives.
pub fn cables() -> BTreeMap<String, Cable> {
    let mut cables = BTreeMap::new();
    cables.insert(
        "K1".to_string(),
        Cable {
            cable_id: "K1".into(),
            substation: "TS1".into(),
            v_low_v: 226.0,
            v_high_v: 244.0,
        },
    );
    cables
}

/// Adds a second street cable, K2, with the same limits as K1.
pub fn add_second_cable(reg: &mut Registry) {
    reg.cables.insert(
        "K2".into(),
        Cable {
            cable_id: "K2".into(),
            substation: "TS1".into(),
            v_low_v: 226.0,
            v_high_v: 244.0,
        },
    );
}

pub fn registry(eans: &[&str]) -> Registry {
    let cables = cables();
    let conns = eans
        .iter()
        .enumerate()
        .map(|(i, e)| connection(e, &format!("P{i}"), "K1"))
        .collect();
    Registry::new(conns, cables)
}

thread_local! {
    static ON_S3: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs a test body with every [`Env`] it makes keeping its lake on the local S3-compatible
/// server (`crate::s3`) instead of a folder: the same test, the same expectations.
pub fn on_s3<T>(body: impl FnOnce() -> T) -> T {
    ON_S3.with(|c| c.set(true));
    let out = body();
    ON_S3.with(|c| c.set(false));
    out
}

/// A cooperative in a temporary folder, wired to its own fake grid operator.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub server: FakeGridOperator,
    /// Extra configuration text (e.g. an `[installations]` table) kept across rewrites.
    pub extra_config: std::cell::RefCell<String>,
    /// The bucket, when the lake is on the S3-compatible server (prefix `coop`).
    pub bucket: Option<String>,
    /// Environment variables every command gets (e.g. a test setting of the transform).
    pub vars: std::cell::RefCell<Vec<(&'static str, String)>>,
}

impl Env {
    pub fn new(reg: &Registry) -> Env {
        Self::with_settings(reg, "")
    }

    /// `extra_grid` is appended to the `[grid]` table of the configuration.
    pub fn with_settings(reg: &Registry, extra_grid: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let server = FakeGridOperator::spawn(API_KEY, 0).unwrap();
        reg.write(&dir.path().join("registry")).unwrap();
        let env = Env {
            dir,
            server,
            extra_config: Default::default(),
            bucket: ON_S3.with(|c| c.get()).then(crate::s3::new_bucket),
            vars: Default::default(),
        };
        env.write_config(extra_grid);
        env
    }

    pub fn write_config(&self, extra_grid: &str) {
        // On S3, a writer killed by a test holds its lease for 2 s: the next one waits longer.
        let (lake, wait, s3) = match &self.bucket {
            Some(b) => (
                format!("s3://{b}/coop"),
                6,
                format!(
                    "[lake_s3]\nendpoint = \"{}\"\ncache = \"cache\"\nlease_s = 2\n",
                    crate::s3::endpoint()
                ),
            ),
            None => ("lake".into(), 1, String::new()),
        };
        let text = format!(
            "lake = \"{lake}\"\nregistry = \"registry\"\nlock_wait_s = {wait}\n[grid]\nbase_url = \"{}\"\n\
             api_key_env = \"{KEY_ENV}\"\npage_limit = 4\ntimeout_s = 1.0\n{extra_grid}\n\
             [grid.retry]\nmax_attempts = 5\ninitial_backoff_s = 0.01\nmax_backoff_s = 0.05\nmax_elapsed_s = 60\n{}\n{s3}",
            self.server.url(),
            self.extra_config.borrow()
        );
        std::fs::write(self.config(), text).unwrap();
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("vaten.toml")
    }

    /// The lake's folder; on S3, this machine's working copy of it.
    pub fn lake_dir(&self) -> PathBuf {
        match &self.bucket {
            Some(b) => {
                let port = crate::s3::endpoint()
                    .rsplit(':')
                    .next()
                    .unwrap()
                    .to_string();
                self.dir
                    .path()
                    .join("cache/lake")
                    .join(format!("127.0.0.1_{port}"))
                    .join(b)
                    .join("coop")
            }
            None => self.dir.path().join("lake"),
        }
    }

    /// The lake for reading; on S3, what the bucket holds, downloaded afresh by boto3.
    pub fn lake(&self) -> Lake {
        Lake::open_read(&self.readable_dir())
    }

    /// After a test killed a writer: on S3 its lease holds the lake until it runs out (2 s),
    /// so that the next writer, started at once, would spend its life waiting; wait it out.
    pub fn after_kill(&self) {
        if self.bucket.is_some() {
            std::thread::sleep(std::time::Duration::from_millis(2_200));
        }
    }

    /// Nothing of an interrupted change is left: no staged file in the lake's folder, and on
    /// S3 no staged object in the bucket.
    #[track_caller]
    pub fn assert_nothing_staged(&self) {
        assert!(stray_files_in_tables(&self.lake_dir()).is_empty());
        if let Some(b) = &self.bucket {
            let keys = crate::s3::keys(b, "coop");
            assert!(keys.iter().any(|k| k.starts_with("_log/")), "{keys:?}");
            assert!(!keys.iter().any(|k| k.starts_with("_staging/")), "{keys:?}");
        }
    }

    /// A folder with the lake as readers outside vaten see it: the lake's own on disk; on
    /// S3, a fresh download of the bucket.
    pub fn readable_dir(&self) -> PathBuf {
        match &self.bucket {
            Some(b) => {
                let dest = tempfile::tempdir_in(self.dir.path()).unwrap().keep();
                crate::s3::download(b, "coop", &dest);
                dest
            }
            None => self.lake_dir(),
        }
    }

    pub fn command(&self, now: &str, args: &[&str]) -> Command {
        self.command_with(&self.config(), now, args)
    }

    /// As [`Env::command`], with another configuration file.
    pub fn command_with(&self, config: &Path, now: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vaten"));
        cmd.arg("--config")
            .arg(config)
            .arg("--now")
            .arg(now)
            .args(args);
        // Two cables at a time on any machine (the default on two cores): every transform run
        // through `Env`, incremental runs included, goes through the side-by-side path; a
        // test that wants one cable at a time says so.
        cmd.env(KEY_ENV, API_KEY)
            .env("VATEN_CABLE_WORKERS", "2")
            .env_remove("VATEN_CONFIG")
            .env_remove("VATEN_NOW");
        for (k, v) in self.vars.borrow().iter() {
            cmd.env(k, v);
        }
        if self.bucket.is_some() {
            cmd.env("AWS_ACCESS_KEY_ID", crate::s3::ACCESS_KEY)
                .env("AWS_SECRET_ACCESS_KEY", crate::s3::SECRET_KEY)
                .env("AWS_REGION", "us-east-1")
                .env_remove("AWS_ENDPOINT")
                .env_remove("AWS_ENDPOINT_URL")
                .env_remove("AWS_SESSION_TOKEN")
                .env_remove("AWS_PROFILE");
        }
        cmd
    }

    pub fn vaten(&self, now: &str, args: &[&str]) -> Output {
        self.command(now, args).output().unwrap()
    }

    pub fn set_registry(&self, reg: &Registry) {
        reg.write(&self.dir.path().join("registry")).unwrap();
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
pub fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "vaten failed ({:?}):\n{}",
        o.status,
        stderr(o)
    );
}

/// Bookkeeping columns left out when comparing lakes (the lake contract's "the same"), and
/// `installation_gaps.detected_at`, the receipt time of a gap (a `received_at` by another name).
const BOOKKEEPING: &[&str] = &[
    "received_at",
    "delivery_seq",
    "cursor",
    "run_id",
    "detected_at",
];

/// Every table but `_runs`, as sorted rows of text (a multiset: duplicates would show).
pub fn lake_rows(lake: &Lake) -> BTreeMap<String, Vec<String>> {
    // As `vaten query` reads: one state of the lake, also while a job is publishing.
    let _reading = lake.read_guard().unwrap();
    let mut out = BTreeMap::new();
    for spec in ALL_TABLES.iter().filter(|s| s.name != "_runs") {
        let df = lake.read_table(spec).unwrap();
        let mut rows = vec![String::new(); df.height()];
        let mut names: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|s| s.to_string())
            .collect();
        names.sort();
        for name in names.iter().filter(|n| !BOOKKEEPING.contains(&n.as_str())) {
            let col = df.column(name).unwrap().cast(&DataType::String).unwrap();
            for (i, v) in col.str().unwrap().iter().enumerate() {
                rows[i] += &format!("{name}={};", v.unwrap_or("null"));
            }
        }
        rows.sort();
        out.insert(spec.name.to_string(), rows);
    }
    out
}

pub fn count(lake: &Lake, table: &str) -> usize {
    lake_rows(lake).get(table).map(Vec::len).unwrap_or(0)
}

/// Every file below `dir`, relative.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// Files inside table folders that are not published Parquet parts.
pub fn stray_files_in_tables(lake_dir: &Path) -> Vec<PathBuf> {
    ALL_TABLES
        .iter()
        .flat_map(|spec| {
            files_below(&lake_dir.join(spec.name))
                .into_iter()
                .filter(|p| {
                    let name = p.file_name().unwrap().to_string_lossy();
                    !(name.starts_with("part-") && name.ends_with(".parquet"))
                })
        })
        .collect()
}

/// The value of `column` in a row of [`lake_rows`] (`name=value;` pairs).
pub fn field<'a>(row: &'a str, column: &str) -> &'a str {
    row.split(';')
        .find_map(|part| {
            part.strip_prefix(column)
                .and_then(|rest| rest.strip_prefix('='))
        })
        .unwrap_or_else(|| panic!("no column {column} in {row}"))
}

/// Runs `tests/check_daily_duckdb.py` (DuckDB recomputes the marts from `intervals`) on the
/// lake; panics with its output when it fails, returns the output otherwise.
pub fn duckdb_recomputes_marts(env: &Env) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/check_daily_duckdb.py");
    let out = Command::new(crate::tools::python())
        .arg(script)
        .arg(env.readable_dir())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(
        out.status.success(),
        "DuckDB disagrees with the marts:\n{text}"
    );
    text
}

impl Env {
    /// Configures `[installations]` with a private tokens file holding `tokens`.
    pub fn with_tokens(&self, tokens: &[(&str, &str)]) {
        let path = self.dir.path().join("tokens.toml");
        let mut text = String::from("[tokens]\n");
        for (id, token) in tokens {
            text += &format!("\"{id}\" = \"{token}\"\n");
        }
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        *self.extra_config.borrow_mut() = "[installations]\ntokens_file = \"tokens.toml\"\n".into();
        self.write_config("");
    }
}
