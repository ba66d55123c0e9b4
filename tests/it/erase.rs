//! `vaten erase --participant P`: their rows leave every table (payloads and run messages
//! included) but the yearly tax rows kept by law; a feed still carrying their EAN stores
//! nothing of it; their statements go; everyone else's rows stay exactly as they were; a
//! SIGKILL during the erasure leaves the old or the new lake. DuckDB does the looking.

use std::process::Command;

use serde_json::Value;
use vaten::fake::{Behaviour, FakeInstallations, FeedEntry};
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
    # Of `_runs`, also the records an erasure redacted: before it they were A's.
    other = f"NOT ({{theirs}})" + (" AND job NOT IN ('erase', 'transform') AND NOT contains(message, '[erased]')" if table == "_runs" else "")
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
    fake.add("inst-b", EAN_B, "tok-b", "SDM120-B");
    fake.produce("inst-a", "2026-10-25T22:15:00Z".parse().unwrap(), 96, 1);
    fake.produce("inst-b", "2026-10-25T22:15:00Z".parse().unwrap(), 96, 2);
    let mut reg = registry(&[EAN_A, EAN_B, EAN_C, EAN_D]);
    for (i, id) in [(0, "inst-a"), (1, "inst-b")] {
        reg.connections[i].installation = Some(Installation {
            id: id.into(),
            url: fake.url(id),
        });
    }
    let env = Env::new(&reg);
    env.with_tokens(&[("inst-a", "tok"), ("inst-b", "tok-b")]);
    // A run whose message names A's installation and B's: the record stays, A leaves it.
    fake.set_behaviour("inst-a", Behaviour::WrongToken);
    fake.set_behaviour("inst-b", Behaviour::WrongToken);
    assert_ok(&env.vaten(NOW, &["ingest", "installations"]));
    fake.set_behaviour("inst-a", Behaviour::Healthy);
    fake.set_behaviour("inst-b", Behaviour::Healthy);
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

    // Killed with everything staged but the journal not in place: the next command rolls
    // back to the old lake. Killed right after the journal's rename: it completes the new one.
    let crashed = env
        .command(NOW, &["erase", "--participant", "P0"])
        .env("VATEN_INJECT_FAULT", "crash:staged")
        .output()
        .unwrap();
    assert!(!crashed.status.success());
    assert_ok(&env.vaten(NOW, &["transform"]));
    let seen = census(&env);
    for (table, v) in &before {
        assert_eq!(seen[table][0], v[0], "{table}: rolled back to the old lake");
        assert_eq!(seen[table][1], v[1], "{table}: rolled back to the old lake");
    }
    let crashed = env
        .command(NOW, &["erase", "--participant", "P0"])
        .env("VATEN_INJECT_FAULT", "crash:journal")
        .output()
        .unwrap();
    assert!(!crashed.status.success());
    assert!(env
        .lake_dir()
        .join("_journal")
        .read_dir()
        .unwrap()
        .next()
        .is_some());
    assert_ok(&env.vaten(NOW, &["transform"]));
    let seen = census(&env);
    for table in [
        "grid_readings",
        "installation_readings",
        "rejected",
        "intervals",
    ] {
        assert_eq!(
            theirs(&seen, table),
            0,
            "{table}: completed to the new lake"
        );
    }
    // The statement outlived the crash; the erasure run again finishes the work.
    assert!(statements.join("P0.html").is_file());

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
    assert!(theirs(&before, "_runs") > 0, "a run message named A before");
    let redacted = Command::new(crate::tools::python())
        .args([
            "-c",
            &format!(
                "import duckdb; print(duckdb.sql(\"SELECT message FROM read_parquet('{}/_runs/*.parquet') WHERE contains(message, '[erased]')\").fetchall())",
                env.lake_dir().display()
            ),
        ])
        .output()
        .unwrap();
    let redacted = String::from_utf8_lossy(&redacted.stdout);
    assert!(
        redacted.contains("[erased]: ") && redacted.contains("inst-b: "),
        "{redacted}"
    );
    assert!(!statements.join("P0.html").exists());
    assert!(statements.join("P1.html").is_file());
    // The kept tax rows make no statement again.
    assert_ok(&env.vaten(NOW, &["report", "yearly", "--year", "2026"]));
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
    // The transform recomputed A's cable: the tax rows kept by law stay, also after a full
    // recompute.
    assert_eq!(
        theirs(&later, "tax_base_yearly"),
        theirs(&before, "tax_base_yearly")
    );
    assert_ok(&env.vaten("2026-10-28T10:00:00Z", &["transform", "--full"]));
    assert_eq!(
        theirs(&census(&env), "tax_base_yearly"),
        theirs(&before, "tax_base_yearly")
    );
}
