//! Fake installations on `127.0.0.1`, following `docs/interfaces/installation.md`:
//! many installations behind one local server (`/{installation_id}/v1/readings`), each backed
//! by the firmware's own readings log, with scripted behaviours for the tests and the demo.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use vaten_firmware::readings::{MeterId, Reading, ReadingsLog, VoltageStats};

use super::synth::mix;

/// Readings an installation keeps: 30 days of quarter-hours, as the contract promises.
pub const KEPT: usize = 30 * 96;

#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    Healthy,
    /// Answers after this long (past the client's timeout).
    Slow(Duration),
    /// Expects another token than the cooperative has: every request gets 401.
    WrongToken,
    /// Answers 200 with a body that is not JSON.
    Malformed,
    /// Answers 200 with a body that never ends (64 KiB chunks as fast as they are read).
    Endless,
}

struct Installation {
    ean: String,
    token: String,
    behaviour: Behaviour,
    log: Box<ReadingsLog<KEPT>>,
    meter: MeterId,
    p_wh: u64,
    charge_wh: u64,
    discharge_wh: u64,
    soc_pct: f32,
    requests: u64,
    /// Bytes of endless body handed to the connection so far.
    endless_bytes: Arc<std::sync::atomic::AtomicU64>,
}

type Shared = Arc<Mutex<HashMap<String, Installation>>>;

/// A running set of fake installations; stops when dropped.
pub struct FakeInstallations {
    pub addr: SocketAddr,
    dead_addr: SocketAddr,
    state: Shared,
    _server: super::LocalServer,
}

impl FakeInstallations {
    pub fn spawn() -> std::io::Result<Self> {
        Self::spawn_on(0)
    }

