//! `vaten publish`: what a cooperative shares with its federation. Aggregates only, as hive
//! Parquet under `<out>/coop=<coop_id>/`, rewritten whole on every run:
//!
//! - `quarter_hours/date=…/`: per quarter-hour and scope (each cable group, and `cooperative`);
//! - `days/year=…/` and `months/year=…/`: the sums of those quarter-hours.
//!
//! No table has a row per connection, and no published figure describes fewer than
//! [`MIN_CONNECTIONS`] connections, not even by subtracting one from another (the rule of the
//! public yearly report):
//! - scopes are the yearly report's cable groups: a cable of at least five connections by its
//!   id, smaller ones together as "other cables" (enlarged until it has none or five);
//! - the finest cell is (group, quarter-hour). Its L, T and P are published only when the
//!   connections that contributed (drew, fed back, produced: the value is above 0) number none
//!   or at least five; V only with all three, matched energy (min of the group's L and T) only
//!   with L and T. Otherwise the figure is null: withheld;
//! - a cooperative's quarter-hour figure is the sum over its groups, published only when no
//!   group withheld it; a day or a month is the sum of the published quarter-hours of its
//!   scope, with the count of withheld ones beside it. Every published figure is therefore a
//!   sum of whole published cells, and so is every difference of two of them.
//!
//! Quarter-hours beyond the agreed voltage limits are counted per cable from the daily cable
//! table and summed per group (a count of quarter-hours, no energy of anyone).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::error::{Error, Result};
use crate::lake::convert::to_batch;
use crate::lake::parquet_io::write_sorted;
use crate::lake::schema::{col as column, ColType::*, Partitioning, TableSpec};
use crate::lake::schema::{CABLE_BALANCE_DAILY, INTERVALS};
use crate::lake::Lake;
use crate::registry::Registry;
use crate::reports::yearly::{cable_groups_of, MIN_CONNECTIONS};

/// The scope of a cooperative's own totals.
pub const COOPERATIVE: &str = "cooperative";

pub const FED_QUARTER_HOURS: TableSpec = TableSpec {
    name: "quarter_hours",
    columns: &[
        column("scope", Utf8, false, ""),
        column("region", Utf8, false, ""),
        column("interval_start", TimestampUtc, false, "UTC"),
        column("connections", Int64, false, ""),
        column("connections_reporting", Int64, false, ""),
        column("l_wh", Int64, true, "Wh"),
        column("t_wh", Int64, true, "Wh"),
        column("p_wh", Int64, true, "Wh"),
        column("v_wh", Int64, true, "Wh"),
        column("matched_wh", Int64, true, "Wh"),
    ],
    sort_by: &["scope", "interval_start"],
    partitioning: Partitioning::Date,
};

/// The columns a day and a month add up.
const SUMS: [&str; 5] = ["l_wh", "t_wh", "p_wh", "v_wh", "matched_wh"];

macro_rules! period_table {
    ($name:literal, $key:expr, $key_ty:expr) => {
        TableSpec {
            name: $name,
            columns: &[
                column("scope", Utf8, false, ""),
                column("region", Utf8, false, ""),
                column($key, $key_ty, false, ""),
                column("quarter_hours", Int64, false, ""),
                column("connection_quarters", Int64, false, ""),
                column("connection_quarters_reporting", Int64, false, ""),
                column("l_wh", Int64, false, "Wh"),
                column("t_wh", Int64, false, "Wh"),
                column("p_wh", Int64, false, "Wh"),
                column("v_wh", Int64, false, "Wh"),
                column("matched_wh", Int64, false, "Wh"),
                column("l_withheld", Int64, false, ""),
                column("t_withheld", Int64, false, ""),
                column("p_withheld", Int64, false, ""),
                column("v_withheld", Int64, false, ""),
                column("matched_withheld", Int64, false, ""),
                column("quarter_hours_beyond_limits", Int64, false, ""),
            ],
            sort_by: &["scope", $key],
            partitioning: Partitioning::Year,
        }
    };
}

pub const FED_DAYS: TableSpec = period_table!("days", "date", Date);
pub const FED_MONTHS: TableSpec = period_table!("months", "month", Utf8);

