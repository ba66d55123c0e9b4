//! HTTP client of the grid operator's API. Transient failures (5xx, timeouts, broken
//! connections, bodies that do not parse) are retried with exponential backoff and jitter,
//! bounded in attempts and in time; `429` waits as `Retry-After` says (a wait beyond the retry
//! budget ends the request at once). `401`/`400` stop at once. Redirects are never followed:
//! the API key would go along to wherever they point. Bodies are read up to a size limit.
//! The API key travels only in the `X-API-KEY` header and is never logged or put in an error.

use std::time::{Duration, Instant};

use super::api::{RawBulkPage, RawHistory, TypedBulkPage};
use crate::config::{GridConfig, RetryConfig, Secret};
use crate::sources::http::{describe, read_limited};
use rand::Rng;
use reqwest::StatusCode;

pub struct GridClient {
    http: reqwest::Client,
    base_url: String,
    key: Secret,
    retry: RetryConfig,
    pub page_limit: u32,
    max_body_bytes: u64,
    /// No retry starts after this instant (the ingest's deadline), whatever the retry budget.
    pub retries_until: std::sync::Mutex<Option<Instant>>,
}

/// Why a request did not produce a usable response.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("the grid operator rejected the API key (401) on {0}")]
    Unauthorized(String),
    #[error("the grid operator refused the request {0} (400): {1}")]
    BadRequest(String, String),
    #[error("unknown EAN at the grid operator (404) on {0}")]
    NotFound(String),
    #[error("the grid operator answered {0} with a redirect ({1}){2}; vaten follows no redirect (the API key would go along): check [grid] base_url")]
    Redirect(String, u16, String),
    #[error("the grid operator answered {0} with status {1}")]
    Unexpected(String, u16),
    #[error("the grid operator's answer to {0} is larger than [grid] max_body_bytes ({1} bytes)")]
    TooLarge(String, u64),
    #[error(
        "{what} kept failing after {attempts} attempts in {elapsed_s:.1} s; last error: {last}"
    )]
    Exhausted {
        what: String,
        attempts: u32,
        elapsed_s: f64,
        last: String,
    },
    /// Should not happen: a typed page has no field its types do not parse, and they parse as
    /// JSON values do. Kept as an error rather than a panic.
    #[error("page {0} parsed as typed objects but not as JSON values: {1}")]
    Unreadable(String, String),
}

/// A page of the bulk feed as parsed: typed when all its interval and day objects fit the
/// contract (the body is kept, to be read as values if the validator refuses any of them),
/// else as JSON values.
pub enum BulkPage {
    Typed { page: TypedBulkPage, body: Vec<u8> },
    Values(RawBulkPage),
}

/// A response body as the client parses it.
trait FromBody: Sized {
    fn from_body(body: Vec<u8>) -> serde_json::Result<Self>;
}

impl FromBody for RawHistory {
    fn from_body(body: Vec<u8>) -> serde_json::Result<Self> {
        serde_json::from_slice(&body)
    }
}

impl FromBody for BulkPage {
    fn from_body(body: Vec<u8>) -> serde_json::Result<Self> {
        match serde_json::from_slice::<TypedBulkPage>(&body) {
            Ok(page) => Ok(BulkPage::Typed { page, body }),
            Err(e) => {
                tracing::debug!("bulk page read as JSON values: {e}");
                serde_json::from_slice(&body).map(BulkPage::Values)
            }
        }
    }
}

enum Attempt<T> {
    Done(T),
    Fatal(FetchError),
    /// Retry after the given wait (from `Retry-After`), or after backoff when `None`.
    Retry(String, Option<Duration>),
}

