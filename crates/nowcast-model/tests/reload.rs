//! Hot reload through `ModelHandle`: new versions are picked up, broken files are not.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{fixture, models_dir, require_runtime};
use nowcast_model::{ModelError, ModelHandle, ModelKind, ModelSpec};

fn handle_for(path: &Path) -> ModelHandle {
    ModelHandle::new(ModelSpec {
        name: "fraud".into(),
        kind: ModelKind::Onnx {
            path: path.to_path_buf(),
        },
        n_inputs: 12,
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn scores(handle: &ModelHandle) -> Vec<f64> {
    let fx = fixture();
    let mut out = Vec::new();
    handle
        .current()
        .score_batch(&fx.rows, fx.n_rows, &mut out)
        .unwrap();
    out
}

/// Replaces the file's content (same path, new mtime) the way `cp` would.
fn overwrite(path: &Path, bytes: &[u8]) {
    // Some filesystems have coarse mtimes; make sure the stamp moves.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn reload_picks_up_a_new_model_and_keeps_the_old_on_garbage() {
    require_runtime();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.onnx");
    let logreg = std::fs::read(models_dir().join("fraud_logreg.onnx")).unwrap();
    let gbt = std::fs::read(models_dir().join("fraud_gbt.onnx")).unwrap();
    std::fs::write(&path, &logreg).unwrap();

    let handle = handle_for(&path);
    let v1 = handle.current().version().to_string();
    let s1 = scores(&handle);
    assert!(!handle.reload_if_changed().unwrap(), "unchanged file");

    // Same bytes, new mtime: not a new version.
    overwrite(&path, &logreg);
    assert!(!handle.reload_if_changed().unwrap());
    assert_eq!(handle.current().version(), v1);

    // Model B.
    let held = handle.current(); // a reader in the middle of a batch keeps its version
    overwrite(&path, &gbt);
    assert!(handle.reload_if_changed().unwrap());
    let v2 = handle.current().version().to_string();
    assert_ne!(v1, v2);
    assert_eq!(held.version(), v1);
    let s2 = scores(&handle);
    assert_ne!(s1, s2);
    assert_eq!(s2.len(), s1.len());
    assert!(!handle.reload_if_changed().unwrap());

    // Garbage: error, old model kept, still scoring.
    overwrite(&path, b"\x08\x07garbage");
    let err = handle.reload_if_changed().unwrap_err();
    assert!(matches!(err, ModelError::NotOnnx { .. }), "{err:?}");
    assert!(err.to_string().contains("model.onnx"), "{err}");
    assert_eq!(handle.current().version(), v2);
    assert_eq!(scores(&handle), s2);
    // Reported once per change, not on every poll.
    assert!(!handle.reload_if_changed().unwrap());

    // A regressor of the same width can replace a classifier.
    overwrite(
        &path,
        &std::fs::read(models_dir().join("fixtures/linreg_tiny.onnx")).unwrap(),
    );
    assert!(handle.reload_if_changed().unwrap());
    assert_eq!(handle.current().output(), "variable");

    // File removed: error, old model kept.
    std::fs::remove_file(&path).unwrap();
    let err = handle.reload_if_changed().unwrap_err();
    assert!(matches!(err, ModelError::Unreadable { .. }), "{err:?}");
    assert_eq!(handle.current().output(), "variable");

    // Back to model A: loads again.
    overwrite(&path, &logreg);
    assert!(handle.reload_if_changed().unwrap());
    assert_eq!(handle.current().version(), v1);
    assert_eq!(scores(&handle), s1);
}

#[test]
fn watcher_reloads_and_stops_when_handles_are_dropped() {
    require_runtime();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.onnx");
    std::fs::copy(models_dir().join("fraud_logreg.onnx"), &path).unwrap();
    let handle = handle_for(&path);
    let clone = handle.clone();
    let v1 = handle.current().version().to_string();
    let watcher = handle.spawn_watcher(Duration::from_millis(20));

    overwrite(
        &path,
        &std::fs::read(models_dir().join("fraud_gbt.onnx")).unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while clone.current().version() == v1 {
        assert!(Instant::now() < deadline, "watcher did not reload");
        std::thread::sleep(Duration::from_millis(10));
    }

    drop(handle);
    std::thread::sleep(Duration::from_millis(100));
    assert!(!watcher.is_finished(), "a clone is still alive");
    drop(clone);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !watcher.is_finished() {
        assert!(Instant::now() < deadline, "watcher did not stop");
        std::thread::sleep(Duration::from_millis(10));
    }
    watcher.join().unwrap();
}

#[test]
fn linear_models_never_reload() {
    let handle = ModelHandle::new(ModelSpec {
        name: "lin".into(),
        kind: ModelKind::Linear {
            weights: vec![1.0; 12],
            intercept: 0.0,
            logistic: true,
        },
        n_inputs: 12,
    })
    .unwrap();
    assert!(!handle.reload_if_changed().unwrap());
    let watcher = handle.spawn_watcher(Duration::from_secs(3600));
    drop(handle);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !watcher.is_finished() {
        assert!(Instant::now() < deadline, "watcher did not stop");
        std::thread::sleep(Duration::from_millis(10));
    }
}