/// What a publication wrote.
#[derive(Debug, Default)]
pub struct Published {
    pub folder: PathBuf,
    pub scopes: usize,
    pub quarter_hours: usize,
    pub withheld: usize,
}

/// `coop_id` as a hive partition value: letters, digits, `-`, `_`, at most 64.
pub fn valid_coop_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn publishable(n: &str) -> Expr {
    col(n)
        .eq(lit(0))
        .or(col(n).gt_eq(lit(MIN_CONNECTIONS as i64)))
}

fn null_int() -> Expr {
    lit(NULL).cast(DataType::Int64)
}

/// The sum of a column's values in a group, null when the group has none (no data is not 0).
fn sum_of_data(value: &str) -> Expr {
    when(col(value).count().gt(lit(0)))
        .then(col(value).sum())
        .otherwise(null_int())
}

fn contributors(value: &str) -> Expr {
    col(value)
        .gt(lit(0))
        .fill_null(lit(false))
        .cast(DataType::Int64)
        .sum()
}

/// Publishes the aggregates of `lake` under `out/coop=<coop_id>/`.
pub fn publish(
    lake: &Lake,
    registry: &Registry,
    coop_id: &str,
    region: &str,
    out: &Path,
) -> Result<Published> {
    if !valid_coop_id(coop_id) {
        return Err(Error::Usage(format!(
            "coop id `{coop_id}`: 1 to 64 letters, digits, `-` or `_`"
        )));
    }
    let Some(intervals) = lake.scan(&INTERVALS)? else {
        return Err(Error::Usage(
            "the lake has no intervals yet: run `vaten transform` first".into(),
        ));
    };
    // Cable → group, as the public report groups them (connections of the registry).
    let groups: BTreeMap<String, String> = cable_groups_of(
        registry
            .connections
            .iter()
            .map(|c| (c.cable_id.clone(), c.ean.to_string())),
    )
    .into_iter()
    .map(|(cable, (group, _))| (cable, group))
    .collect();
    let (cables, names): (Vec<String>, Vec<String>) = groups.clone().into_iter().unzip();
    let group_of = df!("cable_id" => cables, "scope" => names)?.lazy();

    let cells = intervals
        .join(
            group_of.clone(),
            [col("cable_id")],
            [col("cable_id")],
            JoinArgs::new(JoinType::Inner),
        )
        .group_by([col("scope"), col("interval_start"), col("date")])
        .agg([
            len().cast(DataType::Int64).alias("connections"),
            col("l_quality")
                .neq(lit("missing"))
                .cast(DataType::Int64)
                .sum()
                .alias("connections_reporting"),
            sum_of_data("l_wh").alias("l_sum"),
            sum_of_data("t_wh").alias("t_sum"),
            sum_of_data("p_wh").alias("p_sum"),
            sum_of_data("v_wh").alias("v_sum"),
            contributors("l_wh").alias("n_l"),
            contributors("t_wh").alias("n_t"),
            contributors("p_wh").alias("n_p"),
        ])
        .with_columns([
            when(publishable("n_l"))
                .then(col("l_sum"))
                .otherwise(null_int())
                .alias("l_wh"),
            when(publishable("n_t"))
                .then(col("t_sum"))
                .otherwise(null_int())
                .alias("t_wh"),
            when(publishable("n_p"))
                .then(col("p_sum"))
                .otherwise(null_int())
                .alias("p_wh"),
        ])
        .with_columns([
            when(
                col("l_wh")
                    .is_not_null()
                    .and(col("t_wh").is_not_null())
                    .and(col("p_wh").is_not_null()),
            )
            .then(col("v_sum"))
            .otherwise(null_int())
            .alias("v_wh"),
            // Matched needs both: with either withheld it would tell about the other.
            when(col("l_wh").is_null().or(col("t_wh").is_null()))
                .then(null_int())
                .when(col("l_wh").lt(col("t_wh")))
                .then(col("l_wh"))
                .otherwise(col("t_wh"))
                .alias("matched_wh"),
        ])
        .select([
            col("scope"),
            col("interval_start"),
            col("date"),
            col("connections"),
            col("connections_reporting"),
            col("l_wh"),
            col("t_wh"),
            col("p_wh"),
            col("v_wh"),
            col("matched_wh"),
        ]);
    // The cooperative: the sum over its groups, withheld when any group withheld it.
    let all_or_nothing = |c: &str| {
        when(col(c).null_count().eq(lit(0)))
            .then(col(c).sum())
            .otherwise(null_int())
            .alias(c)
    };
    let mut coop_aggs = vec![
        col("connections").sum().alias("connections"),
        col("connections_reporting")
            .sum()
            .alias("connections_reporting"),
    ];
    coop_aggs.extend(SUMS.iter().map(|c| all_or_nothing(c)));
    let coop = cells
        .clone()
        .group_by([col("interval_start"), col("date")])
        .agg(coop_aggs)
        .with_column(lit(COOPERATIVE).alias("scope"))
        .select([
            col("scope"),
            col("interval_start"),
            col("date"),
            col("connections"),
            col("connections_reporting"),
            col("l_wh"),
            col("t_wh"),
            col("p_wh"),
            col("v_wh"),
            col("matched_wh"),
        ]);
    let quarters = concat([cells, coop], UnionArgs::default())?
        .with_column(lit(region.to_string()).alias("region"))
        .with_columns([
            col("connections").cast(DataType::Int64),
            col("connections_reporting").cast(DataType::Int64),
        ])
        .sort(["scope", "interval_start"], SortMultipleOptions::default())
        .collect()?;

    // Quarter-hours beyond the limits per day: per cable, summed per group and cooperative.
    let beyond = match lake.scan(&CABLE_BALANCE_DAILY)? {
        Some(cbd) => {
            let per_group = cbd
                .join(
                    group_of,
                    [col("cable_id")],
                    [col("cable_id")],
                    JoinArgs::new(JoinType::Inner),
                )
                .with_column(
                    (col("quarters_below_v_low").fill_null(lit(0))
                        + col("quarters_above_v_high").fill_null(lit(0)))
                    .cast(DataType::Int64)
                    .alias("beyond"),
                );
            let groups = per_group
                .clone()
                .group_by([col("scope"), col("date")])
                .agg([col("beyond").sum()]);
            let total = per_group
                .group_by([col("date")])
                .agg([col("beyond").sum()])
                .with_column(lit(COOPERATIVE).alias("scope"))
                .select([col("scope"), col("date"), col("beyond")]);
            Some(concat([groups, total], UnionArgs::default())?)
        }
        None => None,
    };

    let period = |key: Expr, name: &str| -> Result<DataFrame> {
        let mut aggs = vec![
            len().cast(DataType::Int64).alias("quarter_hours"),
            col("connections").sum().alias("connection_quarters"),
            col("connections_reporting")
                .sum()
                .alias("connection_quarters_reporting"),
        ];
        for c in SUMS {
            aggs.push(col(c).sum().fill_null(lit(0)).alias(c));
            let withheld = format!("{}_withheld", c.trim_end_matches("_wh"));
            aggs.push(col(c).null_count().cast(DataType::Int64).alias(&withheld));
        }
        let mut lf = quarters
            .clone()
            .lazy()
            .with_column(key.alias(name))
            .group_by([col("scope"), col("region"), col(name)])
            .agg(aggs);
        lf = match &beyond {
            Some(b) => {
                let b = b
                    .clone()
                    .with_column(
                        if name == "month" {
                            col("date").dt().strftime("%Y-%m")
                        } else {
                            col("date")
                        }
                        .alias(name),
                    )
                    .group_by([col("scope"), col(name)])
                    .agg([col("beyond").sum().alias("quarter_hours_beyond_limits")]);
                lf.join(
                    b,
                    [col("scope"), col(name)],
                    [col("scope"), col(name)],
                    JoinArgs::new(JoinType::Left),
                )
            }
            None => lf.with_column(lit(0i64).alias("quarter_hours_beyond_limits")),
        };
        Ok(lf
            .with_column(
                col("quarter_hours_beyond_limits")
                    .fill_null(lit(0))
                    .cast(DataType::Int64),
            )
            .collect()?)
    };
    let days = period(col("date"), "date")?;
    let months = period(col("date").dt().strftime("%Y-%m"), "month")?;

    // Written beside the old publication, then swapped in (readers see one or the other).
    std::fs::create_dir_all(out)?;
    let folder = out.join(format!("coop={coop_id}"));
    let fresh = out.join(format!(".coop={coop_id}.new"));
    let _ = std::fs::remove_dir_all(&fresh);
    write_partitioned(&fresh, &FED_QUARTER_HOURS, &quarters, |df| {
        partition_values(df, "date", |d| {
            chrono::NaiveDate::from_num_days_from_ce_opt(d + 719_163).map(|d| d.to_string())
        })
    })?;
    for (spec, df) in [(&FED_DAYS, &days), (&FED_MONTHS, &months)] {
        let year = if spec.name == "days" {
            df.column("date")?
                .cast(&DataType::Int32)?
                .i32()?
                .iter()
                .map(|d| {
                    d.and_then(|d| chrono::NaiveDate::from_num_days_from_ce_opt(d + 719_163))
                        .map(|d| chrono::Datelike::year(&d).to_string())
                })
                .collect::<Vec<_>>()
        } else {
            df.column("month")?
                .str()?
                .iter()
                .map(|m| m.and_then(|m| m.get(..4)).map(str::to_string))
                .collect()
        };
        let mut df = df.clone();
        df.with_column(Column::new(
            "year".into(),
            year.into_iter()
                .map(|y| y.unwrap_or_default())
                .collect::<Vec<_>>(),
        ))?;
        write_partitioned(&fresh, spec, &df, |df| partition_strings(df, "year"))?;
    }
    let old = out.join(format!(".coop={coop_id}.old"));
    let _ = std::fs::remove_dir_all(&old);
    if folder.exists() {
        std::fs::rename(&folder, &old)?;
    }
    std::fs::rename(&fresh, &folder)?;
    let _ = std::fs::remove_dir_all(&old);
    let withheld = SUMS
        .iter()
        .map(|c| quarters.column(c).map_or(0, |s| s.null_count()))
        .sum();
    Ok(Published {
        folder,
        scopes: quarters.column("scope")?.n_unique()?,
        quarter_hours: quarters.height(),
        withheld,
    })
}

