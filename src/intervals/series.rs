//! Quarter-hour energies from one meter's cumulative register readings.
//!
//! Differences are taken per meter: a meter exchange starts a new series, so it never produces
//! a negative or a huge interval. A hole between two known readings is spread over its
//! quarter-hours, exact to the Wh (`estimated`). A step the connection cannot carry, or a
//! register that goes backwards, is not spread: its quarter-hours stay `missing` and the step
//! is reported (for `rejected`).

use super::spread::spread;

/// Microseconds in a quarter-hour.
pub const QUARTER_US: i64 = 15 * 60 * 1_000_000;

/// Quality of a quarter-hour's energy, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Quality {
    Measured,
    Estimated,
    Derived,
    Missing,
}

impl Quality {
    pub fn as_str(self) -> &'static str {
        match self {
            Quality::Measured => "measured",
            Quality::Estimated => "estimated",
            Quality::Derived => "derived",
            Quality::Missing => "missing",
        }
    }

    /// The service's quality word for a reading.
    pub fn from_service(s: &str) -> Self {
        match s {
            "measured" => Quality::Measured,
            "derived" => Quality::Derived,
            _ => Quality::Estimated,
        }
    }
}

/// One register reading at the end `t_us` of a quarter-hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegisterReading {
    pub t_us: i64,
    pub value_wh: i64,
    pub quality: Quality,
}

/// A quarter-hour's energy; `wh` is `None` when `missing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuarterEnergy {
    pub start_us: i64,
    pub wh: Option<i64>,
    pub quality: Quality,
}

/// A step between two readings that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepProblem {
    /// The register went down without a meter exchange.
    Backwards {
        from_t_us: i64,
        to_t_us: i64,
        from_wh: i64,
        to_wh: i64,
    },
    /// More energy than the connection can carry in that time.
    OverCapacity {
        from_t_us: i64,
        to_t_us: i64,
        step_wh: i64,
        max_wh: i64,
    },
}

/// Quarter-hour energies between consecutive readings (sorted by `t_us`, one per time).
/// `max_wh_per_quarter` is the connection's capacity in Wh per quarter-hour.
///
/// A hole that ends or starts at a `derived` reading (a daily register at local midnight) is
/// spread in proportion to `profile(first quarter start, quarter-hours)` (one weight per
/// quarter-hour of the hole); other holes evenly.
pub fn differences(
    readings: &[RegisterReading],
    max_wh_per_quarter: i64,
    profile: &dyn Fn(i64, i64) -> Vec<u64>,
) -> (Vec<QuarterEnergy>, Vec<StepProblem>) {
    let mut out = Vec::with_capacity(readings.len());
    let mut problems = Vec::new();
    for pair in readings.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let quarters = (b.t_us - a.t_us) / QUARTER_US;
        if quarters <= 0 {
            continue;
        }
        let step = b.value_wh - a.value_wh;
        let max_wh = max_wh_per_quarter.saturating_mul(quarters);
        let starts = (0..quarters).map(|k| a.t_us + k * QUARTER_US);
        if step < 0 || step > max_wh {
            problems.push(if step < 0 {
                StepProblem::Backwards {
                    from_t_us: a.t_us,
                    to_t_us: b.t_us,
                    from_wh: a.value_wh,
                    to_wh: b.value_wh,
                }
            } else {
                StepProblem::OverCapacity {
                    from_t_us: a.t_us,
                    to_t_us: b.t_us,
                    step_wh: step,
                    max_wh,
                }
            });
            out.extend(starts.map(|start_us| QuarterEnergy {
                start_us,
                wh: None,
                quality: Quality::Missing,
            }));
        } else if quarters == 1 {
            // As good as the worse of the two readings it rests on.
            out.push(QuarterEnergy {
                start_us: a.t_us,
                wh: Some(step),
                quality: a.quality.max(b.quality),
            });
        } else {
            let derived = a.quality == Quality::Derived || b.quality == Quality::Derived;
            let weights: Vec<u64> = if derived {
                profile(a.t_us, quarters)
            } else {
                vec![1; quarters as usize]
            };
            let parts = spread(step, &weights);
            let quality = a.quality.max(b.quality).max(if derived {
                Quality::Derived
            } else {
                Quality::Estimated
            });
            out.extend(starts.zip(parts).map(|(start_us, wh)| QuarterEnergy {
                start_us,
                wh: Some(wh),
                quality,
            }));
        }
    }
    (out, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_790_000_000_000_000 - 1_790_000_000_000_000 % QUARTER_US;

    fn even(_: i64, n: i64) -> Vec<u64> {
        vec![1; n as usize]
    }

    fn r(q: i64, v: i64) -> RegisterReading {
        RegisterReading {
            t_us: T0 + q * QUARTER_US,
            value_wh: v,
            quality: Quality::Measured,
        }
    }

    #[test]
    fn consecutive_readings_give_their_differences() {
        let (e, p) = differences(&[r(0, 1000), r(1, 1100), r(2, 1350)], 4312, &even);
        assert!(p.is_empty());
        assert_eq!(
            e.iter().map(|x| x.wh.unwrap()).collect::<Vec<_>>(),
            vec![100, 250]
        );
        assert_eq!(e[0].start_us, T0);
        assert!(e.iter().all(|x| x.quality == Quality::Measured));
    }

    #[test]
    fn a_hole_of_seven_quarters_is_spread_exactly() {
        // 1,000 Wh over 7 quarter-hours: 142 each (994), the 6 left to the first six.
        let (e, p) = differences(&[r(0, 5000), r(7, 6000)], 4312, &even);
        assert!(p.is_empty());
        let wh: Vec<i64> = e.iter().map(|x| x.wh.unwrap()).collect();
        assert_eq!(wh, vec![143, 143, 143, 143, 143, 143, 142]);
        assert_eq!(wh.iter().sum::<i64>(), 1000);
        assert!(e.iter().all(|x| x.quality == Quality::Estimated));
        assert_eq!(e[6].start_us, T0 + 6 * QUARTER_US);
    }

    #[test]
    fn backwards_and_over_capacity_stay_missing() {
        let (e, p) = differences(
            &[r(0, 5000), r(1, 4990), r(2, 5100), r(3, 9500)],
            4312,
            &even,
        );
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].quality, Quality::Missing);
        assert_eq!(e[1].wh, Some(110));
        assert_eq!(
            e[2],
            QuarterEnergy {
                start_us: T0 + 2 * QUARTER_US,
                wh: None,
                quality: Quality::Missing
            }
        );
        assert!(matches!(
            p[0],
            StepProblem::Backwards {
                from_wh: 5000,
                to_wh: 4990,
                ..
            }
        ));
        assert!(matches!(
            p[1],
            StepProblem::OverCapacity {
                step_wh: 4400,
                max_wh: 4312,
                ..
            }
        ));
    }

    #[test]
    fn a_quarter_hour_is_as_good_as_the_worse_of_its_readings() {
        // Measured → estimated → measured: both quarter-hours touch the estimated reading.
        // Before the fix the first (ending at the estimate) was estimated but the second
        // (starting at it) counted as measured.
        let est = RegisterReading {
            quality: Quality::Estimated,
            ..r(1, 1100)
        };
        let (e, _) = differences(&[r(0, 1000), est, r(2, 1350), r(3, 1400)], 4312, &even);
        let q: Vec<Quality> = e.iter().map(|x| x.quality).collect();
        assert_eq!(
            q,
            vec![Quality::Estimated, Quality::Estimated, Quality::Measured]
        );
    }
}
