//! The TOML configuration of `docs/configuration.md`. Unknown keys are refused;
//! relative paths are taken relative to the configuration file's folder; secrets are never in
//! this file, only the name of the environment variable that holds them.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Root of the Parquet lake.
    pub lake: PathBuf,
    /// Folder with `connections.csv` and `cables.csv`.
    pub registry: PathBuf,
    #[serde(default = "default_reports")]
    pub reports: PathBuf,
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// How long a second writer waits for the lake's lock before giving up.
    #[serde(default = "default_lock_wait_s")]
    pub lock_wait_s: f64,
    pub grid: GridConfig,
    #[serde(default)]
    pub installations: InstallationsConfig,
    #[serde(default)]
    pub tax: TaxConfig,
    #[serde(default)]
    pub schedule: ScheduleConfig,
}

/// `vaten schedule` and `vaten run`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Folder of pipeline definitions (`*.toml`); the built-in nightly pipeline when it does
    /// not exist.
    #[serde(default = "default_pipelines")]
    pub pipelines: PathBuf,
    /// On SIGTERM/SIGINT, how long a running job may take to finish.
    #[serde(default = "default_grace_s")]
    pub grace_s: f64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            pipelines: default_pipelines(),
            grace_s: default_grace_s(),
        }
    }
}

fn default_pipelines() -> PathBuf {
    PathBuf::from("pipelines")
}

