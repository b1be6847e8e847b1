//! [`ModelHandle`]: the current version of a model, swapped atomically when its file changes.
//!
//! Readers call [`ModelHandle::current`] (a lock-free `arc-swap` load) once per batch and keep
//! that `Arc<LoadedModel>` for the whole batch, so a batch is always scored by one version.
//! A reload builds the new model completely, off to the side, before swapping it in; a file that
//! fails to load leaves the old model in place.

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::model::read_model_file;
use crate::{LoadOptions, LoadedModel, ModelError, ModelKind, ModelSpec};

/// A hot-reloadable model. Cheap to clone (an `Arc` inside); `Send + Sync`.
///
/// ```no_run
/// use std::time::Duration;
/// use nowcast_model::{ModelHandle, ModelKind, ModelSpec};
///
/// let handle = ModelHandle::new(ModelSpec {
///     name: "fraud_gbt".into(),
///     kind: ModelKind::Onnx { path: "models/fraud_gbt.onnx".into() },
///     n_inputs: 12,
/// })?;
/// let _watcher = handle.spawn_watcher(Duration::from_secs(2));
/// let model = handle.current();
/// let mut scores = Vec::new();
/// model.score_batch(&[0.0; 12], 1, &mut scores)?;
/// println!("{} {} -> {:.4}", model.name(), model.version(), scores[0]);
/// # Ok::<(), nowcast_model::ModelError>(())
/// ```
#[derive(Clone)]
pub struct ModelHandle {
    inner: Arc<Inner>,
}

struct Inner {
    spec: ModelSpec,
    options: LoadOptions,
    current: ArcSwap<LoadedModel>,
    /// Held for the whole of a reload check, so concurrent checks do not load twice.
    file: Mutex<FileState>,
}

/// What was last seen of the model file.
#[derive(Default)]
struct FileState {
    /// `(mtime, len)` at the last check; unchanged means "not changed".
    seen: Option<(Option<SystemTime>, u64)>,
    /// SHA-256 of the content last looked at, loaded or not.
    seen_digest: Option<[u8; 32]>,
}

impl ModelHandle {
    /// Loads the model with default [`LoadOptions`].
    ///
    /// # Errors
    /// As [`LoadedModel::load`].
    pub fn new(spec: ModelSpec) -> Result<ModelHandle, ModelError> {
        ModelHandle::with_options(spec, LoadOptions::default())
    }

    /// Loads the model with explicit options (kept for reloads).
    ///
    /// # Errors
    /// As [`LoadedModel::load`].
    pub fn with_options(spec: ModelSpec, options: LoadOptions) -> Result<ModelHandle, ModelError> {
        let mut file = FileState::default();
        let model = match &spec.kind {
            ModelKind::Onnx { path } => {
                let stamp = stamp(&spec.name, path)?;
                let bytes = read_model_file(&spec.name, path)?;
                let model = LoadedModel::from_onnx_bytes(&spec, path, bytes, &options)?;
                file.seen = Some(stamp);
                file.seen_digest = Some(*model.digest());
                model
            }
            ModelKind::Linear { .. } => LoadedModel::load_with(&spec, &options)?,
        };
        Ok(ModelHandle {
            inner: Arc::new(Inner {
                spec,
                options,
                current: ArcSwap::from_pointee(model),
                file: Mutex::new(file),
            }),
        })
    }

    /// The model's spec.
    pub fn spec(&self) -> &ModelSpec {
        &self.inner.spec
    }

    /// The current version. Lock-free; hold the `Arc` for a whole batch.
    pub fn current(&self) -> Arc<LoadedModel> {
        self.inner.current.load_full()
    }

    /// Checks the model file and loads it if it changed; returns whether a new version is now
    /// current.
    ///
    /// A change is noticed by `(mtime, len)`; the content's SHA-256 then decides whether it is
    /// really new (a `touch` or a rewrite with the same bytes is not). The new model is fully
    /// loaded and validated before it replaces the old one. Always `Ok(false)` for linear models.
    ///
    /// # Errors
    /// The file is unreadable or fails to load: the old model stays current. The same content is
    /// not retried (nor reported again) until the file changes again.
    pub fn reload_if_changed(&self) -> Result<bool, ModelError> {
        let ModelKind::Onnx { path } = &self.inner.spec.kind else {
            return Ok(false);
        };
        let name = &self.inner.spec.name;
        let mut file = self.inner.file.lock();
        let now = stamp(name, path)?;
        if file.seen == Some(now) {
            return Ok(false);
        }
        let bytes = read_model_file(name, path)?;
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        file.seen = Some(now);
        if file.seen_digest == Some(digest) {
            return Ok(false);
        }
        file.seen_digest = Some(digest);
        if &digest == self.inner.current.load().digest() {
            return Ok(false); // back to the bytes we are running
        }
        let model =
            LoadedModel::from_onnx_bytes(&self.inner.spec, path, bytes, &self.inner.options)?;
        self.inner.current.store(Arc::new(model));
        Ok(true)
    }

    /// Starts a thread that calls [`ModelHandle::reload_if_changed`] every `every` and reports
    /// failures on stderr (once per distinct failure). The thread holds only a weak reference:
    /// it ends within ~50 ms of the last `ModelHandle` clone being dropped.
    ///
    /// # Panics
    /// If the OS cannot create a thread.
    pub fn spawn_watcher(&self, every: Duration) -> JoinHandle<()> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let tick = every.min(Duration::from_millis(50));
        std::thread::Builder::new()
            .name(format!("model-watch-{}", self.inner.spec.name))
            .spawn(move || {
                let mut last_error: Option<String> = None;
                let mut next = Instant::now() + every;
                loop {
                    std::thread::sleep(tick.min(next.saturating_duration_since(Instant::now())));
                    let Some(inner) = weak.upgrade() else { return };
                    if Instant::now() < next {
                        continue;
                    }
                    next = Instant::now() + every;
                    let handle = ModelHandle { inner };
                    match handle.reload_if_changed() {
                        Ok(true) => {
                            last_error = None;
                            let model = handle.current();
                            eprintln!(
                                "nowcast-model: model `{}` reloaded, now version {} ({})",
                                model.name(),
                                model.version(),
                                model.engine()
                            );
                        }
                        Ok(false) => {}
                        Err(e) => {
                            let message = e.to_string();
                            if last_error.as_deref() != Some(&message) {
                                eprintln!(
                                    "nowcast-model: reload failed, keeping version {}: {message}",
                                    handle.current().version()
                                );
                                last_error = Some(message);
                            }
                        }
                    }
                }
            })
            .expect("spawn model watcher thread")
    }
}

fn stamp(model: &str, path: &PathBuf) -> Result<(Option<SystemTime>, u64), ModelError> {
    let meta = std::fs::metadata(path).map_err(|source| ModelError::Unreadable {
        model: model.to_string(),
        path: path.clone(),
        source,
    })?;
    Ok((meta.modified().ok(), meta.len()))
}
