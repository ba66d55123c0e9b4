//! The TOML configuration of `docs/configuration.md`. Unknown keys are refused;
//! relative paths are taken relative to the configuration file's folder; secrets are never in
//! this file, only the name of the environment variable that holds them.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Root of the Parquet lake: a folder, or `s3://bucket/prefix` (then, after loading, the
    /// lake's local working copy; the bucket is in [`Config::lake_remote`]).
    pub lake: PathBuf,
    /// How to reach a lake on object storage (`lake = "s3://…"`).
    #[serde(default)]
    pub lake_s3: LakeS3Config,
    /// Set when `lake` is an `s3://` URL.
    #[serde(skip)]
    pub lake_remote: Option<RemoteLake>,
    /// Local copies of what is kept on object storage (`[lake_s3] cache`, default
    /// `.vaten-cache` beside the file): the lake's working copy, the federation's outbox.
    #[serde(skip)]
    pub cache_dir: PathBuf,
    /// Folder with `connections.csv` and `cables.csv`.
    pub registry: PathBuf,
    #[serde(default = "default_reports")]
    pub reports: PathBuf,
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// How long a second writer waits for the lake's lock before giving up.
    #[serde(default = "default_lock_wait_s")]
    pub lock_wait_s: f64,
    /// A reading more than this many days before its connection's `member_from` is implausible
    /// (a controller whose clock fell back after a power cut): `rejected`, `implausible_time`.
    #[serde(default = "default_days_before_member")]
    pub implausible_days_before_member: u32,
    pub grid: GridConfig,
    #[serde(default)]
    pub installations: InstallationsConfig,
    #[serde(default)]
    pub tax: TaxConfig,
    #[serde(default)]
    pub schedule: ScheduleConfig,
    #[serde(default)]
    pub retention: RetentionConfig,
    #[serde(default)]
    pub federation: FederationConfig,
}

/// `[lake_s3]`: a lake on S3-compatible object storage. The credentials come from the usual
/// AWS environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, …), never this file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LakeS3Config {
    /// The server, for S3-compatible stores (MinIO, Ceph): `https://…`, or `http://` to this
    /// machine only. Unset: AWS (or `AWS_ENDPOINT`).
    pub endpoint: Option<String>,
    /// The region (unset: `AWS_REGION`, else `us-east-1`).
    pub region: Option<String>,
    /// The local working copy the readers scan (default `.vaten-cache` beside this file).
    pub cache: Option<PathBuf>,
    /// How long a writer's lease lasts without renewal; a writer that died holds the lake this
    /// long at most.
    #[serde(default = "default_lease_s")]
    pub lease_s: f64,
}

impl Default for LakeS3Config {
    fn default() -> Self {
        LakeS3Config {
            endpoint: None,
            region: None,
            cache: None,
            lease_s: default_lease_s(),
        }
    }
}

fn default_lease_s() -> f64 {
    60.0
}

/// `[federation.s3]`: the server of the federation's bucket, when `out` is `s3://…`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationS3 {
    /// `https://…`, or `http://` to this machine only. Unset: AWS (or `AWS_ENDPOINT`).
    pub endpoint: Option<String>,
    pub region: Option<String>,
}

/// A prefix in a bucket of S3-compatible object storage, and how to reach it.
#[derive(Debug, Clone, PartialEq)]
pub struct S3Location {
    /// `s3://bucket/prefix`, as written (no credentials in it).
    pub url: String,
    pub bucket: String,
    /// The prefix in the bucket, without slashes at its ends (may be empty).
    pub prefix: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
}

impl S3Location {
    /// `url` checked (see [`parse_s3_url`]), reached through `endpoint` and `region`.
    pub fn parse(
        url: &str,
        endpoint: Option<String>,
        region: Option<String>,
    ) -> std::result::Result<Self, String> {
        let (bucket, prefix) = parse_s3_url(url)?;
        Ok(S3Location {
            url: url.to_string(),
            bucket,
            prefix,
            endpoint,
            region,
        })
    }

    /// The server requests go to: the configured endpoint, else the first of the variables
    /// the S3 client reads one from, in its order of precedence (`None`: AWS itself).
    pub fn effective_endpoint(&self) -> Option<String> {
        self.endpoint.clone().or_else(|| {
            ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
                .iter()
                .find_map(|v| std::env::var(v).ok())
        })
    }

