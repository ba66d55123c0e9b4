//! `tax_base_yearly`: per connection per calendar year, from `consumption_daily` and the
//! registry's membership, with the tax of [`super::tax`].

use std::collections::BTreeMap;

use chrono::NaiveDate;
use polars::prelude::*;

use super::rates::Rates;
use super::tax::{tax, TaxInput};
use crate::error::Result;
use crate::registry::{Connection, Registry};

/// Days in `year` (365 outside chrono's calendar, where no reading of a real meter lies).
fn year_days(year: i32) -> i64 {
    let start = NaiveDate::from_ymd_opt(year, 1, 1);
    let end = year
        .checked_add(1)
        .and_then(|y| NaiveDate::from_ymd_opt(y, 1, 1));
    match (start, end) {
        (Some(start), Some(end)) => (end - start).num_days(),
        _ => 365,
    }
}

/// Days of `year` the connection belongs to the cooperative.
pub fn member_days(c: &Connection, year: i32) -> i64 {
    let (Some(first), Some(last)) = (
        NaiveDate::from_ymd_opt(year, 1, 1),
        NaiveDate::from_ymd_opt(year, 12, 31),
    ) else {
        return 0;
    };
    let from = c.member_from.map_or(first, |f| f.max(first));
    let until = c.member_until.map_or(last, |u| u.min(last));
    ((until - from).num_days() + 1).max(0)
}

/// A connection's sums over its days of one year.
#[derive(Default)]
struct YearSums {
    l_wh: i64,
    t_wh: i64,
    p_sum: i64,
    p_nulls: i64,
    v_wh: i64,
    days_present: i64,
    missing: i64,
}

