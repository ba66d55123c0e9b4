//! Fuzzing on stable Rust, in the one test binary: every parser of outside input gets
//! mutated seeds (`tests/fuzz-corpus/` and the real fixtures) and must answer with a value or
//! an error, never a panic. Bounded: `VATEN_FUZZ_CASES` cases per target (default 300), a fixed
//! seed per target so that a failure repeats; `VATEN_FUZZ_SEED` explores other sequences. A
//! panicking input is saved under cargo's `target/tmp/` and named in the failure.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vaten::domain::time::AMSTERDAM;

use crate::common::*;

/// Tokens that break parsers: signs, extremes, dates out of range, quotes, separators.
const HOSTILE: &[&str] = &[
    "-1",
    "0",
    "-0.0",
    "1e308",
    "-1e308",
    "NaN",
    "inf",
    "9223372036854775807",
    "18446744073709551616",
    "99999999999999999999",
    "-262143-01-01",
    "+262142-12-31",
    "0001-01-01T00:00:00Z",
    "1970-01-01",
    "2026-02-30",
    "24:00:00",
    "+14:00",
    "\"",
    "\"\"",
    ",",
    ";",
    "\n",
    "\r\n",
    "\0",
    "\u{feff}",
    "{",
    "}",
    "[",
    "]",
    ":",
    "null",
    "true",
    "=",
    "[[",
    "]]",
    "é",
    "\u{1F600}",
    "%",
    "\\",
    "/",
    "..",
    "!",
    "1.2.3",
    ".5",
    "5.",
];

