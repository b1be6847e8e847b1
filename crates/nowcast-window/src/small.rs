//! Exact kernels for the few values of a window held in raw rows (≤ [`SMALL`] of them): the
//! value at a rank and the number of distinct keys, by comparing every value with every
//! other in branch-free loops that the compiler turns into vector compares. For ~20 values
//! that is cheaper than selection or hashing, whose branches mispredict on every element.

/// Values up to which the quadratic kernels are used; above it, selection and hashing win.
pub(crate) const SMALL: usize = 32;

/// The value at rank `r` (0-based) of `vals` in `f64::total_cmp` order, as
/// `select_nth_unstable_by(r, f64::total_cmp)` gives it. `vals` are finite and `r < len`.
pub(crate) fn value_at_rank(vals: &[f64], r: usize) -> f64 {
    debug_assert!(r < vals.len());
    for &x in vals {
        let below: usize = vals.iter().map(|&y| (y < x) as usize).sum();
        if below > r {
            continue;
        }
        let upto: usize = vals.iter().map(|&y| (y <= x) as usize).sum();
        if r < upto {
            if x == 0.0 {
                // `<` does not order −0 before +0; total_cmp does.
                let negative = vals
                    .iter()
                    .filter(|y| y.to_bits() == (-0.0f64).to_bits())
                    .count();
                return if r < below + negative { -0.0 } else { 0.0 };
            }
            return x;
        }
    }
    unreachable!("rank {r} of {} values", vals.len())
}

/// The number of distinct values in `keys`.
pub(crate) fn distinct(keys: &[u64]) -> usize {
    let mut n = 0;
    for (i, &k) in keys.iter().enumerate() {
        let seen: u64 = keys[..i].iter().map(|&o| (o == k) as u64).sum();
        n += (seen == 0) as usize;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn value_at_rank_agrees_with_selection_including_ties_and_signed_zeros() {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let pool = [-0.0, 0.0, 1.5, -2.0, 3.25, 1.5, 7.0, -0.0, 1e300, -1e-300];
        for _ in 0..20_000 {
            let n = 1 + (rng(&mut s) % SMALL as u64) as usize;
            let vals: Vec<f64> = (0..n)
                .map(|_| {
                    let r = rng(&mut s);
                    if r.is_multiple_of(3) {
                        pool[(r >> 8) as usize % pool.len()]
                    } else {
                        ((r >> 11) % 1000) as f64 / 8.0 - 60.0
                    }
                })
                .collect();
            for r in 0..n {
                let mut sorted = vals.clone();
                let want = *sorted.select_nth_unstable_by(r, f64::total_cmp).1;
                let got = value_at_rank(&vals, r);
                assert_eq!(got.to_bits(), want.to_bits(), "rank {r} of {vals:?}");
            }
        }
    }

    #[test]
    fn distinct_agrees_with_sort_and_dedup() {
        let mut s = 0x1234_5678_9abc_def1u64;
        for _ in 0..20_000 {
            let n = (rng(&mut s) % (SMALL as u64 + 1)) as usize;
            let pool = 1 + rng(&mut s) % 40;
            let keys: Vec<u64> = (0..n).map(|_| rng(&mut s) % pool).collect();
            let mut sorted = keys.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(distinct(&keys), sorted.len(), "{keys:?}");
        }
    }
}
