//! `vaten erase --participant P`: their rows leave every table (payloads and run messages
//! included) but the yearly tax rows kept by law; a feed still carrying their EAN stores
//! nothing of it; their statements go; everyone else's rows stay exactly as they were; a
//! SIGKILL during the erasure leaves the old or the new lake. DuckDB does the looking.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use vaten::fake::{FakeInstallations, FeedEntry};
use vaten::registry::Installation;

use crate::common::*;
use crate::feeds::*;

const NOW: &str = "2026-10-27T10:00:00Z";

/// Per table: rows naming P0 (EAN_A or inst-a), and a digest of all other rows (of `_runs`
/// without the records of the erasures and of the transforms this test runs between them).
fn census(env: &Env) -> serde_json::Map<String, Value> {
    let lake = env.lake_dir();
    let script = format!(
        r#"
import duckdb, glob, json, hashlib
lake = {lake:?}
ids = ["{EAN_A}", "inst-a"]
out = {{}}
for table in ["grid_readings", "grid_days", "installation_readings", "installation_gaps",
              "rejected", "intervals", "consumption_daily", "tax_base_yearly",
              "cable_balance_15m", "cable_balance_daily", "_runs"]:
    files = glob.glob(f"{{lake}}/{{table}}/**/*.parquet", recursive=True)
    if not files:
        out[table] = [0, "0:" + hashlib.sha256(repr([]).encode()).hexdigest()]
        continue
    rel = duckdb.read_parquet(files, hive_partitioning=True, union_by_name=True)
    cols = rel.columns
    conds = [f"{{c}} IN ('{{ids[0]}}', '{{ids[1]}}')" for c in ["ean", "installation_id", "key"] if c in cols]
    conds += [f"contains({{c}}, '{{i}}')" for c in ["payload", "message", "detail"] if c in cols for i in ids]
    theirs = " OR ".join(conds) if conds else "false"
    n = duckdb.sql(f"SELECT count(*) FROM rel WHERE {{theirs}}").fetchall()[0][0]
    other = f"NOT ({{theirs}})" + (" AND job NOT IN ('erase', 'transform')" if table == "_runs" else "")
    rows = duckdb.sql(f"SELECT * FROM rel WHERE {{other}}").fetchall()
    digest = hashlib.sha256(repr(sorted(map(repr, rows))).encode()).hexdigest()
    out[table] = [n, f"{{len(rows)}}:{{digest}}"]
print(json.dumps(out))
"#
    );
    let run = Command::new(crate::tools::python())
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    serde_json::from_slice::<Value>(&run.stdout)
        .unwrap()
        .as_object()
        .unwrap()
        .clone()
}

fn theirs(c: &serde_json::Map<String, Value>, table: &str) -> i64 {
    c[table][0].as_i64().unwrap()
}

