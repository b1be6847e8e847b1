//! Behaviour tests: snapshot round trip and every snapshot error, eviction, configuration
//! validation messages, lateness, and the dense (HyperLogLog) distinct-count regime.

use nowcast_window::{
    Aggregation, Engine, EngineConfig, FeatureDef, FeatureValue, Hop, Input, Late, SourceDef,
    Window, WindowError,
};

fn feature(name: &str, agg: Aggregation, duration: i64, hop: Hop) -> FeatureDef {
    FeatureDef {
        name: name.into(),
        source: 0,
        column: 0,
        agg,
        window: Window { duration, hop },
    }
}

fn on(column: usize, f: FeatureDef) -> FeatureDef {
    FeatureDef { column, ..f }
}

fn config() -> EngineConfig {
    EngineConfig {
        sources: vec![SourceDef {
            name: "tx".into(),
            allowed_lateness: 100,
        }],
        features: vec![
            feature("count", Aggregation::Count, 1_000, Hop::Tiled(100)),
            feature("sum", Aggregation::Sum, 1_000, Hop::Tiled(100)),
            on(
                1,
                feature("distinct", Aggregation::DistinctCount, 1_000, Hop::Exact),
            ),
            feature("last3", Aggregation::LastN(3), 10_000, Hop::Tiled(1_000)),
            feature(
                "p50",
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
    let v = Input::Num(i as f64 - 7.5);
    vec![v, Input::Hash(i % 13)]
}

fn fed_engine() -> Engine {
    let mut e = Engine::new(config()).unwrap();
    for i in 0..500u64 {
        let t = (i * 37 % 1000 + i * 20) as i64;
        let _ = e.apply(&format!("k{}", i % 7), 0, t, &inputs(i), None);
    }
    e
}

fn snapshot(e: &Engine) -> Vec<u8> {
    let mut b = Vec::new();
    e.write_snapshot(&mut b).unwrap();
    b
}

#[test]
fn snapshot_round_trip_gives_identical_evaluations_and_behaviour() {
    let mut a = fed_engine();
    let bytes = snapshot(&a);
    let mut b = Engine::read_snapshot(config(), &bytes[..]).unwrap();
    assert_eq!(a.entities(), b.entities());
    let (mut oa, mut ob) = (Vec::new(), Vec::new());
    for i in 500..1500u64 {
        let key = format!("k{}", i % 9);
        let t = (i * 37 % 1000 + i * 20) as i64;
        assert_eq!(
            a.apply(&key, 0, t, &inputs(i), Some(&mut oa)),
            b.apply(&key, 0, t, &inputs(i), Some(&mut ob))
        );
        assert_eq!(oa, ob);
        assert_eq!(
            a.evaluate(&key, t + 300, &mut oa),
            b.evaluate(&key, t + 300, &mut ob)
        );
        assert_eq!(oa, ob);
    }
    // Same content; entity order may differ (map layout depends on insertion history).
    assert_eq!(snapshot(&a).len(), snapshot(&b).len());
    assert_eq!(a.evict_idle(1_000_000), b.evict_idle(1_000_000));
}

#[test]
fn snapshot_errors_are_specific() {
    let bytes = snapshot(&fed_engine());
    let read = |b: &[u8]| Engine::read_snapshot(config(), b).map(|_| ()).unwrap_err();

    let mut bad = bytes.clone();
    bad[0] = b'X';
    assert!(matches!(read(&bad), WindowError::BadMagic));

    let mut bad = bytes.clone();
    bad[4] = 9;
    assert!(matches!(
        read(&bad),
        WindowError::UnsupportedVersion {
            found: 9,
            oldest: 2,
            newest: 3
        }
    ));

    let mut other = config();
    other.features[0].window.duration = 2_000;
    let err = Engine::read_snapshot(other, &bytes[..])
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(err, WindowError::ConfigMismatch { .. }), "{err}");
    assert!(err.to_string().contains("different configuration"));
    // Columns are part of the configuration.
    let mut other = config();
    other.features[3].column = 1;
    other.features[2].column = 0;
    let err = Engine::read_snapshot(other, &bytes[..])
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(err, WindowError::ConfigMismatch { .. }), "{err}");

    // Every truncation and every single-byte flip in the body is detected, never a panic.
    for cut in (0..bytes.len()).step_by(7) {
        let err = read(&bytes[..cut]);
        assert!(
            matches!(err, WindowError::Corrupt { .. } | WindowError::BadMagic),
            "cut {cut}: {err}"
        );
    }
    for pos in (8..bytes.len()).step_by(3) {
        let mut bad = bytes.clone();
        bad[pos] ^= 0x5a;
        let err = read(&bad);
        assert!(
            matches!(err, WindowError::Corrupt { .. }),
            "flip at {pos}: {err}"
        );
    }
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(read(&long), WindowError::Corrupt { .. }));
}

