//! Per-entity change records (the changelog of the Kafka feature store): a replica fed only by
//! drained changes evaluates exactly like the engine that produced them, evictions become
//! tombstones, and bad records are refused without changing anything.

use nowcast_window::{
    Aggregation, Engine, EngineConfig, FeatureDef, Hop, Input, SourceDef, Window, WindowError,
};

fn feature(name: &str, column: usize, agg: Aggregation, duration: i64, hop: Hop) -> FeatureDef {
    FeatureDef {
        name: name.into(),
        source: 0,
        column,
        agg,
        window: Window { duration, hop },
    }
}

fn config() -> EngineConfig {
    EngineConfig {
        sources: vec![SourceDef {
            name: "tx".into(),
            allowed_lateness: 100,
        }],
        features: vec![
            feature("count", 0, Aggregation::Count, 1_000, Hop::Tiled(100)),
            feature("sum", 0, Aggregation::Sum, 1_000, Hop::Tiled(100)),
            feature("distinct", 1, Aggregation::DistinctCount, 1_000, Hop::Exact),
            feature("last3", 0, Aggregation::LastN(3), 10_000, Hop::Tiled(1_000)),
            feature(
                "p50",
                0,
                Aggregation::Quantile {
                    q: 0.5,
                    relative_accuracy: 0.01,
                },
                5_000,
                Hop::Exact,
            ),
        ],
    }
}

fn inputs(i: u64) -> Vec<Input> {
    vec![Input::Num(i as f64 - 7.5), Input::Hash(i % 13)]
}

fn drain_into(src: &mut Engine, dst: &mut Engine) -> usize {
    let mut records = Vec::new();
    src.drain_changes(|k, v| records.push((k.to_string(), v.map(<[u8]>::to_vec))))
        .unwrap();
    for (k, v) in &records {
        dst.restore_entity(k, v.as_deref()).unwrap();
    }
    records.len()
}

#[test]
fn replica_fed_by_drained_changes_evaluates_like_the_source() {
    let mut a = Engine::new(config()).unwrap();
    let mut b = Engine::new(config()).unwrap();
    a.track_changes(true);
    let mut t = 0i64;
    for i in 0..5_000u64 {
        // 40 keys, mostly in order with some disorder, enough events per key to reach tiles.
        t += (i % 7) as i64;
        let at = t - (i % 5) as i64 * 20;
        let _ = a.apply(&format!("k{}", i * 7919 % 40), 0, at, &inputs(i), None);
        if i % 500 == 499 {
            assert!(drain_into(&mut a, &mut b) > 0);
            assert_eq!(a.pending_changes(), 0);
        }
    }
    drain_into(&mut a, &mut b);
    assert_eq!(a.entities(), b.entities());
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for k in 0..40 {
        let key = format!("k{k}");
        for at in [t, t + 50, t + 900, t + 4_000] {
            assert!(a.evaluate(&key, at, &mut x));
            assert!(b.evaluate(&key, at, &mut y));
            assert_eq!(x, y, "{key} at {at}");
        }
    }
    // Both continue identically: later events order after the restored ones.
    for i in 0..200u64 {
        let key = format!("k{}", i % 40);
        let r1 = a.apply(&key, 0, t + i as i64, &inputs(i), Some(&mut x));
        let r2 = b.apply(&key, 0, t + i as i64, &inputs(i), Some(&mut y));
        assert_eq!(r1, r2);
        assert_eq!(x, y);
    }
}

#[test]
fn evicted_entities_become_tombstones_and_late_events_are_not_changes() {
    let mut a = Engine::new(config()).unwrap();
    let mut b = Engine::new(config()).unwrap();
    a.track_changes(true);
    a.apply("old", 0, 1_000, &inputs(1), None).unwrap();
    a.apply("new", 0, 12_000, &inputs(2), None).unwrap();
    drain_into(&mut a, &mut b);
    assert_eq!(b.entities(), 2);
    assert!(a.apply("new", 0, 11_000, &inputs(3), None).is_err());
    assert_eq!(a.pending_changes(), 0, "a late event changes nothing");
    assert_eq!(a.evict_idle(12_000), 1);
    let mut seen = Vec::new();
    a.drain_changes(|k, v| seen.push((k.to_string(), v.is_some())))
        .unwrap();
    assert_eq!(seen, vec![("old".to_string(), false)]);
    b.restore_entity("old", None).unwrap();
    assert_eq!(b.entities(), 1);
}

#[test]
fn bad_entity_records_are_refused_and_change_nothing() {
    let mut a = Engine::new(config()).unwrap();
    a.apply("k", 0, 1_000, &inputs(1), None).unwrap();
    let mut rec = Vec::new();
    assert!(a.encode_entity("k", &mut rec).unwrap());
    assert!(!a.encode_entity("nobody", &mut Vec::new()).unwrap());
    let mut b = Engine::new(config()).unwrap();
    let mut flipped = rec.clone();
    flipped[30] ^= 1;
    assert!(matches!(
        b.restore_entity("k", Some(&flipped)),
        Err(WindowError::Corrupt { .. })
    ));
    assert!(matches!(
        b.restore_entity("k", Some(&rec[..10])),
        Err(WindowError::Corrupt { .. })
    ));
    assert!(matches!(
        b.restore_entity("k", Some(b"garbage-garbage-garbage-garbage")),
        Err(WindowError::BadMagic)
    ));
    let mut other_cfg = config();
    other_cfg.features.pop();
    let mut c = Engine::new(other_cfg).unwrap();
    assert!(matches!(
        c.restore_entity("k", Some(&rec)),
        Err(WindowError::ConfigMismatch { .. })
    ));
    assert_eq!(b.entities() + c.entities(), 0);
    b.restore_entity("k", Some(&rec)).unwrap();
    assert_eq!(b.entities(), 1);
}