impl GridClient {
    pub fn new(cfg: &GridConfig, key: Secret) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs_f64(cfg.timeout_s))
            .connect_timeout(Duration::from_secs_f64(cfg.timeout_s.min(10.0)))
            .user_agent(concat!("vaten/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client builds");
        GridClient {
            http,
            base_url: cfg.base_url.trim_end_matches('/').to_string(),
            key,
            retry: cfg.retry.clone(),
            page_limit: cfg.page_limit,
            max_body_bytes: cfg.max_body_bytes,
            retries_until: std::sync::Mutex::new(None),
        }
    }

    /// One page of the bulk feed after `cursor` (from the oldest retained data when `None`).
    pub async fn bulk_page(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<BulkPage, FetchError> {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(c) = cursor {
            query.push(("cursor", c.to_string()));
        }
        self.get("/v1/readings-bulk", &query).await
    }

    /// History of one connection for local days `from..=to`; `kind` is `interval` or `day`.
    pub async fn history(
        &self,
        ean: &str,
        kind: &str,
        from: &str,
        to: &str,
    ) -> Result<RawHistory, FetchError> {
        let path = format!("/v1/meteringpoints/{ean}/readings");
        let query = [
            ("kind", kind.to_string()),
            ("from", from.to_string()),
            ("to", to.to_string()),
        ];
        self.get(&path, &query).await
    }

    async fn get<T: FromBody>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, FetchError> {
        let what = format!("GET {path}");
        let start = Instant::now();
        let max_elapsed = Duration::from_secs_f64(self.retry.max_elapsed_s);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (reason, wait) = match self.attempt::<T>(path, query, &what).await {
                Attempt::Done(v) => return Ok(v),
                Attempt::Fatal(e) => return Err(e),
                Attempt::Retry(reason, wait) => (reason, wait),
            };
            let wait = wait.unwrap_or_else(|| self.backoff(attempt));
            let past_deadline = self
                .retries_until
                .lock()
                .ok()
                .and_then(|d| *d)
                .is_some_and(|d| Instant::now().checked_add(wait).is_none_or(|t| t > d));
            let exhausted = attempt >= self.retry.max_attempts
                || past_deadline
                || start
                    .elapsed()
                    .checked_add(wait)
                    .is_none_or(|t| t > max_elapsed);
            if exhausted {
                return Err(FetchError::Exhausted {
                    what,
                    attempts: attempt,
                    elapsed_s: start.elapsed().as_secs_f64(),
                    last: reason,
                });
            }
            tracing::warn!(request = %what, attempt, wait_s = wait.as_secs_f64(), "transient failure, retrying: {reason}");
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt<T: FromBody>(
        &self,
        path: &str,
        query: &[(&str, String)],
        what: &str,
    ) -> Attempt<T> {
        let url = format!("{}{path}", self.base_url);
        let sent = self
            .http
            .get(&url)
            .query(query)
            .header("X-API-KEY", self.key.expose())
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return Attempt::Retry(describe(&e), None),
        };
        let status = resp.status();
        match status {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED => {
                return Attempt::Fatal(FetchError::Unauthorized(what.to_string()))
            }
            StatusCode::BAD_REQUEST => {
                let body = read_limited(resp, 64 << 10)
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                let body = String::from_utf8_lossy(&body);
                return Attempt::Fatal(FetchError::BadRequest(what.to_string(), error_text(&body)));
            }
            StatusCode::NOT_FOUND => return Attempt::Fatal(FetchError::NotFound(what.to_string())),
            StatusCode::TOO_MANY_REQUESTS => {
                // Seconds as the server says, capped just past the retry budget: a wait longer
                // than the budget ends the request now instead of sleeping for ever.
                let cap = self.retry.max_elapsed_s + 1.0;
                let wait = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .filter(|s| !s.is_nan() && *s >= 0.0)
                    .map(|s| Duration::from_secs_f64(s.min(cap)));
                return Attempt::Retry("rate limited (429)".into(), wait);
            }
            s if s.is_redirection() => {
                // Where it points, as scheme, host and port only.
                let to = resp
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|l| reqwest::Url::parse(l).ok())
                    .map(|u| format!(" to {}", u.origin().ascii_serialization()))
                    .unwrap_or_default();
                return Attempt::Fatal(FetchError::Redirect(what.to_string(), s.as_u16(), to));
            }
            s if s.is_server_error() => return Attempt::Retry(format!("server error {s}"), None),
            s => return Attempt::Fatal(FetchError::Unexpected(what.to_string(), s.as_u16())),
        }
        let body = match read_limited(resp, self.max_body_bytes).await {
            Ok(Some(b)) => b,
            Ok(None) => {
                return Attempt::Fatal(FetchError::TooLarge(what.to_string(), self.max_body_bytes))
            }
            Err(e) => return Attempt::Retry(format!("body not received: {}", describe(&e)), None),
        };
        let bytes = body.len();
        match T::from_body(body) {
            Ok(v) => Attempt::Done(v),
            Err(e) => Attempt::Retry(format!("broken page ({bytes} bytes): {e}"), None),
        }
    }

    /// Exponential backoff with "equal jitter": half fixed, half random.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp =
            self.retry.initial_backoff_s * 2f64.powi(attempt.saturating_sub(1).min(30) as i32);
        let capped = exp.min(self.retry.max_backoff_s).max(0.0);
        let jitter = rand::thread_rng().gen_range(0.0..=1.0);
        Duration::from_secs_f64(capped / 2.0 + capped / 2.0 * jitter)
    }
}

fn error_text(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or_else(|| body.chars().take(200).collect())
}
