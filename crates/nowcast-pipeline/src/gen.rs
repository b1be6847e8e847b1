//! A seeded synthetic card-transaction stream with injected fraud bursts.
//!
//! Each user has a home country, a typical spend and a few favourite merchants, all derived
//! from the seed and the user number (no per-user tables). Normal traffic: a uniformly chosen
//! user buys at a favourite merchant (80 %) in their home country (97 %), amount log-normal
//! around their typical spend. Fraud: with probability `fraud_rate` per event a burst starts on
//! a random user's card: 5–20 transactions spaced ~3 s apart (exponential), mostly abroad, at
//! random merchants, for several times the usual amount; those events carry
//! `"is_fraud": true`. The same seed and the same sequence of times give byte-identical output.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::Write;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const COUNTRIES: &[(&str, f64)] = &[
    ("US", 0.55),
    ("GB", 0.1),
    ("DE", 0.08),
    ("FR", 0.07),
    ("CA", 0.05),
    ("BR", 0.04),
    ("IN", 0.04),
    ("JP", 0.03),
    ("NG", 0.02),
    ("RU", 0.02),
];

/// Generator settings.
#[derive(Debug, Clone)]
pub struct GenConfig {
    /// Seed.
    pub seed: u64,
    /// Number of users (card holders).
    pub users: u64,
    /// Number of merchants.
    pub merchants: u64,
    /// Probability per event that a fraud burst starts.
    pub fraud_rate: f64,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            seed: 42,
            users: 100_000,
            merchants: 20_000,
            fraud_rate: 0.001,
        }
    }
}

struct Burst {
    user: u64,
    left: u32,
}

/// The generator.
pub struct Generator {
    cfg: GenConfig,
    rng: ChaCha8Rng,
    seq: u64,
    /// Pending burst transactions by due time.
    due: BinaryHeap<Reverse<(i64, u64)>>,
    bursts: Vec<Option<Burst>>,
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

impl Generator {
    /// A generator for `cfg`.
    pub fn new(cfg: GenConfig) -> Generator {
        Generator {
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            cfg,
            seq: 0,
            due: BinaryHeap::new(),
            bursts: Vec::new(),
        }
    }

    fn profile(&self, user: u64) -> (usize, f64) {
        let h = mix(user ^ self.cfg.seed.rotate_left(17));
        let u = (h >> 11) as f64 / (1u64 << 53) as f64;
        let mut acc = 0.0;
        let mut home = 0;
        for (i, (_, w)) in COUNTRIES.iter().enumerate() {
            acc += w;
            if u < acc {
                home = i;
                break;
            }
        }
        let mu = 2.5 + 2.0 * ((h & 0xffff) as f64 / 65_535.0);
        (home, mu)
    }

    fn favourite(&self, user: u64, k: u64) -> u64 {
        mix(user.wrapping_mul(31).wrapping_add(k) ^ self.cfg.seed) % self.cfg.merchants
    }

    fn normal(&mut self) -> f64 {
        // Box–Muller.
        let u1: f64 = self.rng.gen_range(f64::EPSILON..1.0);
        let u2: f64 = self.rng.gen();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Writes the next event at event time `time` (epoch ms) into `out` as one JSON object and
    /// returns its user key length: the key is `out`'s `user_id` value, also written to `key`.
    pub fn next_event(&mut self, time: i64, key: &mut Vec<u8>, out: &mut Vec<u8>) {
        self.seq += 1;
        if self.rng.gen_bool(self.cfg.fraud_rate.clamp(0.0, 1.0)) {
            let user = self.rng.gen_range(0..self.cfg.users);
            let left = self.rng.gen_range(5..=20);
            self.bursts.push(Some(Burst { user, left }));
            self.due.push(Reverse((time, self.bursts.len() as u64 - 1)));
        }
        let burst = match self.due.peek() {
            Some(Reverse((t, _))) if *t <= time => self.due.pop().map(|Reverse((_, b))| b),
            _ => None,
        };
        let (user, fraud) = match burst {
            Some(b) => {
                let slot = &mut self.bursts[b as usize];
                let burst = slot.as_mut().expect("due bursts are live");
                burst.left -= 1;
                let user = burst.user;
                if burst.left == 0 {
                    *slot = None;
                } else {
                    let gap = (-3_000.0 * self.rng.gen_range(f64::EPSILON..1.0f64).ln()) as i64;
                    self.due.push(Reverse((time + gap.max(1), b)));
                }
                while matches!(self.bursts.last(), Some(None)) {
                    self.bursts.pop();
                }
                (user, true)
            }
            None => (self.rng.gen_range(0..self.cfg.users), false),
        };
        let (home, mu) = self.profile(user);
        let z = self.normal();
        let (amount, merchant, country) = if fraud {
            let country = if self.rng.gen_bool(0.7) {
                self.rng.gen_range(0..COUNTRIES.len())
            } else {
                home
            };
            (
                (mu + 1.5 + 0.8 * z).exp(),
                self.rng.gen_range(0..self.cfg.merchants),
                country,
            )
        } else {
            let merchant = if self.rng.gen_bool(0.8) {
                let k = self.rng.gen_range(0..5);
                self.favourite(user, k)
            } else {
                self.rng.gen_range(0..self.cfg.merchants)
            };
            let country = if self.rng.gen_bool(0.97) {
                home
            } else {
                self.rng.gen_range(0..COUNTRIES.len())
            };
            ((mu + 0.6 * z).exp(), merchant, country)
        };
        let channel = if self.rng.gen_bool(0.6) {
            "pos"
        } else {
            "online"
        };
        key.clear();
        let _ = write!(key, "u-{user}");
        let _ = write!(
            out,
            r#"{{"txn_id":"t-{}-{}","user_id":"u-{user}","merchant_id":"m-{merchant}","amount":{:.2},"country":"{}","foreign":{},"channel":"{channel}","ts":{time},"is_fraud":{fraud}}}"#,
            self.cfg.seed,
            self.seq,
            amount,
            COUNTRIES[country].0,
            country != home,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let run = || {
            let mut g = Generator::new(GenConfig {
                fraud_rate: 0.01,
                ..GenConfig::default()
            });
            let (mut k, mut out) = (Vec::new(), Vec::new());
            for i in 0..2_000 {
                g.next_event(1_700_000_000_000 + i * 100, &mut k, &mut out);
                out.push(b'\n');
            }
            out
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn bursts_are_labelled_and_events_are_json() {
        let mut g = Generator::new(GenConfig {
            fraud_rate: 0.01,
            users: 1000,
            ..GenConfig::default()
        });
        let (mut k, mut out) = (Vec::new(), Vec::new());
        let mut fraud = 0;
        for i in 0..20_000 {
            out.clear();
            g.next_event(1_700_000_000_000 + i * 50, &mut k, &mut out);
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(v["user_id"].as_str().unwrap().as_bytes(), &k[..]);
            fraud += usize::from(v["is_fraud"].as_bool().unwrap());
        }
        assert!(fraud > 500 && fraud < 5_000, "{fraud} fraud events");
    }
}
