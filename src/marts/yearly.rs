//! `tax_base_yearly`: per connection per calendar year, from `consumption_daily` (Polars) and
//! the registry's membership, with the tax of [`super::tax`].

use std::collections::BTreeMap;

use chrono::NaiveDate;
use polars::prelude::*;

use super::rates::Rates;
use super::tax::{tax, TaxInput};
use crate::error::Result;
use crate::registry::{Connection, Registry};

fn year_days(year: i32) -> i64 {
    let start = NaiveDate::from_ymd_opt(year, 1, 1).expect("valid year");
    let end = NaiveDate::from_ymd_opt(year + 1, 1, 1).expect("valid year");
    (end - start).num_days()
}

/// Days of `year` the connection belongs to the cooperative.
pub fn member_days(c: &Connection, year: i32) -> i64 {
    let first = NaiveDate::from_ymd_opt(year, 1, 1).expect("valid year");
    let last = NaiveDate::from_ymd_opt(year, 12, 31).expect("valid year");
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
        // Missing values count as none, as a sum over them does.
        s.l_wh += l.unwrap_or(0);
        s.t_wh += t.unwrap_or(0);
        match p {
            Some(p) => s.p_sum += p,
            None => s.p_nulls += 1,
        }
        s.v_wh += v.unwrap_or(0);
        s.days_present += 1;
        s.missing += missing.unwrap_or(0);
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
