//! The crate's one error type. Every message names the model or file involved and says what to do.

use std::path::PathBuf;

/// Why loading or scoring a model failed.
///
/// [`ModelError::kind`] says how a caller should react: fix the configuration or the model file
/// and restart / wait for the next reload ([`ErrorKind::Config`]), drop or dead-letter the batch
/// ([`ErrorKind::BadData`]), or treat the runtime as broken ([`ErrorKind::Runtime`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// No `libonnxruntime.so` was found.
    #[error(
        "ONNX Runtime library not found: looked for \
         .venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so* under {searched}; \
         run scripts/setup-python.sh at the repository root, or set ORT_DYLIB_PATH to the library"
    )]
    RuntimeNotFound {
        /// The directories whose `.venv` was searched, joined with ", ".
        searched: String,
    },

    /// `ORT_DYLIB_PATH` points at a file that does not exist.
    #[error("ORT_DYLIB_PATH is set to `{}`, which does not exist; fix or unset it (scripts/setup-python.sh prints the right path)", path.display())]
    RuntimeEnvPath {
        /// The value of `ORT_DYLIB_PATH`.
        path: PathBuf,
    },

    /// The library was found but could not be loaded or initialised.
    #[error(
        "cannot initialise ONNX Runtime from `{}`: {detail}; \
         run scripts/setup-python.sh (it installs a compatible onnxruntime) or point ORT_DYLIB_PATH at libonnxruntime.so >= 1.24",
        path.display()
    )]
    RuntimeInit {
        /// The library that was tried.
        path: PathBuf,
        /// What `ort` reported.
        detail: String,
    },

    /// The model file could not be read.
    #[error("cannot read model file `{}` for model `{model}`: check the path in the model spec", path.display())]
    Unreadable {
        /// Model name from the spec.
        model: String,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// ONNX Runtime rejected the file.
    #[error(
        "model `{model}`: `{}` is not a loadable ONNX model ({detail}); \
         regenerate it with models/train.py or export with skl2onnx (see models/README.md)",
        path.display()
    )]
    NotOnnx {
        /// Model name from the spec.
        model: String,
        /// The file.
        path: PathBuf,
        /// What ONNX Runtime reported.
        detail: String,
    },

    /// The model's input width differs from the spec's `n_inputs`.
    #[error(
        "model `{model}` ({source_desc}) takes {model_inputs} inputs, the spec lists {spec_inputs}; \
         make the feature list match the model or retrain it"
    )]
    InputCountMismatch {
        /// Model name from the spec.
        model: String,
        /// The file, or "linear weights".
        source_desc: String,
        /// Inputs the model takes.
        model_inputs: usize,
        /// Inputs the spec lists.
        spec_inputs: usize,
    },

    /// The model's input is not one float tensor of shape `[N, n_inputs]`.
    #[error(
        "model `{model}` (`{}`): {detail}; export it with a single input \
         `FloatTensorType([None, n_inputs])` (see models/train.py)",
        path.display()
    )]
    UnsupportedInput {
        /// Model name from the spec.
        model: String,
        /// The file.
        path: PathBuf,
        /// What is wrong with the input.
        detail: String,
    },

    /// The model has no output this crate can turn into one score per row.
    #[error(
        "model `{model}` (`{}`): {detail}; a binary classifier needs a float `probabilities` output \
         [N, 2] (skl2onnx option {{'zipmap': False}}), a regressor one float output [N] or [N, 1]",
        path.display()
    )]
    UnsupportedOutput {
        /// Model name from the spec.
        model: String,
        /// The file.
        path: PathBuf,
        /// What was found.
        detail: String,
    },

    /// The caller passed a row buffer whose length is not `n_rows * n_inputs`.
    #[error("model `{model}`: got {len} values for {n_rows} rows of {n_inputs} inputs (expected {})", n_rows * n_inputs)]
    BadRows {
        /// Model name.
        model: String,
        /// `rows.len()`.
        len: usize,
        /// Rows claimed.
        n_rows: usize,
        /// Inputs per row.
        n_inputs: usize,
    },

    /// ONNX Runtime failed while scoring.
    #[error("model `{model}` version {version}: ONNX Runtime failed to score a batch of {n_rows}: {detail}")]
    Inference {
        /// Model name.
        model: String,
        /// Model version.
        version: String,
        /// Batch size.
        n_rows: usize,
        /// What ONNX Runtime reported.
        detail: String,
    },
}

/// How a caller should react to a [`ModelError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Setup is wrong (library, file, spec): fix it; a running pipeline keeps its old model.
    Config,
    /// The input batch is malformed: reject it, keep going.
    BadData,
    /// ONNX Runtime failed on valid input: report; retrying the same batch is unlikely to help.
    Runtime,
}

impl ModelError {
    /// How a caller should react.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ModelError::BadRows { .. } => ErrorKind::BadData,
            ModelError::Inference { .. } => ErrorKind::Runtime,
            _ => ErrorKind::Config,
        }
    }
}
