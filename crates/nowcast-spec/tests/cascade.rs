//! One mistake, one problem: a bad key is reported at its own path, and what refers to a
//! declared but invalid source or field type is not reported again.

mod common;

use common::{problems, GOOD};

/// The spec with a second feature on `tx` reading `amount`, so follow-ups would show.
fn with_sum() -> String {
    GOOD.replace(
        "[model]",
        "[[features]]\nname = \"sum_1h\"\nsource = \"tx\"\naggregation = \"sum\"\nfield = \"amount\"\nwindow = \"1h\"\n[model]",
    )
}

#[test]
fn a_bad_source_key_does_not_make_features_report_the_source_unknown() {
    let source = |from: &str, to: &str| {
        let text = with_sum().replace(from, to);
        assert_ne!(text, with_sum());
        problems(&text)
    };
    let p = source(
        "time_field = \"ts\"",
        "time_field = \"ts\"\nalowed_latenes = \"5s\"",
    );
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with("sources[0]: unknown field `alowed_latenes`")
            && p[0].ends_with("(fix: did you mean `allowed_lateness`?)"),
        "{p:?}"
    );
    let p = source("key_field = \"user\"\n", "");
    assert_eq!(
        p,
        ["sources[0].key_field: missing field `key_field` (fix: add `key_field`)"]
    );
    let p = source(
        "time_field = \"ts\"",
        "time_field = \"ts\"\nallowed_lateness = 5",
    );
    assert_eq!(
        p,
        ["sources[0].allowed_lateness: expected a duration string like \"30s\", got integer 5 (fix: write the duration as text with a unit, e.g. `\"30s\"`)"]
    );
    // Every bad key of the section at once; the features' own problems still show.
    let p = source(
        "time_field = \"ts\"",
        "time_field = 1\nallowed_lateness = 5\nmax_future = \"1h\"",
    )
    .into_iter()
    .chain(problems(
        &with_sum()
            .replace("time_field = \"ts\"", "time_field = 1")
            .replace("window = \"1h\"", "window = \"1 hour\""),
    ))
    .collect::<Vec<_>>()
    .join("\n");
    assert!(
        p.contains("sources[0].time_field: expected a string, got integer 1"),
        "{p}"
    );
    assert!(
        p.contains("sources[0].allowed_lateness: expected a duration"),
        "{p}"
    );
    assert!(
        p.contains("features[0].window: `1 hour` is not a duration"),
        "{p}"
    );
    assert!(!p.contains("unknown source"), "{p}");
}

#[test]
fn an_unknown_field_type_is_reported_once_without_contradicting_follow_ups() {
    let p = problems(&with_sum().replace("amount = \"number\"", "amount = \"float\""));
    assert_eq!(
        p,
        ["sources[0].fields.amount: unknown type `float` (fix: did you mean `number`?)"]
    );
}

#[test]
fn a_feature_duration_of_the_wrong_type_names_the_duration_format() {
    let p = problems(&GOOD.replace("window = \"1h\"", "window = 3600"));
    assert_eq!(
        p,
        ["features[0].window: expected a duration string like \"30s\", got integer 3600 (fix: write the duration as text with a unit, e.g. `\"30s\"`)"]
    );
}

#[test]
fn a_source_that_is_really_undeclared_is_still_unknown() {
    let p = problems(&GOOD.replace(
        "source = \"tx\"\naggregation = \"count\"",
        "source = \"txs\"\naggregation = \"count\"",
    ));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].contains("features[0].source: unknown source `txs` (fix: did you mean `tx`?)"),
        "{p:?}"
    );
}