/// The partition value of every row (`None` rows are an error of the caller).
fn partition_values(
    df: &DataFrame,
    name: &str,
    show: impl Fn(i32) -> Option<String>,
) -> Result<Vec<String>> {
    let days = df.column(name)?.cast(&DataType::Int32)?;
    Ok(days
        .i32()?
        .iter()
        .map(|d| d.and_then(&show).unwrap_or_default())
        .collect())
}

fn partition_strings(df: &DataFrame, name: &str) -> Result<Vec<String>> {
    Ok(df
        .column(name)?
        .str()?
        .iter()
        .map(|s| s.unwrap_or_default().to_string())
        .collect())
}

/// Writes `df` as `spec` under `root/<table>/<key>=<value>/part-0.parquet`, one file per
/// partition value.
fn write_partitioned(
    root: &Path,
    spec: &TableSpec,
    df: &DataFrame,
    values: impl Fn(&DataFrame) -> Result<Vec<String>>,
) -> Result<()> {
    let keys = values(df)?;
    let mut rows: BTreeMap<&str, Vec<IdxSize>> = BTreeMap::new();
    for (i, k) in keys.iter().enumerate() {
        rows.entry(k.as_str()).or_default().push(i as IdxSize);
    }
    for (key, idx) in rows {
        let part = df.take(&IdxCa::from_vec("idx".into(), idx))?;
        let dir = root
            .join(spec.name)
            .join(format!("{}={key}", spec.partitioning.key()));
        std::fs::create_dir_all(&dir)?;
        write_sorted(&dir.join("part-0.parquet"), spec, &to_batch(&part, spec)?)?;
    }
    Ok(())
}
