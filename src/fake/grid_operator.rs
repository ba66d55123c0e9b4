//! A fake grid operator that follows `docs/interfaces/grid-operator.md`, on
//! `127.0.0.1`, for tests, benchmarks and the demo. It serves a feed in receive order with
//! opaque cursors, the per-connection history, retention, and scripted faults.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::NaiveDate;
use serde_json::{json, Value};

use crate::sources::grid::api::ObjectKind;

/// A fault the server answers with instead of (or before) the real response.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// `429` with `Retry-After: <seconds>`.
    RateLimited { retry_after_s: u32 },
    /// A bare error status such as 500, 502 or 503.
    Status(u16),
    /// Waits this long, then answers normally (past the client's timeout).
    Slow(Duration),
    /// `200` with only the first half of the body.
    Truncated,
    /// `200` with valid JSON that lacks `next_cursor`.
    MissingCursor,
    /// `302` to this URL (another server, which must never see the key).
    Redirect(String),
    /// `429` with this `Retry-After` text, as a broken or hostile server may send it.
    RetryAfter(String),
    /// The page, but `next_cursor` is the cursor asked with and `has_more` is true.
    StuckCursor,
    /// The page, but `next_cursor` points back to the start of the feed, `has_more` true.
    CycleCursor,
}

/// One object of the feed, in the order the service received it. It is kept as the JSON text
/// it is sent as (written once, not per request: cloning and writing JSON values per page kept
/// the fake server busier than the ingest it serves), with the fields the server selects on.
#[derive(Debug, Clone)]
pub struct FeedEntry {
    pub kind: ObjectKind,
    text: Box<str>,
    ean: Box<str>,
    meter_id: Box<str>,
    query_date: Option<NaiveDate>,
}

impl FeedEntry {
    pub fn new(kind: ObjectKind, value: Value) -> Self {
        let field = |name: &str| value.get(name).and_then(Value::as_str).unwrap_or("");
        FeedEntry {
            kind,
            ean: field("ean").into(),
            meter_id: field("meter_id").into(),
            query_date: field("query_date").parse().ok(),
            text: value.to_string().into(),
        }
    }
    pub fn interval(value: Value) -> Self {
        Self::new(ObjectKind::Interval, value)
    }
    pub fn day(value: Value) -> Self {
        Self::new(ObjectKind::Day, value)
    }
    pub fn rejection(value: Value) -> Self {
        Self::new(ObjectKind::Rejection, value)
    }
    /// The object as a JSON value (parsed back from its text), for a test to alter.
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.text).expect("a feed object's own text reads back as JSON")
    }
    fn ean(&self) -> &str {
        &self.ean
    }
    fn query_date(&self) -> Option<NaiveDate> {
        self.query_date
    }
}

/// How long the service keeps data, counted back from `today`.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub today: NaiveDate,
    pub interval_days: i64,
    pub day_days: i64,
}

#[derive(Default)]
struct FakeState {
    api_key: String,
    feed: Vec<FeedEntry>,
    faults: Vec<Option<Fault>>,
    requests: u64,
    retention: Option<Retention>,
    extra_known_eans: HashSet<String>,
    log: Vec<String>,
}

/// A running fake grid operator; stops when dropped.
pub struct FakeGridOperator {
    pub addr: SocketAddr,
    state: Arc<Mutex<FakeState>>,
    _server: super::LocalServer,
}