#[test]
fn evict_idle_drops_only_entities_with_empty_windows() {
    let mut e = Engine::new(config()).unwrap();
    e.apply("old", 0, 1_000, &inputs(1), None).unwrap();
    e.apply("new", 0, 12_000, &inputs(2), None).unwrap();
    // Up to 11_998 the 10 s last3 window (hop 1 s) still reaches back to tile [1_000, 2_000).
    assert_eq!(e.evict_idle(11_998), 0);
    assert_eq!(e.evict_idle(11_999), 1);
    assert_eq!(e.entities(), 1);
    let mut out = Vec::new();
    assert!(!e.evaluate("old", 12_000, &mut out));
    assert!(out.is_empty());
    assert!(e.evaluate("new", 12_000, &mut out));
    assert_eq!(out[0], FeatureValue::Num(1.0));
    assert!(e.state_bytes() > 0);
}

#[test]
fn late_events_are_refused_and_change_nothing() {
    let mut e = Engine::new(config()).unwrap();
    e.apply("k", 0, 1_000, &inputs(1), None).unwrap();
    e.apply("k", 0, 900, &inputs(2), None).unwrap(); // exactly at the watermark
    let before = snapshot(&e);
    assert_eq!(
        e.apply("k", 0, 899, &inputs(3), None),
        Err(Late {
            watermark: 900,
            newest: 1_000
        })
    );
    assert_eq!(snapshot(&e), before);
}

#[test]
fn config_validation_names_feature_and_fix() {
    let cases: Vec<(FeatureDef, &str)> = vec![
        (
            feature("w0", Aggregation::Count, 0, Hop::Exact),
            "use a duration of at least 1 ms",
        ),
        (
            feature("h0", Aggregation::Count, 10, Hop::Tiled(0)),
            "use a hop between 1 ms",
        ),
        (
            feature("hbig", Aggregation::Count, 10, Hop::Tiled(11)),
            "use a hop between 1 ms",
        ),
        (
            feature(
                "q",
                Aggregation::Quantile {
                    q: 1.5,
                    relative_accuracy: 0.01,
                },
                10,
                Hop::Exact,
            ),
            "between 0 and 1",
        ),
        (
            feature(
                "a",
                Aggregation::Quantile {
                    q: 0.5,
                    relative_accuracy: 1.0,
                },
                10,
                Hop::Exact,
            ),
            "strictly between 0 and 1",
        ),
        (
            feature("n0", Aggregation::LastN(0), 10, Hop::Exact),
            "between 1 and 64",
        ),
        (
            feature("n65", Aggregation::LastN(65), 10, Hop::Exact),
            "between 1 and 64",
        ),
        (
            feature(
                "hl",
                Aggregation::DecayedSum { half_life: 0 },
                10,
                Hop::Exact,
            ),
            "at least 1 ms",
        ),
        (
            FeatureDef {
                source: 3,
                ..feature("src", Aggregation::Count, 10, Hop::Exact)
            },
            "out of range",
        ),
        (
            on(1, feature("col", Aggregation::Count, 10, Hop::Exact)),
            "input column 1 is out of range",
        ),
    ];
    for (f, fix) in cases {
        let name = f.name.clone();
        let cfg = EngineConfig {
            sources: config().sources,
            features: vec![f],
        };
        let msg = Engine::new(cfg).unwrap_err().to_string();
        assert!(msg.starts_with(&format!("feature `{name}`:")), "{msg}");
        assert!(msg.contains(fix), "{msg}");
    }
    let cfg = EngineConfig {
        sources: vec![SourceDef {
            name: "s".into(),
            allowed_lateness: -1,
        }],
        features: vec![],
    };
    let msg = Engine::new(cfg).unwrap_err().to_string();
    assert!(
        msg.contains("source `s`") && msg.contains("use 0 or a positive"),
        "{msg}"
    );
    // A column read by no feature.
    let cfg = EngineConfig {
        sources: config().sources,
        features: vec![
            feature("a", Aggregation::Count, 10, Hop::Exact),
            on(2, feature("b", Aggregation::Sum, 10, Hop::Exact)),
            on(2, feature("c", Aggregation::Max, 10, Hop::Exact)),
        ],
    };
    let msg = Engine::new(cfg).unwrap_err().to_string();
    assert!(
        msg.contains("source `tx`") && msg.contains("input column 1 is read by no feature"),
        "{msg}"
    );
}

