//! Snapshots taken a slice at a time (`begin_snapshot` → `snapshot_step` → `finish_snapshot`)
//! while events keep changing the engine: the bytes must restore the state at the start —
//! every entity's encoding equal to that of a whole snapshot taken at that moment — whatever
//! the events, steps, evictions and changelog restores in between; and taking one must not
//! change what the engine computes.

mod common;

use common::strategies::{bits, config_strategy, fixed_config, key, step_strategy, Step};
use nowcast_window::{Engine, EngineConfig, Input};
use proptest::prelude::*;

fn snapshot(e: &Engine) -> Vec<u8> {
    let mut b = Vec::new();
    e.write_snapshot(&mut b).unwrap();
    b
}

/// Every entity's encoding, by key (entities `0..40` of the generator).
fn entities(e: &Engine) -> Vec<Option<Vec<u8>>> {
    (0..40u8)
        .map(|k| {
            let mut out = Vec::new();
            e.encode_entity(&key(k), &mut out).unwrap().then_some(out)
        })
        .collect()
}

const PREFIX: &[u8] = b"caller's header";

/// Feeds `steps` to an engine that begins a snapshot before step `begin` and steps it
/// by `budget` entities at each batch end, and to one that never snapshots.
fn run(
    cfg: EngineConfig,
    steps: Vec<Step>,
    begin: usize,
    budget: usize,
) -> Result<(), TestCaseError> {
    let mut live = Engine::new(cfg.clone()).unwrap();
    let mut plain = Engine::new(cfg.clone()).unwrap();
    let mut clock = 0i64;
    let mut at_start = None;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for (n, &(entity, source, dt, amount, hash, flush, evict)) in steps.iter().enumerate() {
        if n == begin {
            at_start = Some(snapshot(&live));
            live.begin_snapshot(PREFIX.to_vec()).unwrap();
        }
        clock += dt;
        let inputs = vec![Input::Num(amount as f64 / 4.0), Input::Hash(hash as u64)];
        let k = key(entity);
        let r1 = live.apply(&k, source, clock, &inputs, Some(&mut a));
        let r2 = plain.apply(&k, source, clock, &inputs, Some(&mut b));
        prop_assert_eq!(&r1, &r2, "lateness at step {}", n);
        prop_assert_eq!(bits(&a), bits(&b), "features at step {}", n);
        if flush {
            live.snapshot_step(budget);
        }
        if evict {
            prop_assert_eq!(live.evict_idle(clock), plain.evict_idle(clock));
        }
    }
    let at_start = match at_start {
        Some(s) => s,
        None => {
            let s = snapshot(&live);
            live.begin_snapshot(PREFIX.to_vec()).unwrap();
            s
        }
    };
    prop_assert!(live.snapshot_in_progress());
    let bytes = live
        .finish_snapshot()
        .unwrap()
        .expect("a snapshot in progress");
    prop_assert!(!live.snapshot_in_progress());
    prop_assert!(bytes.starts_with(PREFIX));
    let got = Engine::read_snapshot(cfg.clone(), &bytes[PREFIX.len()..]).unwrap();
    let want = Engine::read_snapshot(cfg, &at_start[..]).unwrap();
    prop_assert_eq!(got.entities(), want.entities());
    prop_assert_eq!(entities(&got), entities(&want));
    // The live engine itself is untouched by the snapshot.
    prop_assert_eq!(snapshot(&live), snapshot(&plain));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn sliced_snapshot_restores_the_state_at_its_start(
        cfg in config_strategy(),
        steps in prop::collection::vec(step_strategy(), 1..300),
        begin in 0usize..300,
        budget in 1usize..8,
    ) {
        run(cfg, steps, begin, budget)?;
    }
}

fn fed(cfg: &EngineConfig) -> Engine {
    let mut e = Engine::new(cfg.clone()).unwrap();
    for i in 0..200i64 {
        let inputs = [Input::Num(i as f64), Input::Hash(i as u64 % 5)];
        e.apply(&key((i % 40) as u8), (i % 2) as usize, i, &inputs, None)
            .unwrap();
    }
    e
}

/// A changelog record replacing an entity (and a tombstone removing one) while a snapshot is
/// in progress: the snapshot still holds both as they were at its start.
#[test]
fn changelog_restore_during_a_sliced_snapshot_keeps_the_start_state() {
    let cfg = fixed_config();
    let mut e = fed(&cfg);
    let want = entities(&e);
    let mut record = Vec::new();
    assert!(e.encode_entity(&key(3), &mut record).unwrap());
    e.begin_snapshot(Vec::new()).unwrap();
    assert!(!e.snapshot_step(5));
    e.restore_entity(&key(2), Some(&record)).unwrap();
    e.restore_entity(&key(7), None).unwrap();
    assert!(e.snapshot_step(1), "a restore completes the snapshot");
    let bytes = e.finish_snapshot().unwrap().unwrap();
    let got = Engine::read_snapshot(cfg, &bytes[..]).unwrap();
    assert_eq!(entities(&got), want);
    assert_eq!(got.entities(), 40);
    assert_eq!(e.entities(), 39);
}

/// Begun on an empty engine, then events: an empty snapshot.
#[test]
fn sliced_snapshot_of_an_empty_engine_is_empty() {
    let cfg = fixed_config();
    let mut e = Engine::new(cfg.clone()).unwrap();
    e.begin_snapshot(Vec::new()).unwrap();
    assert!(e.snapshot_step(1));
    let inputs = [Input::Num(1.0), Input::Hash(1)];
    e.apply(&key(1), 0, 5, &inputs, None).unwrap();
    let bytes = e.finish_snapshot().unwrap().unwrap();
    assert_eq!(
        Engine::read_snapshot(cfg, &bytes[..]).unwrap().entities(),
        0
    );
    assert_eq!(e.entities(), 1);
}
