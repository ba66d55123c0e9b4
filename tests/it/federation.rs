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
    // Straight into a bucket (moto on 127.0.0.1): the same files, byte for byte, as in the
    // folder. Published again from a machine without the outbox, nothing is rewritten.
    let config_a = dir.path().join("coop-a/vaten.toml");
    let mut text = std::fs::read_to_string(&config_a).unwrap();
    text += &format!(
        "[federation.s3]\nendpoint = \"{}\"\n",
        crate::s3::endpoint()
    );
    std::fs::write(&config_a, text).unwrap();
    let bucket = crate::s3::new_bucket();
    let url = format!("s3://{bucket}/shared");
    let publish_to_bucket = || {
        Command::new(env!("CARGO_BIN_EXE_vaten"))
            .arg("--config")
            .arg(&config_a)
            .args(["--now", NOW, "publish", "--out", &url])
            .env_remove("VATEN_CONFIG")
            .env("AWS_ACCESS_KEY_ID", crate::s3::ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", crate::s3::SECRET_KEY)
            .env("AWS_REGION", "us-east-1")
            .output()
            .unwrap()
    };
    let to_bucket = || {
        let out = publish_to_bucket();
        assert_ok(&out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let folder_a = shared.join("coop=coop-a");
    let expected_files = files_below(&folder_a);
    assert!(expected_files.len() > 10, "{expected_files:?}");
    // Both months of the data are marked whole.
    for m in ["2026-06", "2026-07"] {
        assert!(
            expected_files.contains(&Path::new("_complete").join(m)),
            "{expected_files:?}"
        );
    }
    let same_as_folder = |copy: &Path| {
        let got = copy.join("coop=coop-a");
        assert_eq!(files_below(&got), expected_files);
        for f in &expected_files {
            assert_eq!(
                std::fs::read(got.join(f)).unwrap(),
                std::fs::read(folder_a.join(f)).unwrap(),
                "{}",
                f.display()
            );
        }
    };
    let bucket_copy = |n: &str| {
        let to = dir.path().join(format!("bucket-{n}"));
        crate::s3::download(&bucket, "shared", &to);
        to
    };
    let said = to_bucket();
    assert!(
        said.contains(&format!(
            "uploaded {} files to {url}/coop=coop-a (0 already there",
            expected_files.len() - 1
        )),
        "{said}"
    );
    same_as_folder(&bucket_copy("1"));
    // A new machine (no outbox): the complete months count as published; only the months file,
    // a sum over the published days, is written again (the same bytes).
    let outbox = dir.path().join("coop-a/.vaten-cache/federation");
    std::fs::remove_dir_all(&outbox).unwrap();
    let said = to_bucket();
    assert!(said.contains("no new settled day"), "{said}");
    assert!(
        said.contains(&format!(
            "uploaded 0 files to {url}/coop=coop-a (0 already there"
        )),
        "{said}"
    );
    same_as_folder(&bucket_copy("2"));
    // An upload cut short on a machine since lost: July without its marker and without its
    // quarter-hours. A new machine computes July again; it comes out the same and completes.
    let july_quarters: Vec<_> = expected_files
        .iter()
        .filter(|f| f.starts_with("quarter_hours") && f.to_string_lossy().contains("date=2026-07"))
        .collect();
    assert_eq!(july_quarters.len(), 3, "{expected_files:?}");
    crate::s3::set(&bucket, "shared/coop=coop-a/_complete/2026-07", None);
    for f in &july_quarters {
        crate::s3::set(
            &bucket,
            &format!("shared/coop=coop-a/{}", f.display()),
            None,
        );
    }
    std::fs::remove_dir_all(&outbox).unwrap();
    let said = to_bucket();
    assert!(
        said.contains("published 3 days, 2026-07-01 to 2026-07-03"),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "uploaded 4 files to {url}/coop=coop-a (3 already there"
        )),
        "{said}"
    );
    same_as_folder(&bucket_copy("3"));
    // A July day in the bucket that is not what the lake gives (another computation): July is
    // refused, nothing of it overwritten, no marker; June, cut short too, is completed all the
    // same; the months file is not replaced while a month is refused.
    let day = "shared/coop=coop-a/days/date=2026-07-02/part-0.parquet";
    let months_key = "shared/coop=coop-a/months/part-0.parquet";
    crate::s3::set(&bucket, "shared/coop=coop-a/_complete/2026-07", None);
    crate::s3::set(&bucket, day, Some(b"another computation"));
    crate::s3::set(&bucket, "shared/coop=coop-a/_complete/2026-06", None);
    crate::s3::set(
        &bucket,
        "shared/coop=coop-a/quarter_hours/date=2026-06-27/part-0.parquet",
        None,
    );
    crate::s3::set(&bucket, months_key, Some(b"old months"));
    std::fs::remove_dir_all(&outbox).unwrap();
    let refused = publish_to_bucket();
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains(
            "another publication of 2026-07 (coop=coop-a/days/date=2026-07-02/part-0.parquet differs)"
        ),
        "{}",
        stderr(&refused)
    );
    let after = bucket_copy("4");
    assert_eq!(
        std::fs::read(after.join("coop=coop-a/days/date=2026-07-02/part-0.parquet")).unwrap(),
        b"another computation"
    );
    assert!(!after.join("coop=coop-a/_complete/2026-07").exists());
    assert!(after.join("coop=coop-a/_complete/2026-06").exists());
    let june_27 = "coop=coop-a/quarter_hours/date=2026-06-27/part-0.parquet";
    assert_eq!(
        std::fs::read(after.join(june_27)).unwrap(),
        std::fs::read(shared.join(june_27)).unwrap()
    );
    assert_eq!(
        std::fs::read(after.join("coop=coop-a/months/part-0.parquet")).unwrap(),
        b"old months"
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
    // A run killed between two days of July: the month has no marker and lacks a day. The next
    // run computes July again; the days there come out the same, the missing one is added.
    let b = early.join("coop=coop-b");
    let july_2 = b.join("days/date=2026-07-02/part-0.parquet");
    let kept = std::fs::read(&july_2).unwrap();
    let before = files_below(&b);
    std::fs::remove_file(b.join("_complete/2026-07")).unwrap();
    std::fs::remove_dir_all(b.join("days/date=2026-07-03")).unwrap();
    std::fs::remove_dir_all(b.join("quarter_hours/date=2026-07-03")).unwrap();
    let said = publish_at("2026-08-10T12:00:00Z");
    assert!(said.contains("published 2026-07-03"), "{said}");
    assert!(said.contains("8 settled days published before"), "{said}");
    assert_eq!(files_below(&b), before);
    // A July day from another computation, its month unmarked: refused, nothing replaced.
    std::fs::remove_file(b.join("_complete/2026-07")).unwrap();
    std::fs::write(&july_2, b"another computation").unwrap();
    let refused = vaten(
        &dir.path().join("coop-b/vaten.toml"),
        &[
            "--now",
            "2026-08-10T12:00:00Z",
            "publish",
            "--out",
            early.to_str().unwrap(),
        ],
    );
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("published before with other figures"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(std::fs::read(&july_2).unwrap(), b"another computation");
    assert!(!b.join("_complete/2026-07").exists());
    std::fs::write(&july_2, kept).unwrap();
    // A folder published by the version before the markers (days, no `_complete/`): its
    // months were whole, so they are adopted as published, not computed again.
    std::fs::remove_dir_all(b.join("_complete")).unwrap();
    let said = publish_at("2026-08-10T12:00:00Z");
    assert!(said.contains("no new settled day"), "{said}");
    assert_eq!(files_below(&b), before);

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
