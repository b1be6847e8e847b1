//! [`FrameReader`]: buffered sequential reading of frames from one segment file, never past a
//! caller-supplied byte limit. Shared by tail readers, open-time recovery and index building.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{IoContext, LogError};
use crate::frame::{check_header, parse_frame, FrameInfo, Parsed, HEADER_LEN};

/// What [`FrameReader::next`] found.
#[derive(Debug)]
pub(crate) enum Step {
    /// A verified frame; read its bytes with [`FrameReader::frame`].
    Frame {
        /// File position of the frame.
        pos: u64,
        /// Index of the frame in the internal buffer.
        at: usize,
        /// Decoded fixed fields.
        info: FrameInfo,
    },
    /// No bytes left before the limit, and the last frame ended exactly there.
    End,
    /// The frame at `pos` is invalid, or incomplete although the limit has been reached.
    Bad {
        /// File position of the bad frame.
        pos: u64,
        /// What was wrong.
        reason: String,
    },
}

/// Reads frames sequentially from a segment file through a reusable buffer.
pub(crate) struct FrameReader {
    file: File,
    path: PathBuf,
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// File position corresponding to `buf[end]`.
    file_pos: u64,
    chunk: usize,
}

impl FrameReader {
    /// Opens `path`, checks its header against `base_offset`, and positions at byte `pos`
    /// (which must be a frame boundary, at least [`HEADER_LEN`]).
    pub(crate) fn open(
        path: &Path,
        base_offset: u64,
        pos: u64,
        chunk: usize,
    ) -> Result<FrameReader, LogError> {
        Ok(FrameReader {
            file: open_at(path, base_offset, pos)?,
            path: path.to_path_buf(),
            buf: Vec::new(),
            start: 0,
            end: 0,
            file_pos: pos,
            chunk,
        })
    }

    /// Switches to another segment file, keeping the buffer allocation. On error the reader
    /// is unchanged.
    pub(crate) fn reopen(
        &mut self,
        path: &Path,
        base_offset: u64,
        pos: u64,
    ) -> Result<(), LogError> {
        self.file = open_at(path, base_offset, pos)?;
        self.path = path.to_path_buf();
        self.start = 0;
        self.end = 0;
        self.file_pos = pos;
        Ok(())
    }

    /// The file being read.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// File position of the next frame.
    pub(crate) fn position(&self) -> u64 {
        self.file_pos - (self.end - self.start) as u64
    }

    /// Bytes of the frame returned by the last [`Step::Frame`].
    pub(crate) fn frame(&self, at: usize, info: &FrameInfo) -> &[u8] {
        &self.buf[at..at + info.len]
    }

    /// Moves to the next frame, reading the file up to byte `limit` as needed.
    pub(crate) fn next(&mut self, limit: u64) -> Result<Step, LogError> {
        loop {
            match parse_frame(&self.buf[self.start..self.end]) {
                Parsed::Frame(info) => {
                    let pos = self.position();
                    let at = self.start;
                    self.start += info.len;
                    return Ok(Step::Frame { pos, at, info });
                }
                Parsed::Invalid(reason) => {
                    return Ok(Step::Bad {
                        pos: self.position(),
                        reason,
                    })
                }
                Parsed::Incomplete { need } => {
                    if self.file_pos >= limit {
                        let have = self.end - self.start;
                        return Ok(if have == 0 {
                            Step::End
                        } else {
                            Step::Bad {
                                pos: self.position(),
                                reason: format!(
                                    "incomplete frame: {have} of {need} bytes before the end of data at byte {limit}"
                                ),
                            }
                        });
                    }
                    self.fill(need, limit)?;
                }
            }
        }
    }

    /// Reads more of the file into the buffer so that at least part of a `need`-byte frame
    /// can follow the unconsumed bytes.
    fn fill(&mut self, need: usize, limit: u64) -> Result<(), LogError> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let cap = need.max(self.chunk);
        if self.buf.len() < cap {
            self.buf.resize(cap, 0);
        }
        let room = (self.buf.len() - self.end) as u64;
        let want = room.min(limit - self.file_pos) as usize;
        let n = loop {
            match self.file.read(&mut self.buf[self.end..self.end + want]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other.at(&self.path)?,
            }
        };
        if n == 0 {
            return Err(LogError::corrupt(
                &self.path,
                self.file_pos,
                format!(
                    "file ends at byte {} but data was expected up to byte {limit}",
                    self.file_pos
                ),
            ));
        }
        self.end += n;
        self.file_pos += n as u64;
        Ok(())
    }
}

/// Opens a segment file, checks its header and seeks to `pos`.
fn open_at(path: &Path, base_offset: u64, pos: u64) -> Result<File, LogError> {
    let mut file = File::open(path).at(path)?;
    let mut header = [0u8; HEADER_LEN];
    file.read_exact(&mut header).at(path)?;
    check_header(&header, base_offset).map_err(|r| LogError::corrupt(path, 0, r))?;
    file.seek(SeekFrom::Start(pos)).at(path)?;
    Ok(file)
}