    /// Where under `cache` a local copy of this prefix lives, for `kind` (`lake`,
    /// `federation`): `<cache>/<kind>/<server>/<bucket>/<prefix>`, the server being the
    /// endpoint's host and port (`aws` without one), so that no two locations share a copy.
    pub fn local_copy(&self, cache: &Path, kind: &str) -> PathBuf {
        let server = self
            .effective_endpoint()
            .and_then(|e| reqwest::Url::parse(&e).ok())
            .and_then(|u| {
                u.host_str()
                    .map(|h| format!("{h}_{}", u.port_or_known_default().unwrap_or(0)))
            })
            .map(|s| {
                s.replace(
                    |c: char| !c.is_ascii_alphanumeric() && c != '.' && c != '-' && c != '_',
                    "_",
                )
            })
            .unwrap_or_else(|| "aws".into());
        cache
            .join(kind)
            .join(server)
            .join(&self.bucket)
            .join(&self.prefix)
    }

    /// Whether one of the two prefixes holds the other in the same bucket (their contents
    /// would mix).
    pub fn overlaps(&self, other: &S3Location) -> bool {
        let inside = |a: &str, b: &str| a.is_empty() || b == a || b.starts_with(&format!("{a}/"));
        self.bucket == other.bucket
            && (inside(&self.prefix, &other.prefix) || inside(&other.prefix, &self.prefix))
    }
}

/// A lake on object storage, as the configuration names it.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteLake {
    pub at: S3Location,
    pub lease_s: f64,
}

/// `s3://bucket/prefix` split and checked: a bucket name as S3 allows it; a prefix of plain
/// path segments (no `.`, `..` or empty segment, no characters a path would escape).
pub fn parse_s3_url(url: &str) -> std::result::Result<(String, String), String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("`{url}` does not start with s3://"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let prefix = prefix.trim_end_matches('/');
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !bucket.starts_with(['-', '.'])
        && !bucket.ends_with(['-', '.']);
    if !bucket_ok {
        return Err(format!(
            "`{url}`: the bucket must be 3 to 63 lower-case letters, digits, `-` or `.`"
        ));
    }
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.len() <= 255
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.=".contains(&b))
    };
    if !prefix.is_empty() && !prefix.split('/').all(segment_ok) {
        return Err(format!(
            "`{url}`: the prefix must be folders of letters, digits, `-`, `_`, `.` or `=`"
        ));
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

/// `vaten publish`: what the cooperative shares with its federation (aggregates only).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationConfig {
    /// The id the federation knows the cooperative by (`coop=<id>` in the shared folder).
    pub coop_id: Option<String>,
    /// The cooperative's region, a column of every shared row.
    #[serde(default)]
    pub region: String,
    /// The federation's folder the aggregates are written to, or its bucket (`s3://…`).
    pub out: Option<PathBuf>,
    /// How to reach the federation's bucket (credentials from the AWS environment variables).
    #[serde(default)]
    pub s3: FederationS3,
    /// A month is published this many days after its last day (corrections and late data
    /// settle first; a published month is never written again).
    #[serde(default = "default_settle_days")]
    pub settle_days: u32,
}

fn default_settle_days() -> u32 {
    10
}

impl Default for FederationConfig {
    fn default() -> Self {
        FederationConfig {
            coop_id: None,
            region: String::new(),
            out: None,
            s3: FederationS3::default(),
            settle_days: default_settle_days(),
        }
    }
}

/// `vaten retain`: how long the lake keeps what (every key off by default: keep everything).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Quarter-hour tables (`grid_readings`, `installation_readings`, `intervals`,
    /// `cable_balance_15m`) older than this many months are removed; their days are sealed.
    pub quarter_hours_months: Option<u32>,
    /// `rejected` records older than this many months are removed.
    pub rejected_months: Option<u32>,
    /// `_runs` records older than this many months are removed.
    pub runs_months: Option<u32>,
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
    /// One ingest may take this long; at the deadline it stops after the page in hand (the
    /// next run goes on from the stored cursor).
    #[serde(default = "default_grid_deadline_s")]
    pub deadline_s: f64,
    /// The largest response body read; a bulk page above it is asked again smaller.
    #[serde(default = "default_grid_max_body_bytes")]
    pub max_body_bytes: u64,
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
    /// The largest response body read from one installation; past it that installation's pull
    /// fails with a warning and the others go on.
    #[serde(default = "default_installation_max_body_bytes")]
    pub max_body_bytes: u64,
}

