//! Personal data is only fetched and kept under the holder's authorisation: `consent_from` /
//! `consent_until` in the registry, judged by the local day the data is about.

use vaten::fake::FeedEntry;

use crate::common::*;
use crate::feeds::*;

#[test]
fn a_connection_whose_consent_ended_keeps_nothing_of_todays_feed() {
    let mut reg = registry(&[EAN_A, EAN_B, EAN_C]);
    // B's authorisation covered days up to the 26th: today's feed brings the 27th.
    reg.connections[1].consent_until = Some(d("2026-10-26"));
    // C's ends in three weeks: to be renewed.
    reg.connections[2].consent_until = Some(d("2026-11-18"));
    let env = Env::new(&reg);
    let mut a = meter(EAN_A, "MA1", 100_000, true);
    let mut b = meter(EAN_B, "MB1", 200_000, true);
    env.server.push([
        FeedEntry::interval(intervals(&mut a, "2026-10-27")),
        day(&b, "2026-10-27"),
        FeedEntry::interval(intervals(&mut b, "2026-10-27")),
    ]);
    assert_ok(&env.vaten("2026-10-28T10:00:00Z", &["ingest", "grid"]));
    let rows = lake_rows(&env.lake());
    assert_eq!(rows["grid_readings"].len(), 96, "A's day only");
    assert!(rows["grid_readings"].iter().all(|r| r.contains(EAN_A)));
    assert!(rows["grid_days"].is_empty());
    let refused: Vec<&String> = rows["rejected"]
        .iter()
        .filter(|r| r.contains("reason=no_consent;"))
        .collect();
    assert_eq!(refused.len(), 2, "{refused:#?}");
    // Of what was refused, not even the readings are kept.
    for r in &refused {
        assert!(
            r.contains(EAN_B) && !r.contains("r180") && !r.contains("r181"),
            "{r}"
        );
    }
    // `vaten status` lists the consent that ends within 30 days, not the one long gone.
    let out = env.vaten("2026-10-28T10:00:00Z", &["status"]);
    assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "consent for {EAN_C} (participant P2) ends 2026-11-18 (in 21 days)"
        )),
        "{text}"
    );
    assert!(!text.contains(&format!("consent for {EAN_B}")), "{text}");
}

#[test]
fn backfill_asks_only_for_consented_days() {
    let mut reg = registry(&[EAN_A]);
    reg.connections[0].consent_from = Some(d("2026-10-24"));
    let env = Env::new(&reg);
    let mut a = meter(EAN_A, "MA1", 100_000, true);
    for date in ["2026-10-22", "2026-10-23", "2026-10-24", "2026-10-25"] {
        env.server
            .push([FeedEntry::interval(intervals(&mut a, date))]);
    }
    assert_ok(&env.vaten(
        "2026-10-28T10:00:00Z",
        &["backfill", "--from", "2026-10-20", "--to", "2026-10-26"],
    ));
    let log = env.server.request_log();
    assert!(log.iter().all(|l| l.starts_with("history")), "{log:?}");
    // The 24th (96) and the 25th (100 quarter-hours): nothing from before the consent.
    assert_eq!(count(&env.lake(), "grid_readings"), 96 + 100);
}
