//! `Engine::apply_batch` against `Engine::apply`: two engines fed the same random events, one
//! event at a time and in random batches, must agree exactly — every lateness decision, every
//! feature value bit for bit (late events: `Null` in the batch buffer), the changes tracked,
//! evaluations and snapshots byte for byte — across random configurations with two sources,
//! repeated keys inside a batch, keys too long to be stored inline, evictions between batches
//! and growth of the entity map.

mod common;

use common::strategies::{bits, config_strategy, fixed_config, key, step_strategy, Step};
use nowcast_window::{Engine, EngineConfig, Event, Input};
use proptest::prelude::*;

fn snapshot(e: &Engine) -> Vec<u8> {
    let mut b = Vec::new();
    e.write_snapshot(&mut b).unwrap();
    b
}

fn run(cfg: EngineConfig, steps: Vec<Step>, eval: bool) -> Result<(), TestCaseError> {
    let mut seq = Engine::new(cfg.clone()).unwrap();
    let mut bat = Engine::new(cfg.clone()).unwrap();
    seq.track_changes(true);
    bat.track_changes(true);
    let f = cfg.features.len();
    let mut clock = 0i64;
    let mut pending: Vec<(String, usize, i64, Vec<Input>)> = Vec::new();
    let mut want_res = Vec::new();
    let mut want_out: Vec<Vec<Vec<u64>>> = Vec::new();
    let (mut one, mut out, mut results) = (Vec::new(), Vec::new(), Vec::new());
    for (n, &(entity, source, dt, amount, hash, flush, evict)) in steps.iter().enumerate() {
        clock += dt;
        let amount = if amount == 39 {
            f64::NAN
        } else {
            amount as f64 / 4.0
        };
        let inputs = vec![Input::Num(amount), Input::Hash(hash as u64)];
        let k = key(entity);
        one.clear();
        let r = seq.apply(&k, source, clock, &inputs, eval.then_some(&mut one));
        want_out.push(if r.is_ok() && eval {
            bits(&one)
        } else {
            vec![vec![1]; if eval { f } else { 0 }]
        });
        want_res.push(r);
        pending.push((k, source, clock, inputs));
        if flush || n + 1 == steps.len() {
            let events: Vec<Event> = pending
                .iter()
                .map(|(key, source, time, inputs)| Event {
                    key,
                    source: *source,
                    time: *time,
                    inputs,
                })
                .collect();
            bat.apply_batch(&events, eval.then_some(&mut out), &mut results);
            prop_assert_eq!(&results, &want_res, "lateness decisions up to step {}", n);
            if eval {
                let got: Vec<_> = out.chunks(f).map(bits).collect();
                prop_assert_eq!(&got, &want_out, "features up to step {}", n);
            } else {
                prop_assert!(out.is_empty());
            }
            pending.clear();
            want_res.clear();
            want_out.clear();
            if evict {
                prop_assert_eq!(seq.evict_idle(clock), bat.evict_idle(clock));
            }
        }
    }
    for e in 0..40u8 {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        prop_assert_eq!(
            seq.evaluate(&key(e), clock, &mut a),
            bat.evaluate(&key(e), clock, &mut b)
        );
        prop_assert_eq!(bits(&a), bits(&b));
    }
    let drain = |e: &mut Engine| {
        let mut v = Vec::new();
        e.drain_changes(|k, r| v.push((k.to_string(), r.map(<[u8]>::to_vec))))
            .unwrap();
        v.sort();
        v
    };
    prop_assert_eq!(drain(&mut seq), drain(&mut bat));
    prop_assert_eq!(snapshot(&seq), snapshot(&bat));
    prop_assert_eq!(seq.state_bytes(), bat.state_bytes());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn apply_batch_equals_sequential_apply(
        cfg in config_strategy(),
        steps in prop::collection::vec(step_strategy(), 1..400),
        eval in prop::bool::weighted(0.8),
    ) {
        run(cfg, steps, eval)?;
    }
}

/// Many entities (the map grows through several sizes) in batches of 512, with evictions.
#[test]
fn large_batches_equal_sequential_apply() {
    let cfg = fixed_config();
    let mut x = 7u64;
    let steps: Vec<Step> = (0..5000)
        .map(|i| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = x >> 20;
            (
                (r % 251) as u8,
                (r >> 8) as usize % 2,
                (r >> 10) as i64 % 7 - 2,
                ((r >> 14) % 80) as i16 - 40,
                (r >> 21) as u8 % 8,
                i % 512 == 511,
                i % 2048 == 2047,
            )
        })
        .collect();
    run(cfg, steps, true).unwrap();
}
