//! Random engine configurations and event steps shared by the property tests.

#![allow(dead_code)]

use nowcast_window::{Aggregation, EngineConfig, FeatureDef, FeatureValue, Hop, SourceDef, Window};
use proptest::prelude::*;

/// Every aggregation, quantiles at several ranks and accuracies.
pub fn agg_strategy() -> impl Strategy<Value = Aggregation> {
    prop_oneof![
        Just(Aggregation::Count),
        Just(Aggregation::Sum),
        Just(Aggregation::Mean),
        Just(Aggregation::Min),
        Just(Aggregation::Max),
        Just(Aggregation::StdDev),
        Just(Aggregation::DistinctCount),
        Just(Aggregation::Last),
        (1usize..5).prop_map(Aggregation::LastN),
        (
            prop_oneof![Just(0.0), Just(0.25), Just(0.5), Just(0.9), Just(1.0)],
            prop_oneof![Just(0.01), Just(0.05)]
        )
            .prop_map(|(q, a)| Aggregation::Quantile {
                q,
                relative_accuracy: a
            }),
        Just(Aggregation::TimeSinceLast),
        (1i64..100).prop_map(|h| Aggregation::DecayedSum { half_life: h }),
    ]
}

/// Features over two sources; distinct counts read column 1 (hashes), the rest column 0.
pub fn config_strategy() -> impl Strategy<Value = EngineConfig> {
    (
        0i64..40,
        0i64..40,
        prop::collection::vec(
            (
                0usize..2,
                agg_strategy(),
                1i64..150,
                prop::option::of(1i64..150),
            ),
            1..10,
        ),
    )
        .prop_map(|(l0, l1, feats)| {
            let mut features: Vec<FeatureDef> = feats
                .into_iter()
                .enumerate()
                .map(|(i, (source, agg, duration, hop))| FeatureDef {
                    name: format!("f{i}"),
                    source,
                    column: matches!(agg, Aggregation::DistinctCount) as usize,
                    agg,
                    window: Window {
                        duration,
                        hop: hop.map_or(Hop::Exact, |h| Hop::Tiled(h.min(duration))),
                    },
                })
                .collect();
            // Every source reads columns 0 and 1.
            for (source, column, agg) in [
                (0, 0, Aggregation::Sum),
                (0, 1, Aggregation::DistinctCount),
                (1, 0, Aggregation::Sum),
                (1, 1, Aggregation::DistinctCount),
            ] {
                features.push(FeatureDef {
                    name: format!("fill{source}{column}"),
                    source,
                    column,
                    agg,
                    window: Window {
                        duration: 100,
                        hop: Hop::Tiled(10),
                    },
                });
            }
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
                features,
            }
        })
}

/// One event: entity, source, time step, amount (NaN sometimes), hash, whether a batch ends
/// after it, and whether idle entities are evicted then.
pub type Step = (u8, usize, i64, i16, u8, bool, bool);

pub fn step_strategy() -> impl Strategy<Value = Step> {
    (
        0u8..40,
        0usize..2,
        prop_oneof![4 => -30i64..40, 1 => -200i64..-30, 1 => 40i64..300],
        -40i16..40,
        0u8..8,
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.1),
    )
}

pub fn key(entity: u8) -> String {
    if entity.is_multiple_of(5) {
        format!("a-key-longer-than-twenty-two-bytes-{entity}")
    } else {
        format!("e{entity}")
    }
}

/// Feature values as comparable bits.
pub fn bits(v: &[FeatureValue]) -> Vec<Vec<u64>> {
    v.iter()
        .map(|f| match f {
            FeatureValue::Null => vec![1],
            FeatureValue::Num(x) => vec![2, x.to_bits()],
            FeatureValue::List(l) => std::iter::once(3)
                .chain(l.iter().map(|x| x.to_bits()))
                .collect(),
        })
        .collect()
}

/// The first configuration of [`config_strategy`] under proptest's deterministic runner: a
/// fixed configuration for example-based tests.
pub fn fixed_config() -> EngineConfig {
    use proptest::strategy::ValueTree;
    config_strategy()
        .new_tree(&mut proptest::test_runner::TestRunner::deterministic())
        .unwrap()
        .current()
}
