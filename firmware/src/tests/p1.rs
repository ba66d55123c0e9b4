//! All 13 real telegrams of `tests/fixtures/dsmr-telegrams/`, with values read by hand
//! from each telegram's text; then random, truncated and mutated input that must never panic.

use super::Rng;
use crate::p1::{parse, Crc, MeterTime, P1Error, Telegram};

fn fixture(name: &str) -> Vec<u8> {
    // Read at run time: a test binary reused from a build in another checkout (a shared
    // target folder) must still find this checkout's fixtures.
    let dir =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let path = format!("{dir}/../tests/fixtures/dsmr-telegrams/{name}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn ok(name: &str) -> (Vec<u8>, Telegram<'static>) {
    let bytes: &'static [u8] = Box::leak(fixture(name).into_boxed_slice());
    let t = parse(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    (bytes.to_vec(), t)
}

fn utc(s: i64) -> Option<MeterTime> {
    Some(MeterTime::Utc(s))
}

#[test]
fn v5() {
    let (_, t) = ok("TELEGRAM_V5.txt");
    assert_eq!(t.header, b"ISk5\\2MT382-1000");
    assert_eq!(t.manufacturer(), Some("ISk"));
    assert_eq!(t.crc, Crc::Valid(0x6EEE));
    assert_eq!(t.dsmr_version, Some(50));
    // 170102192002W: 2017-01-02 19:20:02 +01:00 = 18:20:02Z.
    assert_eq!(t.time, utc(1_483_381_202));
    assert_eq!(
        t.equipment_id,
        Some(&b"4B384547303034303436333935353037"[..])
    );
    assert_eq!((t.import_t1_wh, t.import_t2_wh), (Some(4_426), Some(2_399)));
    assert_eq!((t.export_t1_wh, t.export_t2_wh), (Some(2_444), Some(0)));
    assert_eq!(t.import_wh(), Some(6_825));
    assert_eq!((t.power_import_w, t.power_export_w), (Some(244), Some(0)));
    assert_eq!(t.voltage_v, [Some(230.0), Some(230.0), Some(229.0)]);
    assert_eq!(t.current_a, [Some(0.48), Some(0.44), Some(0.86)]);
    assert_eq!(t.sags, [Some(0), Some(0), Some(0)]);
    assert_eq!(t.swells, [Some(0), Some(0), Some(0)]);
    assert_eq!(t.tariff, Some(2));
}

#[test]
fn v5_two_mbus() {
    let (_, t) = ok("TELEGRAM_V5_TWO_MBUS.txt");
    assert_eq!(t.crc, Crc::Valid(0x56DD));
    assert_eq!(t.time, utc(1_587_933_205)); // 200426223325S
    assert_eq!(
        (t.import_t1_wh, t.import_t2_wh),
        (Some(2_130_115), Some(245_467))
    );
    assert_eq!(t.export_wh(), Some(0));
    assert_eq!(t.power_import_w, Some(111));
    assert_eq!(t.voltage_v, [Some(229.9), Some(229.2), Some(222.9)]);
    assert_eq!(t.sags[0], Some(1));
    assert_eq!(t.swells[0], Some(1));
}

#[test]
fn v5_eon_hu_has_totals_and_tariffs() {
    let (_, t) = ok("TELEGRAM_V5_EON_HU.txt");
    assert_eq!(t.crc, Crc::Valid(0x99DA));
    assert_eq!(t.time, utc(1_690_204_050)); // 230724150730S
    assert_eq!(t.import_total_wh, Some(173_640));
    assert_eq!(
        (t.import_t1_wh, t.import_t2_wh),
        (Some(47_719), Some(125_921))
    );
    assert_eq!(t.export_total_wh, Some(627_177));
    assert_eq!(t.export_wh(), Some(401_829 + 225_348));
    assert_eq!(t.power_export_w, Some(2_601));
    assert_eq!(t.voltage_v, [Some(240.4), Some(239.1), Some(241.2)]);
}

#[test]
fn v4_2() {
    let (_, t) = ok("TELEGRAM_V4_2.txt");
    assert_eq!(t.crc, Crc::Valid(0x6796));
    assert_eq!(t.time, utc(1_479_067_077)); // 161113205757W
    assert_eq!(
        (t.import_t1_wh, t.import_t2_wh),
        (Some(1_581_123), Some(1_435_706))
    );
    assert_eq!(t.power_import_w, Some(2_027));
    assert_eq!(t.current_a[0], Some(0.0));
    assert_eq!(t.voltage_v, [None, None, None]);
}

#[test]
fn v3_and_v2_2_have_no_crc() {
    let (_, t) = ok("TELEGRAM_V3.txt");
    assert_eq!(t.crc, Crc::Absent);
    assert_eq!(t.time, None);
    assert_eq!(t.import_t1_wh, Some(12_345_678));
    assert_eq!(t.import_wh(), Some(24_691_356));
    assert_eq!(t.power_import_w, Some(1_190));
    let (_, t) = ok("TELEGRAM_V2_2.txt");
    assert_eq!(t.crc, Crc::Absent);
    assert_eq!((t.import_t1_wh, t.export_t2_wh), (Some(1_001), Some(1_001)));
    assert_eq!(t.power_import_w, Some(1_010));
    assert_eq!(t.equipment_id, Some(&b"00000000000000"[..]));
}

#[test]
fn fluvius() {
    let (_, t) = ok("TELEGRAM_FLUVIUS_V171.txt");
    assert_eq!(t.crc, Crc::Valid(0x3AD7));
    assert_eq!(t.time, utc(1_589_284_449)); // 200512135409S
    assert_eq!((t.import_t1_wh, t.import_t2_wh), (Some(34), Some(15_758)));
    assert_eq!((t.export_t1_wh, t.export_t2_wh), (Some(0), Some(11)));
    assert_eq!(t.voltage_v, [Some(234.7), Some(234.7), Some(234.7)]);
    let (_, t) = ok("TELEGRAM_FLUVIUS_V171_ALT.txt");
    assert_eq!(t.crc, Crc::Valid(0xC4B0));
    assert_eq!(t.time, utc(1_698_923_748)); // 231102121548W
    assert_eq!(
        (t.import_t1_wh, t.import_t2_wh),
        (Some(301_548), Some(270_014))
    );
    assert_eq!(t.export_t1_wh, Some(5));
    assert_eq!(t.power_import_w, Some(338));
    assert_eq!(t.voltage_v, [Some(232.9), Some(228.1), Some(228.1)]);
    assert_eq!(t.current_a[0], Some(0.27));
}

#[test]
fn iskra_ie_with_control_byte_in_header() {
    let (_, t) = ok("TELEGRAM_ISKRA_IE.txt");
    assert_eq!(t.crc, Crc::Valid(0xAD3B));
    assert!(
        t.header.contains(&0x02),
        "the raw 0x02 byte stays in the header"
    );
    assert_eq!(t.time, utc(1_675_337_267)); // 230202132747S
    assert_eq!(
        (t.import_t1_wh, t.import_t2_wh),
        (Some(10_181), Some(10_182))
    );
    assert_eq!(
        (t.export_t1_wh, t.export_t2_wh),
        (Some(10_281), Some(10_282))
    );
    assert_eq!((t.power_import_w, t.power_export_w), (Some(170), Some(270)));
    assert_eq!(t.voltage_v, [Some(242.5), Some(241.7), Some(243.3)]);
}

#[test]
fn sagemcom_in_wh_equals_a_kwh_meter() {
    let (_, t) = ok("TELEGRAM_SAGEMCOM_T210_D_R.txt");
    assert_eq!(t.crc, Crc::Valid(0x7EF9));
    assert_eq!(t.time, utc(1_665_064_214)); // 221006155014S
    assert_eq!(
        (t.import_t1_wh, t.import_t2_wh),
        (Some(5_017_120), Some(1_528_646))
    );
    assert_eq!(t.import_total_wh, Some(6_545_766));
    assert_eq!(t.import_wh(), t.import_total_wh);
    assert_eq!(t.export_t2_wh, Some(58));
    assert_eq!(t.power_import_w, Some(286));
    // The same register from a kWh meter gives the same Wh.
    let kwh = b"/XXX5\r\n\r\n1-0:1.8.1(005017.120*kWh)\r\n!\r\n";
    assert_eq!(parse(kwh).unwrap().import_t1_wh, t.import_t1_wh);
}

#[test]
fn esy_meters_with_seven_decimals_and_w() {
    let (_, t) = ok("TELEGRAM_ESY5Q3DB1024_V304.txt");
    assert_eq!(t.crc, Crc::Absent);
    // 52185.7825309 kWh: an f32 cannot hold this to the Wh; u64 does, rounded half up.
    assert_eq!(t.import_total_wh, Some(52_185_783));
    assert_eq!(t.export_total_wh, Some(19_949_322));
    assert_eq!(t.power_import_w, Some(2_125)); // 2124.86 W
    let (_, t) = ok("TELEGRAM_ESY5Q3DA1004_V304.txt");
    assert_eq!(t.import_wh(), Some(32_549_506));
    assert_eq!(t.power_import_w, Some(1_688));
}

#[test]
fn unpadded_crc_and_unset_fields() {
    let (_, t) = ok("TELEGRAM_UNPADDED_CRC.txt");
    assert_eq!(t.crc, Crc::Valid(0x0B9F));
    assert_eq!(t.time, utc(1_771_182_323)); // 260215200523W
    assert_eq!(t.import_wh(), None);
}

#[test]
fn one_changed_digit_fails_the_crc() {
    let mut bytes = fixture("TELEGRAM_V5.txt");
    let pos = bytes.windows(7).position(|w| w == b"004.426").unwrap();
    bytes[pos + 2] = b'5';
    match parse(&bytes) {
        Err(P1Error::BadCrc { sent: 0x6EEE, .. }) => {}
        other => panic!("expected a CRC failure, got {other:?}"),
    }
}

#[test]
fn clock_not_set_and_bad_values() {
    let t = parse(b"/AAA5\r\n\r\n0-0:1.0.0(000000000000W)\r\n!\r\n").unwrap();
    assert_eq!(t.time, Some(MeterTime::NotSet));
    assert_eq!(
        parse(b"/AAA5\r\n1-0:1.8.1(12x.000*kWh)\r\n!\r\n"),
        Err(P1Error::BadValue { line: 2 })
    );
    assert_eq!(
        parse(b"/AAA5\r\n1-0:1.8.1(1.000*MWh)\r\n!\r\n"),
        Err(P1Error::BadValue { line: 2 })
    );
    assert_eq!(parse(b"no telegram"), Err(P1Error::NoStart));
    assert_eq!(
        parse(b"/AAA5\r\n1-0:1.8.1(1.000*kWh)\r\n"),
        Err(P1Error::NoEnd)
    );
    assert_eq!(parse(b"/AAA5\r\n!XYZ"), Err(P1Error::MalformedCrc));
}

const ALL: [&str; 13] = [
    "TELEGRAM_ESY5Q3DA1004_V304.txt",
    "TELEGRAM_ESY5Q3DB1024_V304.txt",
    "TELEGRAM_FLUVIUS_V171.txt",
    "TELEGRAM_FLUVIUS_V171_ALT.txt",
    "TELEGRAM_ISKRA_IE.txt",
    "TELEGRAM_SAGEMCOM_T210_D_R.txt",
    "TELEGRAM_UNPADDED_CRC.txt",
    "TELEGRAM_V2_2.txt",
    "TELEGRAM_V3.txt",
    "TELEGRAM_V4_2.txt",
    "TELEGRAM_V5.txt",
    "TELEGRAM_V5_EON_HU.txt",
    "TELEGRAM_V5_TWO_MBUS.txt",
];

#[test]
fn all_thirteen_parse() {
    for name in ALL {
        assert!(parse(&fixture(name)).is_ok(), "{name}");
    }
}

#[test]
fn random_truncated_and_mutated_input_never_panics() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let alphabet = b"/!()*.:-0123456789ABCDEFkWhVAS\r\n";
    for _ in 0..20_000 {
        let len = rng.below(300);
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                if rng.below(2) == 0 {
                    alphabet[rng.below(alphabet.len())]
                } else {
                    rng.next() as u8
                }
            })
            .collect();
        let _ = parse(&bytes);
    }
    for name in ALL {
        let real = fixture(name);
        for cut in 0..real.len() {
            let _ = parse(&real[..cut]);
        }
        for _ in 0..2_000 {
            let mut m = real.clone();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(m.len());
                match rng.below(3) {
                    0 => m[i] = rng.next() as u8,
                    1 => {
                        m.remove(i);
                    }
                    _ => m.insert(i, alphabet[rng.below(alphabet.len())]),
                }
            }
            let _ = parse(&m);
        }
    }
}
