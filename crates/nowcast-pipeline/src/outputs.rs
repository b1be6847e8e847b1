//! Output files of one partition: predictions, dead letters, late events and (optionally)
//! feature vectors, as JSON lines.
//!
//! Files are append-only. A checkpoint records their lengths after syncing them; on restart
//! each file is truncated back to its checkpointed length and the partition replays from the
//! checkpointed input offsets, so every input event produces its outputs exactly once even
//! after a crash (`kill -9`).

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::PipelineError;

/// The kinds of output, in checkpoint order.
pub const KINDS: [&str; 4] = ["predictions", "dead_letters", "late", "features"];

/// One append-only JSON-lines file.
#[derive(Debug)]
pub struct OutFile {
    path: PathBuf,
    writer: BufWriter<SharedFile>,
    len: u64,
    /// Bytes in the file (written out of the buffer), for the background writeback (see
    /// [`nowcast_log::writeback`]).
    written: Arc<AtomicU64>,
}

/// The file, shared with the writeback thread.
#[derive(Debug)]
struct SharedFile(Arc<File>);

impl Write for SharedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (&*self.0).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl OutFile {
    /// Opens `path`, truncating it to `len` bytes (creating it when absent and `len` is 0).
    pub fn open(path: PathBuf, len: u64) -> Result<OutFile, PipelineError> {
        let io = |e| PipelineError::io(&path, e);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| PipelineError::io(dir, e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io)?;
        let actual = file.metadata().map_err(io)?.len();
        if actual < len {
            return Err(PipelineError::Corrupt(format!(
                "{} is {actual} bytes but the checkpoint recorded {len}; the output was removed or truncated behind nowcast's back",
                path.display()
            )));
        }
        file.set_len(len).map_err(io)?;
        use std::io::Seek;
        (&file).seek(std::io::SeekFrom::Start(len)).map_err(io)?;
        let file = Arc::new(file);
        let written = Arc::new(AtomicU64::new(len));
        nowcast_log::writeback::track(&file, &written, len);
        let writer = BufWriter::with_capacity(256 * 1024, SharedFile(file));
        Ok(OutFile {
            path,
            writer,
            len,
            written,
        })
    }

    /// Appends one line (`line` without its newline).
    pub fn line(&mut self, line: &[u8]) -> Result<(), PipelineError> {
        self.writer
            .write_all(line)
            .and_then(|()| self.writer.write_all(b"\n"))
            .map_err(|e| PipelineError::io(&self.path, e))?;
        self.len += line.len() as u64 + 1;
        // Bytes handed to the OS (the buffer's content is not in the file yet).
        let in_file = self.len - self.writer.buffer().len() as u64;
        self.written.store(in_file, Ordering::Relaxed);
        Ok(())
    }

    /// Flushes and fsyncs; returns the durable length.
    pub fn sync(&mut self) -> Result<u64, PipelineError> {
        self.writer
            .flush()
            .map_err(|e| PipelineError::io(&self.path, e))?;
        self.writer
            .get_ref()
            .0
            .sync_data()
            .map_err(|e| PipelineError::io(&self.path, e))?;
        Ok(self.len)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes written so far (flushed or not).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Flushes to the OS without fsync (so readers see complete lines promptly).
    pub fn flush(&mut self) -> Result<(), PipelineError> {
        self.writer
            .flush()
            .map_err(|e| PipelineError::io(&self.path, e))
    }
}

/// The output files of one partition.
#[derive(Debug)]
pub struct PartitionOutputs {
    /// One file per kind, in [`KINDS`] order; `features` only when enabled.
    pub files: Vec<Option<OutFile>>,
}

impl PartitionOutputs {
    /// Opens the partition's files under `dir/<kind>/p-NNNN.jsonl`, truncated to `lens`.
    pub fn open(
        dir: &Path,
        partition: u32,
        lens: [u64; 4],
        features: bool,
    ) -> Result<PartitionOutputs, PipelineError> {
        let mut files = Vec::new();
        for (i, kind) in KINDS.iter().enumerate() {
            if i == 3 && !features {
                files.push(None);
                continue;
            }
            files.push(Some(OutFile::open(
                dir.join(kind).join(format!("p-{partition:04}.jsonl")),
                lens[i],
            )?));
        }
        Ok(PartitionOutputs { files })
    }

    /// Writes a line to the file of kind index `kind`.
    pub fn line(&mut self, kind: usize, line: &[u8]) -> Result<(), PipelineError> {
        match &mut self.files[kind] {
            Some(f) => f.line(line),
            None => Ok(()),
        }
    }

    /// Syncs every file; returns their durable lengths.
    pub fn sync(&mut self) -> Result<[u64; 4], PipelineError> {
        let mut lens = [0; 4];
        for (i, f) in self.files.iter_mut().enumerate() {
            if let Some(f) = f {
                lens[i] = f.sync()?;
            }
        }
        Ok(lens)
    }

    /// Flushes every file to the OS and returns their lengths and paths; a later fsync of
    /// those paths makes at least these lengths durable.
    pub fn flush_for_checkpoint(&mut self) -> Result<([u64; 4], Vec<PathBuf>), PipelineError> {
        let mut lens = [0; 4];
        let mut paths = Vec::new();
        for (i, f) in self.files.iter_mut().enumerate() {
            if let Some(f) = f {
                f.flush()?;
                lens[i] = f.len();
                paths.push(f.path().to_path_buf());
            }
        }
        Ok((lens, paths))
    }

    /// Flushes every file to the OS.
    pub fn flush(&mut self) -> Result<(), PipelineError> {
        for f in self.files.iter_mut().flatten() {
            f.flush()?;
        }
        Ok(())
    }
}
