//! Shared helpers for the integration tests: paths of the committed models and the fixture.
#![allow(dead_code)]

use std::path::PathBuf;

use nowcast_model::{ModelKind, ModelSpec};

/// `<repo>/models`.
pub fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

/// Spec of a file under `models/`.
pub fn onnx_spec(name: &str, file: &str, n_inputs: usize) -> ModelSpec {
    ModelSpec {
        name: name.into(),
        kind: ModelKind::Onnx {
            path: models_dir().join(file),
        },
        n_inputs,
    }
}

/// Fails (never skips) when ONNX Runtime is missing, with the crate's message.
pub fn require_runtime() {
    if let Err(e) = nowcast_model::onnxruntime_library() {
        panic!("{e}");
    }
}

/// `models/fixtures/scoring.json`, written by models/train.py.
pub struct Fixture {
    pub rows: Vec<f32>,
    pub n_rows: usize,
    pub logreg: Vec<f64>,
    pub gbt: Vec<f64>,
    pub linreg_tiny: Vec<f64>,
}

pub fn fixture() -> Fixture {
    let text = std::fs::read_to_string(models_dir().join("fixtures/scoring.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let rows: Vec<Vec<f32>> = serde_json::from_value(json["rows"].clone()).unwrap();
    let floats = |v: &serde_json::Value| -> Vec<f64> { serde_json::from_value(v.clone()).unwrap() };
    assert!(rows.iter().all(|r| r.len() == 12));
    Fixture {
        n_rows: rows.len(),
        rows: rows.concat(),
        logreg: floats(&json["expected"]["fraud_logreg"]),
        gbt: floats(&json["expected"]["fraud_gbt"]),
        linreg_tiny: floats(&json["expected_linreg_tiny"]),
    }
}
