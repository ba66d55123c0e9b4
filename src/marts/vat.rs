//! VAT on energy tax, as dated data (`data/tariffs/vat-nl.csv`). Energy tax and its reduction
//! are set excluding VAT; a supplier's bill charges VAT on both, so a participant comparing a
//! statement with a bill needs the amount including VAT.

use chrono::NaiveDate;

const BUILTIN_VAT: &str = include_str!("../../data/tariffs/vat-nl.csv");

/// The VAT rate in per cent that holds for the whole of `year`, with its source; `None` when no
/// single rate covers the year (a change within the year, or a year the file does not reach).
pub fn rate_for_year(year: i32) -> Option<(i64, String)> {
    let (first, last) = (
        NaiveDate::from_ymd_opt(year, 1, 1)?,
        NaiveDate::from_ymd_opt(year, 12, 31)?,
    );
    let mut reader = csv::Reader::from_reader(BUILTIN_VAT.as_bytes());
    for rec in reader.records().flatten() {
        let date = |k: usize| rec.get(k).and_then(|s| s.parse::<NaiveDate>().ok());
        let (from, until) = (date(0), date(1));
        if from.is_none_or(|f| f <= first) && until.is_none_or(|u| u >= last) {
            let pct = rec.get(2)?.trim().parse().ok()?;
            return Some((pct, rec.get(3).unwrap_or("").to_string()));
        }
    }
    None
}

/// `ct` plus `pct` per cent, rounded half away from zero to the cent (a negative amount, a
/// reduction larger than the tax, gets its VAT back the same way).
pub fn including(ct: i64, pct: i64) -> i64 {
    let scaled = i128::from(ct) * i128::from(100 + pct);
    let rounded = if scaled >= 0 {
        (scaled + 50) / 100
    } else {
        -((-scaled + 50) / 100)
    };
    rounded as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twenty_one_per_cent_since_october_2012() {
        assert_eq!(rate_for_year(2026).map(|r| r.0), Some(21));
        assert_eq!(rate_for_year(2013).map(|r| r.0), Some(21));
        // 2012 had 19 % until 30 September: no single rate for the year.
        assert_eq!(rate_for_year(2012), None);
        assert_eq!(rate_for_year(2005).map(|r| r.0), Some(19));
    }

    #[test]
    fn amounts_including_vat_by_hand() {
        // €64.13 × 1.21 = €77.5973 → €77.60; −€455.67 × 1.21 = −€551.3607 → −€551.36.
        assert_eq!(including(6_413, 21), 7_760);
        assert_eq!(including(-45_567, 21), -55_136);
        // Half a cent rounds away from zero: 50 ct × 1.21 = 60.5 ct → 61.
        assert_eq!(including(50, 21), 61);
        assert_eq!(including(-50, 21), -61);
    }
}
