//! The committed ONNX models through ONNX Runtime: same scores as onnxruntime in Python,
//! validation errors, concurrency. Needs the runtime library (scripts/setup-python.sh); fails
//! with the crate's message if it is missing.

mod common;

use std::sync::Arc;

use common::{fixture, models_dir, onnx_spec, require_runtime};
use nowcast_model::{ErrorKind, LoadOptions, LoadedModel, ModelError, ModelKind, ModelSpec};

/// f32 models evaluated by the same runtime: differences are rounding only.
const TOLERANCE: f64 = 1e-6;

fn load(spec: &ModelSpec) -> LoadedModel {
    LoadedModel::load(spec).unwrap_or_else(|e| panic!("{e}"))
}

fn assert_close(model: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{model}: row count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= TOLERANCE,
            "{model}: row {i}: got {g}, onnxruntime (Python) gave {w}"
        );
    }
}

#[test]
fn runtime_library_is_found() {
    require_runtime();
    let (version, path) = nowcast_model::onnxruntime_version().unwrap_or_else(|e| panic!("{e}"));
    assert!(version.starts_with("1."), "{version}");
    assert!(path.to_string_lossy().contains("libonnxruntime"));
    eprintln!("ONNX Runtime {version} from {}", path.display());
}

#[test]
fn committed_models_match_python_onnxruntime() {
    require_runtime();
    let fx = fixture();
    for (name, want) in [("fraud_logreg", &fx.logreg), ("fraud_gbt", &fx.gbt)] {
        let model = load(&onnx_spec(name, &format!("{name}.onnx"), 12));
        assert_eq!(model.name(), name);
        assert_eq!(model.n_inputs(), 12);
        assert_eq!(model.version().len(), 12);
        assert_eq!(model.output(), "probabilities[:, 1]");

        // One batch.
        let mut batch = Vec::new();
        model.score_batch(&fx.rows, fx.n_rows, &mut batch).unwrap();
        assert_close(name, &batch, want);

        // Row by row gives the same.
        let mut single = Vec::new();
        for row in fx.rows.chunks(12) {
            model.score_batch(row, 1, &mut single).unwrap();
        }
        assert_close(name, &single, want);
        assert!(batch.iter().all(|p| (0.0..=1.0).contains(p)));
    }
}

#[test]
fn fixture_separates_fraud_from_normal() {
    // Sanity of the committed models themselves: on the fixture's labelled rows the GBT ranks
    // every fraud above the median normal score.
    let text = std::fs::read_to_string(models_dir().join("fixtures/scoring.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let labels: Vec<Option<u8>> = serde_json::from_value(json["labels"].clone()).unwrap();
    let fx = fixture();
    let mut normal: Vec<f64> = Vec::new();
    let mut fraud: Vec<f64> = Vec::new();
    for (label, p) in labels.iter().zip(&fx.gbt) {
        match label {
            Some(1) => fraud.push(*p),
            Some(0) => normal.push(*p),
            _ => {}
        }
    }
    normal.sort_by(f64::total_cmp);
    let median = normal[normal.len() / 2];
    assert!(fraud.iter().filter(|&&p| p > median).count() >= fraud.len() - 1);
}

#[test]
fn version_is_sha256_prefix_of_the_file() {
    require_runtime();
    let model = load(&onnx_spec("fraud_logreg", "fraud_logreg.onnx", 12));
    use sha2::Digest;
    let bytes = std::fs::read(models_dir().join("fraud_logreg.onnx")).unwrap();
    let hex: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(model.version(), &hex[..12]);
}

#[test]
fn regressor_output_is_the_value() {
    require_runtime();
    let fx = fixture();
    let model = load(&onnx_spec("linreg", "fixtures/linreg_tiny.onnx", 12));
    assert_eq!(model.output(), "variable");
    let mut out = Vec::new();
    model.score_batch(&fx.rows, fx.n_rows, &mut out).unwrap();
    // Values are large (amount sums); compare relatively.
    for (g, w) in out.iter().zip(&fx.linreg_tiny) {
        assert!(
            (g - w).abs() <= 1e-5 * w.abs().max(1.0),
            "got {g}, want {w}"
        );
    }
}

#[test]
fn input_count_mismatch_names_model_and_counts() {
    require_runtime();
    let err = LoadedModel::load(&onnx_spec("fraud_gbt", "fraud_gbt.onnx", 10)).unwrap_err();
    assert!(
        matches!(err, ModelError::InputCountMismatch { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.starts_with("model `fraud_gbt` (`"), "{msg}");
    assert!(
        msg.contains("fraud_gbt.onnx`) takes 12 inputs, the spec lists 10"),
        "{msg}"
    );
    assert_eq!(err.kind(), ErrorKind::Config);
}

#[test]
fn missing_file_is_unreadable() {
    let err = LoadedModel::load(&onnx_spec("m", "no-such-model.onnx", 12)).unwrap_err();
    assert!(matches!(err, ModelError::Unreadable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("no-such-model.onnx") && msg.contains("model `m`"),
        "{msg}"
    );
}

#[test]
fn garbage_is_not_onnx() {
    require_runtime();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.onnx");
    std::fs::write(&path, b"definitely not a protobuf \x00\x01\x02").unwrap();
    let spec = ModelSpec {
        name: "junk".into(),
        kind: ModelKind::Onnx { path: path.clone() },
        n_inputs: 12,
    };
    let err = LoadedModel::load(&spec).unwrap_err();
    assert!(matches!(err, ModelError::NotOnnx { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("garbage.onnx") && msg.contains("models/train.py"),
        "{msg}"
    );
}

#[test]
fn bad_row_buffer_is_rejected_before_the_runtime() {
    require_runtime();
    let model = load(&onnx_spec("fraud_logreg", "fraud_logreg.onnx", 12));
    let mut out = Vec::new();
    let err = model.score_batch(&[0.0; 13], 1, &mut out).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadData);
    assert!(out.is_empty());
    model.score_batch(&[], 0, &mut out).unwrap();
    assert!(out.is_empty());
}

#[test]
fn concurrent_scoring_from_threads_agrees() {
    require_runtime();
    let fx = Arc::new(fixture());
    for max_sessions in [1, 3] {
        let model = Arc::new(
            LoadedModel::load_with(
                &onnx_spec("fraud_gbt", "fraud_gbt.onnx", 12),
                &LoadOptions {
                    max_sessions,
                    compile_trees: false,
                },
            )
            .unwrap_or_else(|e| panic!("{e}")),
        );
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (model, fx) = (model.clone(), fx.clone());
                std::thread::spawn(move || {
                    for round in 0..200 {
                        let i = (t * 7 + round) % fx.n_rows;
                        let mut out = Vec::new();
                        model
                            .score_batch(&fx.rows[i * 12..(i + 1) * 12], 1, &mut out)
                            .unwrap();
                        assert!((out[0] - fx.gbt[i]).abs() <= TOLERANCE);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(model.sessions() >= 1 && model.sessions() <= max_sessions);
    }
}
