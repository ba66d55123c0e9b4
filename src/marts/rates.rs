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
    /// Half-open `(from_wh, to_wh]` for a whole-year member; the last bracket of a year is
    /// unbounded: `to_wh` is [`UNBOUNDED`].
    pub from_wh: i64,
    pub to_wh: i64,
    /// EUR per kWh × 10⁵ (0.09161 → 9161); `None` where no source for the rate was at hand
    /// (energy that reaches this bracket gets no tax figure).
    pub rate_e5: Option<i64>,
    pub confirmed: bool,
}

/// The upper bound of a year's last bracket (an empty `to_kwh` in the CSV).
pub const UNBOUNDED: i64 = i64::MAX;

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

/// `"0.09161"` scaled by 10^`scale`, exactly; `None` when it is not plain digits with at most
/// `scale` decimals (no sign: no amount here is negative), or does not fit.
fn decimal(s: &str, scale: u32) -> Option<i64> {
    let s = s.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if frac.len() > scale as usize || int.is_empty() || !digits(int) || !digits(frac) {
        return None;
    }
    let padded = format!("{frac:0<width$}", width = scale as usize);
    let fraction = if scale == 0 {
        0
    } else {
        padded.parse::<i64>().ok()?
    };
    int.parse::<i64>()
        .ok()?
        .checked_mul(10i64.pow(scale))?
        .checked_add(fraction)
}

impl Rates {
    pub fn builtin() -> Self {
        Self::parse(BUILTIN_RATES, "data/tariffs/energy-tax-nl.csv")
            .expect("the project's rates file is valid")
    }

