//! A brute-force oracle: keeps every applied event and computes each feature from scratch
//! with the definitions in the crate docs. It decides lateness on its own.

#![allow(dead_code)]

pub mod strategies;

use std::collections::{HashMap, HashSet};

use nowcast_window::{Aggregation, EngineConfig, FeatureValue, Hop, Input, Late, Millis};

#[derive(Debug, Clone)]
pub struct Ev {
    pub time: Millis,
    pub seq: u64,
    pub inputs: Vec<Input>,
}

/// An expected value and the magnitude scale used for floating tolerances.
#[derive(Debug, Clone)]
pub struct Expected {
    pub value: FeatureValue,
    pub scale: f64,
    /// Window values in ascending order (quantile).
    pub sorted: Vec<f64>,
}

pub struct Oracle {
    pub cfg: EngineConfig,
    pub src_feats: Vec<Vec<usize>>,
    pub ents: HashMap<String, Vec<Vec<Ev>>>,
    pub seq: u64,
}

pub fn num(i: Input) -> Option<f64> {
    match i {
        Input::Num(x) if x.is_finite() => Some(x),
        _ => None,
    }
}

impl Oracle {
    pub fn new(cfg: EngineConfig) -> Oracle {
        let mut src_feats = vec![Vec::new(); cfg.sources.len()];
        for (f, d) in cfg.features.iter().enumerate() {
            src_feats[d.source].push(f);
        }
        Oracle {
            cfg,
            src_feats,
            ents: HashMap::new(),
            seq: 0,
        }
    }

    fn newest(&self, key: &str, s: usize) -> Option<Millis> {
        self.ents.get(key)?[s].iter().map(|e| e.time).max()
    }

    pub fn watermark(&self, key: &str, s: usize) -> Option<Millis> {
        self.newest(key, s)
            .map(|n| n - self.cfg.sources[s].allowed_lateness)
    }

    pub fn apply(
        &mut self,
        key: &str,
        s: usize,
        time: Millis,
        inputs: &[Input],
    ) -> Result<(), Late> {
        if let Some(newest) = self.newest(key, s) {
            let watermark = newest - self.cfg.sources[s].allowed_lateness;
            if time < watermark {
                return Err(Late { watermark, newest });
            }
        }
        self.seq += 1;
        let n = self.cfg.sources.len();
        let ent = self
            .ents
            .entry(key.to_owned())
            .or_insert_with(|| vec![Vec::new(); n]);
        ent[s].push(Ev {
            time,
            seq: self.seq,
            inputs: inputs.to_vec(),
        });
        Ok(())
    }

    pub fn eval(&self, key: &str, t: Millis) -> Option<Vec<Expected>> {
        let ent = self.ents.get(key)?;
        Some(
            (0..self.cfg.features.len())
                .map(|f| self.feature(key, ent, f, t))
                .collect(),
        )
    }