impl Default for InstallationsConfig {
    fn default() -> Self {
        Self {
            tokens_file: None,
            concurrency: default_concurrency(),
            timeout_s: default_installation_timeout_s(),
            deadline_s: default_installation_deadline_s(),
            page_limit: default_installation_page_limit(),
            max_body_bytes: default_installation_max_body_bytes(),
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
fn default_days_before_member() -> u32 {
    366
}
fn default_grid_deadline_s() -> f64 {
    3_600.0
}
fn default_grid_max_body_bytes() -> u64 {
    256 << 20
}
fn default_installation_max_body_bytes() -> u64 {
    16 << 20
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
        cfg.cache_dir = cfg
            .lake_s3
            .cache
            .as_ref()
            .map_or_else(|| base.join(".vaten-cache"), |c| base.join(c));
        if let Some(url) = cfg.lake.to_str().filter(|l| l.starts_with("s3://")) {
            let at = S3Location::parse(
                url,
                cfg.lake_s3.endpoint.clone(),
                cfg.lake_s3.region.clone(),
            )
            .map_err(|why| {
                Error::Usage(format!(
                    "{}:{}: lake {why}",
                    path.display(),
                    line_of(text, "lake")
                ))
            })?;
            cfg.lake = at.local_copy(&cfg.cache_dir, "lake");
            cfg.lake_remote = Some(RemoteLake {
                at,
                lease_s: cfg.lake_s3.lease_s,
            });
        } else {
            cfg.lake = base.join(&cfg.lake);
        }
        cfg.registry = base.join(&cfg.registry);
        cfg.reports = base.join(&cfg.reports);
        cfg.schedule.pipelines = base.join(&cfg.schedule.pipelines);
        if let Some(p) = cfg.installations.tokens_file.take() {
            cfg.installations.tokens_file = Some(base.join(p));
        }
        if let Some(p) = cfg.tax.rates.take() {
            cfg.tax.rates = Some(base.join(p));
        }
        if let Some(p) = cfg.federation.out.take() {
            // A bucket stays a URL, checked where it is used (`--out` may name one too).
            let bucket = p.to_str().is_some_and(|p| p.starts_with("s3://"));
            cfg.federation.out = Some(if bucket { p } else { base.join(p) });
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
        if let Err(why) = check_base_url(&self.grid.base_url) {
            return bad(format!("[grid] base_url `{}` {why}", self.grid.base_url));
        }
        if !(1..=1000).contains(&self.grid.page_limit) {
            return bad(format!(
                "[grid] page_limit {} must be within 1..=1000",
                self.grid.page_limit
            ));
        }
        if !(1..=100).contains(&self.grid.retry.max_attempts) {
            return bad("[grid.retry] max_attempts must be within 1..=100".into());
        }
        if let Some(id) = &self.federation.coop_id {
            if !crate::publish::valid_coop_id(id) {
                return bad(format!(
                    "[federation] coop_id `{id}` must be 1 to 64 letters, digits, `-` or `_`"
                ));
            }
        }
        if !(1..=366).contains(&self.federation.settle_days) {
            return bad("[federation] settle_days must be within 1..=366".into());
        }
        if self.federation.region.len() > 64 || self.federation.region.chars().any(char::is_control)
        {
            return bad("[federation] region must be at most 64 characters of text".into());
        }
        for (name, months) in [
            ("quarter_hours_months", self.retention.quarter_hours_months),
            ("rejected_months", self.retention.rejected_months),
            ("runs_months", self.retention.runs_months),
        ] {
            if months.is_some_and(|m| !(1..=1200).contains(&m)) {
                return bad(format!("[retention] {name} must be within 1..=1200"));
            }
        }
        // Every duration in range, so that no later conversion can overflow: (name, value,
        // whether 0 is allowed, the largest value in seconds).
        const HOUR: f64 = 3_600.0;
        const DAY: f64 = 24.0 * HOUR;
        let seconds = [
            ("lock_wait_s", self.lock_wait_s, true, DAY),
            ("[grid] timeout_s", self.grid.timeout_s, false, HOUR),
            ("[grid] deadline_s", self.grid.deadline_s, false, 7.0 * DAY),
            (
                "[grid.retry] initial_backoff_s",
                self.grid.retry.initial_backoff_s,
                true,
                HOUR,
            ),
            (
                "[grid.retry] max_backoff_s",
                self.grid.retry.max_backoff_s,
                true,
                DAY,
            ),
            (
                "[grid.retry] max_elapsed_s",
                self.grid.retry.max_elapsed_s,
                false,
                7.0 * DAY,
            ),
            (
                "[installations] timeout_s",
                self.installations.timeout_s,
                false,
                HOUR,
            ),
            (
                "[installations] deadline_s",
                self.installations.deadline_s,
                false,
                DAY,
            ),
            ("[schedule] grace_s", self.schedule.grace_s, true, DAY),
        ];
        for (name, v, zero_ok, max) in seconds {
            let low_ok = if zero_ok { v >= 0.0 } else { v > 0.0 };
            if !(v.is_finite() && low_ok && v <= max) {
                return bad(format!(
                    "{name} {v} must be a number of seconds {} {max}",
                    if zero_ok {
                        "from 0 to"
                    } else {
                        "above 0, at most"
                    }
                ));
            }
        }
        for (name, v) in [
            ("[grid] max_body_bytes", self.grid.max_body_bytes),
            (
                "[installations] max_body_bytes",
                self.installations.max_body_bytes,
            ),
        ] {
            if !(1024..=(4 << 30)).contains(&v) {
                return bad(format!("{name} {v} must be from 1024 bytes to 4 GiB"));
            }
        }
        for (name, endpoint) in [
            ("[lake_s3]", &self.lake_s3.endpoint),
            ("[federation.s3]", &self.federation.s3.endpoint),
        ] {
            if let Some(endpoint) = endpoint {
                if let Err(why) = check_base_url(endpoint) {
                    return bad(format!("{name} endpoint `{endpoint}` {why}"));
                }
            }
        }
        if !(self.lake_s3.lease_s.is_finite() && (1.0..=3_600.0).contains(&self.lake_s3.lease_s)) {
            return bad("[lake_s3] lease_s must be a number of seconds from 1 to 3600".into());
        }
        if !(1..=2000).contains(&self.installations.page_limit) {
            return bad(format!(
                "[installations] page_limit {} must be within 1..=2000",
                self.installations.page_limit
            ));
        }
        if !(1..=1024).contains(&self.installations.concurrency) {
            return bad("[installations] concurrency must be within 1..=1024".into());
        }
        Ok(())
    }

    pub fn tz(&self) -> chrono_tz::Tz {
        self.timezone.parse().expect("checked on load")
    }
}

/// The grid's base URL carries the API key: `https://`, or plain `http://` only to this
/// machine (the local fake servers of the tests and the demo).
fn check_base_url(url: &str) -> std::result::Result<(), &'static str> {
    let parsed = reqwest::Url::parse(url).map_err(|_| "is not a URL")?;
    let host = parsed.host_str().ok_or("has no host")?;
    let loopback = is_loopback_host(host);
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err("must start with https:// (the API key travels with every request; plain http is only for a loopback address)"),
        _ => Err("must start with https://"),
    }
}

/// `localhost`, 127.0.0.0/8 or ::1 (an IPv6 host as the URL writes it, in brackets).
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The line a top-level `key = …` is on (1 when it is not found), for errors found after parsing.
fn line_of(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map_or(1, |i| i + 1)
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
            "lake = \"data/lake\"\nregistry = \"/abs/reg\"\n[grid]\nbase_url = \"https://x\"\n";
        let cfg = Config::parse(text, Path::new("/srv/coop/vaten.toml")).unwrap();
        assert_eq!(cfg.lake, PathBuf::from("/srv/coop/data/lake"));
        assert_eq!(cfg.registry, PathBuf::from("/abs/reg"));
        assert_eq!(cfg.grid.api_key_env, "VATEN_GRID_API_KEY");
    }

