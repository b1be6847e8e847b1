//! `ORT_DYLIB_PATH` handling. A separate test binary because it changes the process environment.

use nowcast_model::{onnxruntime_library, ModelError};

#[test]
fn ort_dylib_path_wins_and_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("libonnxruntime.so.9.9.9");
    std::env::set_var("ORT_DYLIB_PATH", &missing);
    let err = onnxruntime_library().unwrap_err();
    assert!(matches!(err, ModelError::RuntimeEnvPath { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("libonnxruntime.so.9.9.9") && msg.contains("setup-python.sh"),
        "{msg}"
    );

    std::fs::write(&missing, b"").unwrap();
    assert_eq!(onnxruntime_library().unwrap(), missing);

    // Empty means unset.
    std::env::set_var("ORT_DYLIB_PATH", "");
    if let Ok(found) = onnxruntime_library() {
        assert_ne!(found, missing);
    }
    std::env::remove_var("ORT_DYLIB_PATH");
}

#[test]
fn not_found_message_names_the_fix() {
    let err = ModelError::RuntimeNotFound {
        searched: "/a, /b".into(),
    };
    let msg = err.to_string();
    assert!(
        msg.contains("scripts/setup-python.sh") && msg.contains("ORT_DYLIB_PATH"),
        "{msg}"
    );
    assert!(msg.contains(".venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*"));
}
