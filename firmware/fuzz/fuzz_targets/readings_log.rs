#![no_main]
//! Any sequence of pushes and page requests on a small ring buffer: pages never panic, never
//! report more readings than asked, and their seqs increase.
use libfuzzer_sys::fuzz_target;
use vaten_firmware::readings::{MeterId, Reading, ReadingsLog};

fuzz_target!(|data: &[u8]| {
    let mut log: ReadingsLog<16> = ReadingsLog::new(u64::from(data.first().copied().unwrap_or(1)));
    let meter = MeterId::new("SDM120-F").expect("short ASCII");
    for chunk in data.chunks(9) {
        let word = |i: usize| u64::from(chunk.get(i).copied().unwrap_or(0));
        if chunk.len() < 9 || word(0) % 3 == 0 {
            let mut out = [Reading {
                seq: 0,
                t_end_s: 0,
                p_meter: meter,
                p_wh: 0,
                battery_charge_wh: 0,
                battery_discharge_wh: 0,
                soc_pct: None,
                voltage: None,
            }; 8];
            let page = log.page(word(1) << 8 | word(2), &mut out[..(word(3) as usize % 8) + 1]);
            assert!(page.count <= 8);
            assert!(out[..page.count].windows(2).all(|w| w[0].seq < w[1].seq));
        } else {
            log.push(
                (word(4) << 24 | word(5) << 16) as i64,
                meter,
                word(6) << 32 | word(7),
                word(8),
                0,
                None,
                None,
            );
        }
    }
});
