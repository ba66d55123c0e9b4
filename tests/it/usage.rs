//! Configuration and registry errors: exit 2, naming file, line and problem.

use crate::common::*;

const NOW: &str = "2026-11-20T10:00:00Z";

fn refused(env: &Env) -> String {
    let out = env.vaten(NOW, &["ingest", "grid"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(env.server.requests(), 0, "nothing was fetched");
    stderr(&out)
}

fn write_connections(env: &Env, body: &str) -> String {
    let path = env.dir.path().join("registry/connections.csv");
    std::fs::write(
        &path,
        format!("ean,participant_id,cable_id,installation_id,installation_url\n{body}"),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn bad_check_digit_is_refused_with_file_and_line() {
    let env = Env::new(&registry(&[EAN_A]));
    let f = write_connections(
        &env,
        &format!("{EAN_A},P1,K1,,\n871687120000000029,P2,K1,,\n"),
    );
    let err = refused(&env);
    assert!(
        err.contains(&format!(
            "{f}:3: EAN `871687120000000029` has check digit 9, expected 8"
        )),
        "{err}"
    );
}

#[test]
fn duplicate_ean_is_refused_with_file_and_line() {
    let env = Env::new(&registry(&[EAN_A]));
    let f = write_connections(
        &env,
        &format!("{EAN_A},P1,K1,,\n{EAN_B},P2,K1,,\n{EAN_A},P3,K1,,\n"),
    );
    let err = refused(&env);
    assert!(
        err.contains(&format!("{f}:4: duplicate EAN {EAN_A} (first on line 2)")),
        "{err}"
    );
}

#[test]
fn unknown_cable_is_refused_with_file_and_line() {
    let env = Env::new(&registry(&[EAN_A]));
    let f = write_connections(&env, &format!("{EAN_A},P1,K7,,\n"));
    let err = refused(&env);
    assert!(
        err.contains(&format!("{f}:2: unknown cable `K7` (not in cables.csv)")),
        "{err}"
    );
}

#[test]
fn unknown_toml_key_is_refused_with_file_and_line() {
    let env = Env::new(&registry(&[EAN_A]));
    let text = std::fs::read_to_string(env.config()).unwrap();
    // Line 4 is `[grid]`; a misspelt key on line 5.
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[3], "[grid]");
    let mut changed: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    changed.insert(4, "base_ulr = \"http://127.0.0.1:9\"".into());
    std::fs::write(env.config(), changed.join("\n")).unwrap();
    let err = refused(&env);
    let f = env.config().display().to_string();
    assert!(
        err.contains(&format!("{f}:5:")) && err.contains("base_ulr"),
        "{err}"
    );
}

#[test]
fn bad_flags_are_usage_errors_and_help_explains() {
    let env = Env::new(&registry(&[EAN_A]));
    let out = env.vaten(
        NOW,
        &["backfill", "--from", "2026-13-01", "--to", "2026-11-01"],
    );
    assert_eq!(out.status.code(), Some(2));
    let out = env.vaten(NOW, &["ingest", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("bulk feed") && help.contains("cursor"),
        "{help}"
    );
}
