//! Energy is an integer number of watt-hours everywhere in vaten.

/// Energy in watt-hours. Registers and intervals alike; `i64` keeps sums exact.
pub type Wh = i64;

/// Converts a register value in the given unit to Wh. kWh values carry three decimals (Wh
/// resolution); they are rounded to the nearest Wh to undo binary floating-point noise.
/// Returns `None` for a negative, non-finite or out-of-range value.
pub fn register_to_wh(value: f64, unit: EnergyUnit) -> Option<Wh> {
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    let wh = match unit {
        EnergyUnit::KWh => value * 1000.0,
        EnergyUnit::Wh => value,
    }
    .round();
    // 2^53: beyond this an f64 no longer holds every integer.
    (wh <= 9_007_199_254_740_992.0).then_some(wh as Wh)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnergyUnit {
    KWh,
    Wh,
}

impl EnergyUnit {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "kWh" => Some(Self::KWh),
            "Wh" => Some(Self::Wh),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kwh_with_three_decimals_is_exact() {
        assert_eq!(register_to_wh(10234.512, EnergyUnit::KWh), Some(10_234_512));
        assert_eq!(register_to_wh(52185.001, EnergyUnit::KWh), Some(52_185_001));
        assert_eq!(register_to_wh(0.001, EnergyUnit::KWh), Some(1));
        assert_eq!(register_to_wh(4411020.0, EnergyUnit::Wh), Some(4_411_020));
    }

    #[test]
    fn negative_and_nan_are_refused() {
        assert_eq!(register_to_wh(-0.001, EnergyUnit::KWh), None);
        assert_eq!(register_to_wh(f64::NAN, EnergyUnit::KWh), None);
    }
}
