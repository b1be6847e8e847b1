//! What a model is ([`ModelSpec`]) and a loaded, immutable, shareable model ([`LoadedModel`]).

use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::linear::LinearModel;
use crate::onnx::OnnxModel;
use crate::ModelError;

/// Where a model comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelKind {
    /// An ONNX file: a binary classifier exported with `probabilities` `[N, 2]` (skl2onnx with
    /// `zipmap: False`), or a regressor with one float output `[N]`/`[N, 1]`.
    Onnx {
        /// Path of the `.onnx` file.
        path: PathBuf,
    },
    /// `intercept + Σ weights[i] · x[i]`, passed through the logistic function if `logistic`.
    Linear {
        /// One weight per input, in input order.
        weights: Vec<f64>,
        /// Added to the weighted sum.
        intercept: f64,
        /// Apply `1 / (1 + e^-z)` to the sum.
        logistic: bool,
    },
}

/// A model to load: its name (used in outputs and messages), source and input width.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// Name reported with every prediction.
    pub name: String,
    /// Where the model comes from.
    pub kind: ModelKind,
    /// Number of f32 inputs per row; must match the model.
    pub n_inputs: usize,
}

/// Tuning knobs for loading; [`Default`] is right for nowcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// Upper bound on ONNX Runtime sessions per model, i.e. on callers scoring the same model at
    /// the same time (more wait). Sessions are created on demand. Default: number of cores.
    /// `1` makes every call share one session behind a mutex.
    pub max_sessions: usize,
    /// Compile a tree-ensemble graph (`TreeEnsembleClassifier`/`Regressor`) into native code
    /// when it is one of the supported shapes and it scores probe rows exactly as ONNX Runtime
    /// does; otherwise ONNX Runtime scores. Default `true`.
    pub compile_trees: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            max_sessions: std::thread::available_parallelism().map_or(2, |n| n.get()),
            compile_trees: true,
        }
    }
}

/// A loaded model. Immutable, `Send + Sync`; share it behind an `Arc` (as [`crate::ModelHandle`]
/// does) and score from any number of threads.
pub struct LoadedModel {
    name: String,
    version: String,
    digest: [u8; 32],
    n_inputs: usize,
    scorer: Scorer,
}

enum Scorer {
    Onnx(OnnxModel),
    Linear(LinearModel),
}

impl fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedModel")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("n_inputs", &self.n_inputs)
            .field("output", &self.output())
            .finish()
    }
}

impl LoadedModel {
    /// Loads a model with default [`LoadOptions`].
    ///
    /// ONNX files are read once, hashed (the version is the first 12 hex digits of the file's
    /// SHA-256), checked (one float input `[N, n_inputs]`, a usable output) and run once on a
    /// row of zeros. The first ONNX load in the process loads ONNX Runtime (see
    /// [`crate::onnxruntime_library`]).
    ///
    /// # Errors
    /// Runtime not found or not loadable, file unreadable, not ONNX, input count mismatch,
    /// unsupported input or output; see [`ModelError`].
    ///
    /// ```
    /// use nowcast_model::{LoadedModel, ModelKind, ModelSpec};
    /// let spec = ModelSpec {
    ///     name: "toy".into(),
    ///     kind: ModelKind::Linear { weights: vec![2.0, -1.0], intercept: 0.5, logistic: false },
    ///     n_inputs: 2,
    /// };
    /// let model = LoadedModel::load(&spec)?;
    /// let mut scores = Vec::new();
    /// model.score_batch(&[1.0, 1.0, 0.0, 2.0], 2, &mut scores)?;
    /// assert_eq!(scores, [1.5, -1.5]);
    /// # Ok::<(), nowcast_model::ModelError>(())
    /// ```
    pub fn load(spec: &ModelSpec) -> Result<LoadedModel, ModelError> {
        LoadedModel::load_with(spec, &LoadOptions::default())
    }

    /// [`LoadedModel::load`] with explicit options.
    ///
    /// # Errors
    /// As [`LoadedModel::load`].
    pub fn load_with(spec: &ModelSpec, options: &LoadOptions) -> Result<LoadedModel, ModelError> {
        match &spec.kind {
            ModelKind::Onnx { path } => {
                let bytes = read_model_file(&spec.name, path)?;
                LoadedModel::from_onnx_bytes(spec, path, bytes, options)
            }
            ModelKind::Linear {
                weights,
                intercept,
                logistic,
            } => {
                if weights.len() != spec.n_inputs {
                    return Err(ModelError::InputCountMismatch {
                        model: spec.name.clone(),
                        source_desc: "linear weights".into(),
                        model_inputs: weights.len(),
                        spec_inputs: spec.n_inputs,
                    });
                }
                let linear = LinearModel::new(weights, *intercept, *logistic);
                let digest = linear.digest();
                Ok(LoadedModel {
                    name: spec.name.clone(),
                    version: short_hex(&digest),
                    digest,
                    n_inputs: spec.n_inputs,
                    scorer: Scorer::Linear(linear),
                })
            }
        }
    }

