//! `vaten publish` and the federation's Spark job: three demo cooperatives publish their
//! aggregates into one shared folder, Spark (local mode) adds them up per cooperative and
//! month, and DuckDB, from each cooperative's own lake, checks both and finds no household.

use std::path::Path;
use std::process::Command;

use crate::common::*;

/// Long after the demo's last day: every day has settled.
const NOW: &str = "2026-09-01T10:00:00Z";

fn vaten(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vaten"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("VATEN_CONFIG")
        .output()
        .unwrap()
}

#[test]
fn three_cooperatives_share_aggregates_and_spark_adds_them_up_to_the_wh() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("federation");
    let mut coops = Vec::new();
    // 30 connections on 3 cables (10 each, a group each); 13 (5 on K1, its own group; 4 and
    // 4 on K2 and K3, together "other cables").
    for (coop, seed, region, connections) in [
        ("coop-a", "1", "Noord", "30"),
        ("coop-b", "2", "Noord", "30"),
        ("coop-c", "3", "Zuid", "13"),
    ] {
        let demo = dir.path().join(coop);
        let out = Command::new(env!("CARGO_BIN_EXE_vaten"))
            .args(["demo", "--dir"])
            .arg(&demo)
            .args([
                "--days",
                "9",
                "--connections",
                connections,
                "--end",
                "2026-07-03",
                "--seed",
                seed,
            ])
            .env_remove("VATEN_CONFIG")
            .output()
            .unwrap();
        assert_ok(&out);
        let config = demo.join("vaten.toml");
        let mut text = std::fs::read_to_string(&config).unwrap();
        text += &format!("\n[federation]\ncoop_id = \"{coop}\"\nregion = \"{region}\"\n");
        std::fs::write(&config, text).unwrap();
        let published = vaten(
            &config,
            &["--now", NOW, "publish", "--out", shared.to_str().unwrap()],
        );
        assert_ok(&published);
        assert!(
            String::from_utf8_lossy(&published.stdout).contains("published"),
            "{}",
            String::from_utf8_lossy(&published.stdout)
        );
        coops.push(format!(
            "{coop}={}={}",
            demo.join("lake").display(),
            demo.join("registry").display()
        ));
    }
    assert_eq!(
        std::fs::read_dir(&shared).unwrap().count(),
        3,
        "coop=coop-a, -b, -c"
    );
    // A month is published once its last day has settled ([federation] settle_days, 10 by
    // default), all its days at once: on 9 July nothing (30 June + 10 is 10 July), on
    // 10 July June's six days, and July's three only after 10 August.
    let early = dir.path().join("early");
    let publish_at = |now: &str| {
        let out = vaten(
            &dir.path().join("coop-b/vaten.toml"),
            &["--now", now, "publish", "--out", early.to_str().unwrap()],
        );
        assert_ok(&out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let said = publish_at("2026-07-09T12:00:00Z");
    assert!(said.contains("no new settled day"), "{said}");
    let said = publish_at("2026-07-10T12:00:00Z");
    assert!(
        said.contains("published 6 days, 2026-06-25 to 2026-06-30"),
        "{said}"
    );
    let said = publish_at("2026-08-09T12:00:00Z");
    assert!(said.contains("no new settled day"), "{said}");
    let said = publish_at("2026-08-10T12:00:00Z");
    assert!(
        said.contains("published 3 days, 2026-07-01 to 2026-07-03"),
        "{said}"
    );

    // Spark in local mode over the shared folder.
    let java = crate::tools::java();
    let spark_out = dir.path().join("spark");
    let out = Command::new(crate::tools::python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/pipelines/federation/monthly.py"
        ))
        .arg(&shared)
        .arg(&spark_out)
        .env("SPARK_MASTER", "local[2]")
        .env("JAVA_HOME", java.parent().unwrap().parent().unwrap())
        .env("PYSPARK_PYTHON", crate::tools::python())
        .output()
        .unwrap();
    assert!(out.status.success(), "Spark failed:\n{}", stderr(&out));

    // DuckDB from each cooperative's own lake: the shared rows follow the rule, Spark's
    // months equal the sums, and no identifier of a household is anywhere.
    let check = Command::new(crate::tools::python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/check_federation.py"
        ))
        .arg(&shared)
        .arg(&spark_out)
        .args(&coops)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        stderr(&check)
    );
    assert!(check.status.success(), "{text}");
    // The check compared something: every cooperative's rows and months; coop-c has the
    // pooled group; the rule withheld figures and shared others.
    for coop in ["coop-a", "coop-b", "coop-c"] {
        assert!(
            text.contains(&format!("{coop}: 2 months compared with Spark")),
            "{text}"
        );
    }
    assert!(text.contains("scopes ['K1', 'other cables']"), "{text}");
    // coop-c's pooled group: T withheld on some days, shared on others, and per quarter-hour
    // on fewer days still; nowhere a figure of 1 to 4 contributors.
    assert!(
        text.contains("coop-c: shared figures with 1 to 4 contributors: 0; group-days with T withheld 9, shared 9"),
        "{text}"
    );
    for coop in ["coop-a", "coop-b"] {
        assert!(
            text.contains(&format!(
                "{coop}: shared figures with 1 to 4 contributors: 0;"
            )),
            "{text}"
        );
    }
    assert!(text.contains(": 0 columns hold one"), "{text}");

    // A published day is never written again, not even after the lake changed (here: a
    // participant erased, whose quarter-hours would otherwise show by subtraction).
    let config = dir.path().join("coop-a/vaten.toml");
    let day = shared.join("coop=coop-a/quarter_hours/date=2026-06-28/part-0.parquet");
    let before = std::fs::read(&day).unwrap();
    assert_ok(&vaten(
        &config,
        &["--now", NOW, "erase", "--participant", "P0001"],
    ));
    assert_ok(&vaten(&config, &["--now", NOW, "transform"]));
    let again = vaten(
        &config,
        &["--now", NOW, "publish", "--out", shared.to_str().unwrap()],
    );
    assert_ok(&again);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("no new settled day"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    assert_eq!(std::fs::read(&day).unwrap(), before);
}