impl FakeGridOperator {
    /// Starts the server on `127.0.0.1:port` (0: any free port) on a thread of its own.
    pub fn spawn(api_key: &str, port: u16) -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(FakeState {
            api_key: api_key.to_string(),
            ..Default::default()
        }));
        let server = super::LocalServer::start("fake-grid-operator", port, router(state.clone()))?;
        Ok(FakeGridOperator {
            addr: server.addr,
            state,
            _server: server,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn with<R>(&self, f: impl FnOnce(&mut FakeState) -> R) -> R {
        f(&mut self.state.lock().expect("fake state"))
    }

    /// Appends objects to the feed (they are "received" now, after everything before).
    pub fn push(&self, entries: impl IntoIterator<Item = FeedEntry>) {
        self.with(|s| s.feed.extend(entries));
    }

    /// Faults by request number, cycled: request `n` gets `plan[n % plan.len()]`.
    pub fn set_faults(&self, plan: Vec<Option<Fault>>) {
        self.with(|s| s.faults = plan);
    }

    pub fn set_retention(&self, retention: Option<Retention>) {
        self.with(|s| s.retention = retention);
    }

    /// Makes the history endpoint know an EAN that has no data yet.
    pub fn know_ean(&self, ean: &str) {
        self.with(|s| s.extra_known_eans.insert(ean.to_string()));
    }

    /// Requests answered so far (with a valid key), faults included.
    pub fn requests(&self) -> u64 {
        self.with(|s| s.requests)
    }

    /// One line per request: `<path> -> <what was answered>`.
    pub fn request_log(&self) -> Vec<String> {
        self.with(|s| s.log.clone())
    }

    pub fn feed_len(&self) -> usize {
        self.with(|s| s.feed.len())
    }
}

type Shared = Arc<Mutex<FakeState>>;

fn router(state: Shared) -> Router {
    Router::new()
        .route("/v1/readings-bulk", get(bulk))
        .route("/v1/meteringpoints/{ean}/readings", get(history))
        .with_state(state)
}

fn error(status: StatusCode, msg: &str) -> Response {
    (status, axum::Json(json!({ "error": msg }))).into_response()
}

/// Checks the key and picks this request's fault. `Err` is the response to send instead.
fn admit(state: &Shared, headers: &HeaderMap, what: &str) -> Result<Option<Fault>, Box<Response>> {
    let mut s = state.lock().expect("fake state");
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    if key != Some(s.api_key.as_str()) {
        s.log.push(format!("{what} -> 401"));
        return Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong API key",
        )));
    }
    let n = s.requests;
    s.requests += 1;
    let fault = if s.faults.is_empty() {
        None
    } else {
        s.faults[(n as usize) % s.faults.len()].clone()
    };
    s.log.push(format!(
        "{what} -> {}",
        fault
            .as_ref()
            .map(|f| format!("{f:?}"))
            .unwrap_or_else(|| "ok".into())
    ));
    Ok(fault)
}

/// A JSON response of `text` as it is.
fn json_text(text: String) -> Response {
    (StatusCode::OK, [("content-type", "application/json")], text).into_response()
}

/// Sends `body` (JSON text) through the fault, if any; `asked` is the request's cursor.
async fn respond(fault: Option<Fault>, body: String, asked: Option<String>) -> Response {
    // The faults that change the page's fields work on it as a JSON value.
    let edited = |edit: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        // A pushed object nested deeper than serde_json reads back cannot be edited.
        let Ok(mut b) = serde_json::from_str::<Value>(&body) else {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "page cannot be edited");
        };
        if let Some(o) = b.as_object_mut() {
            edit(o);
        }
        axum::Json(b).into_response()
    };
    match fault {
        None => json_text(body),
        Some(Fault::RateLimited { retry_after_s }) => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded");
            r.headers_mut().insert(
                "retry-after",
                retry_after_s.to_string().parse().expect("header"),
            );
            r
        }
        Some(Fault::Status(code)) => error(
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "injected fault",
        ),
        Some(Fault::Slow(d)) => {
            tokio::time::sleep(d).await;
            json_text(body)
        }
        Some(Fault::Truncated) => {
            let mut bytes = body.into_bytes();
            bytes.truncate(bytes.len() / 2);
            (
                StatusCode::OK,
                [("content-type", "application/json")],
                bytes,
            )
                .into_response()
        }
        Some(Fault::MissingCursor) => edited(&|o| {
            o.remove("next_cursor");
        }),
        Some(Fault::Redirect(to)) => (StatusCode::FOUND, [("location", to)]).into_response(),
        Some(Fault::RetryAfter(text)) => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded");
            if let Ok(v) = text.parse() {
                r.headers_mut().insert("retry-after", v);
            }
            r
        }
        Some(Fault::StuckCursor) => edited(&|o| {
            let at = asked.clone().unwrap_or_else(|| "rcv-000000".into());
            o.insert("next_cursor".into(), json!(at));
            o.insert("has_more".into(), json!(true));
        }),
        Some(Fault::CycleCursor) => edited(&|o| {
            o.insert("next_cursor".into(), json!("rcv-000000"));
            o.insert("has_more".into(), json!(true));
        }),
    }
}