    /// Parses a rates file; problems name the file and line (exit 2). Per year, the brackets
    /// must start at 0 kWh, follow each other without gap or overlap, and end with one whose
    /// upper bound is empty (unbounded): energy is never left untaxed by a hole in the file.
    pub fn parse(text: &str, name: &str) -> Result<Self> {
        let mut rates = Rates::default();
        // Per year: (line, bracket), to name the line of a bracket that does not fit.
        let mut lines: BTreeMap<i32, Vec<(usize, Bracket)>> = BTreeMap::new();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        for rec in reader.records() {
            let rec = rec.map_err(|e| {
                let line = e.position().map_or(0, |p| p.line());
                Error::Usage(format!("{name}:{line}: {e}"))
            })?;
            // The record's own line (quoted notes may span lines, blank lines are skipped).
            let line = rec.position().map_or(0, |p| p.line()) as usize;
            let bad = |m: &str| Error::Usage(format!("{name}:{line}: {m}"));
            let get = |k: usize| rec.get(k).unwrap_or("").trim();
            let year: i32 = get(0)
                .parse()
                .ok()
                .filter(|y| (2000..=2200).contains(y))
                .ok_or_else(|| bad("year must be a number from 2000 to 2200"))?;
            let confirmed = match get(5) {
                "true" => true,
                "false" => false,
                _ => return Err(bad("confirmed must be true or false")),
            };
            let entry = rates.years.entry(year).or_default();
            entry.sources.push(get(6).to_string());
            match get(1) {
                "bracket" => {
                    // Up to 10^12 kWh: far above any connection, far below overflow.
                    let kwh = |k: usize| {
                        decimal(get(k), 3)
                            .filter(|wh| (0..=1_000_000_000_000_000).contains(wh))
                            .ok_or_else(|| bad("bracket bounds must be kWh from 0 to 10^12"))
                    };
                    let to_wh = if get(3).is_empty() {
                        UNBOUNDED
                    } else {
                        kwh(3)?
                    };
                    // At most €100 per kWh: far above any real rate, and no overflow in a sum.
                    let rate_e5 = match get(4) {
                        "" => None,
                        r => Some(
                            decimal(r, 5)
                                .filter(|e5| *e5 <= 10_000_000)
                                .ok_or_else(|| {
                                    bad("rate must be EUR/kWh from 0 to 100 with at most 5 decimals, or empty when unknown")
                                })?,
                        ),
                    };
                    let bracket = Bracket {
                        from_wh: kwh(2)?,
                        to_wh,
                        rate_e5,
                        confirmed,
                    };
                    if bracket.to_wh <= bracket.from_wh {
                        return Err(bad("bracket ends where it starts or before"));
                    }
                    lines.entry(year).or_default().push((line, bracket));
                }
                "reduction" => {
                    let ct = decimal(get(4), 2)
                        .filter(|ct| *ct <= 10_000_000)
                        .ok_or_else(|| {
                            bad("reduction must be EUR from 0 to 100,000 with at most 2 decimals")
                        })?;
                    if entry.reduction.replace((ct, confirmed)).is_some() {
                        return Err(bad(&format!("a second reduction for {year}")));
                    }
                }
                other => {
                    return Err(bad(&format!(
                        "kind `{other}` is neither bracket nor reduction"
                    )))
                }
            }
        }
        for (year, mut brackets) in lines {
            brackets.sort_by_key(|(_, b)| b.from_wh);
            let mut expected_from = 0;
            for (line, b) in &brackets {
                if b.from_wh != expected_from {
                    let kwh = |wh: i64| wh as f64 / 1000.0;
                    return Err(Error::Usage(format!(
                        "{name}:{line}: the {year} bracket from {} kWh {} (the brackets of a year must start at 0 and follow each other without gap or overlap)",
                        kwh(b.from_wh),
                        if expected_from == 0 && b.from_wh > 0 {
                            "leaves the first kWh untaxed".to_string()
                        } else if b.from_wh > expected_from {
                            format!("leaves a gap after {} kWh", kwh(expected_from))
                        } else {
                            format!("overlaps the bracket before it, which ends at {} kWh", kwh(expected_from))
                        }
                    )));
                }
                expected_from = b.to_wh;
            }
            if expected_from != UNBOUNDED {
                let (line, _) = brackets.last().expect("a year with brackets has one");
                return Err(Error::Usage(format!(
                    "{name}:{line}: the last {year} bracket must be unbounded (an empty to_kwh): energy above it would go untaxed"
                )));
            }
            rates.years.entry(year).or_default().brackets =
                brackets.into_iter().map(|(_, b)| b).collect();
        }
        if let Some(year) = rates
            .years
            .iter()
            .find(|(_, y)| y.brackets.is_empty())
            .map(|(year, _)| *year)
        {
            // A reduction without brackets would tax nothing and call it confirmed.
            return Err(Error::Usage(format!(
                "{name}: {year} has a reduction but no brackets"
            )));
        }
        for y in rates.years.values_mut() {
            y.sources.sort();
            y.sources.dedup();
        }
        Ok(rates)
    }
}