fn cases() -> usize {
    std::env::var("VATEN_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300)
}

fn corpus(sub: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(sub);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

/// One mutant of `seed`: one to four edits.
fn mutate(rng: &mut StdRng, seed: &[u8]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..rng.gen_range(1..=4) {
        let at = if out.is_empty() {
            0
        } else {
            rng.gen_range(0..out.len())
        };
        match rng.gen_range(0..6) {
            0 if !out.is_empty() => out[at] ^= 1 << rng.gen_range(0..8),
            1 => {
                let token = HOSTILE[rng.gen_range(0..HOSTILE.len())].as_bytes();
                out.splice(at..at, token.iter().copied());
            }
            2 if !out.is_empty() => {
                let end = (at + rng.gen_range(1..32)).min(out.len());
                out.drain(at..end);
            }
            3 if !out.is_empty() => {
                let end = (at + rng.gen_range(1..64)).min(out.len());
                let piece = out[at..end].to_vec();
                out.splice(at..at, piece);
            }
            4 => out.truncate(at),
            _ => {
                // Replace a number-looking run with a hostile token.
                let end = (at..out.len())
                    .find(|&i| !out[i].is_ascii_digit() && out[i] != b'.')
                    .unwrap_or(out.len());
                let token = HOSTILE[rng.gen_range(0..HOSTILE.len())].as_bytes();
                out.splice(at..end, token.iter().copied());
            }
        }
    }
    out
}

/// Feeds `cases()` mutants of `seeds` (and the seeds themselves) to `target`; a panic fails the
/// test, naming a saved copy of the input.
fn fuzz(name: &str, seeds: &[Vec<u8>], mut target: impl FnMut(&[u8])) {
    let base: u64 = std::env::var("VATEN_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut rng = StdRng::seed_from_u64(base ^ name.bytes().fold(7, |h, b| h * 31 + u64::from(b)));
    let inputs = seeds.iter().cloned().chain((0..cases()).map(|_| {
        let seed = &seeds[rng.gen_range(0..seeds.len())];
        mutate(&mut rng, seed)
    }));
    for (n, input) in inputs.enumerate() {
        if catch_unwind(AssertUnwindSafe(|| target(&input))).is_err() {
            let saved =
                Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-crash-{name}-{n}"));
            std::fs::write(&saved, &input).unwrap();
            panic!(
                "{name}: case {n} panicked; input saved as {}",
                saved.display()
            );
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn grid_pages_and_their_validation_never_panic() {
    use vaten::sources::grid::api::{ObjectKind, RawBulkPage, TypedBulkPage};
    use vaten::sources::grid::validate::Validator;
    let reg = registry(&[EAN_A, EAN_C]);
    let now = "2026-11-26T10:00:00Z".parse().unwrap();
    let v = Validator {
        registry: &reg,
        now,
        tz: AMSTERDAM,
        received_at: now,
        cursor: "c".into(),
        days_before_member: 366,
        erased: None,
    };
    // The same checks with EAN_A erased: its objects are left out, in whatever form they come.
    let mut erased = vaten::received::erased::Erased::default();
    erased.add(EAN_A);
    let v_erased = Validator {
        erased: Some(&erased),
        cursor: "c".into(),
        ..v
    };
    fuzz("grid", &corpus("fuzz-corpus/grid"), |bytes| {
        // Differential: a page the typed path takes must read as values, and give what they
        // give (the ingest reads a page as values when the typed path refuses anything).
        if let Ok(typed) = serde_json::from_slice::<TypedBulkPage>(bytes) {
            let raw = serde_json::from_slice::<RawBulkPage>(bytes)
                .expect("a page that parses typed parses as values");
            for v in [&v, &v_erased] {
                let (mut a, mut b) = (0, 0);
                if let Some(fast) = v.typed_page(&typed, &mut a) {
                    let slow = v.values(
                        &mut b,
                        [
                            (&raw.intervals, ObjectKind::Interval),
                            (&raw.days, ObjectKind::Day),
                            (&raw.rejections, ObjectKind::Rejection),
                        ],
                    );
                    assert_eq!(format!("{fast:?}"), format!("{slow:?}"));
                    assert_eq!(a, b);
                }
            }
        }
        if let Ok(page) = serde_json::from_slice::<RawBulkPage>(bytes) {
            let mut out = vaten::received::Received::default();
            for (i, o) in page.intervals.iter().enumerate() {
                v.interval(o, i as i64, &mut out);
            }
            for (i, o) in page.days.iter().enumerate() {
                v.day(o, i as i64, &mut out);
            }
            for (i, o) in page.rejections.iter().enumerate() {
                v.rejection(o, i as i64, &mut out);
            }
        }
    });
}

#[test]
fn installation_pages_and_their_checks_never_panic() {
    use vaten::sources::installations::api::{Page, RawPage};
    use vaten::sources::installations::ingest::{check_page, Calendar};
    let mut reg = registry(&[EAN_A]);
    reg.connections[0].installation = Some(vaten::registry::Installation {
        id: "inst-1".into(),
        url: "http://127.0.0.1:9".into(),
    });
    reg.connections[0].member_from = Some("2025-01-01".parse().unwrap());
    let now = "2026-11-26T10:00:00Z".parse().unwrap();
    let calendar = Calendar {
        tz: AMSTERDAM,
        days_before_member: 366,
    };
    fuzz(
        "installation",
        &corpus("fuzz-corpus/installation"),
        |bytes| {
            if let Ok(raw) = serde_json::from_slice::<RawPage>(bytes) {
                check_page(&reg.connections[0], &Page::from(raw), now, calendar);
            }
        },
    );
}

#[test]
fn registry_files_never_panic() {
    let seeds = corpus("fuzz-corpus/registry");
    let dir = tempfile::tempdir().unwrap();
    let (conns, cables): (Vec<_>, Vec<_>) =
        seeds.into_iter().partition(|s| text(s).starts_with("ean,"));
    // The sound seeds by name (the hostile ones sort first).
    let sound = |name: &str| {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fuzz-corpus/registry")
                .join(name),
        )
        .unwrap()
    };
    let (conns_ok, cables_ok) = (sound("connections.csv"), sound("cables.csv"));
    // The sound pair loads: the mutants start from something the loader accepts.
    std::fs::write(dir.path().join("connections.csv"), &conns_ok).unwrap();
    std::fs::write(dir.path().join("cables.csv"), &cables_ok).unwrap();
    vaten::registry::Registry::load(dir.path()).expect("the sound seeds load");
    let mut rng = StdRng::seed_from_u64(11);
    let all: Vec<Vec<u8>> = conns.iter().chain(&cables).cloned().collect();
    fuzz("registry", &all, |bytes| {
        // Mutate one file at a time, the other one sound.
        let (c, k) = if text(bytes).starts_with("cable_id") || rng.gen_bool(0.3) {
            (conns_ok.clone(), bytes.to_vec())
        } else {
            (bytes.to_vec(), cables_ok.clone())
        };
        std::fs::write(dir.path().join("connections.csv"), c).unwrap();
        std::fs::write(dir.path().join("cables.csv"), k).unwrap();
        let _ = vaten::registry::Registry::load(dir.path());
    });
}

#[test]
fn configuration_files_never_panic() {
    fuzz("config", &corpus("fuzz-corpus/config"), |bytes| {
        if let Ok(cfg) = vaten::config::Config::parse(&text(bytes), Path::new("/srv/v.toml")) {
            // What a valid configuration promises: values its users convert without a panic.
            let _ = cfg.tz();
            let _ = std::time::Duration::from_secs_f64(cfg.lock_wait_s);
            let _ = std::time::Duration::from_secs_f64(cfg.grid.deadline_s);
            let _ = std::time::Duration::from_secs_f64(cfg.grid.retry.max_elapsed_s);
            let _ = std::time::Duration::from_secs_f64(cfg.schedule.grace_s);
        }
    });
}

#[test]
fn rates_files_never_panic() {
    let mut seeds = corpus("fuzz-corpus/rates");
    seeds.push(vaten::marts::rates::BUILTIN_RATES.as_bytes().to_vec());
    fuzz("rates", &seeds, |bytes| {
        if let Ok(rates) = vaten::marts::rates::Rates::parse(&text(bytes), "r.csv") {
            // A parsed file taxes without a panic, however large the energy.
            for year in rates.years.keys() {
                for wh in [0, 1, 2_900_000, i64::MAX / 2] {
                    let _ = vaten::marts::tax::tax(
                        &rates,
                        &vaten::marts::tax::TaxInput {
                            year: *year,
                            l_wh: wh,
                            t_wh: 0,
                            p_wh: Some(wh),
                            member_days: 200,
                            year_days: 365,
                            tax_credit: true,
                        },
                    );
                }
            }
        }
    });
}

#[test]
fn meter_exports_never_panic() {
    use vaten::sources::exports::{read_export, Format};
    let cut = |name: &str| -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/meter-exports")
            .join(name);
        let text = std::fs::read_to_string(path).unwrap();
        text.lines()
            .take(60)
            .collect::<Vec<_>>()
            .join("\n")
            .into_bytes()
    };
    let now = "2026-11-26T10:00:00Z".parse().unwrap();
    for (format, file) in [
        (Format::Homewizard, "homewizard_2022-09_15min_elec.csv"),
        (Format::DsmrReader, "dsmrreader-data-export-hour.csv"),
    ] {
        fuzz(format.name(), &[cut(file)], |bytes| {
            let _ = read_export(format, &text(bytes), "x.csv", EAN_A, AMSTERDAM, now, 1);
        });
    }
}

#[test]
fn p1_telegrams_never_panic() {
    fuzz("p1", &corpus("fixtures/dsmr-telegrams"), |bytes| {
        let _ = vaten::p1::decode(bytes);
    });
}
