//! The built-in linear model: `z = intercept + Σ weights[i] · x[i]`, optionally `1 / (1 + e^-z)`.
//!
//! Needs no runtime library; useful as a baseline, for tests, and for models simple enough to be
//! written into a pipeline spec.

use sha2::{Digest, Sha256};

/// Validated weights of a linear model.
pub(crate) struct LinearModel {
    weights: Vec<f64>,
    intercept: f64,
    logistic: bool,
}

impl LinearModel {
    pub(crate) fn new(weights: &[f64], intercept: f64, logistic: bool) -> LinearModel {
        LinearModel {
            weights: weights.to_vec(),
            intercept,
            logistic,
        }
    }

    /// SHA-256 over a tag, the weights, the intercept and the link, each f64 as little-endian bits.
    pub(crate) fn digest(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(b"nowcast-linear-v1");
        hasher.update((self.weights.len() as u64).to_le_bytes());
        for w in &self.weights {
            hasher.update(w.to_bits().to_le_bytes());
        }
        hasher.update(self.intercept.to_bits().to_le_bytes());
        hasher.update([u8::from(self.logistic)]);
        hasher.finalize().into()
    }

    /// Scores rows of exactly `weights.len()` values each (checked by the caller).
    pub(crate) fn score(&self, rows: &[f32], out: &mut Vec<f64>) {
        let n = self.weights.len();
        if n == 0 {
            // A constant model; `rows` is empty whatever the row count, so the caller's count
            // is not recoverable here. LoadedModel handles this case.
            return;
        }
        out.extend(rows.chunks_exact(n).map(|row| {
            let z = self.intercept
                + row
                    .iter()
                    .zip(&self.weights)
                    .map(|(&x, &w)| f64::from(x) * w)
                    .sum::<f64>();
            if self.logistic {
                sigmoid(z)
            } else {
                z
            }
        }));
    }

    /// Whether the logistic function is applied.
    pub(crate) fn is_logistic(&self) -> bool {
        self.logistic
    }

    /// The score of a model without inputs.
    pub(crate) fn constant(&self) -> f64 {
        if self.logistic {
            sigmoid(self.intercept)
        } else {
            self.intercept
        }
    }
}

/// Numerically stable logistic function.
fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    use super::sigmoid;

    #[test]
    fn sigmoid_is_stable_at_extremes() {
        assert_eq!(sigmoid(0.0), 0.5);
        assert_eq!(sigmoid(1000.0), 1.0);
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert!((sigmoid(2.0) + sigmoid(-2.0) - 1.0).abs() < 1e-15);
    }
}