    /// Builds an ONNX model from bytes already read from `path`.
    pub(crate) fn from_onnx_bytes(
        spec: &ModelSpec,
        path: &Path,
        bytes: Vec<u8>,
        options: &LoadOptions,
    ) -> Result<LoadedModel, ModelError> {
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        let onnx = OnnxModel::new(&spec.name, path, spec.n_inputs, bytes, options)?;
        Ok(LoadedModel {
            name: spec.name.clone(),
            version: short_hex(&digest),
            digest,
            n_inputs: spec.n_inputs,
            scorer: Scorer::Onnx(onnx),
        })
    }

    /// The spec's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// 12 hex digits identifying the model's content: of the SHA-256 of the ONNX file, or of
    /// the linear model's weights, intercept and link.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Full SHA-256 the version is cut from.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// Inputs per row.
    pub fn n_inputs(&self) -> usize {
        self.n_inputs
    }

    /// What is read as the score: e.g. `probabilities[:, 1]`, `variable`, `linear`, `logistic`.
    pub fn output(&self) -> String {
        match &self.scorer {
            Scorer::Onnx(onnx) => onnx.output_desc(),
            Scorer::Linear(linear) if linear.is_logistic() => "logistic".into(),
            Scorer::Linear(_) => "linear".into(),
        }
    }

    /// What computes the scores: `"linear"`, `"onnxruntime"` (with the reason when a tree
    /// ensemble was not compiled) or `"compiled TreeEnsembleClassifier, 100 trees, …"`.
    pub fn engine(&self) -> &str {
        match &self.scorer {
            Scorer::Onnx(onnx) => onnx.engine(),
            Scorer::Linear(_) => "linear",
        }
    }

    /// ONNX Runtime sessions created so far (0 for linear models).
    pub fn sessions(&self) -> usize {
        match &self.scorer {
            Scorer::Onnx(onnx) => onnx.sessions(),
            Scorer::Linear(_) => 0,
        }
    }

    /// Scores `n_rows` rows and appends one score per row to `out`.
    ///
    /// `rows` is row-major, `n_rows × n_inputs` f32 values. A binary classifier yields the
    /// positive-class probability (`probabilities[:, 1]`), a regressor or linear model its value
    /// (after the logistic function if the linear model is `logistic`). `out` is appended to, not
    /// cleared, so one buffer can collect several batches. Safe to call from many threads.
    ///
    /// # Errors
    /// [`ModelError::BadRows`] if `rows.len() != n_rows * n_inputs` (nothing is appended);
    /// [`ModelError::Inference`] if ONNX Runtime fails (nothing is appended).
    pub fn score_batch(
        &self,
        rows: &[f32],
        n_rows: usize,
        out: &mut Vec<f64>,
    ) -> Result<(), ModelError> {
        if Some(rows.len()) != n_rows.checked_mul(self.n_inputs) {
            return Err(ModelError::BadRows {
                model: self.name.clone(),
                len: rows.len(),
                n_rows,
                n_inputs: self.n_inputs,
            });
        }
        if n_rows == 0 {
            return Ok(());
        }
        match &self.scorer {
            Scorer::Onnx(onnx) => onnx.score(rows, n_rows, out, &self.version),
            Scorer::Linear(linear) => {
                if self.n_inputs == 0 {
                    out.extend(std::iter::repeat_n(linear.constant(), n_rows));
                } else {
                    linear.score(rows, out);
                }
                Ok(())
            }
        }
    }
}

/// Reads a model file, naming the model and file on failure.
pub(crate) fn read_model_file(model: &str, path: &Path) -> Result<Vec<u8>, ModelError> {
    std::fs::read(path).map_err(|source| ModelError::Unreadable {
        model: model.to_string(),
        path: path.to_path_buf(),
        source,
    })
}

/// First 12 hex digits of a digest.
pub(crate) fn short_hex(digest: &[u8; 32]) -> String {
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}
