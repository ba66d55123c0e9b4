//! The energy-tax base of one connection in one calendar year. Tax is levied on L only: own
//! production used behind the meter is exempt (also after net metering ends). Money is in
//! integer cents, rounded half up once per connection-year.

use super::rates::{Rates, Regime, UNBOUNDED};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaxInput {
    pub year: i32,
    pub l_wh: i64,
    pub t_wh: i64,
    /// `None` without installation.
    pub p_wh: Option<i64>,
    pub member_days: i64,
    pub year_days: i64,
    pub tax_credit: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaxOutcome {
    pub regime: Regime,
    pub taxable_wh: i64,
    pub own_use_exempt_wh: i64,
    pub energy_tax_ct: Option<i64>,
    pub tax_credit_ct: Option<i64>,
    pub net_energy_tax_ct: Option<i64>,
    pub exemption_saving_ct: Option<i64>,
    pub rates_confirmed: bool,
}

/// Tax on `wh` in 10⁻⁸ EUR (Wh × 10⁻⁵ EUR/kWh), brackets pro-rated to the membership, and
/// whether every bracket it reached is confirmed; `None` when it reaches a bracket whose rate
/// is unknown.
fn raw_tax(
    rates: &super::rates::YearRates,
    wh: i64,
    member_days: i64,
    year_days: i64,
) -> (Option<i128>, bool) {
    let mut total: i128 = 0;
    let mut confirmed = true;
    // Pro-rated bounds, floored to the Wh; the unbounded end stays unbounded.
    let prorate = |bound: i64| {
        if bound == UNBOUNDED {
            i128::MAX
        } else {
            i128::from(bound) * i128::from(member_days) / i128::from(year_days.max(1))
        }
    };
    for b in &rates.brackets {
        let (from, to) = (prorate(b.from_wh), prorate(b.to_wh));
        let in_bracket = (i128::from(wh).min(to) - from).max(0);
        if in_bracket > 0 {
            confirmed &= b.confirmed;
            match b.rate_e5 {
                Some(rate) => total += in_bracket * i128::from(rate),
                None => return (None, false),
            }
        }
    }
    (Some(total), confirmed)
}

/// 10⁻⁸ EUR to cents, half up (1 ct = 10⁶ units).
fn to_cents(units: i128) -> i64 {
    let c = if units >= 0 {
        (units + 500_000) / 1_000_000
    } else {
        -((-units + 499_999) / 1_000_000)
    };
    c as i64
}

pub fn tax(rates: &Rates, x: &TaxInput) -> TaxOutcome {
    let regime = Regime::of_year(x.year);
    let taxable_wh = match regime {
        Regime::Netting => (x.l_wh - x.t_wh).max(0),
        Regime::NoNetting => x.l_wh,
    };
    let own_use_exempt_wh = x.p_wh.map_or(0, |p| (p - x.t_wh).max(0));
    let unknown = TaxOutcome {
        regime,
        taxable_wh,
        own_use_exempt_wh,
        energy_tax_ct: None,
        tax_credit_ct: None,
        net_energy_tax_ct: None,
        exemption_saving_ct: None,
        rates_confirmed: false,
    };
    // No rates, or no day of membership (every bracket would shrink to nothing and all energy
    // fall into the top bracket): no figure.
    let Some(year) = rates.years.get(&x.year).filter(|_| x.member_days > 0) else {
        return unknown;
    };
    let (days, in_year) = (x.member_days, x.year_days);
    let (tax_raw, tax_ok) = raw_tax(year, taxable_wh, days, in_year);
    let (with_own_raw, _) = raw_tax(year, taxable_wh + own_use_exempt_wh, days, in_year);
    let energy_tax_ct = tax_raw.map(to_cents);
    // The reduction, pro-rated to the days of membership and rounded half up. A connection
    // with the right to it in a year whose reduction is not in the rates file gets no figure
    // (not 0: that would be hundreds of euros too much tax, silently).
    let (credit_ct, credit_ok) = match (x.tax_credit, year.reduction) {
        (true, Some((ct, ok))) => (
            Some(
                ((i128::from(ct) * i128::from(days) * 2 + i128::from(in_year))
                    / (2 * i128::from(in_year.max(1)))) as i64,
            ),
            ok,
        ),
        (true, None) => (None, false),
        (false, _) => (Some(0), true),
    };
    TaxOutcome {
        energy_tax_ct,
        tax_credit_ct: credit_ct,
        net_energy_tax_ct: energy_tax_ct.zip(credit_ct).map(|(t, c)| t - c),
        // The difference of the two amounts as a bill would show them: each rounded first.
        exemption_saving_ct: with_own_raw
            .zip(energy_tax_ct)
            .map(|(with_own, tax)| to_cents(with_own) - tax),
        // Only what this connection's taxable energy reached, and its reduction.
        rates_confirmed: energy_tax_ct.is_some() && tax_ok && credit_ok,
        ..unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(year: i32, l_kwh: i64, t_kwh: i64) -> TaxInput {
        TaxInput {
            year,
            l_wh: l_kwh * 1000,
            t_wh: t_kwh * 1000,
            p_wh: None,
            member_days: 365,
            year_days: 365,
            tax_credit: true,
        }
    }

    #[test]
    fn netting_2026_by_hand() {
        // 3,500 − 2,800 = 700 kWh × €0.09161 = €64.127 → 6,413 ct; reduction €519.80.
        let o = tax(&Rates::builtin(), &input(2026, 3_500, 2_800));
        assert_eq!(o.regime, Regime::Netting);
        assert_eq!(o.taxable_wh, 700_000);
        assert_eq!(o.energy_tax_ct, Some(6_413));
        assert_eq!(o.tax_credit_ct, Some(51_980));
        assert_eq!(o.net_energy_tax_ct, Some(-45_567));
        assert!(o.rates_confirmed);
    }

    #[test]
    fn brackets_2025_by_hand() {
        // 10,000 × 0.10154 + 2,000 × 0.06937 = 1,015.40 + 138.74 = €1,154.14.
        let o = tax(&Rates::builtin(), &input(2025, 12_000, 0));
        assert_eq!(o.energy_tax_ct, Some(115_414));
    }

    #[test]
    fn part_year_member_2026() {
        // From 1 July: 184 days. Reduction 519.80 × 184/365 = 262.0432 → 26,204 ct. The lower
        // brackets' bounds shrink to 10,000 × 184/365 = 5,041.095 kWh: 6,000 kWh pays
        // 5,041.095 × 0.09161 + 958.905 × 0.06671 (unconfirmed) = 461.8147… + 63.9686… = €525.78.
        let x = TaxInput {
            member_days: 184,
            ..input(2026, 6_000, 0)
        };
        let o = tax(&Rates::builtin(), &x);
        assert_eq!(o.tax_credit_ct, Some(26_204));
        assert_eq!(o.energy_tax_ct, Some(52_578));
        assert!(
            !o.rates_confirmed,
            "the 10,001–50,000 rate of 2026 is unconfirmed"
        );
    }

    #[test]
    fn no_netting_2027_and_missing_rates() {
        let o = tax(&Rates::builtin(), &input(2027, 3_500, 2_800));
        assert_eq!(o.regime, Regime::NoNetting);
        assert_eq!(o.taxable_wh, 3_500_000);
        assert_eq!(
            (o.energy_tax_ct, o.tax_credit_ct, o.net_energy_tax_ct),
            (None, None, None)
        );
        // With unconfirmed 2027 rates added, money is computed and flagged.
        let text = format!(
            "{}2027,bracket,0,,0.09000,false,guess\n",
            super::super::rates::BUILTIN_RATES
        );
        let rates = Rates::parse(&text, "test").unwrap();
        let o = tax(
            &rates,
            &TaxInput {
                tax_credit: false,
                ..input(2027, 3_500, 2_800)
            },
        );
        assert_eq!(o.energy_tax_ct, Some(31_500));
        assert!(!o.rates_confirmed);
    }

    #[test]
    fn own_use_exemption_saving() {
        // 2026, L 3,000, T 1,000, P 4,000: taxable 2,000 kWh; own use 3,000 kWh would have
        // been taxed at 0.09161 up to 10,000 kWh: saving 3,000 × 0.09161 = €274.83.
        let x = TaxInput {
            p_wh: Some(4_000_000),
            ..input(2026, 3_000, 1_000)
        };
        let o = tax(&Rates::builtin(), &x);
        assert_eq!(o.own_use_exempt_wh, 3_000_000);
        assert_eq!(o.exemption_saving_ct, Some(27_483));
    }

    fn rates_with(extra: &str) -> Rates {
        Rates::parse(
            &format!("{}{extra}", super::super::rates::BUILTIN_RATES),
            "test",
        )
        .unwrap()
    }

    #[test]
    fn a_year_without_reduction_gives_no_credit_figure() {
        // Brackets for 2027 but no reduction row: before, the credit was 0 and "confirmed".
        let rates = rates_with("2027,bracket,0,,0.09000,true,test\n");
        let o = tax(&rates, &input(2027, 3_500, 0));
        assert_eq!(o.energy_tax_ct, Some(31_500));
        assert_eq!((o.tax_credit_ct, o.net_energy_tax_ct), (None, None));
        assert!(!o.rates_confirmed);
        // Without the right to a reduction, nothing is missing.
        let o = tax(
            &rates,
            &TaxInput {
                tax_credit: false,
                ..input(2027, 3_500, 0)
            },
        );
        assert_eq!(
            (o.tax_credit_ct, o.net_energy_tax_ct),
            (Some(0), Some(31_500))
        );
        assert!(o.rates_confirmed);
    }

    #[test]
    fn rates_confirmed_looks_at_the_brackets_the_taxable_energy_reached() {
        // 2026: 9,000 kWh taxable stays in the confirmed brackets (to 10,000 kWh); own use of
        // 3,000 kWh would reach the unconfirmed third bracket, which is only the saving's.
        let x = TaxInput {
            p_wh: Some(5_000_000),
            ..input(2026, 11_000, 2_000)
        };
        let o = tax(&Rates::builtin(), &x);
        assert_eq!(o.taxable_wh, 9_000_000);
        assert_eq!(o.own_use_exempt_wh, 3_000_000);
        assert!(o.rates_confirmed, "before the fix: false");
    }

    #[test]
    fn exemption_saving_is_the_difference_of_the_rounded_amounts() {
        // 2026, L 0.5 kWh, T 0, P 0.5 kWh. Taxable 0.5 kWh × €0.09161 = 4.5805 ct → 5 ct;
        // with the own use of 0.5 kWh: 1 kWh = 9.161 ct → 9 ct. The saving a participant can
        // check is 9 − 5 = 4 ct; rounding the exact difference (4.5805 ct) gave 5.
        let x = TaxInput {
            p_wh: Some(500),
            ..input(2026, 0, 0)
        };
        let x = TaxInput {
            l_wh: 500,
            t_wh: 0,
            ..x
        };
        let o = tax(&Rates::builtin(), &x);
        assert_eq!(o.energy_tax_ct, Some(5));
        assert_eq!(o.exemption_saving_ct, Some(4), "before the fix: 5");
    }

    #[test]
    fn energy_above_ten_million_kwh() {
        // 2024, a business connection without reduction: 12 million kWh. Brackets:
        // 2,900 × 0.10880 + 7,100 × 0.10880 + 40,000 × 0.09037 + 9,950,000 × 0.03943
        // + 2,000,000 × 0.00188 = 1,088.00 + 3,614.80 + 392,328.50 + 3,760.00 = €400,791.30.
        let x = TaxInput {
            tax_credit: false,
            ..input(2024, 12_000_000, 0)
        };
        let o = tax(&Rates::builtin(), &x);
        assert_eq!(o.energy_tax_ct, Some(40_079_130));
        assert!(o.rates_confirmed);
        // 2026 has no rate above 10 million kWh: no figure, not confirmed.
        let o = tax(
            &Rates::builtin(),
            &TaxInput {
                tax_credit: false,
                ..input(2026, 12_000_000, 0)
            },
        );
        assert_eq!(o.energy_tax_ct, None);
        assert!(!o.rates_confirmed);
    }
}