    #[test]
    fn a_lake_on_s3_has_its_working_copy_beside_the_file() {
        let text = "registry = \"r\"\nlake = \"s3://coop-lake/eu/de-stroom\"\n[grid]\nbase_url = \"https://x\"\n\
                    [lake_s3]\nendpoint = \"http://127.0.0.1:9000\"\n";
        let cfg = Config::parse(text, Path::new("/srv/coop/vaten.toml")).unwrap();
        assert_eq!(
            cfg.lake,
            PathBuf::from("/srv/coop/.vaten-cache/lake/127.0.0.1_9000/coop-lake/eu/de-stroom")
        );
        let remote = cfg.lake_remote.unwrap();
        assert_eq!(
            (
                remote.at.bucket.as_str(),
                remote.at.prefix.as_str(),
                remote.lease_s
            ),
            ("coop-lake", "eu/de-stroom", 60.0)
        );
        assert_eq!(remote.at.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
    }

    #[test]
    fn a_bad_s3_lake_is_refused_with_its_line() {
        for (lake, why) in [
            ("s3://", "the bucket must be"),
            ("s3://UPPER/x", "the bucket must be"),
            ("s3://ok-bucket/../etc", "the prefix must be"),
            ("s3://ok-bucket/a//b", "the prefix must be"),
        ] {
            let text =
                format!("registry = \"r\"\nlake = \"{lake}\"\n[grid]\nbase_url = \"https://x\"\n");
            let err = Config::parse(&text, Path::new("v.toml")).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{lake}");
            let msg = err.to_string();
            assert!(
                msg.contains("v.toml:2:") && msg.contains(why),
                "{lake}: {msg}"
            );
        }
        // The endpoint gets signed requests: plain http only to this machine.
        let text = "lake = \"s3://b-1/x\"\nregistry = \"r\"\n[grid]\nbase_url = \"https://x\"\n\
                    [lake_s3]\nendpoint = \"http://minio.example.org:9000\"\n";
        let err = Config::parse(text, Path::new("v.toml")).unwrap_err();
        assert!(err.to_string().contains("[lake_s3] endpoint"), "{err}");
        let text = "lake = \"s3://b-1/x\"\nregistry = \"r\"\n[grid]\nbase_url = \"https://x\"\n\
                    [lake_s3]\nlease_s = 0\n";
        let err = Config::parse(text, Path::new("v.toml")).unwrap_err();
        assert!(err.to_string().contains("lease_s"), "{err}");
    }

    fn refusal(grid: &str, top: &str) -> String {
        let text = format!("lake = \"l\"\nregistry = \"r\"\n{top}\n[grid]\n{grid}\n");
        let err = Config::parse(&text, Path::new("v.toml")).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        err.to_string()
    }

    #[test]
    fn the_api_key_goes_over_https_or_to_this_machine_only() {
        let ok = |url: &str| {
            let text = format!("lake = \"l\"\nregistry = \"r\"\n[grid]\nbase_url = \"{url}\"\n");
            Config::parse(&text, Path::new("v.toml")).is_ok()
        };
        assert!(ok("https://p4.example.org"));
        assert!(ok("http://127.0.0.1:8080") && ok("http://localhost:1") && ok("http://[::1]:9"));
        assert!(!ok("http://p4.example.org") && !ok("http://10.0.0.5") && !ok("ftp://x"));
        let m = refusal("base_url = \"http://p4.example.org\"", "");
        assert!(m.contains("must start with https://"), "{m}");
    }

    #[test]
    fn durations_out_of_range_are_refused_not_a_panic_later() {
        for (grid, top) in [
            ("base_url = \"https://x\"\ntimeout_s = inf", ""),
            ("base_url = \"https://x\"\ntimeout_s = 1e20", ""),
            (
                "base_url = \"https://x\"\n[grid.retry]\nmax_backoff_s = 1e20",
                "",
            ),
            (
                "base_url = \"https://x\"\n[grid.retry]\ninitial_backoff_s = -1",
                "",
            ),
            ("base_url = \"https://x\"", "lock_wait_s = nan"),
            ("base_url = \"https://x\"\n[schedule]\ngrace_s = 1e20", ""),
        ] {
            let m = refusal(grid, top);
            assert!(
                m.contains("must be a number of seconds"),
                "{grid} {top}: {m}"
            );
        }
    }
}
