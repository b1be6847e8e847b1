//! Finding `libonnxruntime.so` and initialising ONNX Runtime once per process.
//!
//! `ort` is built with `load-dynamic`: nothing is linked or downloaded at build time, the library
//! is `dlopen`ed on first use. We ship no binary; `scripts/setup-python.sh` installs the PyPI
//! `onnxruntime` wheel into `.venv`, which contains the shared library.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::ModelError;

/// Finds the ONNX Runtime shared library.
///
/// 1. `ORT_DYLIB_PATH`, if set and non-empty (an error if that file does not exist);
/// 2. otherwise `.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*` under the
///    current directory and each of its ancestors, then the executable's directory and each of
///    its ancestors (so `cargo test` from any crate and binaries under `target/` find the repo's
///    `.venv`). The first directory with a match wins; within it, the highest version.
///
/// # Errors
/// [`ModelError::RuntimeNotFound`] (run `scripts/setup-python.sh`) or
/// [`ModelError::RuntimeEnvPath`].
///
/// ```no_run
/// let lib = nowcast_model::onnxruntime_library()?;
/// println!("using {}", lib.display());
/// # Ok::<(), nowcast_model::ModelError>(())
/// ```
pub fn onnxruntime_library() -> Result<PathBuf, ModelError> {
    if let Some(value) = std::env::var_os("ORT_DYLIB_PATH").filter(|v| !v.is_empty()) {
        let path = PathBuf::from(value);
        return if path.is_file() {
            // Absolute, so `ort` does not resolve it against the executable's directory instead.
            Ok(std::fs::canonicalize(&path).unwrap_or(path))
        } else {
            Err(ModelError::RuntimeEnvPath { path })
        };
    }
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        roots.extend(cwd.ancestors().map(Path::to_path_buf));
    }
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
    {
        for dir in exe_dir.ancestors() {
            if !roots.iter().any(|r| r == dir) {
                roots.push(dir.to_path_buf());
            }
        }
    }
    for root in &roots {
        if let Some(found) = find_in_venv(root) {
            return Ok(found);
        }
    }
    let searched = roots
        .iter()
        .map(|r| r.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    Err(ModelError::RuntimeNotFound { searched })
}

/// `root/.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*`, highest version.
fn find_in_venv(root: &Path) -> Option<PathBuf> {
    let lib = root.join(".venv").join("lib");
    let mut found: Vec<PathBuf> = Vec::new();
    for py in std::fs::read_dir(&lib).ok()?.flatten() {
        if !py.file_name().to_string_lossy().starts_with("python3") {
            continue;
        }
        let capi = py.path().join("site-packages/onnxruntime/capi");
        let Ok(entries) = std::fs::read_dir(&capi) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name.to_string_lossy().starts_with("libonnxruntime.so") && entry.path().is_file() {
                found.push(entry.path());
            }
        }
    }
    found.sort_by_key(|p| version_key(p));
    found.pop()
}

/// Numeric version parts after `.so.` (`libonnxruntime.so.1.32.0` → `[1, 32, 0]`), for sorting.
fn version_key(path: &Path) -> Vec<u64> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    name.split_once(".so")
        .map(|(_, rest)| {
            rest.split('.')
                .filter_map(|part| part.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The loaded runtime: the environment sessions are built in, and what was loaded.
pub(crate) struct Runtime {
    pub(crate) env: ort::environment::Environment,
    pub(crate) path: PathBuf,
    version: String,
}

/// The process-wide ONNX Runtime: the library is loaded and the environment built on first call;
/// later calls return the same one (or the same failure).
pub(crate) fn runtime() -> Result<&'static Runtime, ModelError> {
    // `ort` allows one environment per process and remembers it only weakly, so we keep it
    // alive for the life of the process here.
    static RUNTIME: OnceLock<Result<Runtime, (PathBuf, String)>> = OnceLock::new();
    if let Some(result) = RUNTIME.get() {
        return result.as_ref().map_err(runtime_init_error);
    }
    // Resolve the path outside the OnceLock so a "not found" error is not cached: running
    // scripts/setup-python.sh while a process waits then works on the next load.
    let path = onnxruntime_library()?;
    let result = RUNTIME.get_or_init(|| {
        let fail = |e: &dyn std::fmt::Display| (path.clone(), e.to_string());
        let builder = ort::init_from(&path).map_err(|e| fail(&e))?;
        let env = builder
            .with_name("nowcast")
            .with_telemetry(false)
            .build()
            .map_err(|e| fail(&e))?;
        let version = library_version(&path).unwrap_or_else(|| "unknown".into());
        Ok(Runtime {
            env,
            path: path.clone(),
            version,
        })
    });
    result.as_ref().map_err(runtime_init_error)
}

fn runtime_init_error((path, detail): &(PathBuf, String)) -> ModelError {
    ModelError::RuntimeInit {
        path: path.clone(),
        detail: detail.clone(),
    }
}

/// `OrtGetApiBase()->GetVersionString()` of the library at `path` (already loaded by `ort`, so
/// this only bumps the loader's reference count).
fn library_version(path: &Path) -> Option<String> {
    // SAFETY: the library was just loaded successfully by `ort::init_from`, which checked that
    // it exports `OrtGetApiBase` with this signature. `GetVersionString` returns a static
    // NUL-terminated string that the library owns and never frees.
    unsafe {
        let lib = libloading::Library::new(path).ok()?;
        let get_base: libloading::Symbol<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase> =
            lib.get(b"OrtGetApiBase").ok()?;
        let base = get_base();
        if base.is_null() {
            return None;
        }
        let text = ((*base).GetVersionString)();
        if text.is_null() {
            return None;
        }
        Some(
            std::ffi::CStr::from_ptr(text)
                .to_string_lossy()
                .into_owned(),
        )
    }
}

/// The version (e.g. `1.32.0`) and path of the ONNX Runtime library in use, loading it if needed.
///
/// # Errors
/// As [`onnxruntime_library`], or [`ModelError::RuntimeInit`].
pub fn onnxruntime_version() -> Result<(String, PathBuf), ModelError> {
    let rt = runtime()?;
    Ok((rt.version.clone(), rt.path.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_key_orders_numerically() {
        let a = version_key(Path::new("/x/libonnxruntime.so.1.9.0"));
        let b = version_key(Path::new("/x/libonnxruntime.so.1.32.0"));
        let c = version_key(Path::new("/x/libonnxruntime.so"));
        assert_eq!(b, vec![1, 32, 0]);
        assert!(a < b && c < a);
    }

    #[test]
    fn finds_highest_version_in_a_venv() {
        let dir = tempfile::tempdir().unwrap();
        let capi = dir
            .path()
            .join(".venv/lib/python3.11/site-packages/onnxruntime/capi");
        std::fs::create_dir_all(&capi).unwrap();
        for v in ["1.9.0", "1.32.0", "1.24.1"] {
            std::fs::write(capi.join(format!("libonnxruntime.so.{v}")), b"").unwrap();
        }
        std::fs::write(capi.join("onnxruntime_pybind11_state.so"), b"").unwrap();
        let found = find_in_venv(dir.path()).unwrap();
        assert_eq!(found.file_name().unwrap(), "libonnxruntime.so.1.32.0");
        assert!(find_in_venv(&dir.path().join("nothing")).is_none());
    }
}
