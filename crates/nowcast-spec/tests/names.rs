//! Names shared by features, request fields and model inputs.

mod common;

use common::{problems, GOOD};

#[test]
fn a_feature_named_like_a_request_field_is_refused_naming_both() {
    // Named `amount`, the minimum would silently replace the event's amount in the model.
    let p = problems(&GOOD.replace(
        "[model]",
        "[[features]]\nname = \"amount\"\nsource = \"tx\"\naggregation = \"min\"\n\
         field = \"amount\"\nwindow = \"1d\"\n[model]",
    ));
    assert_eq!(
        p,
        [
            "features[2].name: feature `amount` has the name of request field `amount` \
          (model.request_fields[0], model.inputs[0]): the model input would read the feature \
          instead of the event's field (fix: rename the feature, or the request field in \
          `model.request_fields` and `model.inputs`)"
        ],
    );
}

#[test]
fn a_request_field_listed_twice_is_refused() {
    let p = problems(&GOOD.replace(
        "request_fields = [\"amount\"]",
        "request_fields = [\"amount\", \"amount\"]",
    ));
    assert_eq!(
        p,
        ["model.request_fields[1]: `amount` is listed twice (also request_fields[0]) (fix: list each request field once)"]
    );
}

#[test]
fn a_typo_in_request_fields_is_pointed_at_not_the_correct_model_input() {
    let p = problems(&GOOD.replace(
        "request_fields = [\"amount\"]",
        "request_fields = [\"amout\"]",
    ));
    assert_eq!(
        p,
        [
            "model.inputs[0]: `amount` is neither a feature nor a request field (fix: `amount` \
             is a field of source `tx`; `amout` in `model.request_fields` looks like a typo of \
             it: write `amount` there)",
            "model.request_fields[0]: `amout` is not a model input (fix: did you mean `amount` \
             (a model input and a field of source `tx`)?)",
        ]
    );
}
