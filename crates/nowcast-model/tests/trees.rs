//! Tree ensembles compiled to native code score exactly what ONNX Runtime scores: the
//! committed GBT bit for bit, a regressor with every branch mode, NaN routing and AVERAGE, and
//! a classifier shape that must stay on ONNX Runtime. Needs the runtime library.

mod common;

use common::{fixture, models_dir, onnx_spec, require_runtime};
use nowcast_model::{LoadOptions, LoadedModel, ModelSpec};

fn load(spec: &ModelSpec, compile_trees: bool) -> LoadedModel {
    let options = LoadOptions {
        compile_trees,
        ..LoadOptions::default()
    };
    LoadedModel::load_with(spec, &options).unwrap_or_else(|e| panic!("{e}"))
}

/// Rows around the values the fixtures branch on, with NaNs, zeros and the fixture's rows.
fn rows(n: usize) -> Vec<f32> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut rows = fixture().rows;
    for _ in 0..n * 12 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let base = (state >> 33) % 24;
        let v = base as f32 * 0.5;
        rows.push(match state % 9 {
            0 => f32::NAN,
            1 => v.next_up(),
            2 => v.next_down(),
            3 => 0.0,
            4 => (state >> 20) as f32 / 1e3,
            _ => v,
        });
    }
    rows
}

fn score(model: &LoadedModel, rows: &[f32]) -> Vec<f64> {
    let mut out = Vec::new();
    model.score_batch(rows, rows.len() / 12, &mut out).unwrap();
    out
}

fn assert_same_as_onnxruntime(file: &str, engine: &str) {
    require_runtime();
    let spec = onnx_spec("m", file, 12);
    let (compiled, reference) = (load(&spec, true), load(&spec, false));
    assert!(
        compiled.engine().starts_with(engine),
        "{file}: engine is `{}`",
        compiled.engine()
    );
    assert_eq!(reference.engine(), "onnxruntime");
    assert_eq!(compiled.version(), reference.version());
    let data = rows(5000);
    let (got, want) = (score(&compiled, &data), score(&reference, &data));
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits(),
            "{file}: row {i}: compiled {g}, ONNX Runtime {w}"
        );
    }
    // One row at a time, and batches whose length is not a multiple of the lanes.
    for (i, row) in data.chunks(12).take(300).enumerate() {
        assert_eq!(
            score(&compiled, row)[0].to_bits(),
            want[i].to_bits(),
            "row {i} alone"
        );
    }
    assert_eq!(score(&compiled, &data[..7 * 12]), want[..7]);
}

#[test]
fn compiled_gbt_scores_bit_for_bit_what_onnxruntime_scores() {
    assert_same_as_onnxruntime(
        "fraud_gbt.onnx",
        "compiled TreeEnsembleClassifier, 100 trees, 1490 nodes",
    );
    let model = load(&onnx_spec("m", "fraud_gbt.onnx", 12), true);
    let fx = fixture();
    let got = score(&model, &fx.rows);
    for (i, (g, w)) in got.iter().zip(&fx.gbt).enumerate() {
        assert!((g - w).abs() <= 1e-6, "row {i}: {g} vs Python {w}");
    }
}

#[test]
fn compiled_regressor_handles_every_branch_mode_nan_and_average() {
    assert_same_as_onnxruntime(
        "fixtures/trees_modes.onnx",
        "compiled TreeEnsembleRegressor, 24 trees, 168 nodes",
    );
}

#[test]
fn all_positive_classifier_stays_on_onnxruntime_with_the_reason() {
    require_runtime();
    let model = load(&onnx_spec("m", "fixtures/trees_positive.onnx", 12), true);
    assert_eq!(
        model.engine(),
        "onnxruntime (not compiled: all leaf weights are non-negative)"
    );
    let data = rows(10);
    assert!(score(&model, &data).iter().all(|p| (0.0..=1.0).contains(p)));
}

#[test]
fn linear_graph_stays_on_onnxruntime() {
    require_runtime();
    let model = load(&onnx_spec("m", "fraud_logreg.onnx", 12), true);
    assert!(
        model
            .engine()
            .starts_with("onnxruntime (not compiled: operator"),
        "{}",
        model.engine()
    );
    let _ = models_dir();
}
