//! Yearly participant statements (private: `reports/private/statements/Y/<participant>.html`):
//! V, L, T, P per month with a chart, own use, taxable base, the estimated energy tax with
//! the reduction, and how complete the data is. A participant with several connections gets
//! their sums.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use polars::prelude::*;

use super::charts::{line_chart, Line, LineChart, BLUE_L, ORANGE_T, PURPLE, RED};
use super::doc::{Block, Cell, Doc, Value};
use super::yearly::{daily, sum_money, MONTHS};
use super::{ints, rows, strings, write_file, Written};
use crate::error::Result;
use crate::lake::schema::TAX_BASE_YEARLY;
use crate::lake::Lake;
use crate::marts::rates::{Rates, Regime};
use crate::registry::{statement_file_stem, Registry};

/// A participant id as the statement's file name (see [`statement_file_stem`]).
pub fn file_name(participant: &str) -> String {
    statement_file_stem(participant)
}

/// A participant's statement files under the reports folder `reports`, with their years.
pub fn files_of(reports: &Path, participant: &str) -> Vec<(String, std::path::PathBuf)> {
    let name = format!("{}.html", file_name(participant));
    let Ok(years) = std::fs::read_dir(reports.join("private").join("statements")) else {
        return Vec::new();
    };
    years
        .flatten()
        .map(|y| {
            (
                y.file_name().to_string_lossy().into_owned(),
                y.path().join(&name),
            )
        })
        .filter(|(_, f)| f.is_file())
        .collect()
}

