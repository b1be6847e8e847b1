//! The built-in linear model: maths, versions, validation. Needs no ONNX Runtime.

use nowcast_model::{ErrorKind, LoadedModel, ModelError, ModelKind, ModelSpec};

fn linear(weights: Vec<f64>, intercept: f64, logistic: bool) -> ModelSpec {
    ModelSpec {
        name: "lin".into(),
        n_inputs: weights.len(),
        kind: ModelKind::Linear {
            weights,
            intercept,
            logistic,
        },
    }
}

#[test]
fn weighted_sum_plus_intercept() {
    let model = LoadedModel::load(&linear(vec![0.5, -2.0, 0.0], 1.0, false)).unwrap();
    let mut out = vec![42.0]; // appended to, not cleared
    model
        .score_batch(
            &[2.0, 1.0, 9.0, 0.0, 0.0, 0.0, -4.0, 0.25, 1e6],
            3,
            &mut out,
        )
        .unwrap();
    assert_eq!(out, [42.0, 1.0 + 1.0 - 2.0, 1.0, 1.0 - 2.0 - 0.5]);
    assert_eq!(model.output(), "linear");
    assert_eq!(model.n_inputs(), 3);
    assert_eq!(model.sessions(), 0);
}

#[test]
fn logistic_applies_the_sigmoid() {
    let model = LoadedModel::load(&linear(vec![1.0, 1.0], -1.0, true)).unwrap();
    let mut out = Vec::new();
    model
        .score_batch(&[0.5, 0.5, 3.0, 0.0, -50.0, -1000.0], 3, &mut out)
        .unwrap();
    assert_eq!(out[0], 0.5);
    assert!((out[1] - 1.0 / (1.0 + (-2.0f64).exp())).abs() < 1e-15);
    assert!(out[2] >= 0.0 && out[2] < 1e-300);
    assert_eq!(model.output(), "logistic");
}

#[test]
fn computes_in_f64() {
    // 1e8 + 1 - 1e8 is 0 in f32 arithmetic, 1 in f64.
    let model = LoadedModel::load(&linear(vec![1.0, 1.0, 1.0], 0.0, false)).unwrap();
    let mut out = Vec::new();
    model.score_batch(&[1e8, 1.0, -1e8], 1, &mut out).unwrap();
    assert_eq!(out, [1.0]);
}

#[test]
fn zero_inputs_is_a_constant() {
    let model = LoadedModel::load(&linear(vec![], 0.0, true)).unwrap();
    let mut out = Vec::new();
    model.score_batch(&[], 3, &mut out).unwrap();
    assert_eq!(out, [0.5, 0.5, 0.5]);
}

#[test]
fn version_is_a_hash_of_the_weights() {
    let a = LoadedModel::load(&linear(vec![1.0, 2.0], 0.0, false)).unwrap();
    let same = LoadedModel::load(&linear(vec![1.0, 2.0], 0.0, false)).unwrap();
    let other_weight = LoadedModel::load(&linear(vec![1.0, 2.5], 0.0, false)).unwrap();
    let other_link = LoadedModel::load(&linear(vec![1.0, 2.0], 0.0, true)).unwrap();
    let other_intercept = LoadedModel::load(&linear(vec![1.0, 2.0], 0.1, false)).unwrap();
    assert_eq!(a.version().len(), 12);
    assert!(a.version().chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(a.version(), same.version());
    for b in [&other_weight, &other_link, &other_intercept] {
        assert_ne!(a.version(), b.version());
    }
}

#[test]
fn weight_count_must_match_the_spec() {
    let mut spec = linear(vec![1.0; 10], 0.0, true);
    spec.n_inputs = 12;
    let err = LoadedModel::load(&spec).unwrap_err();
    assert!(matches!(err, ModelError::InputCountMismatch { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("model `lin` (linear weights) takes 10 inputs, the spec lists 12"),
        "{msg}"
    );
}

#[test]
fn wrong_row_buffer_is_bad_data() {
    let model = LoadedModel::load(&linear(vec![1.0, 2.0], 0.0, false)).unwrap();
    let mut out = Vec::new();
    let err = model
        .score_batch(&[1.0, 2.0, 3.0], 2, &mut out)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadData);
    assert_eq!(
        err.to_string(),
        "model `lin`: got 3 values for 2 rows of 2 inputs (expected 4)"
    );
    assert!(out.is_empty());
    model.score_batch(&[], 0, &mut out).unwrap();
    assert!(out.is_empty());
}
