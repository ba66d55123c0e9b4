//! Reports: every figure equals DuckDB's recomputation from the lake, the public report keeps
//! households and small cables out of sight, and a real browser renders the charts.

use std::path::{Path, PathBuf};
use std::process::Command;

use vaten::fake::synth::{cooperative, dates_ending, feed};
use vaten::fake::FakeInstallations;
use vaten::registry::{Cable, Installation, Registry};

use crate::common::*;
use crate::feeds::*;

/// A small cable's name that cannot occur by chance in a report.
const SMALL: &str = "Lindelaan-West";

/// 14 connections: 6 on K1, 5 on K2, 3 on the small cable; two with an installation.
fn cooperative_with_small_cable(
    fake: &FakeInstallations,
) -> (Registry, Vec<vaten::fake::synth::Meter>) {
    let (reg, meters) = cooperative(14);
    let mut conns = reg.connections.clone();
    let mut cables = reg.cables.clone();
    cables.retain(|k, _| k != "K3");
    cables.insert(
        SMALL.into(),
        Cable {
            cable_id: SMALL.into(),
            substation: "TS-Noord".into(),
            v_low_v: 226.0,
            v_high_v: 244.0,
        },
    );
    for (i, c) in conns.iter_mut().enumerate() {
        c.cable_id = match i {
            0..=5 => "K1",
            6..=10 => "K2",
            _ => SMALL,
        }
        .into();
    }
    for i in [0, 7] {
        let id = format!("inst-{i}");
        fake.add(&id, conns[i].ean.as_str(), "tok", &format!("SDM-{i}"));
        conns[i].installation = Some(Installation {
            id: id.clone(),
            url: fake.url(&id),
        });
    }
    (Registry::new(conns, cables), meters)
}

fn check(env: &Env, args: &[&str]) {
    check_lake(&env.lake_dir(), &env.dir.path().join("registry"), args);
}

