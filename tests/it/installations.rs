//! `vaten ingest installations` against 50 fake installations on 127.0.0.1 (the firmware's
//! readings log behind each), some of them misbehaving as real households do.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use vaten::domain::Ean;
use vaten::fake::{Behaviour, FakeInstallations};
use vaten::registry::{Connection, Installation, Registry, DEFAULT_CAPACITY_W};

use crate::common::*;

const NOW: &str = "2026-11-20T10:00:00Z";
const LATER: &str = "2026-11-23T10:00:00Z";
const TOKEN_PREFIX: &str = "tok-Recognisable-9c2e-";

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn id(i: usize) -> String {
    format!("inst-{i:04}")
}

fn ean(i: usize) -> String {
    Ean::with_check_digit(&format!("87168712{:09}", 500 + i))
        .unwrap()
        .to_string()
}

/// A cooperative of `n` connections with installations, served by `fake`; `urls` overrides
/// an installation's URL (an offline one).
fn registry_for(fake: &FakeInstallations, n: usize, urls: &BTreeMap<usize, String>) -> Registry {
    let cables = cables();
    let conns = (0..n)
        .map(|i| Connection {
            ean: Ean::parse(&ean(i)).unwrap(),
            participant_id: format!("P{i}"),
            cable_id: "K1".into(),
            installation: Some(Installation {
                id: id(i),
                url: urls.get(&i).cloned().unwrap_or_else(|| fake.url(&id(i))),
            }),
            tax_credit: true,
            capacity_w: DEFAULT_CAPACITY_W,
            production_capacity_w: DEFAULT_CAPACITY_W,
            installation_http_public: false,
            installation_cert_sha256: None,
            consent_from: None,
            consent_until: None,
            member_from: None,
            member_until: None,
        })
        .collect();
    Registry::new(conns, cables)
}

