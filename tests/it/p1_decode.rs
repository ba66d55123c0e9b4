//! `vaten p1 decode` on real telegrams from `tests/fixtures/dsmr-telegrams/`.

use std::io::Write;
use std::process::{Command, Stdio};

fn fixture(name: &str) -> String {
    format!(
        "{}/tests/fixtures/dsmr-telegrams/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn vaten() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vaten"))
}

#[test]
fn decodes_a_dsmr5_telegram_to_json() {
    let out = vaten()
        .args(["p1", "decode", &fixture("TELEGRAM_V5.txt")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Read by hand from the telegram: 0-0:1.0.0(170102192002W), 1.8.1 4.426 kWh, 1.8.2 2.399 kWh.
    assert_eq!(v["crc"], "valid");
    assert_eq!(v["crc_value"], "6EEE");
    assert_eq!(v["time_utc"], "2017-01-02T18:20:02Z");
    assert_eq!(v["import_wh"], 6825);
    assert_eq!(v["export_t1_wh"], 2444);
    assert_eq!(v["voltage_v"], serde_json::json!([230.0, 230.0, 229.0]));
    assert_eq!(v["equipment_id_text"], "K8EG004046395507");
}

#[test]
fn reads_stdin_and_accepts_a_telegram_without_crc() {
    let mut child = vaten()
        .args(["p1", "decode", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let bytes = std::fs::read(fixture("TELEGRAM_V3.txt")).unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["crc"], "absent");
    assert_eq!(v["import_t1_wh"], 12_345_678);
}

#[test]
fn a_changed_digit_fails_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture("TELEGRAM_FLUVIUS_V171.txt")).unwrap();
    let bad = text.replacen("234.7*V", "235.7*V", 1);
    let path = dir.path().join("bad.txt");
    std::fs::write(&path, bad).unwrap();
    let out = vaten().args(["p1", "decode"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CRC mismatch: telegram says 3AD7"), "{err}");
}
