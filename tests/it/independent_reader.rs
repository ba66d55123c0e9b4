//! An independent reader (pyarrow, set up by the tests themselves) opens every table written and finds
//! the columns and types that `docs/data-dictionary.md` promises.

use std::process::Command;

use vaten::fake::FeedEntry;

use crate::common::*;
use crate::feeds::*;

#[test]
fn pyarrow_finds_the_data_dictionary_schema() {
    let env = Env::new(&registry(&[EAN_A]));
    let mut a = meter(EAN_A, "MA1", 100_000, true);
    env.server.push([
        day(&a, "2026-10-26"),
        FeedEntry::interval(intervals(&mut a, "2026-10-26")),
    ]);
    let mut stranger = meter(EAN_D, "MD1", 1, false);
    env.server
        .push([FeedEntry::interval(intervals(&mut stranger, "2026-10-26"))]);
    assert_ok(&env.vaten("2026-10-28T10:00:00Z", &["ingest", "grid"]));
    // One installation with two readings, one of them without voltage (nullable columns).
    let fake = vaten::fake::FakeInstallations::spawn().unwrap();
    fake.add("inst-1", EAN_A, "tok", "SDM120-1");
    fake.produce("inst-1", "2026-10-26T10:00:00Z".parse().unwrap(), 2, 1);
    fake.push_register("inst-1", "2026-10-26T10:30:00Z".parse().unwrap(), 2_000_000);
    let mut reg = registry(&[EAN_A]);
    reg.connections[0].installation = Some(vaten::registry::Installation {
        id: "inst-1".into(),
        url: fake.url("inst-1"),
    });
    env.set_registry(&reg);
    env.with_tokens(&[("inst-1", "tok")]);
    assert_ok(&env.vaten("2026-10-28T10:00:00Z", &["ingest", "installations"]));
    assert_ok(&env.vaten("2026-10-28T10:00:00Z", &["transform"]));

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/check_lake_schema.py");
    let dictionary = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/data-dictionary.md");
    let out = Command::new(crate::tools::python())
        .arg(script)
        .arg(env.lake_dir())
        .arg(dictionary)
        .args([
            "grid_readings",
            "grid_days",
            "installation_readings",
            "rejected",
            "intervals",
            "consumption_daily",
            "tax_base_yearly",
            "cable_balance_15m",
            "cable_balance_daily",
            "_runs",
        ])
        .output()
        .expect("the tests' Python runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "independent check failed:\n{text}");
    // The partition lines of the dictionary are read (before a fix they never were).
    assert!(
        text.contains("checked 10 tables (8 with hive partitions: grid_readings, grid_days, installation_readings, rejected, intervals, consumption_daily, cable_balance_15m, cable_balance_daily)"),
        "{text}"
    );

    // A file in a partition folder of the wrong form makes the check fail.
    let day = env.lake_dir().join("intervals/date=2026-10-26");
    let file = std::fs::read_dir(&day)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let wrong = env.lake_dir().join("intervals/date=26-10-2026");
    std::fs::create_dir_all(&wrong).unwrap();
    std::fs::rename(&file, wrong.join(file.file_name().unwrap())).unwrap();
    let out = Command::new(crate::tools::python())
        .arg(script)
        .arg(env.lake_dir())
        .arg(dictionary)
        .arg("intervals")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("intervals: date=26-10-2026/") && text.contains("not under a date= folder"),
        "{text}"
    );
}