fn write_tokens(env: &Env, n: usize, mode: u32) {
    let mut text = String::from("[tokens]\n");
    for i in 0..n {
        text += &format!("\"{}\" = \"{TOKEN_PREFIX}{i}\"\n", id(i));
    }
    let path = env.dir.path().join("tokens.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn setup(n: usize, deadline_s: f64) -> (Env, FakeInstallations) {
    let fake = FakeInstallations::spawn().unwrap();
    for i in 0..n {
        fake.add(
            &id(i),
            &ean(i),
            &format!("{TOKEN_PREFIX}{i}"),
            &format!("SDM120-{i:07}"),
        );
    }
    let env = Env::new(&registry(&[EAN_A]));
    *env.extra_config.borrow_mut() =
        format!("[installations]\ntokens_file = \"tokens.toml\"\nconcurrency = 8\ntimeout_s = 1.0\ndeadline_s = {deadline_s}\npage_limit = 50\n");
    env.write_config("");
    write_tokens(&env, n, 0o600);
    (env, fake)
}

fn readings_of(lake: &vaten::lake::Lake, inst: &str) -> usize {
    lake_rows(lake)["installation_readings"]
        .iter()
        .filter(|r| r.contains(&format!("installation_id={inst};")))
        .count()
}

// Roles in the 50: 0 offline, 1 slow, 2 wrong token, 3 gap, 4 malformed JSON; 5 gets a
// meter exchange; the rest are plain healthy.
const OFFLINE: usize = 0;
const SLOW: usize = 1;
const WRONG: usize = 2;
const GAP: usize = 3;
const MALFORMED: usize = 4;
const EXCHANGE: usize = 5;

#[test]
fn fifty_installations_five_misbehaving() {
    let n = 50;
    let (env, fake) = setup(n, 4.0);
    let day = t("2026-11-19T00:15:00Z");
    for i in 0..n {
        fake.produce(&id(i), day, 96, i as u64);
    }
    fake.exchange_meter(&id(EXCHANGE), "SDM120-NEW0005");
    fake.produce(&id(EXCHANGE), t("2026-11-20T00:15:00Z"), 8, 5);
    let urls = BTreeMap::from([(OFFLINE, fake.offline_url(&id(OFFLINE)))]);
    env.set_registry(&registry_for(&fake, n, &urls));
    fake.set_behaviour(&id(SLOW), Behaviour::Slow(Duration::from_secs(60)));
    fake.set_behaviour(&id(WRONG), Behaviour::WrongToken);
    fake.set_behaviour(&id(MALFORMED), Behaviour::Malformed);

    let started = Instant::now();
    let out = env.vaten(NOW, &["ingest", "installations"]);
    let took = started.elapsed();
    assert_ok(&out);
    // Deadline 4 s; the slow one sleeps 60 s. A generous margin, but far below 60 s: the slow
    // and dead installations were not waited on one after another.
    assert!(took < Duration::from_secs(30), "the pass took {took:?}");
    let err = stderr(&out);
    let lake = env.lake();
    for i in 5..n {
        let expected = if i == EXCHANGE { 96 + 1 + 8 } else { 96 };
        assert_eq!(readings_of(&lake, &id(i)), expected, "{}", id(i));
    }
    assert_eq!(
        readings_of(&lake, &id(GAP)),
        96,
        "the gap installation is healthy on its first pass"
    );
    for (i, words) in [
        (OFFLINE, "offline (could not connect"),
        (SLOW, "offline (timed out"),
        (WRONG, "refused our token (401)"),
        (MALFORMED, "does not match the contract"),
    ] {
        let line = err
            .lines()
            .find(|l| l.contains(&id(i)))
            .unwrap_or_else(|| panic!("no warning for {}:\n{err}", id(i)));
        assert!(line.contains(words), "{line}");
        assert_eq!(readings_of(&lake, &id(i)), 0);
    }
    let rows = lake_rows(&lake);
    assert_eq!(rows["rejected"].len(), 1);
    assert!(
        rows["rejected"][0].contains("reason=malformed_response;")
            && rows["rejected"][0].contains(&id(MALFORMED))
    );
    // Both production meters of the exchanged installation are there, the new one from ~0.
    let meters: Vec<&String> = rows["installation_readings"]
        .iter()
        .filter(|r| r.contains("p_meter=SDM120-NEW0005;"))
        .collect();
    assert_eq!(meters.len(), 9);

    // The gap: 3000 more quarter-hours (31 days) on the gap installation; the first 96 + 3000
    // − 2880 = 216 are gone from its buffer, so readings after seq 96 up to seq 216 are lost.
    let gap_env_now = "2026-12-30T00:00:00Z";
    fake.produce(&id(GAP), t("2026-11-20T00:15:00Z"), 3000, 3);
    let out = env.vaten(gap_env_now, &["ingest", "installations"]);
    assert_ok(&out);
    let gaps = &lake_rows(&env.lake())["installation_gaps"];
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert!(
        gaps[0].contains(&format!("installation_id={};", id(GAP)))
            && gaps[0].contains("after_seq=96;")
            && gaps[0].contains("resumed_seq=217;"),
        "{}",
        gaps[0]
    );
    assert_eq!(readings_of(&env.lake(), &id(GAP)), 96 + 2880);
    // The gaps table as the data dictionary promises it, read by pyarrow.
    let check = std::process::Command::new(crate::tools::python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/check_lake_schema.py"
        ))
        .arg(env.lake_dir())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/data-dictionary.md"
        ))
        .arg("installation_gaps")
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let runs = env.lake().read_table(&vaten::lake::schema::RUNS).unwrap();
    let messages: Vec<&str> = runs
        .column("message")
        .unwrap()
        .str()
        .unwrap()
        .no_null_iter()
        .collect();
    assert!(
        messages.iter().any(|m| m.contains(&format!(
            "gap: {}: readings after seq 96 were lost",
            id(GAP)
        ))),
        "{messages:?}"
    );
}

#[test]
fn offline_installation_catches_up_exactly() {
    let n = 3;
    let (env, fake) = setup(n, 20.0);
    for i in 0..n {
        fake.produce(&id(i), t("2026-11-18T00:15:00Z"), 96, i as u64);
    }
    let urls = BTreeMap::from([(0, fake.offline_url(&id(0)))]);
    env.set_registry(&registry_for(&fake, n, &urls));
    assert_ok(&env.vaten(NOW, &["ingest", "installations"]));
    assert_eq!(readings_of(&env.lake(), &id(0)), 0);
    // `vaten status` names it, and since when.
    let status = env.vaten(NOW, &["status"]);
    assert_ok(&status);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains(&format!("1 offline: {} since 2026-11-20 10:00 UTC", id(0))),
        "{text}"
    );
    assert!(
        text.contains("last ingest-installations: warning"),
        "{text}"
    );
    let first = lake_rows(&env.lake());
    // A second run with nothing new adds nothing.
    assert_ok(&env.vaten(NOW, &["ingest", "installations"]));
    assert_eq!(lake_rows(&env.lake()), first);

    // Back online with two more days: exactly what it missed, no more, no less.
    fake.produce(&id(0), t("2026-11-19T00:15:00Z"), 192, 9);
    env.set_registry(&registry_for(&fake, n, &BTreeMap::new()));
    assert_ok(&env.vaten(LATER, &["ingest", "installations"]));
    assert_eq!(readings_of(&env.lake(), &id(0)), 96 + 192);
    assert_eq!(readings_of(&env.lake(), &id(1)), 96);
    let seqs: Vec<String> = lake_rows(&env.lake())["installation_readings"]
        .iter()
        .filter(|r| r.contains(&format!("installation_id={};", id(0))))
        .map(|r| field(r, "seq").to_string())
        .collect();
    let mut nums: Vec<u64> = seqs.iter().map(|s| s.parse().unwrap()).collect();
    nums.sort();
    assert_eq!(nums, (1..=288).collect::<Vec<u64>>(), "every seq once");
}