    /// As [`FakeInstallations::spawn`], listening on `port` (0: any free port). A fixed port
    /// keeps the installations' URLs, and so the registry, the same from one run to the next.
    pub fn spawn_on(port: u16) -> std::io::Result<Self> {
        let state: Shared = Arc::new(Mutex::new(HashMap::new()));
        // A port nobody listens on: an installation that is switched off.
        let dead_addr = std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?;
        let app = Router::new()
            .route("/{id}/v1/readings", get(readings))
            .with_state(state.clone());
        let server = super::LocalServer::start("fake-installations", port, app)?;
        Ok(FakeInstallations {
            addr: server.addr,
            dead_addr,
            state,
            _server: server,
        })
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Installation>) -> R) -> R {
        f(&mut self.state.lock().expect("fake installations"))
    }

    /// Adds an installation with production meter `meter` and empty registers.
    pub fn add(&self, id: &str, ean: &str, token: &str, meter: &str) {
        let inst = Installation {
            ean: ean.into(),
            token: token.into(),
            behaviour: Behaviour::Healthy,
            log: Box::new(ReadingsLog::new(1)),
            meter: MeterId::new(meter).expect("short ASCII meter id"),
            p_wh: 1_000_000,
            charge_wh: 0,
            discharge_wh: 0,
            soc_pct: 50.0,
            requests: 0,
            endless_bytes: Arc::default(),
        };
        self.with(|m| m.insert(id.to_string(), inst));
    }

    /// Base URL of an installation's endpoint.
    pub fn url(&self, id: &str) -> String {
        format!("http://{}/{id}", self.addr)
    }

    /// A URL where nothing answers (connection refused), for an installation that is off.
    pub fn offline_url(&self, id: &str) -> String {
        format!("http://{}/{id}", self.dead_addr)
    }

    pub fn set_behaviour(&self, id: &str, b: Behaviour) {
        self.with(|m| m.get_mut(id).map(|i| i.behaviour = b));
    }

    /// Bytes of [`Behaviour::Endless`] body the client took (as far as the socket let them go).
    pub fn endless_bytes(&self, id: &str) -> u64 {
        self.with(|m| {
            m.get(id).map_or(0, |i| {
                i.endless_bytes.load(std::sync::atomic::Ordering::Relaxed)
            })
        })
    }

    /// Requests the installation answered (or refused).
    pub fn requests(&self, id: &str) -> u64 {
        self.with(|m| m.get(id).map(|i| i.requests).unwrap_or(0))
    }

    /// Closes `quarters` quarter-hours of readings, the first ending at `first_end`.
    pub fn produce(&self, id: &str, first_end: DateTime<Utc>, quarters: usize, seed: u64) {
        self.with(|m| {
            let inst = m.get_mut(id).expect("known installation");
            for k in 0..quarters {
                let t = first_end + chrono::Duration::minutes(15 * k as i64);
                let noise = mix(seed ^ t.timestamp() as u64 ^ inst.p_wh) % 100;
                let hour = t.format("%H").to_string().parse::<u64>().unwrap_or(0);
                let sun = if (8..17).contains(&hour) {
                    150 + noise * 3
                } else {
                    0
                };
                inst.p_wh += sun;
                let (charge, discharge) = if sun > 200 {
                    (sun / 2, 0)
                } else {
                    (0, 20 + noise / 2)
                };
                inst.charge_wh += charge;
                inst.discharge_wh += discharge;
                inst.soc_pct =
                    (inst.soc_pct + (charge as f32 - discharge as f32) / 100.0).clamp(10.0, 90.0);
                let v = 230.0 + (noise as f32) / 10.0;
                let voltage = Some(VoltageStats {
                    avg_v: v,
                    min_v: v - 2.5,
                    max_v: v + 3.0,
                });
                inst.log.push(
                    t.timestamp(),
                    inst.meter,
                    inst.p_wh,
                    inst.charge_wh,
                    inst.discharge_wh,
                    Some(inst.soc_pct),
                    voltage,
                );
            }
        });
    }

    /// Closes one quarter-hour with every register given (the simulation's readings). The
    /// registers are the meters' own: the installation's production meter starts where `p_wh`
    /// says.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        id: &str,
        t_end: DateTime<Utc>,
        p_wh: u64,
        charge_wh: u64,
        discharge_wh: u64,
        soc_pct: Option<f32>,
        voltage: Option<VoltageStats>,
    ) {
        self.with(|m| {
            let inst = m.get_mut(id).expect("known installation");
            inst.p_wh = p_wh;
            inst.charge_wh = charge_wh;
            inst.discharge_wh = discharge_wh;
            inst.log.push(
                t_end.timestamp(),
                inst.meter,
                p_wh,
                charge_wh,
                discharge_wh,
                soc_pct,
                voltage,
            );
        });
    }

    /// The installation's storage was wiped (a firmware update gone wrong): the readings it
    /// held are gone, numbering goes on. A client asking for older readings gets `gap: true`.
    pub fn reset(&self, id: &str) {
        self.with(|m| {
            let inst = m.get_mut(id).expect("known installation");
            let next = inst.log.next_seq();
            *inst.log = ReadingsLog::new(next);
        });
    }

    /// Closes one quarter-hour with a production register of the caller's choosing (to script
    /// a register that goes backwards).
    pub fn push_register(&self, id: &str, t_end: DateTime<Utc>, p_wh: u64) {
        self.with(|m| {
            let inst = m.get_mut(id).expect("known installation");
            inst.log.push(
                t_end.timestamp(),
                inst.meter,
                p_wh,
                inst.charge_wh,
                inst.discharge_wh,
                None,
                None,
            );
        });
    }

    /// Replaces the production meter at the last reading's time: the new meter's first
    /// reading has the same `t`, the next seq, and a register starting near zero. The
    /// controller reads the grid voltage from the smart meter whatever the production meter,
    /// so both readings carry that quarter-hour's voltages.
    pub fn exchange_meter(&self, id: &str, new_meter: &str) {
        self.with(|m| {
            let inst = m.get_mut(id).expect("known installation");
            let last = inst.log.next_seq() - 1;
            let (t, voltage) = inst
                .log
                .get(last)
                .map(|r| (r.t_end_s, r.voltage))
                .expect("a reading to exchange after");
            inst.meter = MeterId::new(new_meter).expect("short ASCII meter id");
            inst.p_wh = 2;
            inst.log.push(
                t,
                inst.meter,
                inst.p_wh,
                inst.charge_wh,
                inst.discharge_wh,
                Some(inst.soc_pct),
                voltage,
            );
        });
    }
}

