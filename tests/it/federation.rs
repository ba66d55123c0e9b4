//! `vaten publish` and the federation's Spark job: three demo cooperatives publish their
//! aggregates into one shared folder, Spark (local mode) adds them up per cooperative and
//! month, and DuckDB, from each cooperative's own lake, checks both and finds no household.

use std::path::Path;
use std::process::Command;

use crate::common::*;

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
    for (coop, seed, region) in [
        ("coop-a", "1", "Noord"),
        ("coop-b", "2", "Noord"),
        ("coop-c", "3", "Zuid"),
    ] {
        let demo = dir.path().join(coop);
        // 15 connections on 3 cables: every cable has 5, a group of its own.
        let out = Command::new(env!("CARGO_BIN_EXE_vaten"))
            .args(["demo", "--dir"])
            .arg(&demo)
            .args([
                "--days",
                "9",
                "--connections",
                "15",
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
        let published = vaten(&config, &["publish", "--out", shared.to_str().unwrap()]);
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
    // Publishing again replaces the cooperative's folder: the same files, nothing beside.
    let before = std::fs::read_dir(&shared).unwrap().count();
    let config = dir.path().join("coop-a/vaten.toml");
    assert_ok(&vaten(
        &config,
        &["publish", "--out", shared.to_str().unwrap()],
    ));
    assert_eq!(std::fs::read_dir(&shared).unwrap().count(), before);
    assert_eq!(before, 3, "coop=coop-a, coop=coop-b, coop=coop-c");

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
    // The check compared something: every cooperative's rows and months, and some figure
    // was withheld while others were shown (the rule did work both ways).
    for coop in ["coop-a", "coop-b", "coop-c"] {
        assert!(
            text.contains(&format!("{coop}: 2 months compared with Spark")),
            "{text}"
        );
    }
    assert!(
        text.contains("T withheld in") && !text.contains("T withheld in 0,"),
        "{text}"
    );
    assert!(text.contains(": 0 columns hold one"), "{text}");
}
