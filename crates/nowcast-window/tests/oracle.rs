//! Property tests: the engine against the brute-force oracle, after every apply (per-event
//! features) and at random evaluation times, across random configurations (tiled with random
//! hops, including hops that do not divide the window, and exact), out-of-order and late
//! events, negative values and skipped inputs, with a snapshot round trip mid-stream.

mod common;

use common::strategies::agg_strategy;
use common::{check, Oracle};
use nowcast_window::{
    Aggregation, Engine, EngineConfig, FeatureDef, FeatureValue, Hop, Input, SourceDef, Window,
};
use proptest::prelude::*;

fn window_strategy() -> impl Strategy<Value = Window> {
    (1i64..150).prop_flat_map(|d| {
        prop_oneof![
            Just(Window {
                duration: d,
                hop: Hop::Exact
            }),
            (1..=d).prop_map(move |h| Window {
                duration: d,
                hop: Hop::Tiled(h)
            }),
        ]
    })
}

fn config_strategy() -> impl Strategy<Value = EngineConfig> {
    let lateness = prop_oneof![Just(0i64), 0i64..40];
    (
        lateness.clone(),
        lateness,
        prop::collection::vec(
            (0usize..2, agg_strategy(), window_strategy(), 0usize..4),
            1..10,
        ),
    )
        .prop_map(|(l0, l1, feats)| {
            // Columns: a random share pattern, numbered densely per source in order of first
            // use; a column read by a numeric aggregation is numeric.
            let mut names: Vec<Vec<usize>> = vec![Vec::new(); 2];
            let feats: Vec<_> = feats
                .into_iter()
                .map(|(source, agg, window, raw_col)| {
                    let cols = &mut names[source];
                    let column = cols.iter().position(|&c| c == raw_col).unwrap_or_else(|| {
                        cols.push(raw_col);
                        cols.len() - 1
                    });
                    (source, agg, window, column)
                })
                .collect();
            EngineConfig {
                sources: vec![
                    SourceDef {
                        name: "a".into(),
                        allowed_lateness: l0,
                    },
                    SourceDef {
                        name: "b".into(),
                        allowed_lateness: l1,
                    },
                ],
                features: feats
                    .into_iter()
                    .enumerate()
                    .map(|(i, (source, agg, window, column))| FeatureDef {
                        name: format!("f{i}"),
                        source,
                        column,
                        agg,
                        window,
                    })
                    .collect(),
            }
        })
}

/// One generated event: entity, source, time step, per-feature raw inputs, and an optional
/// extra evaluation offset.
#[derive(Debug, Clone)]
struct Step {
    entity: u8,
    source: usize,
    dt: i64,
    raw: Vec<(u8, i16)>,
    eval_at: Option<i64>,
}

fn step_strategy() -> impl Strategy<Value = Step> {
    (
        0u8..3,
        0usize..2,
        prop_oneof![4 => -30i64..40, 1 => -200i64..-30, 1 => 40i64..300],
        prop::collection::vec((0u8..10, -40i16..40), 10),
        prop::option::of(-60i64..200),
    )
        .prop_map(|(entity, source, dt, raw, eval_at)| Step {
            entity,
            source,
            dt,
            raw,
            eval_at,
        })
}

/// The input of one column read by features with aggregations `aggs`: a hash only where every
/// reader accepts one.
fn input_for(aggs: &[Aggregation], (kind, v): (u8, i16)) -> Input {
    if kind < 2 {
        return Input::Skip;
    }
    let all = |f: fn(&Aggregation) -> bool| aggs.iter().all(f);
    let distinct_ok = |a: &Aggregation| {
        matches!(
            a,
            Aggregation::DistinctCount | Aggregation::Count | Aggregation::TimeSinceLast
        )
    };
    if kind < 6 && all(distinct_ok) && aggs.contains(&Aggregation::DistinctCount) {
        return Input::Hash(v as u64 & 0x1f);
    }
    if kind < 4 && all(|a| matches!(a, Aggregation::Count | Aggregation::TimeSinceLast)) {
        return Input::Hash(v as u64);
    }
    match kind {
        8 if v % 7 == 0 => Input::Num(f64::NAN),
        9 => Input::Num(v as f64 * 1000.5),
        _ => Input::Num(v as f64 / 4.0),
    }
}

fn compare(
    cfg: &EngineConfig,
    got: &[FeatureValue],
    want: &[common::Expected],
    ctx: &str,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len());
    for (f, (g, w)) in got.iter().zip(want).enumerate() {
        if let Err(e) = check(&cfg.features[f].agg, g, w) {
            return Err(TestCaseError::fail(format!(
                "{ctx}: feature {f} {:?}: {e}",
                cfg.features[f].window
            )));
        }
    }
    Ok(())
}