#[test]
fn shared_columns_feed_every_feature_reading_them() {
    let cfg = EngineConfig {
        sources: config().sources,
        features: vec![
            on(1, feature("n", Aggregation::Count, 1_000, Hop::Exact)),
            feature("s", Aggregation::Sum, 1_000, Hop::Tiled(100)),
            on(
                1,
                feature("d", Aggregation::DistinctCount, 1_000, Hop::Exact),
            ),
            feature("m", Aggregation::Max, 1_000, Hop::Exact),
        ],
    };
    let mut e = Engine::new(cfg).unwrap();
    assert_eq!(e.source_columns(0), 2);
    assert_eq!(e.source_features(0), &[0, 1, 2, 3]);
    let mut out = Vec::new();
    for (i, (x, h)) in [(1.0, 7), (2.5, 7), (4.0, 9)].into_iter().enumerate() {
        e.apply("k", 0, i as i64, &[Input::Num(x), Input::Hash(h)], None)
            .unwrap();
    }
    e.apply("k", 0, 3, &[Input::Skip, Input::Skip], Some(&mut out))
        .unwrap();
    assert_eq!(
        out,
        vec![
            FeatureValue::Num(3.0),
            FeatureValue::Num(7.5),
            FeatureValue::Num(2.0),
            FeatureValue::Num(4.0)
        ]
    );
}

/// Deterministic test of the dense regime: many distinct values spread over tiles, some
/// tiles sparse, some dense, merged; the estimate is within 5 standard errors.
#[test]
fn distinct_count_dense_regime_is_within_five_sigma() {
    let cfg = EngineConfig {
        sources: vec![SourceDef {
            name: "s".into(),
            allowed_lateness: 0,
        }],
        features: vec![
            feature(
                "d",
                Aggregation::DistinctCount,
                1_000_000,
                Hop::Tiled(10_000),
            ),
            feature("e", Aggregation::DistinctCount, 1_000_000, Hop::Exact),
        ],
    };
    let mut e = Engine::new(cfg).unwrap();
    let mut out = Vec::new();
    let mut x = 7u64;
    let mut distinct = std::collections::HashSet::new();
    for i in 0..60_000i64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Repeats: draw from a growing pool so the true distinct count is known.
        let h = x % 40_000;
        distinct.insert(h);
        e.apply("k", 0, i * 10, &[Input::Hash(h)], None).unwrap();
        if i % 5_000 == 4_999 {
            assert!(e.evaluate("k", i * 10, &mut out));
            let truth = distinct.len() as f64;
            for v in &out {
                let FeatureValue::Num(est) = v else {
                    panic!("{v:?}")
                };
                assert!(
                    (est - truth).abs() <= 5.0 * 0.01625 * truth,
                    "est {est} truth {truth}"
                );
            }
        }
    }
    // Exactly 256 distinct stays exact; the 257th switches to the sketch.
    let mut e2 = Engine::new(e.config().clone()).unwrap();
    for h in 0..256u64 {
        e2.apply("k", 0, 5, &[Input::Hash(h)], None).unwrap();
    }
    e2.evaluate("k", 5, &mut out);
    assert_eq!(out, vec![FeatureValue::Num(256.0); 2]);
}

/// State written by the previous format (version 2: raw rows as plain words), by the build
/// before version 3, for [`fed_engine`]'s events: still readable, evaluating exactly as the
/// engine that is fed the same events now.
#[test]
fn version_2_snapshots_and_entity_records_are_still_read() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let v2 = std::fs::read(fixtures.join("snapshot-v2.bin")).unwrap();
    assert_eq!(&v2[4..8], &2u32.to_le_bytes());
    let mut old = Engine::read_snapshot(config(), &v2[..]).unwrap();
    let mut now = fed_engine();
    assert_eq!(old.entities(), now.entities());
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for k in 0..7 {
        let key = format!("k{k}");
        for t in [9_500, 10_400, 13_000, 20_000] {
            assert_eq!(old.evaluate(&key, t, &mut a), now.evaluate(&key, t, &mut b));
            assert_eq!(a, b, "{key} at {t}");
        }
    }
    // Events applied after the restore order after the restored ones in both.
    for i in 500..600u64 {
        let t = (i * 37 % 1000 + i * 20) as i64;
        let key = format!("k{}", i % 7);
        assert_eq!(
            old.apply(&key, 0, t, &inputs(i), Some(&mut a)),
            now.apply(&key, 0, t, &inputs(i), Some(&mut b))
        );
        assert_eq!(a, b);
    }
    // Written again, it is version 3 and smaller.
    let v3 = snapshot(&Engine::read_snapshot(config(), &v2[..]).unwrap());
    assert_eq!(&v3[4..8], &3u32.to_le_bytes());
    assert!(v3.len() < v2.len(), "{} >= {}", v3.len(), v2.len());

    let record = std::fs::read(fixtures.join("entity-v2.bin")).unwrap();
    let mut replica = Engine::new(config()).unwrap();
    replica.restore_entity("k3", Some(&record)).unwrap();
    let now = fed_engine();
    for t in [9_500, 10_400, 13_000] {
        assert_eq!(
            replica.evaluate("k3", t, &mut a),
            now.evaluate("k3", t, &mut b)
        );
        assert_eq!(a, b, "k3 at {t}");
    }
    let mut v3 = Vec::new();
    assert!(now.encode_entity("k3", &mut v3).unwrap());
    assert!(v3.len() < record.len(), "{} >= {}", v3.len(), record.len());
}
