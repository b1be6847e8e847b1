//! Model scoring for nowcast: load a model, score rows of features, swap in new versions.
//!
//! | module | what lives there |
//! |---|---|
//! | `model` | [`ModelSpec`], [`ModelKind`], [`LoadOptions`], [`LoadedModel`] (`load`, `score_batch`) |
//! | `handle` | [`ModelHandle`]: lock-free current version, hot reload, watcher thread |
//! | `onnx` | ONNX models through ONNX Runtime (`ort`, loaded dynamically), session pool |
//! | `trees` | tree-ensemble graphs compiled to native code (checked against ONNX Runtime) |
//! | `onnx_proto` | the subset of ONNX's protobuf schema `trees` decodes |
//! | `linear` | the built-in linear / logistic model |
//! | `runtime` | [`onnxruntime_library`]: finding `libonnxruntime.so`; one-time initialisation |
//! | `error` | [`ModelError`] |
//!
//! The ONNX Runtime library is not linked at build time: the first ONNX load finds it with
//! [`onnxruntime_library`] (`ORT_DYLIB_PATH`, else the repository's `.venv`, which
//! `scripts/setup-python.sh` creates). Linear models need nothing.
//!
//! Everything here is `Send + Sync`; scoring takes `&self`.
#![forbid(missing_docs)]

mod error;
mod handle;
mod linear;
mod model;
mod onnx;
mod onnx_proto;
mod runtime;
mod trees;

pub use error::{ErrorKind, ModelError};
pub use handle::ModelHandle;
pub use model::{LoadOptions, LoadedModel, ModelKind, ModelSpec};
pub use runtime::{onnxruntime_library, onnxruntime_version};

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn public_types_are_send_and_sync() {
        assert_send_sync::<LoadedModel>();
        assert_send_sync::<ModelHandle>();
        assert_send_sync::<ModelError>();
    }
}
