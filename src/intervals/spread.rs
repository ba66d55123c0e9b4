//! Spreading an energy over quarter-hours while keeping the total exact to the Wh.

/// Splits `total_wh` over `weights.len()` parts in proportion to `weights`, exactly: every part
/// gets the floor of its share, and the Wh left over go one each to the parts with the largest
/// remainders, ties to the earlier part (largest-remainder method). All-zero weights spread
/// evenly. `total_wh` must not be negative.
pub fn spread(total_wh: i64, weights: &[u64]) -> Vec<i64> {
    let n = weights.len();
    if n == 0 {
        return Vec::new();
    }
    let even;
    let weights = if weights.iter().all(|w| *w == 0) {
        even = vec![1u64; n];
        &even[..]
    } else {
        weights
    };
    let sum: u128 = weights.iter().map(|w| u128::from(*w)).sum();
    let total = u128::try_from(total_wh.max(0)).unwrap_or(0);
    let mut parts = Vec::with_capacity(n);
    let mut remainders = Vec::with_capacity(n);
    let mut given: u128 = 0;
    for (i, w) in weights.iter().enumerate() {
        let exact = total * u128::from(*w);
        let part = exact / sum;
        given += part;
        parts.push(part as i64);
        remainders.push((exact % sum, i));
    }
    // Largest remainder first; equal remainders: earlier index first.
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let left = (total - given) as usize;
    for &(_, i) in remainders.iter().take(left) {
        parts[i] += 1;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_spread_by_hand() {
        // 100 Wh over 7 quarter-hours: 14 each (98), the 2 left go to the first two (ties).
        assert_eq!(spread(100, &[1; 7]), vec![15, 15, 14, 14, 14, 14, 14]);
        assert_eq!(spread(100, &[1; 7]).iter().sum::<i64>(), 100);
    }

    #[test]
    fn proportional_spread_by_hand() {
        // 10 Wh over weights 1:2:3:4 → exact 1, 2, 3, 4.
        assert_eq!(spread(10, &[1, 2, 3, 4]), vec![1, 2, 3, 4]);
        // 7 Wh over 1:1:2 → 1.75, 1.75, 3.5 → floors 1, 1, 3 (5); remainders .75, .75, .5:
        // the two left go to the first two.
        assert_eq!(spread(7, &[1, 1, 2]), vec![2, 2, 3]);
        assert_eq!(spread(0, &[1, 2]), vec![0, 0]);
        assert_eq!(spread(5, &[0, 0]), vec![3, 2]);
        assert!(spread(5, &[]).is_empty());
    }

    #[test]
    fn totals_are_exact_for_many_cases() {
        let mut x: u64 = 12345;
        for _ in 0..2000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let n = 1 + (x >> 60) as usize;
            let total = ((x >> 20) % 5_000_000) as i64;
            let weights: Vec<u64> = (0..n)
                .map(|k| (x.rotate_left(k as u32 * 7) >> 50) % 1000)
                .collect();
            let parts = spread(total, &weights);
            assert_eq!(parts.iter().sum::<i64>(), total);
            assert!(parts.iter().all(|p| *p >= 0));
        }
    }
}