fn default_grace_s() -> f64 {
    120.0
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridConfig {
    pub base_url: String,
    /// Name of the environment variable holding the API key.
    #[serde(default = "default_api_key_env")]
    pub api_key_env: String,
    /// Per-request timeout.
    #[serde(default = "default_grid_timeout_s")]
    pub timeout_s: f64,
    /// Objects per bulk page (1..=1000).
    #[serde(default = "default_page_limit")]
    pub page_limit: u32,
    #[serde(default)]
    pub retry: RetryConfig,
}

/// Retries of transient failures: exponential backoff with jitter, bounded in count and time.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts per request, the first one included.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_initial_backoff_s")]
    pub initial_backoff_s: f64,
    #[serde(default = "default_max_backoff_s")]
    pub max_backoff_s: f64,
    /// No new attempt starts after this long since the first one.
    #[serde(default = "default_max_elapsed_s")]
    pub max_elapsed_s: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: default_max_attempts(),
            initial_backoff_s: default_initial_backoff_s(),
            max_backoff_s: default_max_backoff_s(),
            max_elapsed_s: default_max_elapsed_s(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallationsConfig {
    /// TOML file with `[tokens] "inst-0007" = "..."`; must not be readable by group or others.
    pub tokens_file: Option<PathBuf>,
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Per-request timeout (a household uplink can be slow).
    #[serde(default = "default_installation_timeout_s")]
    pub timeout_s: f64,
    /// Deadline for a whole pass over all installations.
    #[serde(default = "default_installation_deadline_s")]
    pub deadline_s: f64,
    /// Readings per request (1..=2000).
    #[serde(default = "default_installation_page_limit")]
    pub page_limit: u32,
}

impl Default for InstallationsConfig {
    fn default() -> Self {
        Self {
            tokens_file: None,
            concurrency: default_concurrency(),
            timeout_s: default_installation_timeout_s(),
            deadline_s: default_installation_deadline_s(),
            page_limit: default_installation_page_limit(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaxConfig {
    /// CSV of energy-tax rates with source and `confirmed` columns.
    pub rates: Option<PathBuf>,
}

fn default_reports() -> PathBuf {
    PathBuf::from("data/reports")
}
fn default_timezone() -> String {
    "Europe/Amsterdam".to_string()
}
fn default_lock_wait_s() -> f64 {
    5.0
}
fn default_api_key_env() -> String {
    "VATEN_GRID_API_KEY".to_string()
}
fn default_grid_timeout_s() -> f64 {
    30.0
}
fn default_page_limit() -> u32 {
    500
}
fn default_max_attempts() -> u32 {
    6
}
fn default_initial_backoff_s() -> f64 {
    0.5
}
fn default_max_backoff_s() -> f64 {
    30.0
}
fn default_max_elapsed_s() -> f64 {
    300.0
}
fn default_concurrency() -> usize {
    16
}
fn default_installation_timeout_s() -> f64 {
    20.0
}
fn default_installation_deadline_s() -> f64 {
    300.0
}
fn default_installation_page_limit() -> u32 {
    1000
}

impl Config {
    /// Reads and checks a configuration file. Every problem is a usage error (exit 2).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Usage(format!(
                "{}: cannot read configuration: {e}",
                path.display()
            ))
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| {
            Error::Usage(format!(
                "{}:{}",
                path.display(),
                describe_toml_error(text, &e)
            ))
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let base = if base.as_os_str().is_empty() {
            Path::new(".")
        } else {
            base
        };
        cfg.lake = base.join(&cfg.lake);
        cfg.registry = base.join(&cfg.registry);
        cfg.reports = base.join(&cfg.reports);
        cfg.schedule.pipelines = base.join(&cfg.schedule.pipelines);
        if let Some(p) = cfg.installations.tokens_file.take() {
            cfg.installations.tokens_file = Some(base.join(p));
        }
        if let Some(p) = cfg.tax.rates.take() {
            cfg.tax.rates = Some(base.join(p));
        }
        cfg.check(path)?;
        Ok(cfg)
    }

    fn check(&self, path: &Path) -> Result<()> {
        let bad = |msg: String| Err(Error::Usage(format!("{}: {msg}", path.display())));
        if self.timezone.parse::<chrono_tz::Tz>().is_err() {
            return bad(format!(
                "timezone `{}` is not a known IANA time zone",
                self.timezone
            ));
        }
        if !(self.grid.base_url.starts_with("http://")
            || self.grid.base_url.starts_with("https://"))
        {
            return bad(format!(
                "[grid] base_url `{}` must start with http:// or https://",
                self.grid.base_url
            ));
        }
        if !(1..=1000).contains(&self.grid.page_limit) {
            return bad(format!(
                "[grid] page_limit {} must be within 1..=1000",
                self.grid.page_limit
            ));
        }
        if self.grid.retry.max_attempts == 0 {
            return bad("[grid.retry] max_attempts must be at least 1".into());
        }
        let positive = [
            ("[grid] timeout_s", self.grid.timeout_s),
            ("[installations] timeout_s", self.installations.timeout_s),
            ("[grid.retry] max_elapsed_s", self.grid.retry.max_elapsed_s),
            ("[installations] deadline_s", self.installations.deadline_s),
        ];
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return bad(format!("{name} must be a positive number of seconds"));
            }
        }
        if !(1..=2000).contains(&self.installations.page_limit) {
            return bad(format!(
                "[installations] page_limit {} must be within 1..=2000",
                self.installations.page_limit
            ));
        }
        if self.installations.concurrency == 0 {
            return bad("[installations] concurrency must be at least 1".into());
        }
        Ok(())
    }

    pub fn tz(&self) -> chrono_tz::Tz {
        self.timezone.parse().expect("checked on load")
    }
}

/// `line: message` for a TOML error, so the user sees where in the file the problem is.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    let msg = e.message().trim().to_string();
    match line {
        Some(l) => format!("{l}: {msg}"),
        None => format!(" {msg}"),
    }
}

/// A secret (API key, token) that never prints itself.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Self {
        Secret(s)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Reads a secret from the named environment variable.
pub fn secret_from_env(var: &str) -> Result<Secret> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Ok(Secret(v.trim().to_string())),
        _ => Err(Error::Usage(format!(
            "the grid operator's API key is read from the environment variable {var}, which is not set"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_names_its_line() {
        let text = "lake = \"l\"\nregistry = \"r\"\nlaek = 3\n[grid]\nbase_url = \"http://x\"\n";
        let err = Config::parse(text, Path::new("/etc/vaten.toml")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("/etc/vaten.toml:3:"), "{msg}");
        assert!(msg.contains("laek"), "{msg}");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        let text =
            "lake = \"data/lake\"\nregistry = \"/abs/reg\"\n[grid]\nbase_url = \"http://x\"\n";
        let cfg = Config::parse(text, Path::new("/srv/coop/vaten.toml")).unwrap();
        assert_eq!(cfg.lake, PathBuf::from("/srv/coop/data/lake"));
        assert_eq!(cfg.registry, PathBuf::from("/abs/reg"));
        assert_eq!(cfg.grid.api_key_env, "VATEN_GRID_API_KEY");
    }
}
