//! The readings log: wrap-around, gap reporting, pages, seq continuity across a reboot.

use crate::readings::*;

fn meter(s: &str) -> MeterId {
    MeterId::new(s).unwrap()
}

fn fill<const N: usize>(log: &mut ReadingsLog<N>, count: u64, t0: i64) {
    for k in 0..count {
        let v = VoltageStats {
            avg_v: 236.4,
            min_v: 233.0,
            max_v: 239.8,
        };
        log.push(
            t0 + 900 * k as i64,
            meter("SDM120-0012345"),
            1_000 + k,
            10 * k,
            5 * k,
            Some(63.5),
            Some(v),
        );
    }
}

fn blank() -> Reading {
    Reading {
        seq: 0,
        t_end_s: 0,
        p_meter: meter(""),
        p_wh: 0,
        battery_charge_wh: 0,
        battery_discharge_wh: 0,
        soc_pct: None,
        voltage: None,
    }
}

// 2025-11-24T16:00:00Z, on a quarter-hour.
const T0: i64 = 1_764_000_000;

#[test]
fn pages_walk_the_log_in_order() {
    let mut log: ReadingsLog<16> = ReadingsLog::new(1);
    fill(&mut log, 10, T0);
    let mut out = [blank(); 4];
    let p = log.page(0, &mut out);
    assert_eq!(
        (p.count, p.next_after, p.has_more, p.gap),
        (4, 4, true, false)
    );
    assert_eq!(
        out.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(out[0].p_wh, 1_000);
    assert_eq!(out[0].p_meter.as_str(), "SDM120-0012345");
    assert_eq!(out[0].soc_pct, Some(63.5));
    assert_eq!(
        out[0].voltage,
        Some(VoltageStats {
            avg_v: 236.4,
            min_v: 233.0,
            max_v: 239.8
        })
    );
    let p = log.page(8, &mut out);
    assert_eq!((p.count, p.next_after, p.has_more), (2, 10, false));
    assert_eq!(out[1].t_end_s, T0 + 9 * 900);
    let p = log.page(10, &mut out);
    assert_eq!(
        (p.count, p.next_after, p.has_more, p.gap),
        (0, 10, false, false)
    );
}

#[test]
fn wrap_around_keeps_the_newest_and_reports_the_gap() {
    let mut log: ReadingsLog<8> = ReadingsLog::new(1);
    fill(&mut log, 20, T0);
    assert_eq!(log.len(), 8);
    assert_eq!(log.oldest_seq(), Some(13));
    assert_eq!(log.next_seq(), 21);
    let mut out = [blank(); 100];
    // A cursor at 5 is older than the oldest kept (13): readings 6..=12 are gone.
    let p = log.page(5, &mut out);
    assert!(p.gap);
    assert_eq!(p.count, 8);
    assert_eq!(out[0].seq, 13);
    assert_eq!(out[7].seq, 20);
    assert_eq!(out[7].p_wh, 1_019, "the newest reading is kept");
    // A client that never fetched (after 0) lost the overwritten readings too.
    assert!(log.page(0, &mut out).gap);
    // A cursor right before the oldest is not a gap.
    assert!(!log.page(12, &mut out).gap);
}

#[test]
fn seq_continues_after_a_reboot() {
    let mut log: ReadingsLog<8> = ReadingsLog::new(1);
    fill(&mut log, 5, T0);
    let mut persisted = [blank(); 8];
    let n = log.page(0, &mut persisted).count;
    let restored: ReadingsLog<8> = ReadingsLog::restore(persisted[..n].iter().copied(), 5);
    assert_eq!(restored.len(), 5);
    assert_eq!(restored.next_seq(), 6);
    // Persistence lost the last two readings but kept the seq counter: numbering still goes on.
    let restored: ReadingsLog<8> = ReadingsLog::restore(persisted[..3].iter().copied(), 5);
    assert_eq!(restored.next_seq(), 6);
    let mut log = restored;
    assert_eq!(
        log.push(T0 + 900 * 5, meter("SDM120-0012345"), 1, 1, 1, None, None),
        6
    );
}

#[test]
fn meter_exchange_is_kept_per_reading() {
    let mut log: ReadingsLog<8> = ReadingsLog::new(1);
    log.push(T0, meter("OLD-1"), 5_000, 0, 0, None, None);
    log.push(T0, meter("NEW-2"), 3, 0, 0, None, None);
    let mut out = [blank(); 2];
    log.page(0, &mut out);
    assert_eq!(
        (out[0].p_meter.as_str(), out[1].p_meter.as_str()),
        ("OLD-1", "NEW-2")
    );
    assert_eq!(out[0].t_end_s, out[1].t_end_s);
}

#[test]
fn voltage_aggregation_from_seconds() {
    let mut agg = VoltageAggregator::default();
    // 900 samples: 450 at 230.0 V and 450 at 240.0 V, one unreadable.
    for k in 0..900 {
        agg.add(if k % 2 == 0 { 230.0 } else { 240.0 });
    }
    agg.add(f32::NAN);
    let s = agg.finish().unwrap();
    assert_eq!((s.avg_v, s.min_v, s.max_v), (235.0, 230.0, 240.0));
    assert_eq!(agg.finish(), None, "finish starts a new quarter");
}

#[test]
fn thirty_days_fit_in_the_stated_ram() {
    // 30 days × 96 quarter-hours; the README states this figure.
    assert_eq!(SLOT_BYTES, 40);
    assert_eq!(30 * 96 * SLOT_BYTES, 115_200);
}