pub fn statements(
    lake: &Lake,
    registry: &Registry,
    rates: &Rates,
    year: i32,
    out: &Path,
    as_of: chrono::NaiveDate,
) -> Result<Written> {
    let d = daily(lake, year)?;
    let ty = rows(
        lake,
        &TAX_BASE_YEARLY,
        col("year").cast(DataType::Int64).eq(lit(i64::from(year))),
        &[col("*")],
    )?;
    let participants: BTreeSet<String> = strings(&d, "participant_id")?.into_iter().collect();
    let dir = out
        .join("private")
        .join("statements")
        .join(year.to_string());
    let mut written = Written::default();
    let d_pid = strings(&d, "participant_id")?;
    let month = ints(&d, "month")?;
    let cols = [
        "v_wh",
        "l_wh",
        "t_wh",
        "p_wh",
        "intervals_measured",
        "intervals_estimated",
        "intervals_derived",
        "intervals_missing",
    ];
    let vals: Vec<Vec<Option<i64>>> = cols.iter().map(|c| ints(&d, c)).collect::<Result<_>>()?;
    let has_p = ints(&d, "p_wh")?;
    let t_pid = strings(&ty, "participant_id")?;
    let t_cols = [
        "own_use_exempt_wh",
        "taxable_wh",
        "energy_tax_ct",
        "tax_credit_ct",
        "net_energy_tax_ct",
    ];
    let t_vals: Vec<Vec<Option<i64>>> =
        t_cols.iter().map(|c| ints(&ty, c)).collect::<Result<_>>()?;
    let confirmed: Vec<Option<bool>> = if ty.height() > 0 {
        ty.column("rates_confirmed")?.bool()?.iter().collect()
    } else {
        Vec::new()
    };
    for pid in &participants {
        // month → sums of `cols`
        let mut per_month: BTreeMap<i64, [i64; 8]> = BTreeMap::new();
        let mut with_installation = false;
        for i in (0..d_pid.len()).filter(|&i| &d_pid[i] == pid) {
            let Some(m) = month[i] else { continue };
            let e = per_month.entry(m).or_default();
            for (j, v) in vals.iter().enumerate() {
                e[j] += v[i].unwrap_or(0);
            }
            with_installation |= has_p[i].is_some();
        }
        let mut doc = Doc::new(format!("Your energy in {year}"));
        let conns: Vec<&str> = registry
            .connections
            .iter()
            .filter(|c| &c.participant_id == pid)
            .map(|c| c.ean.as_str())
            .collect();
        doc.para(format!(
            "Participant {pid}; connection(s) {}. Private: for you only. Energy in kWh to the Wh.",
            conns.join(", ")
        ));
        doc.heading("Month by month");
        let names = ["V: consumption", "L: delivered", "T: fed back", "P: solar"];
        let keys = ["v_wh", "l_wh", "t_wh", "p_wh"];
        let mut table = Vec::new();
        for (m, e) in &per_month {
            let mut row = vec![Cell::text(MONTHS[(*m - 1) as usize])];
            for j in 0..4 {
                if j == 3 && !with_installation {
                    row.push(Cell::text("–"));
                } else {
                    row.push(Cell::fig(
                        format!("month.{m:02}.{}", keys[j]),
                        Value::Wh(e[j]),
                    ));
                }
            }
            table.push(row);
        }
        let mut head = vec!["month"];
        head.extend(names);
        doc.table(&head, table);
        if !per_month.is_empty() {
            let months: Vec<i64> = per_month.keys().copied().collect();
            let colors = [PURPLE, BLUE_L, ORANGE_T, RED];
            let lines = (0..if with_installation { 4 } else { 3 })
                .map(|j| Line {
                    name: names[j].split(':').next().unwrap_or("").to_string(),
                    points: months
                        .iter()
                        .enumerate()
                        .map(|(i, m)| (i as f64, per_month[m][j] as f64 / 1000.0))
                        .collect(),
                    color: colors[j],
                })
                .collect();
            let svg = line_chart(&LineChart {
                title: format!("Your energy per month, {year} (kWh)"),
                y_desc: "kWh".into(),
                x_labels: months
                    .iter()
                    .map(|m| MONTHS[(*m - 1) as usize].to_string())
                    .collect(),
                label_every: 1,
                lines,
            })?;
            doc.push(Block::Chart {
                svg,
                alt: format!("Your V, L, T and P per month of {year}"),
            });
        }

        // Tax: the participant's connections' rows summed.
        let idx: Vec<usize> = (0..t_pid.len()).filter(|&i| &t_pid[i] == pid).collect();
        let pick = |j: usize| -> Vec<Option<i64>> { idx.iter().map(|&i| t_vals[j][i]).collect() };
        let regime = Regime::of_year(year);
        doc.heading("Energy tax");
        let vat = crate::marts::vat::rate_for_year(year);
        doc.para(format!(
            "{} regime. Own use behind the meter (max(0, P − T)) is never taxed. Amounts are estimates excluding VAT; your supplier's bill shows energy tax and reduction including VAT{}, and is what counts.",
            regime.as_str(),
            vat.as_ref().map_or(String::new(), |(pct, _)| format!(" ({pct} %): compare it with the last row"))
        ));
        let net = sum_money(&pick(4));
        let mut tax_rows = vec![
            vec![
                Cell::text("own use, exempt"),
                Cell::fig(
                    "tax.own_use_exempt_wh",
                    Value::Wh(pick(0).iter().flatten().sum()),
                ),
            ],
            vec![
                Cell::text("taxable base"),
                Cell::fig("tax.taxable_wh", Value::Wh(pick(1).iter().flatten().sum())),
            ],
            vec![
                Cell::text("energy tax, excluding VAT"),
                Cell::fig("tax.energy_tax_ct", Value::Cents(sum_money(&pick(2)))),
            ],
            vec![
                Cell::text("reduction, excluding VAT"),
                Cell::fig("tax.tax_credit_ct", Value::Cents(sum_money(&pick(3)))),
            ],
            vec![
                Cell::text("net energy tax, excluding VAT"),
                Cell::fig("tax.net_energy_tax_ct", Value::Cents(net)),
            ],
        ];
        if let Some((pct, _)) = &vat {
            // As a bill shows them: tax and reduction each with VAT, each rounded, then the net.
            let with_vat = |ct: Option<i64>| ct.map(|ct| crate::marts::vat::including(ct, *pct));
            let (tax, credit) = (with_vat(sum_money(&pick(2))), with_vat(sum_money(&pick(3))));
            tax_rows.push(vec![
                Cell::text(format!("energy tax, including {pct} % VAT")),
                Cell::fig("tax.energy_tax_incl_vat_ct", Value::Cents(tax)),
            ]);
            tax_rows.push(vec![
                Cell::text(format!("reduction, including {pct} % VAT")),
                Cell::fig("tax.tax_credit_incl_vat_ct", Value::Cents(credit)),
            ]);
            tax_rows.push(vec![
                Cell::text(format!(
                    "net energy tax, including {pct} % VAT (as on a bill)"
                )),
                Cell::fig(
                    "tax.net_energy_tax_incl_vat_ct",
                    Value::Cents(tax.zip(credit).map(|(t, c)| t - c)),
                ),
            ]);
        }
        doc.table(&["figure", "value"], tax_rows);
        if let Some((_, source)) = &vat {
            doc.para(format!("VAT: {source}."));
        }
        if rates
            .years
            .get(&year)
            .is_some_and(|r| r.reduction.is_none())
            && idx.iter().any(|&i| t_vals[3][i].is_none())
        {
            doc.push(Block::Warning(format!(
                "The rates file has no energy-tax reduction for {year}: your reduction and net energy tax are not computed."
            )));
        }
        if idx
            .iter()
            .any(|&i| confirmed.get(i).copied().flatten() == Some(false))
        {
            doc.push(Block::Warning(
                "Some of the tax rates used are not confirmed yet.".into(),
            ));
        }
        if !rates.years.contains_key(&year) {
            doc.push(Block::Warning(format!(
                "No energy-tax rates for {year} yet: the tax is not computed."
            )));
        }
        doc.heading("How complete your data is");
        let total = |j: usize| per_month.values().map(|e| e[j]).sum::<i64>();
        doc.table(
            &["quarter-hours measured", "estimated", "derived", "missing"],
            vec![vec![
                Cell::fig("completeness.measured", Value::Count(total(4))),
                Cell::fig("completeness.estimated", Value::Count(total(5))),
                Cell::fig("completeness.derived", Value::Count(total(6))),
                Cell::fig("completeness.missing", Value::Count(total(7))),
            ]],
        );
        let path = dir.join(format!("{}.html", file_name(pid)));
        super::restated::mark(
            &mut doc,
            &as_of.to_string(),
            &format!("statement {year} {pid}"),
            super::restated::previous(&path).as_ref(),
            true,
        );
        write_file(out, &path, &doc.html())?;
        written.files.push(path);
    }
    Ok(written)
}