fn run(cfg: EngineConfig, steps: Vec<Step>, snapshot_at: usize) -> Result<(), TestCaseError> {
    let mut engine = Engine::new(cfg.clone()).unwrap();
    let mut oracle = Oracle::new(cfg.clone());
    let mut clock = -100i64;
    let mut out = Vec::new();
    let mut eval_out = Vec::new();
    for (n, st) in steps.iter().enumerate() {
        if n == snapshot_at {
            let mut bytes = Vec::new();
            engine.write_snapshot(&mut bytes).unwrap();
            let restored = Engine::read_snapshot(cfg.clone(), &bytes[..]).unwrap();
            let mut again = Vec::new();
            restored.write_snapshot(&mut again).unwrap();
            prop_assert_eq!(bytes.len(), again.len());
            engine = restored;
        }
        clock += st.dt;
        let key = format!("e{}", st.entity);
        let inputs: Vec<Input> = (0..engine.source_columns(st.source))
            .map(|c| {
                let aggs: Vec<Aggregation> = cfg
                    .features
                    .iter()
                    .filter(|f| f.source == st.source && f.column == c)
                    .map(|f| f.agg)
                    .collect();
                input_for(&aggs, st.raw[c % st.raw.len()])
            })
            .collect();
        let want = oracle.eval(&key, clock);
        let oracle_res = oracle.apply(&key, st.source, clock, &inputs);
        out.push(FeatureValue::Num(f64::NAN)); // must be overwritten
        let res = engine.apply(&key, st.source, clock, &inputs, Some(&mut out));
        prop_assert_eq!(res, oracle_res, "step {} lateness decision", n);
        if res.is_ok() {
            match want {
                Some(w) => compare(&cfg, &out, &w, &format!("step {n} per-event at {clock}"))?,
                None => {
                    // Unknown entity: every feature of an empty window.
                    let fresh = Oracle::new(cfg.clone());
                    let mut o2 = fresh;
                    o2.ents.insert(key.clone(), vec![Vec::new(); 2]);
                    compare(
                        &cfg,
                        &out,
                        &o2.eval(&key, clock).unwrap(),
                        &format!("step {n} new entity"),
                    )?;
                }
            }
        }
        if let Some(off) = st.eval_at {
            let t = clock + off;
            let known = engine.evaluate(&key, t, &mut eval_out);
            let want = oracle.eval(&key, t);
            prop_assert_eq!(known, want.is_some());
            if let Some(w) = want {
                compare(&cfg, &eval_out, &w, &format!("step {n} evaluate at {t}"))?;
            }
        }
        let newest = engine.newest_event_times(&key);
        let want_newest = oracle.ents.get(&key).map(|e| {
            e.iter()
                .map(|evs| evs.iter().map(|ev| ev.time).max())
                .collect::<Vec<_>>()
        });
        prop_assert_eq!(newest, want_newest);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_oracle(
        cfg in config_strategy(),
        steps in prop::collection::vec(step_strategy(), 1..150),
        snapshot_at in 0usize..150,
    ) {
        run(cfg, steps, snapshot_at)?;
    }

    /// One busy entity: more raw rows than the raw cap, so rows are folded into tiles while
    /// newer ones stay raw, with a snapshot in between.
    #[test]
    fn busy_entity_with_folds_matches_oracle(
        cfg in config_strategy(),
        steps in prop::collection::vec(step_strategy(), 300..500),
        snapshot_at in 0usize..500,
    ) {
        let steps = steps
            .into_iter()
            .map(|s| Step { entity: 0, dt: s.dt.rem_euclid(5) - 1, ..s })
            .collect();
        run(cfg, steps, snapshot_at)?;
    }
}

/// Many events in one window: LastN truncation per tile, quantile bins and distinct sets
/// larger than one event, on a single entity with dense timestamps.
#[test]
fn dense_single_entity_stream_matches_oracle() {
    let aggs = [
        Aggregation::LastN(3),
        Aggregation::Quantile {
            q: 0.9,
            relative_accuracy: 0.02,
        },
        Aggregation::DistinctCount,
        Aggregation::StdDev,
        Aggregation::Last,
        Aggregation::DecayedSum { half_life: 50 },
    ];
    let mut features = Vec::new();
    for (i, agg) in aggs.iter().enumerate() {
        for (j, hop) in [Hop::Tiled(7), Hop::Exact, Hop::Tiled(100)]
            .into_iter()
            .enumerate()
        {
            features.push(FeatureDef {
                name: format!("f{i}_{j}"),
                source: 0,
                column: i.min(2),
                agg: *agg,
                window: Window { duration: 100, hop },
            });
        }
    }
    let cfg = EngineConfig {
        sources: vec![SourceDef {
            name: "s".into(),
            allowed_lateness: 15,
        }],
        features,
    };
    let mut x = 12345u64;
    let steps: Vec<Step> = (0..3000)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = (x >> 33) as i64;
            Step {
                entity: 0,
                source: 0,
                dt: r % 7 - 2,
                raw: (0..10)
                    .map(|k| (((r >> k) % 10) as u8, ((r >> (k + 3)) % 80 - 40) as i16))
                    .collect(),
                eval_at: Some(r % 50),
            }
        })
        .collect();
    run(cfg, steps, 1500).unwrap();
}
