//! Energy-tax rates and the net-metering regime as data (`data/tariffs/`), with sources and a
//! `confirmed` flag per value. Amounts are kept as exact integers: rates in 10⁻⁵ EUR per kWh,
//! the reduction in cents.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::error::{Error, Result};

/// The project's own rates, used when `[tax] rates` is not configured.
pub const BUILTIN_RATES: &str = include_str!("../../data/tariffs/energy-tax-nl.csv");
const BUILTIN_REGIMES: &str = include_str!("../../data/tariffs/net-metering-nl.csv");

#[derive(Debug, Clone, PartialEq)]
pub struct Bracket {
    /// Half-open `(from_wh, to_wh]` for a whole-year member.
    pub from_wh: i64,
    pub to_wh: i64,
    /// EUR per kWh × 10⁵ (0.09161 → 9161).
    pub rate_e5: i64,
    pub confirmed: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct YearRates {
    pub brackets: Vec<Bracket>,
    /// Yearly reduction per connection in cents, and whether confirmed.
    pub reduction: Option<(i64, bool)>,
    pub sources: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Rates {
    pub years: BTreeMap<i32, YearRates>,
}

/// `"0.09161"` scaled by 10^`scale`, exactly; `None` when it has more decimals or is not a number.
fn decimal(s: &str, scale: u32) -> Option<i64> {
    let s = s.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > scale as usize || !frac.bytes().all(|b| b.is_ascii_digit()) || int.is_empty() {
        return None;
    }
    let padded = format!("{frac:0<width$}", width = scale as usize);
    Some(
        int.parse::<i64>().ok()? * 10i64.pow(scale)
            + if scale == 0 {
                0
            } else {
                padded.parse::<i64>().ok()?
            },
    )
}

impl Rates {
    pub fn builtin() -> Self {
        Self::parse(BUILTIN_RATES, "data/tariffs/energy-tax-nl.csv")
            .expect("the project's rates file is valid")
    }

    /// Parses a rates file; problems name the file and line (exit 2).
    pub fn parse(text: &str, name: &str) -> Result<Self> {
        let mut rates = Rates::default();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        for (i, rec) in reader.records().enumerate() {
            let line = i + 2;
            let bad = |m: &str| Error::Usage(format!("{name}:{line}: {m}"));
            let rec = rec.map_err(|e| bad(&e.to_string()))?;
            let get = |k: usize| rec.get(k).unwrap_or("").trim();
            let year: i32 = get(0).parse().map_err(|_| bad("year is not a number"))?;
            let confirmed = match get(5) {
                "true" => true,
                "false" => false,
                _ => return Err(bad("confirmed must be true or false")),
            };
            let entry = rates.years.entry(year).or_default();
            entry.sources.push(get(6).to_string());
            match get(1) {
                "bracket" => {
                    let kwh = |k: usize| {
                        decimal(get(k), 3).ok_or_else(|| bad("bracket bounds must be kWh"))
                    };
                    let rate_e5 = decimal(get(4), 5)
                        .ok_or_else(|| bad("rate must be EUR/kWh with at most 5 decimals"))?;
                    entry.brackets.push(Bracket {
                        from_wh: kwh(2)?,
                        to_wh: kwh(3)?,
                        rate_e5,
                        confirmed,
                    });
                }
                "reduction" => {
                    let ct = decimal(get(4), 2)
                        .ok_or_else(|| bad("reduction must be EUR with at most 2 decimals"))?;
                    entry.reduction = Some((ct, confirmed));
                }
                other => {
                    return Err(bad(&format!(
                        "kind `{other}` is neither bracket nor reduction"
                    )))
                }
            }
        }
        for y in rates.years.values_mut() {
            y.brackets.sort_by_key(|b| b.from_wh);
            y.sources.sort();
            y.sources.dedup();
        }
        Ok(rates)
    }
}

/// The net-metering regime of a year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Regime {
    /// Taxable is max(0, L − T) (until the end of 2026).
    Netting,
    /// Taxable is L.
    NoNetting,
}

impl Regime {
    pub fn as_str(self) -> &'static str {
        match self {
            Regime::Netting => "netting",
            Regime::NoNetting => "no_netting",
        }
    }

    /// The regime in force on 1 January of `year`, from `data/tariffs/net-metering-nl.csv`.
    pub fn of_year(year: i32) -> Regime {
        let day = NaiveDate::from_ymd_opt(year, 1, 1).expect("valid year");
        let mut reader = csv::Reader::from_reader(BUILTIN_REGIMES.as_bytes());
        for rec in reader.records().flatten() {
            let from = rec.get(0).and_then(|s| s.parse::<NaiveDate>().ok());
            let until = rec.get(1).and_then(|s| s.parse::<NaiveDate>().ok());
            if from.is_none_or(|f| day >= f) && until.is_none_or(|u| day <= u) {
                return match rec.get(2) {
                    Some("no_netting") => Regime::NoNetting,
                    _ => Regime::Netting,
                };
            }
        }
        Regime::NoNetting
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_decimals() {
        assert_eq!(decimal("0.09161", 5), Some(9161));
        assert_eq!(decimal("519.80", 2), Some(51980));
        assert_eq!(decimal("10000", 3), Some(10_000_000));
        assert_eq!(decimal("0.091615", 5), None);
    }

    #[test]
    fn builtin_rates_and_regimes() {
        let r = Rates::builtin();
        let y26 = &r.years[&2026];
        assert_eq!(y26.brackets.len(), 4);
        assert_eq!(
            y26.brackets[0],
            Bracket {
                from_wh: 0,
                to_wh: 2_900_000,
                rate_e5: 9161,
                confirmed: true
            }
        );
        assert!(!y26.brackets[2].confirmed);
        assert_eq!(y26.reduction, Some((51_980, true)));
        assert!(!r.years.contains_key(&2027));
        assert_eq!(Regime::of_year(2026), Regime::Netting);
        assert_eq!(Regime::of_year(2027), Regime::NoNetting);
    }
}
