//! [`OffsetStore`]: committed consumer offsets of one consumer group, one JSON file per group
//! in `<log dir>/offsets/<group>.json`, replaced atomically on every commit.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::error::{IoContext, LogError};
use crate::fsutil::{read_json, write_json_atomic};

/// Committed offsets (the next offset to read, per partition) of one consumer group.
///
/// A commit writes a temporary file, fsyncs it and renames it over the previous one, so after
/// a crash [`OffsetStore::load`] returns either the previous or the new commit, never a mix.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use std::collections::BTreeMap;
/// use nowcast_log::OffsetStore;
/// let store = OffsetStore::open(dir.path(), "features")?;
/// assert!(store.load()?.is_empty());
/// store.commit(&BTreeMap::from([(0, 42), (3, 7)]))?;
/// assert_eq!(store.load()?, BTreeMap::from([(0, 42), (3, 7)]));
/// # Ok::<(), nowcast_log::LogError>(())
/// ```
#[derive(Debug)]
pub struct OffsetStore {
    path: PathBuf,
    group: String,
    commit_lock: Mutex<()>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OffsetsFile {
    group: String,
    offsets: BTreeMap<u32, u64>,
}

impl OffsetStore {
    /// Opens the store of `group` in the log directory `dir`, creating `dir/offsets`.
    ///
    /// # Errors
    /// [`LogError::InvalidGroup`] unless the name is 1-200 characters from `[A-Za-z0-9._-]`
    /// not starting with `.`; [`LogError::Io`] if the directory cannot be created.
    pub fn open(dir: &Path, group: &str) -> Result<OffsetStore, LogError> {
        let valid = !group.is_empty()
            && group.len() <= 200
            && !group.starts_with('.')
            && group
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !valid {
            return Err(LogError::InvalidGroup {
                group: group.to_string(),
            });
        }
        let offsets_dir = dir.join("offsets");
        fs::create_dir_all(&offsets_dir).at(&offsets_dir)?;
        Ok(OffsetStore {
            path: offsets_dir.join(format!("{group}.json")),
            group: group.to_string(),
            commit_lock: Mutex::new(()),
        })
    }

    /// The last committed offsets; empty if the group never committed.
    pub fn load(&self) -> Result<BTreeMap<u32, u64>, LogError> {
        Ok(read_json::<OffsetsFile>(&self.path)?
            .map(|f| f.offsets)
            .unwrap_or_default())
    }

    /// Replaces the committed offsets with `offsets` durably and atomically.
    pub fn commit(&self, offsets: &BTreeMap<u32, u64>) -> Result<(), LogError> {
        let _guard = self.commit_lock.lock();
        write_json_atomic(
            &self.path,
            &OffsetsFile {
                group: self.group.clone(),
                offsets: offsets.clone(),
            },
        )
    }

    /// The file the offsets are stored in.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