#[test]
fn tokens_file_must_be_private_and_tokens_never_leak() {
    let (env, fake) = setup(2, 20.0);
    for i in 0..2 {
        fake.produce(&id(i), t("2026-11-19T00:15:00Z"), 4, 1);
    }
    fake.set_behaviour(&id(1), Behaviour::WrongToken);
    env.set_registry(&registry_for(&fake, 2, &BTreeMap::new()));
    write_tokens(&env, 2, 0o644);
    let out = env.vaten(NOW, &["-vv", "ingest", "installations"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
    assert_eq!(fake.requests(&id(0)), 0);
    write_tokens(&env, 2, 0o600);
    let tokens = env.dir.path().join("tokens.toml");
    // A symbolic link to a private file is refused: the mode is checked on what is opened.
    let real = env.dir.path().join("real-tokens.toml");
    std::fs::rename(&tokens, &real).unwrap();
    std::os::unix::fs::symlink(&real, &tokens).unwrap();
    let out = env.vaten(NOW, &["ingest", "installations"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    std::fs::remove_file(&tokens).unwrap();
    std::fs::rename(&real, &tokens).unwrap();
    // A private file of another user is refused too (giving a file away needs root, as CI is).
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test gives the tokens file to another user: run it as root"
    );
    std::os::unix::fs::chown(&tokens, Some(65_534), None).unwrap();
    let out = env.vaten(NOW, &["ingest", "installations"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("belongs to user 65534"),
        "{}",
        stderr(&out)
    );
    std::os::unix::fs::chown(&tokens, Some(0), None).unwrap();
    assert_eq!(fake.requests(&id(0)), 0);
    let outputs = [
        env.vaten(NOW, &["-vv", "ingest", "installations"]),
        env.vaten(
            NOW,
            &["--log-format", "json", "-vv", "ingest", "installations"],
        ),
    ];
    for o in &outputs {
        assert_ok(o);
        let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(o));
        assert!(!text.contains(TOKEN_PREFIX), "a token leaked:\n{text}");
    }
    assert_eq!(readings_of(&env.lake(), &id(0)), 4);
    for f in files_below(&env.lake_dir()) {
        let bytes = std::fs::read(env.lake_dir().join(&f)).unwrap();
        assert!(
            !bytes
                .windows(TOKEN_PREFIX.len())
                .any(|w| w == TOKEN_PREFIX.as_bytes()),
            "token in {}",
            f.display()
        );
    }
}

#[test]
fn killed_pass_reruns_to_the_same_lake() {
    let build = || {
        let (env, fake) = setup(20, 20.0);
        for i in 0..20 {
            fake.produce(&id(i), t("2026-11-18T00:15:00Z"), 192, i as u64);
        }
        env.set_registry(&registry_for(&fake, 20, &BTreeMap::new()));
        (env, fake)
    };
    let (reference, _keep) = build();
    assert_ok(&reference.vaten(NOW, &["ingest", "installations"]));
    let expected = lake_rows(&reference.lake());
    assert_eq!(expected["installation_readings"].len(), 20 * 192);

    let (env, fake) = build();
    // A slow household keeps the pass busy long enough to be killed in the middle.
    fake.set_behaviour(&id(7), Behaviour::Slow(Duration::from_millis(700)));
    let mut child = env
        .command(NOW, &["ingest", "installations"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let killed = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(killed, "the pass was still running when killed");
    fake.set_behaviour(&id(7), Behaviour::Healthy);
    env.after_kill();
    assert_ok(&env.vaten(NOW, &["ingest", "installations"]));
    assert_eq!(lake_rows(&env.lake()), expected);
    env.assert_nothing_staged();
}

#[test]
fn readings_that_do_not_fit_go_to_rejected() {
    let (env, fake) = setup(3, 20.0);
    fake.produce(&id(0), t("2026-11-19T00:15:00Z"), 4, 1);
    // Backwards without a meter exchange, then one from the future (after NOW), then a good one
    // that follows the last accepted register again.
    fake.push_register(&id(0), t("2026-11-19T01:30:00Z"), 10);
    fake.push_register(&id(0), t("2026-11-21T00:00:00Z"), 9_000_000);
    fake.push_register(&id(0), t("2026-11-19T01:45:00Z"), 8_000_000);
    fake.produce(&id(1), t("2026-11-19T00:15:00Z"), 4, 2);
    // The registry points inst-0002 at inst-0001's endpoint: it answers as another installation.
    fake.produce(&id(2), t("2026-11-19T00:15:00Z"), 4, 3);
    let urls = BTreeMap::from([(2, fake.url(&id(1)))]);
    env.set_registry(&registry_for(&fake, 3, &urls));
    write_tokens(&env, 3, 0o600);
    // inst-0002's token is sent to inst-0001's endpoint, which refuses it: give it inst-0001's.
    let tokens = env.dir.path().join("tokens.toml");
    let text = std::fs::read_to_string(&tokens)
        .unwrap()
        .replace(&format!("{TOKEN_PREFIX}2\""), &format!("{TOKEN_PREFIX}1\""));
    std::fs::write(&tokens, text).unwrap();
    assert_ok(&env.vaten(NOW, &["ingest", "installations"]));
    let rows = lake_rows(&env.lake());
    let reasons = |inst: &str| -> Vec<String> {
        let mut r: Vec<String> = rows["rejected"]
            .iter()
            .filter(|r| r.contains(&format!("key={inst};")))
            .map(|r| field(r, "reason").to_string())
            .collect();
        r.sort();
        r
    };
    assert_eq!(reasons(&id(0)), vec!["future_time", "register_backwards"]);
    assert_eq!(readings_of(&env.lake(), &id(0)), 5);
    assert_eq!(reasons(&id(2)), vec!["installation_mismatch"; 4]);
    assert_eq!(readings_of(&env.lake(), &id(2)), 0);
    assert_eq!(readings_of(&env.lake(), &id(1)), 4);
    // Rejections are not stored twice when the same readings come again.
    let before = lake_rows(&env.lake());
    assert_ok(&env.vaten(NOW, &["ingest", "installations"]));
    assert_eq!(lake_rows(&env.lake()), before);
}

/// One installation answers with a body that never ends, among 20 healthy ones: the 20 are
/// stored, the pass ends, and reading the endless one stopped at the body limit. Before, the
/// whole body was read into memory: the pass could only end by the deadline or be killed.
#[test]
fn an_endless_body_stops_at_the_limit_and_the_others_go_on() {
    let n = 21;
    let endless = 20;
    let (env, fake) = setup(n, 30.0);
    // 1 MiB per answer at most (100 readings are about 30 KiB).
    let config = env.extra_config.borrow().replace(
        "page_limit = 50\n",
        "page_limit = 50\nmax_body_bytes = 1048576\n",
    );
    *env.extra_config.borrow_mut() = config;
    env.write_config("");
    for i in 0..n {
        fake.produce(&id(i), t("2026-11-19T00:15:00Z"), 96, i as u64);
    }
    env.set_registry(&registry_for(&fake, n, &BTreeMap::new()));
    fake.set_behaviour(&id(endless), Behaviour::Endless);
    let started = Instant::now();
    let out = env.vaten(NOW, &["ingest", "installations"]);
    let took = started.elapsed();
    assert_ok(&out);
    assert!(took < Duration::from_secs(30), "the pass took {took:?}");
    let lake = env.lake();
    for i in 0..endless {
        assert_eq!(readings_of(&lake, &id(i)), 96, "{}", id(i));
    }
    assert_eq!(readings_of(&lake, &id(endless)), 0);
    let err = stderr(&out);
    assert!(
        err.contains(&id(endless))
            && err.contains("larger than [installations] max_body_bytes (1048576 bytes)"),
        "{err}"
    );
    // The mechanism: the client stopped reading at 1 MiB; what the server handed on beyond it
    // is what the sockets buffer, and it does not grow once the pass is over.
    let sent = fake.endless_bytes(&id(endless));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(fake.endless_bytes(&id(endless)), sent, "still sending");
    assert!(
        (1 << 20..40 << 20).contains(&sent),
        "{sent} bytes handed to the connection"
    );
}

/// A controller whose clock fell back to 1970 after a power cut, and a reading dated
/// 0001-01-01: `rejected` as `implausible_time`; no partition of any table before the
/// connection's data. Before, they were stored for good and every transform laid out a
/// partition per day since then.
#[test]
fn readings_from_1970_and_year_one_are_implausible() {
    let (env, fake) = setup(1, 10.0);
    let mut reg = registry_for(&fake, 1, &BTreeMap::new());
    reg.connections[0].member_from = Some("2026-01-01".parse().unwrap());
    env.set_registry(&reg);
    fake.produce(&id(0), t("2026-11-19T00:15:00Z"), 4, 1);
    fake.push_register(&id(0), t("1970-01-01T00:15:00Z"), 3_000_000);
    fake.push_register(&id(0), t("0001-01-01T00:15:00Z"), 3_000_000);
    fake.produce(&id(0), t("2026-11-19T01:15:00Z"), 4, 2);
    assert_ok(&env.vaten(NOW, &["ingest", "installations"]));
    assert_ok(&env.vaten(NOW, &["transform"]));
    let rows = lake_rows(&env.lake());
    let implausible: Vec<&String> = rows["rejected"]
        .iter()
        .filter(|r| r.contains("reason=implausible_time;"))
        .collect();
    assert_eq!(implausible.len(), 2, "{implausible:#?}");
    assert_eq!(readings_of(&env.lake(), &id(0)), 8);
    let early: Vec<_> = files_below(&env.lake_dir())
        .into_iter()
        .filter(|f| {
            let s = f.to_string_lossy();
            s.contains("=19") || s.contains("=00") || s.contains("=2025")
        })
        .collect();
    assert!(early.is_empty(), "{early:?}");
}

/// One installation's HTTPS endpoint on 127.0.0.1 with the self-signed certificate of
/// `tests/fixtures/tls/`, answering every request with `body`; counts the requests that got
/// through the TLS handshake.
fn https_installation(body: String) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");
    let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(format!("{dir}/cert.pem"))
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(format!("{dir}/key.pem")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, body, counter) = (acceptor.clone(), body.clone(), counter.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(response.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
    });
    (format!("https://127.0.0.1:{port}/{}", id(0)), served)
}

/// A controller with a self-signed certificate: not trusted by the system's roots, refused
/// when another certificate is pinned, pulled when the registry pins its own.
#[test]
fn a_pinned_certificate_is_the_only_one_accepted() {
    use std::sync::atomic::Ordering;
    let (env, fake) = setup(2, 10.0);
    fake.produce(&id(1), t("2026-11-19T00:15:00Z"), 4, 1);
    let page = serde_json::json!({
        "installation_id": id(0), "ean": ean(0), "next_after": 2, "has_more": false, "gap": false,
        "readings": [
            {"seq": 1, "p_meter": "SDM120-0", "t": "2026-11-19T10:15:00Z", "p_wh": 1000, "battery_charge_wh": 0, "battery_discharge_wh": 0},
            {"seq": 2, "p_meter": "SDM120-0", "t": "2026-11-19T10:30:00Z", "p_wh": 1100, "battery_charge_wh": 0, "battery_discharge_wh": 0}
        ]
    });
    let (url, served) = https_installation(page.to_string());
    let mut reg = registry_for(&fake, 2, &BTreeMap::from([(0, url)]));
    let pass = |reg: &Registry, now: &str| {
        env.set_registry(reg);
        let out = env.vaten(now, &["ingest", "installations"]);
        assert_ok(&out);
        stderr(&out)
    };
    // Not pinned: the system does not trust it; the other installation goes on.
    let err = pass(&reg, NOW);
    assert!(err.contains(&id(0)) && err.contains("offline"), "{err}");
    assert_eq!(readings_of(&env.lake(), &id(1)), 4);
    // Another certificate pinned: refused as well, before any request is sent.
    reg.connections[0].installation_cert_sha256 = Some([7; 32]);
    let err = pass(&reg, LATER);
    assert!(err.contains(&id(0)) && err.contains("offline"), "{err}");
    assert_eq!(
        served.load(Ordering::SeqCst),
        0,
        "no request got through TLS"
    );
    assert_eq!(readings_of(&env.lake(), &id(0)), 0);
    // Its own certificate pinned: pulled.
    reg.connections[0].installation_cert_sha256 = vaten::registry::parse_fingerprint(
        "052ff59338b82c9b3e3c764ca5d3fbe0d6599eb86423a4b0375ac4e1a4ef017f",
    );
    pass(&reg, "2026-11-24T10:00:00Z");
    assert_eq!(served.load(Ordering::SeqCst), 1);
    assert_eq!(readings_of(&env.lake(), &id(0)), 2);
}

/// The installations pass killed and rerun with the lake on the local S3-compatible server.
#[test]
fn killed_pass_reruns_to_the_same_lake_on_s3() {
    on_s3(killed_pass_reruns_to_the_same_lake);
}