/// Runs `tests/check_reports.py` on a lake and registry: DuckDB recomputes every figure.
pub fn check_lake(lake: &Path, registry: &Path, args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/check_reports.py");
    let out = Command::new(crate::tools::python())
        .arg(script)
        .arg(lake)
        .arg(registry)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Loads `page` in headless Chromium: the rendered DOM, and a screenshot kept under
/// `target/test-artefacts/` (phone width).
fn render(page: &Path, screenshot: &str) -> String {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/test-artefacts"
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
    ];
    let url = format!("file://{}", page.display());
    let dom = Command::new(crate::tools::chromium())
        .args(flags)
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .expect("chromium starts");
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let png = dir.join(screenshot);
    let _ = std::fs::remove_file(&png);
    let shot = Command::new(crate::tools::chromium())
        .args(flags)
        .arg("--window-size=412,2400")
        .arg(format!("--screenshot={}", png.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(shot.status.success());
    assert!(
        std::fs::metadata(&png).unwrap().len() > 10_000,
        "a screenshot with content"
    );
    String::from_utf8(dom.stdout).unwrap()
}

/// Charts in a rendered DOM: SVG elements with drawn lines.
fn charts_in(dom: &str) -> usize {
    dom.split("<svg")
        .skip(1)
        .filter(|svg| svg.split("</svg>").next().unwrap().contains("<polyline"))
        .count()
}

#[test]
fn reports_agree_with_the_lake_keep_households_private_and_render() {
    let fake = FakeInstallations::spawn().unwrap();
    let (reg, mut meters) = cooperative_with_small_cable(&fake);
    let env = Env::new(&reg);
    env.with_tokens(&[("inst-0", "tok"), ("inst-7", "tok")]);
    let dates = dates_ending(d("2026-10-26"), 7);
    env.server
        .push(feed(&mut meters, &dates, vaten::domain::time::AMSTERDAM, 5));
    env.server.push([rejection(
        reg.connections[3].ean.as_str(),
        "2026-10-25",
        "NO_CONSENT",
    )]);
    fake.produce("inst-0", "2026-10-19T22:15:00Z".parse().unwrap(), 7 * 96, 3);
    fake.produce("inst-7", "2026-10-19T22:15:00Z".parse().unwrap(), 5 * 96, 4);

    // The night after the 25th: a failing pull (wrong key), then the real pass, then reports.
    let out = env
        .command("2026-10-26T08:00:00Z", &["ingest", "grid"])
        .env(KEY_ENV, "not-the-key")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_ok(&env.vaten("2026-10-26T08:10:00Z", &["ingest"]));
    assert_ok(&env.vaten("2026-10-26T08:20:00Z", &["transform"]));
    let out = env.vaten(
        "2026-10-26T08:30:00Z",
        &["report", "nightly", "--date", "2026-10-25"],
    );
    assert_ok(&out);
    let reports = env.dir.path().join("data/reports");
    let nightly = reports.join("nightly/2026-10-25.html");
    assert!(String::from_utf8_lossy(&out.stdout).contains("nightly/2026-10-25.html"));
    assert!(
        reports.join("nightly/2026-10-25.md").exists(),
        "the Markdown twin"
    );
    check(&env, &["nightly", "2026-10-25", nightly.to_str().unwrap()]);
    let html = std::fs::read_to_string(&nightly).unwrap();
    // Failures first among the runs, and the 100-quarter-hour day's chart is there.
    let failed = html
        .find("<td>failed</td>")
        .expect("the failed pull is listed");
    assert!(failed < html.find("<td>ok</td>").unwrap());
    assert!(
        html.matches("<svg").count() >= 3,
        "balance charts and a voltage band"
    );

    // A week later without a pull, the same report warns: 3 days of retention left.
    let late = env.vaten(
        "2026-11-02T08:10:00Z",
        &["report", "nightly", "--date", "2026-10-25"],
    );
    assert_ok(&late);
    let html = std::fs::read_to_string(&nightly).unwrap();
    assert!(
        html.contains("class=\"warning\"") && html.contains("3.0 days left"),
        "the retention warning"
    );

    assert_ok(&env.vaten(
        "2026-10-26T08:40:00Z",
        &["report", "yearly", "--year", "2026"],
    ));
    let yearly = reports.join("yearly/2026/index.html");
    check(&env, &["yearly", "2026", yearly.to_str().unwrap()]);
    let public = std::fs::read_to_string(&yearly).unwrap();
    for c in &reg.connections {
        assert!(
            !public.contains(c.ean.as_str()),
            "no EAN in the public report"
        );
        assert!(
            !public.contains(&c.participant_id),
            "no participant in the public report"
        );
    }
    assert!(!public.contains(SMALL), "a 3-connection cable is not named");
    // By hand: the small cable's 3 would follow from the totals minus K1 (6) and K2 (5), so
    // the smallest named cable, K2, joins "other cables" (8 connections).
    assert!(public.contains("cable.K1.local_share"));
    assert!(public.contains("data-figure=\"cable.other cables.connections\" data-value=\"8\""));
    assert!(!public.contains("cable.K2."), "K2 is merged");

    // The analysts' question from the issue, through Polars SQL, against DuckDB's answer.
    let out = env.vaten(
        "2026-10-26T08:50:00Z",
        &["query", "--format", "csv", "select cable_id, sum(matched_wh) as matched from cable_balance_daily group by 1 order by 1"],
    );
    assert_ok(&out);
    let ours: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .map(String::from)
        .collect();
    let duck = Command::new(crate::tools::python())
        .args(["-c", &format!(
            "import duckdb; [print(f'{{c}},{{m}}') for c, m in duckdb.sql(\"select cable_id, sum(matched_wh) from read_parquet('{}/cable_balance_daily/*/*.parquet', hive_partitioning = true) group by 1 order by 1\").fetchall()]",
            env.lake_dir().display()
        )])
        .output()
        .unwrap();
    assert!(
        duck.status.success(),
        "{}",
        String::from_utf8_lossy(&duck.stderr)
    );
    let theirs: Vec<String> = String::from_utf8_lossy(&duck.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(ours.len(), 3, "K1, K2 and the small cable: {ours:?}");
    assert_eq!(ours, theirs);

    // Statements: one per participant, private, each figure from the lake.
    let dir = reports.join("private/statements/2026");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 14);
    // Private on disk whatever the umask: statements 0600, their folders 0700.
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        for entry in std::fs::read_dir(&dir).unwrap() {
            assert_eq!(mode(&entry.unwrap().path()), 0o600);
        }
        for d in [
            reports.join("private"),
            reports.join("private/statements"),
            dir.clone(),
        ] {
            assert_eq!(mode(&d), 0o700, "{}", d.display());
        }
    }
    for pid in ["P0001", "P0008", "P0013"] {
        let page = dir.join(format!("{pid}.html"));
        check(&env, &["statement", "2026", page.to_str().unwrap(), pid]);
    }

    // Money on a statement says it excludes VAT, and the net tax is there including 21 % VAT
    // (check_reports.py recomputes it), as of the day the report was written.
    let statement = std::fs::read_to_string(dir.join("P0001.html")).unwrap();
    for label in [
        "energy tax, excluding VAT",
        "reduction, excluding VAT",
        "net energy tax, excluding VAT",
        "net energy tax, including 21 % VAT (as on a bill)",
        "Figures as of 2026-10-26.",
    ] {
        assert!(statement.contains(label), "{label}");
    }
    assert!(!statement.contains("Restated"));

    // Late data: the 26th arrives after the reports were written. Written again, the
    // statement and the public report say they restate, with the previous and new amounts.
    let before = statement;
    env.server.push(feed(
        &mut meters,
        &[d("2026-10-27")],
        vaten::domain::time::AMSTERDAM,
        5,
    ));
    assert_ok(&env.vaten("2026-10-28T08:10:00Z", &["ingest", "grid"]));
    assert_ok(&env.vaten("2026-10-28T08:20:00Z", &["transform"]));
    assert_ok(&env.vaten(
        "2026-10-28T08:40:00Z",
        &["report", "yearly", "--year", "2026"],
    ));
    let after = std::fs::read_to_string(dir.join("P0001.html")).unwrap();
    let note = "Restated: this version, as of 2026-10-28, replaces the one as of 2026-10-26";
    assert!(after.contains(note), "{after}");
    assert!(std::fs::read_to_string(&yearly).unwrap().contains(note));
    // The note names an amount that changed, with the value the earlier file showed.
    let l_before = before
        .split("data-figure=\"month.10.l_wh\" data-value=\"")
        .nth(1)
        .and_then(|rest| rest.split('>').nth(1))
        .and_then(|rest| rest.split('<').next())
        .unwrap()
        .to_string();
    assert!(
        after.contains(&format!("month.10.l_wh: {l_before} before")),
        "{after}"
    );
    check(
        &env,
        &[
            "statement",
            "2026",
            dir.join("P0001.html").to_str().unwrap(),
            "P0001",
        ],
    );

    // A real browser: the charts are in the rendered DOM.
    let dom = render(&yearly, "yearly-2026.png");
    assert!(dom.contains("Energy report 2026"));
    assert!(charts_in(&dom) >= 1, "the monthly chart");
    let dom = render(&dir.join("P0001.html"), "statement-P0001.png");
    assert!(charts_in(&dom) >= 1, "the participant's chart");
    assert!(dom.contains("Your energy in 2026"));
}

#[test]
fn a_year_without_rates_says_so_instead_of_zero() {
    let (reg, mut meters) = cooperative(5);
    let env = Env::new(&reg);
    let dates = dates_ending(d("2027-01-03"), 2);
    env.server
        .push(feed(&mut meters, &dates, vaten::domain::time::AMSTERDAM, 1));
    assert_ok(&env.vaten("2027-01-04T09:00:00Z", &["ingest", "grid"]));
    assert_ok(&env.vaten("2027-01-04T09:10:00Z", &["transform"]));
    assert_ok(&env.vaten(
        "2027-01-04T09:20:00Z",
        &["report", "yearly", "--year", "2027"],
    ));
    let reports = env.dir.path().join("data/reports");
    let yearly = reports.join("yearly/2027/index.html");
    check(&env, &["yearly", "2027", yearly.to_str().unwrap()]);
    let html = std::fs::read_to_string(&yearly).unwrap();
    assert!(html
        .contains("data-figure=\"totals.exemption_saving_ct\" data-value=\"null\">not computed<"));
    assert!(html.contains("No energy-tax rates for 2027"));
}

/// Every published figure of one quantity, alone or added to and subtracted from the others
/// (totals, cables, "other cables", months; of two consecutive years), describes at least 5
/// connections. Before, the totals minus the named cables gave the hidden small cable, and a
/// month with few connections was published as it was.
#[test]
fn public_figures_never_describe_fewer_than_five_connections_even_by_subtraction() {
    use polars::prelude::*;
    let fake = FakeInstallations::spawn().unwrap();
    let (mut reg, mut meters) = cooperative_with_small_cable(&fake);
    // Ten of the 14 join in December: November has 4 connections with data.
    for c in &mut reg.connections[4..] {
        c.member_from = Some(d("2026-12-01"));
    }
    let reg = Registry::new(reg.connections, reg.cables);
    let env = Env::new(&reg);
    env.with_tokens(&[("inst-0", "tok"), ("inst-7", "tok")]);
    let dates = dates_ending(d("2027-01-02"), 35);
    env.server
        .push(feed(&mut meters, &dates, vaten::domain::time::AMSTERDAM, 5));
    assert_ok(&env.vaten("2027-01-03T09:00:00Z", &["ingest", "grid"]));
    assert_ok(&env.vaten("2027-01-03T09:10:00Z", &["transform"]));
    let reports = env.dir.path().join("data/reports");
    // (year, key) → figure keys of l_wh in that year's public report.
    let mut figures: Vec<(i32, String)> = Vec::new();
    for year in [2026, 2027] {
        assert_ok(&env.vaten(
            "2027-01-03T09:20:00Z",
            &["report", "yearly", "--year", &year.to_string()],
        ));
        let html =
            std::fs::read_to_string(reports.join(format!("yearly/{year}/index.html"))).unwrap();
        for part in html.split("data-figure=\"").skip(1) {
            let key = part.split('"').next().unwrap();
            if key.ends_with(".l_wh") {
                figures.push((year, key.to_string()));
            }
        }
    }
    assert!(figures
        .iter()
        .any(|(y, k)| *y == 2026 && k == "totals.l_wh"));
    assert!(
        !figures
            .iter()
            .any(|(y, k)| *y == 2026 && k.starts_with("month.")),
        "November has 4 connections: no month of 2026 is published"
    );
    assert!(figures
        .iter()
        .any(|(y, k)| *y == 2027 && k == "month.01.l_wh"));
    // The units a figure adds up: (connection, year, month) with data.
    let daily = env
        .lake()
        .read_table(&vaten::lake::schema::CONSUMPTION_DAILY)
        .unwrap();
    let ean = daily.column("ean").unwrap().str().unwrap().clone();
    let date = daily
        .column("date")
        .unwrap()
        .cast(&DataType::String)
        .unwrap();
    let date = date.str().unwrap();
    let units: Vec<(String, i32, u32)> = (0..daily.height())
        .map(|i| {
            let day = date.get(i).unwrap();
            (
                ean.get(i).unwrap().to_string(),
                day[..4].parse().unwrap(),
                day[5..7].parse().unwrap(),
            )
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let cable_of = |e: &str| reg.connection(e).unwrap().cable_id.clone();
    let named: Vec<(i32, String)> = figures
        .iter()
        .filter_map(|(y, k)| {
            let c = k.strip_prefix("cable.")?.strip_suffix(".l_wh")?;
            (c != "other cables").then(|| (*y, c.to_string()))
        })
        .collect();
    let member = |(year, key): &(i32, String), (e, y, m): &(String, i32, u32)| -> i64 {
        if y != year {
            return 0;
        }
        let inside = if key == "totals.l_wh" {
            true
        } else if let Some(month) = key.strip_prefix("month.") {
            month[..2].parse::<u32>().unwrap() == *m
        } else if key == "cable.other cables.l_wh" {
            !named.contains(&(*y, cable_of(e)))
        } else {
            let c = key
                .strip_prefix("cable.")
                .unwrap()
                .strip_suffix(".l_wh")
                .unwrap();
            cable_of(e) == c
        };
        i64::from(inside)
    };
    let matrix: Vec<Vec<i64>> = figures
        .iter()
        .map(|f| units.iter().map(|u| member(f, u)).collect())
        .collect();
    // Every combination with coefficients −1, 0, +1.
    let n = figures.len();
    assert!(n <= 12, "{figures:?}");
    let mut combo = vec![-1i64; n];
    loop {
        let sums: Vec<i64> = (0..units.len())
            .map(|u| (0..n).map(|f| combo[f] * matrix[f][u]).sum())
            .collect();
        let ones =
            sums.iter().all(|s| *s == 0 || *s == 1) || sums.iter().all(|s| *s == 0 || *s == -1);
        let people: std::collections::BTreeSet<&str> = units
            .iter()
            .zip(&sums)
            .filter(|(_, s)| **s != 0)
            .map(|(u, _)| u.0.as_str())
            .collect();
        assert!(
            !(ones && (1..5).contains(&people.len())),
            "{} connections isolated by {:?}",
            people.len(),
            figures
                .iter()
                .zip(&combo)
                .filter(|(_, c)| **c != 0)
                .collect::<Vec<_>>()
        );
        // Next combination (base 3 counter over −1, 0, 1).
        let mut i = 0;
        while i < n && combo[i] == 1 {
            combo[i] = -1;
            i += 1;
        }
        if i == n {
            break;
        }
        combo[i] += 1;
    }
}