fn reading_json(r: &Reading) -> Value {
    let t = DateTime::from_timestamp(r.t_end_s, 0).unwrap_or_default();
    let v = r.voltage;
    let round = |x: f32| (f64::from(x) * 100.0).round() / 100.0;
    json!({
        "seq": r.seq,
        "p_meter": r.p_meter.as_str(),
        "t": t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "p_wh": r.p_wh,
        "battery_charge_wh": r.battery_charge_wh,
        "battery_discharge_wh": r.battery_discharge_wh,
        "soc_pct": r.soc_pct.map(round),
        "voltage_avg_v": v.map(|v| round(v.avg_v)),
        "voltage_min_v": v.map(|v| round(v.min_v)),
        "voltage_max_v": v.map(|v| round(v.max_v)),
    })
}

fn error(status: StatusCode, msg: &str) -> Response {
    (status, axum::Json(json!({ "error": msg }))).into_response()
}

async fn readings(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let (body, behaviour) = {
        let mut map = state.lock().expect("fake installations");
        let Some(inst) = map.get_mut(&id) else {
            return error(StatusCode::NOT_FOUND, "no such installation");
        };
        inst.requests += 1;
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
        let expected = format!("Bearer {}", inst.token);
        if auth != Some(expected.as_str()) || inst.behaviour == Behaviour::WrongToken {
            return error(StatusCode::UNAUTHORIZED, "wrong or missing token");
        }
        let (after, limit) = match (
            q.get("after").map_or(Ok(0), |a| a.parse::<u64>()),
            q.get("limit").map_or(Ok(1000), |l| l.parse::<usize>()),
        ) {
            (Ok(a), Ok(l)) => (a, l),
            _ => return error(StatusCode::BAD_REQUEST, "after and limit must be numbers"),
        };
        if !(1..=2000).contains(&limit) {
            return error(StatusCode::BAD_REQUEST, "limit must be 1..2000");
        }
        let blank = inst.log.get(inst.log.oldest_seq().unwrap_or(0));
        let mut out = vec![
            blank.unwrap_or(Reading {
                seq: 0,
                t_end_s: 0,
                p_meter: inst.meter,
                p_wh: 0,
                battery_charge_wh: 0,
                battery_discharge_wh: 0,
                soc_pct: None,
                voltage: None,
            });
            limit
        ];
        let page = inst.log.page(after, &mut out);
        let body = json!({
            "installation_id": id,
            "ean": inst.ean,
            "readings": out[..page.count].iter().map(reading_json).collect::<Vec<_>>(),
            "next_after": page.next_after,
            "has_more": page.has_more,
            "gap": page.gap,
        });
        (body, (inst.behaviour.clone(), inst.endless_bytes.clone()))
    };
    let (behaviour, endless_bytes) = behaviour;
    match behaviour {
        Behaviour::Slow(d) => {
            tokio::time::sleep(d).await;
            axum::Json(body).into_response()
        }
        Behaviour::Malformed => (
            StatusCode::OK,
            [("content-type", "application/json")],
            "{\"installation_id\": \"oops\", readings: [",
        )
            .into_response(),
        Behaviour::Endless => {
            // `{"readings": ["xxxx…` for ever: each chunk is counted when the stream hands it on.
            let chunk = axum::body::Bytes::from(vec![b'x'; 64 << 10]);
            let stream = futures_util::stream::unfold(true, move |first| {
                let chunk = if first {
                    axum::body::Bytes::from_static(b"{\"readings\": [\"")
                } else {
                    chunk.clone()
                };
                endless_bytes.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
                async move { Some((Ok::<_, std::io::Error>(chunk), false)) }
            });
            (
                StatusCode::OK,
                [("content-type", "application/json")],
                axum::body::Body::from_stream(stream),
            )
                .into_response()
        }
        _ => axum::Json(body).into_response(),
    }
}