/// A regime's first and last day (open when `None`).
type Period = (Option<NaiveDate>, Option<NaiveDate>, Regime);

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
        Self::periods()
            .iter()
            .find(|(from, until, _)| {
                from.is_none_or(|f| day >= f) && until.is_none_or(|u| day <= u)
            })
            .map_or(Regime::NoNetting, |&(_, _, regime)| regime)
    }

    /// The periods of `data/tariffs/net-metering-nl.csv`, read once (asked per cable and year).
    fn periods() -> &'static [Period] {
        static PERIODS: std::sync::OnceLock<Vec<Period>> = std::sync::OnceLock::new();
        PERIODS.get_or_init(|| {
            let mut reader = csv::Reader::from_reader(BUILTIN_REGIMES.as_bytes());
            reader
                .records()
                .flatten()
                .map(|rec| {
                    let date = |i: usize| rec.get(i).and_then(|s| s.parse::<NaiveDate>().ok());
                    let regime = match rec.get(2) {
                        Some("no_netting") => Regime::NoNetting,
                        _ => Regime::Netting,
                    };
                    (date(0), date(1), regime)
                })
                .collect()
        })
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
        // No sign, no overflow.
        assert_eq!(decimal("-0.09161", 5), None);
        assert_eq!(decimal("+1", 5), None);
        assert_eq!(decimal("99999999999999999", 3), None);
    }

    #[test]
    fn builtin_rates_and_regimes() {
        let r = Rates::builtin();
        let y26 = &r.years[&2026];
        assert_eq!(y26.brackets.len(), 5);
        assert_eq!(
            y26.brackets[0],
            Bracket {
                from_wh: 0,
                to_wh: 2_900_000,
                rate_e5: Some(9161),
                confirmed: true
            }
        );
        // Above 10 million kWh: no source for the 2026 rate was at hand.
        assert_eq!(y26.brackets.last().unwrap().to_wh, UNBOUNDED);
        assert_eq!(y26.brackets.last().unwrap().rate_e5, None);
        assert_eq!(r.years[&2024].brackets[4].rate_e5, Some(188));
        assert!(!y26.brackets[2].confirmed);
        assert_eq!(y26.reduction, Some((51_980, true)));
        assert!(!r.years.contains_key(&2027));
        assert_eq!(Regime::of_year(2026), Regime::Netting);
        assert_eq!(Regime::of_year(2027), Regime::NoNetting);
    }

    const HEAD: &str = "year,kind,from_kwh,to_kwh,eur,confirmed,source\n";

    fn refusal(body: &str) -> String {
        Rates::parse(&format!("{HEAD}{body}"), "rates.csv")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn brackets_must_cover_every_kwh_once() {
        // A first bracket that does not start at 0.
        let m = refusal("2026,bracket,100,,0.1,true,s\n");
        assert!(
            m.starts_with("rates.csv:2:") && m.contains("first kWh"),
            "{m}"
        );
        // A gap from 2,900 to 3,000 kWh, named on the line of the bracket after it.
        let m = refusal("2026,bracket,0,2900,0.1,true,s\n2026,bracket,3000,,0.1,true,s\n");
        assert!(
            m.starts_with("rates.csv:3:") && m.contains("gap after 2900 kWh"),
            "{m}"
        );
        // An overlap.
        let m = refusal("2026,bracket,0,2900,0.1,true,s\n2026,bracket,2000,,0.1,true,s\n");
        assert!(
            m.starts_with("rates.csv:3:") && m.contains("overlaps"),
            "{m}"
        );
        // A last bracket with an upper bound: energy above it would be untaxed.
        let m = refusal("2026,bracket,0,2900,0.1,true,s\n");
        assert!(
            m.starts_with("rates.csv:2:") && m.contains("unbounded"),
            "{m}"
        );
        // Two reductions in one year, an empty or reversed bracket, an absurd year.
        let m = refusal("2026,reduction,,,500,true,s\n2026,reduction,,,400,true,s\n");
        assert!(m.starts_with("rates.csv:3:"), "{m}");
        assert!(refusal("2026,bracket,0,0,0.1,true,s\n").contains("ends where it starts"));
        assert!(refusal("-262143,bracket,0,,0.1,true,s\n").contains("year"));
        assert!(refusal("2026,reduction,,,500,true,s\n").contains("no brackets"));
        assert!(refusal("2026,bracket,0,,1000,true,s\n").contains("from 0 to 100"));
        // A quoted note over two lines: the next record's problem names its own line.
        let m =
            refusal("2026,bracket,0,2900,0.1,true,\"a\nnote\"\n2026,bracket,3000,,0.1,true,s\n");
        assert!(m.starts_with("rates.csv:4:"), "{m}");
        // In any order, a complete year is fine.
        let ok = Rates::parse(
            &format!("{HEAD}2026,bracket,2900,,0.2,true,s\n2026,bracket,0,2900,0.1,true,s\n"),
            "rates.csv",
        )
        .unwrap();
        assert_eq!(ok.years[&2026].brackets[0].to_wh, 2_900_000);
        assert_eq!(ok.years[&2026].reduction, None);
    }
}
