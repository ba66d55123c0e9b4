//! The energy-tax base of one connection in one calendar year. Tax is levied on L only: own
//! production used behind the meter is exempt (also after net metering ends). Money is in
//! integer cents, rounded half up once per connection-year.

use super::rates::{Rates, Regime};

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
/// whether every bracket it touched is confirmed.
fn raw_tax(
    rates: &super::rates::YearRates,
    wh: i64,
    member_days: i64,
    year_days: i64,
) -> (i128, bool) {
    let mut total: i128 = 0;
    let mut confirmed = true;
    for b in &rates.brackets {
        // Pro-rated bounds, floored to the Wh.
        let from = b.from_wh * member_days / year_days;
        let to = b.to_wh * member_days / year_days;
        let in_bracket = (wh.min(to) - from).max(0);
        if in_bracket > 0 {
            total += i128::from(in_bracket) * i128::from(b.rate_e5);
            confirmed &= b.confirmed;
        }
    }
    (total, confirmed)
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
    let Some(year) = rates.years.get(&x.year) else {
        return TaxOutcome {
            regime,
            taxable_wh,
            own_use_exempt_wh,
            energy_tax_ct: None,
            tax_credit_ct: None,
            net_energy_tax_ct: None,
            exemption_saving_ct: None,
            rates_confirmed: false,
        };
    };
    let (days, in_year) = (x.member_days, x.year_days);
    let (tax_raw, tax_ok) = raw_tax(year, taxable_wh, days, in_year);
    let (with_own_raw, with_own_ok) = raw_tax(year, taxable_wh + own_use_exempt_wh, days, in_year);
    let energy_tax_ct = to_cents(tax_raw);
    let (credit_ct, credit_ok) = match (x.tax_credit, year.reduction) {
        (true, Some((ct, ok))) => (
            (i128::from(ct) * i128::from(days) * 2 + i128::from(in_year))
                / (2 * i128::from(in_year)),
            ok,
        ),
        _ => (0, true),
    };
    let credit_ct = credit_ct as i64;
    TaxOutcome {
        regime,
        taxable_wh,
        own_use_exempt_wh,
        energy_tax_ct: Some(energy_tax_ct),
        tax_credit_ct: Some(credit_ct),
        net_energy_tax_ct: Some(energy_tax_ct - credit_ct),
        exemption_saving_ct: Some(to_cents(with_own_raw - tax_raw)),
        rates_confirmed: tax_ok && with_own_ok && credit_ok,
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
            "{}2027,bracket,0,10000,0.09000,false,guess\n",
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
}