#[test]
fn erasure_removes_a_participant_everywhere_but_the_kept_tax_rows() {
    let fake = FakeInstallations::spawn().unwrap();
    fake.add("inst-a", EAN_A, "tok", "SDM120-A");
    fake.produce("inst-a", "2026-10-25T22:15:00Z".parse().unwrap(), 96, 1);
    let mut reg = registry(&[EAN_A, EAN_B, EAN_C, EAN_D]);
    reg.connections[0].installation = Some(Installation {
        id: "inst-a".into(),
        url: fake.url("inst-a"),
    });
    let env = Env::new(&reg);
    env.with_tokens(&[("inst-a", "tok")]);
    let mut meters = [
        meter(EAN_A, "MA1", 100_000, true),
        meter(EAN_B, "MB1", 200_000, true),
        meter(EAN_C, "MC1", 300_000, false),
        meter(EAN_D, "MD1", 400_000, false),
    ];
    for m in &mut meters {
        env.server.push([
            day(m, "2026-10-26"),
            FeedEntry::interval(intervals(m, "2026-10-26")),
        ]);
    }
    // A rejected row naming A (a day in the future).
    let mut future = intervals(&mut meters[0].clone(), "2026-10-26");
    future["query_date"] = "2026-12-01".into();
    env.server.push([FeedEntry::interval(future)]);
    assert_ok(&env.vaten(NOW, &["ingest"]));
    assert_ok(&env.vaten(NOW, &["transform"]));
    assert_ok(&env.vaten(NOW, &["report", "yearly", "--year", "2026"]));
    let statements = env.dir.path().join("data/reports/private/statements/2026");
    assert!(statements.join("P0.html").is_file());

    let before = census(&env);
    for table in [
        "grid_readings",
        "installation_readings",
        "rejected",
        "intervals",
        "tax_base_yearly",
    ] {
        assert!(theirs(&before, table) > 0, "{table} holds A's rows before");
    }

    // Killed at different moments, the lake the next command sees is the old or the new one.
    for delay_ms in [0u64, 20, 60, 120] {
        let mut child = env
            .command(NOW, &["erase", "--participant", "P0"])
            .stderr(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
        // The next command completes or rolls back what the killed one left.
        assert_ok(&env.vaten(NOW, &["transform"]));
        let seen = census(&env);
        let readings = theirs(&seen, "grid_readings");
        let old = readings == theirs(&before, "grid_readings");
        assert!(old || readings == 0, "half an erasure: {readings} readings");
        for table in [
            "installation_readings",
            "rejected",
            "intervals",
            "grid_days",
        ] {
            let expected = if old { theirs(&before, table) } else { 0 };
            assert_eq!(
                theirs(&seen, table),
                expected,
                "{table} after a kill at {delay_ms} ms"
            );
        }
    }

    let run = env.vaten(NOW, &["erase", "--participant", "P0"]);
    assert_ok(&run);
    let after = census(&env);
    for table in [
        "grid_readings",
        "grid_days",
        "installation_readings",
        "installation_gaps",
        "rejected",
        "intervals",
        "consumption_daily",
        "_runs",
    ] {
        assert_eq!(theirs(&after, table), 0, "{table} still names A");
    }
    // Kept by design: the yearly tax figures (2026 lies within the last seven years).
    assert_eq!(
        theirs(&after, "tax_base_yearly"),
        theirs(&before, "tax_base_yearly")
    );
    // Everybody else's rows, and the cable sums, exactly as before.
    for (table, v) in &before {
        assert_eq!(after[table][1], v[1], "{table}: others' rows changed");
    }
    assert!(!statements.join("P0.html").exists());
    assert!(statements.join("P1.html").is_file());
    // The erasure is recorded, without naming anyone; the lake keeps no EAN of A anywhere in
    // its state either.
    let runs = Command::new(crate::tools::python())
        .args([
            "-c",
            &format!(
                "import duckdb; print(duckdb.sql(\"SELECT count(*) FROM read_parquet('{}/_runs/*.parquet') WHERE job = 'erase' AND status = 'ok'\").fetchall()[0][0])",
                env.lake_dir().display()
            ),
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&runs.stdout)
            .trim()
            .parse::<i64>()
            .unwrap()
            >= 1
    );
    for f in std::fs::read_dir(env.lake_dir().join("_state")).unwrap() {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
        assert!(!text.contains(EAN_A) && !text.contains("inst-a"), "{text}");
    }

    // The feed goes on carrying A (the registry still lists them): nothing of it is stored;
    // B's new day is.
    for m in &mut meters {
        env.server
            .push([FeedEntry::interval(intervals(m, "2026-10-27"))]);
    }
    fake.produce("inst-a", "2026-10-26T22:15:00Z".parse().unwrap(), 8, 1);
    assert_ok(&env.vaten("2026-10-28T10:00:00Z", &["ingest"]));
    assert_ok(&env.vaten("2026-10-28T10:00:00Z", &["transform"]));
    let later = census(&env);
    for table in [
        "grid_readings",
        "installation_readings",
        "rejected",
        "intervals",
        "_runs",
    ] {
        assert_eq!(theirs(&later, table), 0, "{table} stored A again");
    }
    assert_ne!(
        later["grid_readings"][1], after["grid_readings"][1],
        "B's new day is stored"
    );
}