    fn feature(&self, key: &str, ent: &[Vec<Ev>], f: usize, t: Millis) -> Expected {
        let def = &self.cfg.features[f];
        let s = def.source;
        let t = self.watermark(key, s).map_or(t, |w| t.max(w));
        let w = def.window.duration;
        let lo = match def.window.hop {
            Hop::Exact => t - w + 1,
            Hop::Tiled(h) => (t - w + 1).div_euclid(h) * h,
        };
        let pos = def.column;
        let evs: Vec<(Millis, u64, Input)> = ent[s]
            .iter()
            .filter(|e| lo <= e.time && e.time <= t)
            .map(|e| (e.time, e.seq, e.inputs[pos]))
            .filter(|e| {
                !matches!(e.2, Input::Skip) && !matches!(e.2, Input::Num(x) if !x.is_finite())
            })
            .collect();
        let vals: Vec<f64> = evs.iter().filter_map(|e| num(e.2)).collect();
        let scale = vals.iter().map(|v| v.abs()).sum::<f64>();
        let n = vals.len() as f64;
        let null_if_empty = |v: f64| {
            if vals.is_empty() {
                FeatureValue::Null
            } else {
                FeatureValue::Num(v)
            }
        };
        let mut sorted = vals.clone();
        sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let value = match def.agg {
            Aggregation::Count => FeatureValue::Num(evs.len() as f64),
            Aggregation::Sum => FeatureValue::Num(vals.iter().sum()),
            Aggregation::Mean => null_if_empty(vals.iter().sum::<f64>() / n),
            Aggregation::Min => null_if_empty(vals.iter().cloned().fold(f64::INFINITY, f64::min)),
            Aggregation::Max => {
                null_if_empty(vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max))
            }
            Aggregation::StdDev => {
                let mean = vals.iter().sum::<f64>() / n;
                null_if_empty((vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt())
            }
            Aggregation::DistinctCount => {
                let set: HashSet<u64> = evs
                    .iter()
                    .filter_map(|e| match e.2 {
                        Input::Hash(h) => Some(h),
                        Input::Num(x) => Some((x + 0.0).to_bits()),
                        Input::Skip => None,
                    })
                    .collect();
                FeatureValue::Num(set.len() as f64)
            }
            Aggregation::Last => {
                let best = evs
                    .iter()
                    .filter(|e| num(e.2).is_some())
                    .max_by_key(|e| (e.0, e.1));
                best.map_or(FeatureValue::Null, |e| FeatureValue::Num(num(e.2).unwrap()))
            }
            Aggregation::LastN(k) => {
                let mut v: Vec<_> = evs.iter().filter(|e| num(e.2).is_some()).collect();
                v.sort_by_key(|e| std::cmp::Reverse((e.0, e.1)));
                FeatureValue::List(v.iter().take(k).map(|e| num(e.2).unwrap()).collect())
            }
            Aggregation::Quantile { q, .. } => {
                if sorted.is_empty() {
                    FeatureValue::Null
                } else {
                    let r = (q * (sorted.len() - 1) as f64).floor() as usize;
                    FeatureValue::Num(sorted[r.min(sorted.len() - 1)])
                }
            }
            Aggregation::TimeSinceLast => match evs.iter().map(|e| e.0).max() {
                Some(m) => FeatureValue::Num((t - m) as f64 / 1000.0),
                None => FeatureValue::Null,
            },
            Aggregation::DecayedSum { half_life } => {
                let terms: Vec<f64> = evs
                    .iter()
                    .filter_map(|e| {
                        num(e.2).map(|v| v * (-((t - e.0) as f64) / half_life as f64).exp2())
                    })
                    .collect();
                return Expected {
                    value: FeatureValue::Num(terms.iter().sum()),
                    scale: terms.iter().map(|x| x.abs()).sum(),
                    sorted,
                };
            }
        };
        let scale = match def.agg {
            Aggregation::StdDev => sorted.iter().fold(0.0f64, |a, v| a.max(v.abs())),
            _ => scale,
        };
        Expected {
            value,
            scale,
            sorted,
        }
    }
}

/// Checks one engine value against the oracle; returns a message on mismatch.
pub fn check(agg: &Aggregation, got: &FeatureValue, want: &Expected) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "{agg:?}: got {got:?}, want {:?} (scale {})",
            want.value, want.scale
        ))
    };
    match (agg, got, &want.value) {
        (_, FeatureValue::Null, FeatureValue::Null) => Ok(()),
        (_, FeatureValue::List(a), FeatureValue::List(b)) => {
            if a == b {
                Ok(())
            } else {
                bad()
            }
        }
        (_, FeatureValue::Num(a), FeatureValue::Num(b)) => {
            let ok = match agg {
                Aggregation::Sum | Aggregation::Mean | Aggregation::DecayedSum { .. } => {
                    (a - b).abs() <= 1e-9 * (b.abs() + want.scale) + 1e-12
                }
                // sqrt of a rounding-level M2 amplifies it: allow 1e-7 of the value scale.
                Aggregation::StdDev => (a - b).abs() <= 1e-9 * b.abs() + 1e-7 * want.scale + 1e-12,
                Aggregation::Quantile {
                    relative_accuracy, ..
                } => (a - b).abs() <= relative_accuracy * b.abs() * (1.0 + 1e-9) + 1e-9,
                Aggregation::DistinctCount if *b > 256.0 => (a - b).abs() <= 5.0 * 0.0163 * b,
                _ => a == b,
            };
            if ok {
                Ok(())
            } else {
                bad()
            }
        }
        _ => bad(),
    }
}
