//! Quantiles: a sparse DDSketch (Masson et al., 2019). A value `x` falls in bin
//! `key = ceil(log_γ |x|)` with `γ = (1+α)/(1−α)`; every value of a bin is within relative
//! error α of the bin's representative `2γ^key/(γ+1)`. Negative values are mirrored and
//! `|x| < 1e-9` counts as zero. Bins are identified by an order-preserving signed `code`
//! (negative values < zero < positive values), so sorting codes sorts values.

/// A bin and its count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bin {
    pub(crate) code: i64,
    pub(crate) count: u64,
}

const ZERO_LIMIT: f64 = 1e-9;
const OFFSET: i64 = 1 << 52;
const KEY_LIMIT: f64 = (1i64 << 51) as f64;

/// Parameters derived from the relative accuracy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mapping {
    ln_gamma: f64,
    gamma: f64,
}

impl Mapping {
    pub(crate) fn new(alpha: f64) -> Mapping {
        let gamma = (1.0 + alpha) / (1.0 - alpha);
        Mapping {
            ln_gamma: gamma.ln(),
            gamma,
        }
    }

    /// The bin code of a finite value.
    pub(crate) fn code(&self, x: f64) -> i64 {
        let a = x.abs();
        if a < ZERO_LIMIT {
            return 0;
        }
        let key = (a.ln() / self.ln_gamma).ceil().clamp(-KEY_LIMIT, KEY_LIMIT) as i64;
        if x > 0.0 {
            key + OFFSET
        } else {
            -(key + OFFSET)
        }
    }

    /// The representative value of a bin code.
    pub(crate) fn value(&self, code: i64) -> f64 {
        if code == 0 {
            return 0.0;
        }
        let key = code.abs() - OFFSET;
        let v = ((key as f64) * self.ln_gamma).exp() * 2.0 / (self.gamma + 1.0);
        let v = v.min(f64::MAX);
        if code > 0 {
            v
        } else {
            -v
        }
    }
}

/// The representative value at 0-based rank `floor(q·(n−1))` of bins sorted by code
/// (duplicate codes allowed); `None` when empty.
pub(crate) fn quantile(sorted: &[Bin], q: f64, map: &Mapping) -> Option<f64> {
    let n: u64 = sorted.iter().map(|b| b.count).sum();
    if n == 0 {
        return None;
    }
    let rank = rank(q, n);
    let mut cum = 0u64;
    for b in sorted {
        cum += b.count;
        if cum > rank {
            return Some(map.value(b.code));
        }
    }
    sorted.last().map(|b| map.value(b.code))
}

/// 0-based rank `floor(q·(n−1))` for `n >= 1` values.
pub(crate) fn rank(q: f64, n: u64) -> u64 {
    ((q * (n - 1) as f64).floor() as u64).min(n - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn representatives_are_within_alpha() {
        let m = Mapping::new(0.01);
        for &x in &[1e-8, 0.3, 1.0, 2.5, 1234.5, 1e12, -7.0, -1e-5] {
            let v = m.value(m.code(x));
            assert!((v - x).abs() <= 0.01 * x.abs() * (1.0 + 1e-9), "{x} -> {v}");
        }
        assert_eq!(m.value(m.code(1e-10)), 0.0);
        assert!(m.code(-5.0) < m.code(-1.0) && m.code(-1.0) < 0 && 0 < m.code(0.5));
    }
}
