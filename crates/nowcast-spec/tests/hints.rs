//! The fixes suggested for small mistakes say what is wrong and point at the right value.

mod common;

use common::{problems, GOOD};

#[test]
fn an_aggregation_alias_or_prefix_suggests_the_aggregation_meant() {
    let with = |agg: &str| {
        problems(&GOOD.replace(
            "aggregation = \"count\"",
            &format!("aggregation = \"{agg}\"\nfield = \"amount\""),
        ))
    };
    for (written, meant) in [
        ("std", "stddev"),
        ("avg", "mean"),
        ("distinct", "distinct_count"),
        ("decayed", "decayed_sum"),
        ("cuont", "count"),
    ] {
        let p = with(written);
        assert_eq!(
            p,
            [format!(
                "features[0].aggregation: unknown aggregation `{written}` (fix: did you mean `{meant}`?)"
            )]
        );
    }
}

#[test]
fn a_last_n_without_n_says_n_is_missing_not_zero() {
    let p = problems(&GOOD.replace("n = 3\n", ""));
    assert_eq!(
        p,
        ["features[1].n: last_n needs `n`, how many values to keep (1 to 64); it is missing (fix: add e.g. `n = 5`)"]
    );
    let p = problems(&GOOD.replace("n = 3\n", "n = 65\n"));
    assert_eq!(
        p,
        ["features[1].n: last_n needs `n` between 1 and 64, got 65 (fix: use e.g. `n = 5`)"]
    );
}

#[test]
fn a_negative_duration_is_called_negative_not_unreadable() {
    let p = problems(&GOOD.replace(
        "time_field = \"ts\"",
        "time_field = \"ts\"\nallowed_lateness = \"-5s\"",
    ));
    assert_eq!(
        p,
        ["sources[0].allowed_lateness: `-5s`: durations must not be negative (fix: write `5s`)"]
    );
}

#[test]
fn an_unknown_time_unit_lists_the_units() {
    let p = problems(&GOOD.replace(
        "time_field = \"ts\"",
        "time_field = \"ts\"\ntime_unit = \"sec\"",
    ));
    assert_eq!(
        p,
        ["sources[0].time_unit: unknown time unit `sec` (fix: use one of `s`, `ms`, `us`, `ns` (epoch seconds, milliseconds, microseconds, nanoseconds))"]
    );
    for unit in ["s", "ms", "us", "ns"] {
        let text = GOOD.replace(
            "time_field = \"ts\"",
            &format!("time_field = \"ts\"\ntime_unit = \"{unit}\""),
        );
        assert!(problems(&text).is_empty(), "{unit}");
    }
}

#[test]
fn serving_limits_are_read_and_zero_is_refused() {
    let text = format!("{GOOD}\n[serving]\nmax_body_bytes = 1024\nmax_batch_entities = 7\n");
    let spec = nowcast_spec::parse_spec(&text, "t.toml", std::path::Path::new(".")).unwrap();
    assert_eq!(
        (spec.serving_max_body_bytes, spec.serving_max_batch_entities),
        (1024, 7)
    );
    let p = problems(&format!("{GOOD}\n[serving]\nmax_body_bytes = 0\n"));
    assert_eq!(
        p,
        ["serving.max_body_bytes: must be at least 1 (fix: remove it for the default (8388608) or give a positive number)"]
    );
}

#[test]
fn time_unit_on_an_avro_source_is_refused() {
    // Regression: Avro and Protobuf times arrive in milliseconds from their logical types,
    // and `time_unit = "us"` scaled them again into 1970.
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/avro-local/pipeline.toml"),
    )
    .unwrap();
    let text = text.replacen(
        "time_field = \"ts\"",
        "time_field = \"ts\"\ntime_unit = \"us\"",
        1,
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/avro-local");
    let err = nowcast_spec::parse_spec(&text, "p.toml", &dir)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sources[0].time_unit: applies to JSON sources only"),
        "{err}"
    );
}
