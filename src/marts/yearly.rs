//! `tax_base_yearly`: per connection per calendar year, from `consumption_daily` (Polars) and
//! the registry's membership, with the tax of [`super::tax`].

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

/// The yearly tax base from `consumption_daily` (as computed, with its `year` column).
pub fn tax_base_yearly(daily: &DataFrame, registry: &Registry, rates: &Rates) -> Result<DataFrame> {
    let years = daily
        .clone()
        .lazy()
        .group_by_stable([col("ean"), col("participant_id"), col("year")])
        .agg([
            col("l_wh").sum(),
            col("t_wh").sum(),
            col("p_wh").sum().alias("p_sum"),
            col("p_wh")
                .null_count()
                .cast(DataType::Int64)
                .alias("p_nulls"),
            col("v_wh").sum(),
            len().cast(DataType::Int64).alias("days_present"),
            col("intervals_missing").sum().alias("missing"),
        ])
        .sort(["ean", "year"], SortMultipleOptions::default())
        .collect()?;
    let ean = years.column("ean")?.str()?.clone();
    let year = years.column("year")?.cast(&DataType::Int32)?.i32()?.clone();
    let int = |n: &str| -> Result<Int64Chunked> {
        Ok(years.column(n)?.cast(&DataType::Int64)?.i64()?.clone())
    };
    let (l, t, p, p_nulls, days_present, missing) = (
        int("l_wh")?,
        int("t_wh")?,
        int("p_sum")?,
        int("p_nulls")?,
        int("days_present")?,
        int("missing")?,
    );
    let n = years.height();
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
    for i in 0..n {
        let e = ean.get(i).unwrap_or("");
        let y = year.get(i).unwrap_or(0);
        let conn = registry.connection(e);
        let has_installation = conn.is_some_and(|c| c.installation.is_some());
        let p_wh = (has_installation && p_nulls.get(i) == Some(0)).then(|| p.get(i).unwrap_or(0));
        let days = conn.map_or(0, |c| member_days(c, y));
        let outcome = tax(
            rates,
            &TaxInput {
                year: y,
                l_wh: l.get(i).unwrap_or(0),
                t_wh: t.get(i).unwrap_or(0),
                p_wh,
                member_days: days,
                year_days: year_days(y),
                tax_credit: conn.is_some_and(|c| c.tax_credit),
            },
        );
        p_col.push(if has_installation { p.get(i) } else { None });
        regime.push(outcome.regime.as_str());
        taxable.push(outcome.taxable_wh);
        own.push(outcome.own_use_exempt_wh);
        member.push(days);
        e_tax.push(outcome.energy_tax_ct);
        credit.push(outcome.tax_credit_ct);
        net.push(outcome.net_energy_tax_ct);
        saving.push(outcome.exemption_saving_ct);
        confirmed.push(outcome.rates_confirmed);
        complete.push(days_present.get(i) == Some(days) && missing.get(i) == Some(0));
    }
    for name in ["ean", "participant_id", "l_wh", "t_wh", "v_wh"] {
        out.push(years.column(name)?.clone());
    }
    out.push(years.column("year")?.cast(&DataType::Int64)?);
    let col_of = |name: &str, s: Series| -> Column { s.with_name(name.into()).into() };
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
