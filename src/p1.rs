//! `vaten p1 decode`: a DSMR P1 telegram decoded by the firmware's parser, printed as JSON
//! (shape documented in `firmware/README.md`).

use std::io::Read;
use std::path::Path;

use serde_json::{json, Value};
use vaten_firmware::p1::{parse, Crc, MeterTime};

use crate::error::{Error, Result};

/// Reads a telegram from `path` (`-`: standard input) and returns its JSON.
pub fn decode_file(path: &Path) -> Result<Value> {
    let mut bytes = Vec::new();
    if path == Path::new("-") {
        std::io::stdin().read_to_end(&mut bytes)?;
    } else {
        bytes =
            std::fs::read(path).map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
    }
    decode(&bytes).map_err(|e| Error::P1(format!("{}: {e}", path.display())))
}

pub fn decode(bytes: &[u8]) -> std::result::Result<Value, vaten_firmware::p1::P1Error> {
    let t = parse(bytes)?;
    let (crc, crc_value) = match t.crc {
        Crc::Valid(v) => ("valid", Value::String(format!("{v:04X}"))),
        Crc::Absent => ("absent", Value::Null),
    };
    let (time, clock_set) = match t.time {
        Some(MeterTime::Utc(s)) => (
            chrono::DateTime::from_timestamp(s, 0)
                .map(|d| Value::String(d.format("%Y-%m-%dT%H:%M:%SZ").to_string()))
                .unwrap_or(Value::Null),
            Value::Bool(true),
        ),
        Some(MeterTime::NotSet) => (Value::Null, Value::Bool(false)),
        None => (Value::Null, Value::Null),
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Ok(json!({
        "header": text(t.header),
        "manufacturer": t.manufacturer(),
        "crc": crc,
        "crc_value": crc_value,
        "dsmr_version": t.dsmr_version,
        "time_utc": time,
        "clock_set": clock_set,
        "equipment_id": t.equipment_id.map(text),
        "equipment_id_text": t.equipment_id.and_then(hex_ascii),
        "import_t1_wh": t.import_t1_wh,
        "import_t2_wh": t.import_t2_wh,
        "import_total_wh": t.import_total_wh,
        "import_wh": t.import_wh(),
        "export_t1_wh": t.export_t1_wh,
        "export_t2_wh": t.export_t2_wh,
        "export_total_wh": t.export_total_wh,
        "export_wh": t.export_wh(),
        "power_import_w": t.power_import_w,
        "power_export_w": t.power_export_w,
        "voltage_v": t.voltage_v.map(|v| v.map(round1)),
        "current_a": t.current_a.map(|v| v.map(round2)),
        "sags": t.sags,
        "swells": t.swells,
        "tariff": t.tariff,
    }))
}

/// Voltages have 0.1 V resolution on the wire; print them so (an f32 prints 229.89999).
fn round1(v: f32) -> f64 {
    (f64::from(v) * 10.0).round() / 10.0
}

fn round2(v: f32) -> f64 {
    (f64::from(v) * 100.0).round() / 100.0
}

/// Hex-encoded printable ASCII (the usual equipment id), decoded; `None` otherwise.
fn hex_ascii(hex: &[u8]) -> Option<String> {
    if hex.is_empty() || !hex.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = hex
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
        .collect();
    let bytes = bytes?;
    bytes
        .iter()
        .all(|b| b.is_ascii_graphic() || *b == b' ')
        .then(|| String::from_utf8_lossy(&bytes).into_owned())
}