/// The yearly tax base from `consumption_daily` (as computed, with its `year` column).
pub fn tax_base_yearly(daily: &DataFrame, registry: &Registry, rates: &Rates) -> Result<DataFrame> {
    // Summed in one pass here, not by a group-by: a cable's year is a few thousand days, where
    // a query's fixed cost was most of a nightly run's time for its marts.
    let ean = daily.column("ean")?.str()?;
    let participant = daily.column("participant_id")?.str()?;
    let year_of = daily.column("year")?.cast(&DataType::Int32)?;
    let year_of = year_of.i32()?;
    let int = |n: &str| -> Result<Int64Chunked> {
        Ok(daily.column(n)?.cast(&DataType::Int64)?.i64()?.clone())
    };
    let (l_day, t_day, p_day, v_day, missing_day) = (
        int("l_wh")?,
        int("t_wh")?,
        int("p_wh")?,
        int("v_wh")?,
        int("intervals_missing")?,
    );
    // By (ean, year, participant): the order of the table's key, nulls first as Polars sorts.
    // The frame's rows come by connection and day, so the last group is nearly always the
    // row's: it is looked up in the map only when the key changes.
    type Key<'a> = (Option<&'a str>, Option<i32>, Option<&'a str>);
    let mut sums: BTreeMap<Key, YearSums> = BTreeMap::new();
    let mut current: Option<(Key, YearSums)> = None;
    let keys = ean.iter().zip(year_of.iter()).zip(participant.iter());
    let values = l_day
        .iter()
        .zip(t_day.iter())
        .zip(p_day.iter())
        .zip(v_day.iter())
        .zip(missing_day.iter());
    for (((e, y), pid), ((((l, t), p), v), missing)) in keys.zip(values) {
        let key = (e, y, pid);
        if current.as_ref().is_none_or(|(k, _)| *k != key) {
            if let Some((k, s)) = current.take() {
                sums.insert(k, s);
            }
            current = Some((key, sums.remove(&key).unwrap_or_default()));
        }
        let Some((_, s)) = current.as_mut() else {
            continue;
        };
        // Missing values count as none, as a sum over them does; wrapping as Polars' sums do
        // (never reached by a year of range-checked readings, and no panic on a hostile file).
        s.l_wh = s.l_wh.wrapping_add(l.unwrap_or(0));
        s.t_wh = s.t_wh.wrapping_add(t.unwrap_or(0));
        match p {
            Some(p) => s.p_sum = s.p_sum.wrapping_add(p),
            None => s.p_nulls += 1,
        }
        s.v_wh = s.v_wh.wrapping_add(v.unwrap_or(0));
        s.days_present += 1;
        s.missing = s.missing.wrapping_add(missing.unwrap_or(0));
    }
    if let Some((k, s)) = current {
        sums.insert(k, s);
    }
    let n = sums.len();
    let (mut ean_col, mut participant_col, mut year_col) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut l_col, mut t_col, mut v_col) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut out: Vec<Column> = Vec::new();
    let (mut p_col, mut regime, mut taxable, mut own, mut member) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut e_tax, mut credit, mut net, mut saving, mut confirmed, mut complete) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for ((e, y, pid), sum) in sums {
        ean_col.push(e);
        participant_col.push(pid);
        year_col.push(y.map(i64::from));
        l_col.push(sum.l_wh);
        t_col.push(sum.t_wh);
        v_col.push(sum.v_wh);
        let (e, y) = (e.unwrap_or(""), y.unwrap_or(0));
        let conn = registry.connection(e);
        let has_installation = conn.is_some_and(|c| c.installation.is_some());
        let p_wh = (has_installation && sum.p_nulls == 0).then_some(sum.p_sum);
        let days = conn.map_or(0, |c| member_days(c, y));
        let outcome = tax(
            rates,
            &TaxInput {
                year: y,
                l_wh: sum.l_wh,
                t_wh: sum.t_wh,
                p_wh,
                member_days: days,
                year_days: year_days(y),
                tax_credit: conn.is_some_and(|c| c.tax_credit),
            },
        );
        p_col.push(has_installation.then_some(sum.p_sum));
        regime.push(outcome.regime.as_str());
        taxable.push(outcome.taxable_wh);
        own.push(outcome.own_use_exempt_wh);
        member.push(days);
        e_tax.push(outcome.energy_tax_ct);
        credit.push(outcome.tax_credit_ct);
        net.push(outcome.net_energy_tax_ct);
        saving.push(outcome.exemption_saving_ct);
        confirmed.push(outcome.rates_confirmed);
        complete.push(sum.days_present == days && sum.missing == 0);
    }
    let col_of = |name: &str, s: Series| -> Column { s.with_name(name.into()).into() };
    out.push(col_of("ean", Series::new("".into(), ean_col)));
    out.push(col_of(
        "participant_id",
        Series::new("".into(), participant_col),
    ));
    out.push(col_of("l_wh", Series::new("".into(), l_col)));
    out.push(col_of("t_wh", Series::new("".into(), t_col)));
    out.push(col_of("v_wh", Series::new("".into(), v_col)));
    out.push(col_of("year", Series::new("".into(), year_col)));
    out.push(col_of("p_wh", Series::new("".into(), p_col)));
    out.push(col_of("regime", Series::new("".into(), regime)));
    out.push(col_of("taxable_wh", Series::new("".into(), taxable)));
    out.push(col_of("own_use_exempt_wh", Series::new("".into(), own)));
    out.push(col_of("member_days", Series::new("".into(), member)));
    out.push(col_of("energy_tax_ct", Series::new("".into(), e_tax)));
    out.push(col_of("tax_credit_ct", Series::new("".into(), credit)));
    out.push(col_of("net_energy_tax_ct", Series::new("".into(), net)));
    out.push(col_of(
        "exemption_saving_ct",
        Series::new("".into(), saving),
    ));
    out.push(col_of("rates_confirmed", Series::new("".into(), confirmed)));
    out.push(col_of("complete", Series::new("".into(), complete)));
    Ok(DataFrame::new_infer_height(out)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::test_registry;

    type Day<'a> = (&'a str, &'a str, i32, i64, i64, Option<i64>, i64, i64);

    fn frame(rows: &[Day]) -> DataFrame {
        let c = |name: &str, s: Series| -> Column { s.with_name(name.into()).into() };
        let v = |f: fn(&Day) -> i64| rows.iter().map(f).collect::<Vec<i64>>();
        DataFrame::new_infer_height(vec![
            c(
                "ean",
                Series::new("".into(), rows.iter().map(|r| r.0).collect::<Vec<_>>()),
            ),
            c(
                "participant_id",
                Series::new("".into(), rows.iter().map(|r| r.1).collect::<Vec<_>>()),
            ),
            c(
                "year",
                Series::new("".into(), rows.iter().map(|r| r.2).collect::<Vec<_>>()),
            ),
            c("l_wh", Series::new("".into(), v(|r| r.3))),
            c("t_wh", Series::new("".into(), v(|r| r.4))),
            c(
                "p_wh",
                Series::new("".into(), rows.iter().map(|r| r.5).collect::<Vec<_>>()),
            ),
            c("v_wh", Series::new("".into(), v(|r| r.6))),
            c("intervals_missing", Series::new("".into(), v(|r| r.7))),
        ])
        .unwrap()
    }

    #[test]
    fn a_years_sums_equal_a_group_by_over_its_days() {
        // Connection 3 has an installation (see `test_registry`).
        let reg = test_registry(&[3]);
        let (a, c) = (
            reg.connections[0].ean.as_str(),
            reg.connections[2].ean.as_str(),
        );
        // Out of order, in two chunks, two years, a day without P, and a connection whose
        // year has two participants (a change of tenant).
        let rows: [Day; 7] = [
            (c, "P3", 2026, 10, 1, Some(5), 14, 0),
            (a, "P1", 2025, 7, 0, None, 7, 2),
            (c, "P3", 2026, 20, 2, Some(6), 24, 0),
            (a, "P1", 2026, 3, 4, None, -1, 0),
            (c, "P9", 2026, 1, 1, None, 0, 96),
            (a, "P1", 2025, 8, 1, None, 7, 0),
            (c, "P3", 2025, 5, 0, Some(2), 7, 0),
        ];
        let mut daily = frame(&rows[..4]);
        daily.vstack_mut(&frame(&rows[4..])).unwrap();
        let got = tax_base_yearly(&daily, &reg, &Rates::builtin()).unwrap();
        // An independent method: Polars' group-by, ordered by the table's key.
        let want = daily
            .clone()
            .lazy()
            .group_by_stable([col("ean"), col("participant_id"), col("year")])
            .agg([
                col("l_wh").sum(),
                col("t_wh").sum(),
                col("v_wh").sum(),
                col("p_wh").sum().alias("p_sum"),
            ])
            .sort(
                ["ean", "year", "participant_id"],
                SortMultipleOptions::default(),
            )
            .collect()
            .unwrap();
        assert_eq!(got.height(), 5);
        for name in ["ean", "participant_id", "l_wh", "t_wh", "v_wh"] {
            let (g, w) = (got.column(name).unwrap(), want.column(name).unwrap());
            assert!(
                g.as_materialized_series()
                    .equals(w.as_materialized_series()),
                "{name}: {g:?} {w:?}"
            );
        }
        let years: Vec<Option<i64>> = got.column("year").unwrap().i64().unwrap().iter().collect();
        let want_years: Vec<Option<i64>> = want
            .column("year")
            .unwrap()
            .cast(&DataType::Int64)
            .unwrap()
            .i64()
            .unwrap()
            .iter()
            .collect();
        assert_eq!(years, want_years);
        // By hand: P only for the connection with an installation, summed over its days
        // (5 + 6 in 2026 for P3, 2 in 2025; P9's one day had none: 0).
        let p: Vec<Option<i64>> = got.column("p_wh").unwrap().i64().unwrap().iter().collect();
        assert_eq!(p, [None, None, Some(2), Some(11), Some(0)]);
        // Complete: every member day present and none missing; two days of 365 are not.
        let complete: Vec<Option<bool>> = got
            .column("complete")
            .unwrap()
            .bool()
            .unwrap()
            .iter()
            .collect();
        assert!(complete.iter().all(|c| *c == Some(false)));
        let member: Vec<Option<i64>> = got
            .column("member_days")
            .unwrap()
            .i64()
            .unwrap()
            .iter()
            .collect();
        assert_eq!(member, [Some(365); 5]);
    }

    #[test]
    fn the_calendars_edges_are_no_panic() {
        // A hostile date in the last year chrono knows: the next year's first day is beyond it.
        let reg = test_registry(&[1]);
        assert_eq!(year_days(2024), 366);
        assert_eq!(year_days(2026), 365);
        let last = chrono::Datelike::year(&NaiveDate::MAX);
        assert_eq!(year_days(last), 365);
        assert_eq!(member_days(&reg.connections[0], last), 365);
        assert_eq!(member_days(&reg.connections[0], i32::MAX), 0);
    }

    #[test]
    fn no_days_no_years() {
        let reg = test_registry(&[1]);
        let got = tax_base_yearly(&frame(&[]), &reg, &Rates::builtin()).unwrap();
        assert_eq!(got.height(), 0);
    }
}
