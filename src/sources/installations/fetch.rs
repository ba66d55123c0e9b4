//! Pulling pages from many installations at once over household internet: bounded
//! concurrency, a timeout per request and one deadline for the whole pass. A dead or slow
//! installation only ever costs its own slot.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::time::Instant;

use super::api::{Page, RawPage};
use crate::config::Secret;
use crate::sources::http::{describe, read_limited};

/// How one installation's fetch ended.
#[derive(Debug)]
pub enum End {
    /// `has_more` became false.
    Complete,
    /// The pass's deadline came first; the pages so far are kept.
    Deadline,
    /// Connection refused, timeout, reset, 5xx: try again next run.
    Offline(String),
    /// `401`: the token is wrong.
    Unauthorized,
    /// No token for this installation in the tokens file.
    NoToken,
    /// A `200` whose body does not match the contract (kept for `rejected`).
    Broken { reason: String, body: String },
    /// A body larger than `[installations] max_body_bytes`: reading stopped there.
    TooLarge(u64),
    /// More pages than 30 days of readings take: the rest waits for the next pass.
    PageCap,
    /// Not asked: its URL may not carry the token (see `transport`).
    Refused(String),
}

#[derive(Debug)]
pub struct Fetched {
    pub pages: Vec<Page>,
    /// The `after` of each page's request.
    pub asked_after: Vec<u64>,
    pub end: End,
}

/// One installation to pull.
pub struct Job {
    pub url: String,
    pub token: Option<Secret>,
    pub after: u64,
    /// Why this installation may not be asked, when it may not.
    pub refused: Option<String>,
    /// Its certificate's SHA-256, when the registry pins it.
    pub pin: Option<[u8; 32]>,
}

/// Largest body kept in `rejected` when a response is broken.
const MAX_KEPT_BODY: usize = 1 << 20;

/// What bounds one pass: readings per request, the largest body, the pass's deadline.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub page_limit: u32,
    pub max_body_bytes: u64,
    pub deadline: Instant,
}

async fn fetch_one(http: &reqwest::Client, job: &Job, bounds: Bounds) -> Fetched {
    let (limit, deadline) = (bounds.page_limit, bounds.deadline);
    let mut out = Fetched {
        pages: Vec::new(),
        asked_after: Vec::new(),
        end: End::Complete,
    };
    if let Some(why) = &job.refused {
        out.end = End::Refused(why.clone());
        return out;
    }
    let Some(token) = &job.token else {
        out.end = End::NoToken;
        return out;
    };
    let mut after = job.after;
    loop {
        if Instant::now() >= deadline {
            out.end = End::Deadline;
            return out;
        }
        // A controller keeps 30 days (2,880 readings): more pages than that takes is not a
        // catch-up but an endpoint that never ends; the rest waits for the next pass.
        if out.pages.len() >= 2_880 / limit.max(1) as usize + 2 {
            out.end = End::PageCap;
            return out;
        }
        let request = http
            .get(format!("{}/v1/readings", job.url))
            .query(&[("after", after.to_string()), ("limit", limit.to_string())])
            .bearer_auth(token.expose())
            .send();
        let body = async {
            let resp = request.await.map_err(|e| describe(&e))?;
            match resp.status() {
                StatusCode::OK => read_limited(resp, bounds.max_body_bytes)
                    .await
                    .map(|b| Some(b.ok_or(())))
                    .map_err(|e| describe(&e)),
                StatusCode::UNAUTHORIZED => Ok(None),
                s => Err(format!("HTTP {s}")),
            }
        };
        let body = match tokio::time::timeout_at(deadline, body).await {
            Err(_) => {
                out.end = End::Deadline;
                return out;
            }
            Ok(Err(reason)) => {
                out.end = End::Offline(reason);
                return out;
            }
            Ok(Ok(None)) => {
                out.end = End::Unauthorized;
                return out;
            }
            Ok(Ok(Some(Err(())))) => {
                out.end = End::TooLarge(bounds.max_body_bytes);
                return out;
            }
            Ok(Ok(Some(Ok(b)))) => b,
        };
        let page: RawPage = match serde_json::from_slice(&body) {
            Ok(p) => p,
            Err(e) => {
                let kept = &body[..body.len().min(MAX_KEPT_BODY)];
                out.end = End::Broken {
                    reason: format!("response does not match the contract: {e}"),
                    body: String::from_utf8_lossy(kept).into_owned(),
                };
                return out;
            }
        };
        let (more, next, empty) = (page.has_more, page.next_after, page.readings.is_empty());
        out.asked_after.push(after);
        // Typed readings are a fraction of the size of JSON values: a 30-day catch-up of
        // hundreds of installations stays small.
        out.pages.push(Page::from(page));
        if !more || empty || next <= after {
            return out;
        }
        after = next;
    }
}

/// The HTTP client of a pass: no redirects (the token would go along to wherever one points);
/// with `pin`, TLS accepts exactly the certificate with that SHA-256 and no other.
fn client(timeout: Duration, pin: Option<[u8; 32]>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("vaten/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        // Straight to the household: a proxy would see a plain-http token.
        .no_proxy();
    if let Some(pin) = pin {
        builder = builder.use_preconfigured_tls(
            super::pinning::pinned_tls(pin)
                .expect("the ring provider supports the default TLS versions"),
        );
    }
    builder.build().expect("HTTP client builds")
}

/// Fetches every job with at most `concurrency` at a time; results in the jobs' order.
pub async fn fetch_all(
    jobs: Vec<Job>,
    concurrency: usize,
    timeout: Duration,
    deadline: Duration,
    limit: u32,
    max_body_bytes: u64,
) -> Vec<Fetched> {
    let http = client(timeout, None);
    let bounds = Bounds {
        page_limit: limit,
        max_body_bytes,
        deadline: Instant::now() + deadline,
    };
    let total = jobs.len();
    let done = Arc::new(AtomicUsize::new(0));
    // A counter on a terminal, unless the log is turned down (as `vaten demo` does).
    let progress =
        std::io::stderr().is_terminal() && total > 1 && tracing::enabled!(tracing::Level::INFO);
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for (i, job) in jobs.into_iter().enumerate() {
        // A pinned certificate needs a client of its own.
        let http = match job.pin {
            Some(pin) => client(timeout, Some(pin)),
            None => http.clone(),
        };
        let (permits, done) = (permits.clone(), done.clone());
        set.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("semaphore open");
            let fetched = fetch_one(&http, &job, bounds).await;
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            if progress {
                eprint!("\rinstallations: {n}/{total}");
                if n == total {
                    eprintln!();
                }
            }
            (i, fetched)
        });
    }
    let mut results: Vec<Option<Fetched>> = (0..total).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        if let Ok((i, f)) = joined {
            results[i] = Some(f);
        }
    }
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or(Fetched {
                pages: Vec::new(),
                asked_after: Vec::new(),
                end: End::Offline("task failed".into()),
            })
        })
        .collect()
}
