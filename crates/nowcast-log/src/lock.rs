//! [`DirLock`]: one process at a time in a directory.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{IoContext, LogError};

/// Name of the lock file a [`DirLock`] keeps in its directory.
pub const LOCK_FILE: &str = "LOCK";

/// An exclusive advisory lock on a directory, held until it is dropped.
///
/// The lock is an OS file lock (`flock` on Unix, `LockFileEx` on Windows) on `<dir>/LOCK`, so
/// the kernel releases it when the process exits or is killed, and a stale file never blocks
/// anyone. The holder's process id is written into the file for the error other processes
/// get. The file itself is left in place on release.
#[derive(Debug)]
pub struct DirLock {
    path: PathBuf,
    _file: File,
}

impl DirLock {
    /// Creates `dir` if needed and locks it without waiting.
    ///
    /// # Errors
    /// [`LogError::Locked`] if another process (or another open of the same directory in
    /// this process) holds the lock; [`LogError::Io`].
    pub fn acquire(dir: &Path) -> Result<DirLock, LogError> {
        std::fs::create_dir_all(dir).at(dir)?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .at(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LogError::Locked {
                    dir: dir.to_path_buf(),
                    pid: holder_pid(&mut file),
                })
            }
            Err(TryLockError::Error(e)) => return Err(e).at(&path),
        }
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{}", std::process::id()))
            .at(&path)?;
        Ok(DirLock { path, _file: file })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The process id the holder wrote into the lock file, if it has written it yet.
fn holder_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}
