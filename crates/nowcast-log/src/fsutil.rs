//! Small file-system helpers: atomic JSON files and directory fsync.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{IoContext, LogError};

/// Writes `value` as JSON to `path` so that readers see the old or the new file, never a mix:
/// write a temporary sibling, fsync it, rename it over `path`, fsync the directory.
pub(crate) fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), LogError> {
    let bytes = serde_json::to_vec_pretty(value).expect("metadata serialises");
    let tmp = tmp_path(path);
    {
        let mut f = File::create(&tmp).at(&tmp)?;
        f.write_all(&bytes).at(&tmp)?;
        f.sync_all().at(&tmp)?;
    }
    fs::rename(&tmp, path).at(path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Reads a JSON file; `Ok(None)` when it does not exist.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, LogError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).at(path),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| LogError::BadMetadata {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// Makes a directory's entries (created, renamed, deleted files) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    #[cfg(unix)]
    File::open(dir).and_then(|d| d.sync_all()).at(dir)?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(format!(".{}.tmp", std::process::id()));
    PathBuf::from(name)
}