fn retained(s: &FakeState, e: &FeedEntry) -> bool {
    let (Some(r), Some(d)) = (s.retention, e.query_date()) else {
        return true;
    };
    let keep_days = match e.kind {
        ObjectKind::Day => r.day_days,
        _ => r.interval_days,
    };
    (r.today - d).num_days() <= keep_days
}

/// The `"intervals":[…],"days":[…],"rejections":[…]` members of a page of `entries`.
fn page_members(entries: &[&FeedEntry]) -> String {
    let mut out =
        String::with_capacity(entries.iter().map(|e| e.text.len() + 1).sum::<usize>() + 64);
    for (name, kind) in [
        ("intervals", ObjectKind::Interval),
        ("days", ObjectKind::Day),
        ("rejections", ObjectKind::Rejection),
    ] {
        if kind != ObjectKind::Interval {
            out.push(',');
        }
        out.push_str(&format!("\"{name}\":["));
        for (i, e) in entries.iter().filter(|e| e.kind == kind).enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&e.text);
        }
        out.push(']');
    }
    out
}

async fn bulk(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let fault = match admit(&state, &headers, "bulk") {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let asked = q.get("cursor").cloned();
    let body = {
        let s = state.lock().expect("fake state");
        let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
            None => 500,
            Some(Ok(l)) if (1..=1000).contains(&l) => l,
            _ => return error(StatusCode::BAD_REQUEST, "limit must be 1..1000"),
        };
        let start = match q.get("cursor") {
            None => 0,
            Some(c) => match c.strip_prefix("rcv-").and_then(|n| n.parse::<usize>().ok()) {
                Some(n) if n <= s.feed.len() => n,
                _ => return error(StatusCode::BAD_REQUEST, "unknown cursor"),
            },
        };
        // Walk the feed from the cursor, skipping what retention dropped, up to `limit` objects.
        let mut picked = Vec::new();
        let mut pos = start;
        while pos < s.feed.len() && picked.len() < limit {
            if retained(&s, &s.feed[pos]) {
                picked.push(&s.feed[pos]);
            }
            pos += 1;
        }
        format!(
            "{{\"next_cursor\":\"rcv-{pos:06}\",\"has_more\":{},{}}}",
            pos < s.feed.len(),
            page_members(&picked)
        )
    };
    respond(fault, body, asked).await
}

async fn history(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(ean): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let fault = match admit(&state, &headers, &format!("history {ean}")) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let body = {
        let s = state.lock().expect("fake state");
        let date = |k: &str| q.get(k).and_then(|d| d.parse::<NaiveDate>().ok());
        let (Some(from), Some(to), Some(kind)) = (date("from"), date("to"), q.get("kind")) else {
            return error(StatusCode::BAD_REQUEST, "kind, from and to are required");
        };
        let want_day = match kind.as_str() {
            "interval" => false,
            "day" => true,
            _ => return error(StatusCode::BAD_REQUEST, "kind must be interval or day"),
        };
        let known = s.extra_known_eans.contains(&ean) || s.feed.iter().any(|e| e.ean() == ean);
        if !known {
            return error(StatusCode::NOT_FOUND, "unknown EAN");
        }
        // The current state: the latest delivery per (kind, meter, day).
        let mut latest: BTreeMap<(u8, String, NaiveDate), &FeedEntry> = BTreeMap::new();
        for e in &s.feed {
            let Some(d) = e.query_date() else { continue };
            let wanted = match e.kind {
                ObjectKind::Day => want_day,
                _ => !want_day,
            };
            if e.ean() != ean || d < from || d > to || !wanted || !retained(&s, e) {
                continue;
            }
            latest.insert((e.kind as u8, e.meter_id.to_string(), d), e);
        }
        let picked: Vec<&FeedEntry> = latest.into_values().collect();
        format!("{{{}}}", page_members(&picked))
    };
    respond(fault, body, None).await
}
