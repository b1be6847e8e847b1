//! Snapshots: the whole engine state as bytes, through any `Write`/`Read`.
//!
//! Layout (all integers little-endian):
//! - header: magic `NCWS`, format version `u32`, configuration fingerprint `u64`, CRC-32 of
//!   those 16 bytes;
//! - body: arrival seq, entity count, then per entity its key and per source its newest
//!   time, its raw rows (version 3: a byte length, then the compact encoding of
//!   [`crate::rowcodec`]; version 2: the row words of [`crate::state::RowLayout`]), and its
//!   tile arenas (none, or one per window group of the source, see [`crate::tile`]) as words;
//! - trailer: CRC-32 of the body.
//!
//! Reading checks magic, version, header CRC, fingerprint (in that order), then decodes the
//! body defensively (every length is read, never trusted for allocation; structure is checked)
//! and finally the body CRC. Bad bytes give an error, never a panic.

use std::io::{BufReader, Read, Write};

use nowcast_core::Millis;

use crate::rowcodec;
use crate::state::{Entity, Key, Plan};
use crate::{Engine, EngineConfig, WindowError};

const MAGIC: &[u8; 4] = b"NCWS";
/// The snapshot format version this build writes.
pub(crate) const VERSION: u32 = 3;
/// The oldest version this build reads (2: raw rows as plain words).
pub(crate) const OLDEST: u32 = 2;

/// Whether this build reads format `version`, as an error naming the versions it reads.
pub(crate) fn check_version(version: u32) -> Result<(), WindowError> {
    if (OLDEST..=VERSION).contains(&version) {
        return Ok(());
    }
    Err(WindowError::UnsupportedVersion {
        found: version,
        oldest: OLDEST,
        newest: VERSION,
    })
}

/// Bytes of a snapshot body buffered before they are checksummed and written.
const BLOCK: usize = 1 << 16;

/// Writes the snapshot encoding into a buffer. A snapshot body ([`Enc::checked`]) is
/// checksummed and written in 64 KiB blocks; a changelog record ([`Enc::memory`]) stays in
/// the buffer, which its caller takes back and checksums whole. Checksumming and writing each
/// field on its own (8 bytes at a time) made snapshot encoding ~335 MB/s.
pub(crate) struct Enc<W: Write> {
    w: W,
    buf: Vec<u8>,
    /// The checksum of the blocks written, for a snapshot body; `None`: never written.
    crc: Option<crc32fast::Hasher>,
}

impl Enc<std::io::Sink> {
    /// An encoder appending to `buf` (for a record in memory; see [`Enc::into_vec`]).
    pub(crate) fn memory(buf: Vec<u8>) -> Self {
        Enc {
            w: std::io::sink(),
            buf,
            crc: None,
        }
    }
    /// The buffer with everything encoded.
    pub(crate) fn into_vec(self) -> Vec<u8> {
        self.buf
    }
}

impl<W: Write> Enc<W> {
    /// A buffered encoder that checksums everything it writes.
    fn checked(w: W) -> Enc<W> {
        Enc {
            w,
            buf: Vec::with_capacity(BLOCK + 1024),
            crc: Some(crc32fast::Hasher::new()),
        }
    }
    /// Writes a full block (a snapshot body only).
    fn maybe_flush(&mut self) -> Result<(), WindowError> {
        if self.buf.len() >= BLOCK {
            self.flush_block()?;
        }
        Ok(())
    }
    fn flush_block(&mut self) -> Result<(), WindowError> {
        if let Some(crc) = &mut self.crc {
            crc.update(&self.buf);
            self.w.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
    /// Writes what is buffered and returns the writer with the checksum of everything.
    fn finish_checked(mut self) -> Result<(W, u32), WindowError> {
        self.flush_block()?;
        let crc = self.crc.take().map_or(0, |crc| crc.finalize());
        Ok((self.w, crc))
    }
    fn bytes(&mut self, b: &[u8]) -> Result<(), WindowError> {
        self.buf.extend_from_slice(b);
        self.maybe_flush()
    }
    fn u8(&mut self, v: u8) -> Result<(), WindowError> {
        self.bytes(&[v])
    }
    fn u32(&mut self, v: u32) -> Result<(), WindowError> {
        self.bytes(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) -> Result<(), WindowError> {
        self.bytes(&v.to_le_bytes())
    }
    fn i64(&mut self, v: i64) -> Result<(), WindowError> {
        self.u64(v as u64)
    }
    fn len(&mut self, n: usize) -> Result<(), WindowError> {
        let n = u32::try_from(n).map_err(|_| WindowError::corrupt("length exceeds u32"))?;
        self.u32(n)
    }
    /// A length, then the words little-endian.
    fn words(&mut self, v: &[u64]) -> Result<(), WindowError> {
        self.len(v.len())?;
        self.buf.reserve(8 * v.len());
        for w in v {
            self.buf.extend_from_slice(&w.to_le_bytes());
        }
        self.maybe_flush()
    }
    /// A byte length, then the compact encoding of raw rows (see [`rowcodec`]).
    fn rows(
        &mut self,
        layout: &crate::state::RowLayout,
        raw: &[u64],
        base: Millis,
    ) -> Result<(), WindowError> {
        // The length goes in front once the rows are encoded behind it.
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        rowcodec::encode(layout, raw, base, &mut self.buf);
        let n = u32::try_from(self.buf.len() - at - 4)
            .map_err(|_| WindowError::corrupt("length exceeds u32"))?;
        self.buf[at..at + 4].copy_from_slice(&n.to_le_bytes());
        self.maybe_flush()
    }
}

/// The snapshot header: magic, version, configuration fingerprint, CRC-32 of those.
fn header(fingerprint: u64) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[..4].copy_from_slice(MAGIC);
    h[4..8].copy_from_slice(&VERSION.to_le_bytes());
    h[8..16].copy_from_slice(&fingerprint.to_le_bytes());
    let hcrc = crc32fast::hash(&h[..16]);
    h[16..].copy_from_slice(&hcrc.to_le_bytes());
    h
}

/// Starts a snapshot in `w`: the header, then the body's arrival seq and entity count. Each
/// entity follows through [`write_keyed_entity`]; [`end`] closes the body.
pub(crate) fn start<W: Write>(
    mut w: W,
    engine: &Engine,
    entities: usize,
) -> Result<Enc<W>, WindowError> {
    w.write_all(&header(engine.fingerprint))?;
    let mut e = Enc::checked(w);
    e.u64(engine.seq)?;
    e.u64(entities as u64)?;
    Ok(e)
}

/// One entity of a snapshot body: its key, then its state.
pub(crate) fn write_keyed_entity<W: Write>(
    e: &mut Enc<W>,
    key: &Key,
    ent: &Entity,
    plan: &Plan,
) -> Result<(), WindowError> {
    e.len(key.as_bytes().len())?;
    e.bytes(key.as_bytes())?;
    write_entity(e, ent, plan)
}

/// Ends a snapshot body with its checksum; returns the writer.
pub(crate) fn end<W: Write>(e: Enc<W>) -> Result<W, WindowError> {
    let (mut w, crc) = e.finish_checked()?;
    w.write_all(&crc.to_le_bytes())?;
    Ok(w)
}

impl Engine {
    /// Writes the engine's whole state (see the `snapshot` module docs for the format).
    pub fn write_snapshot<W: Write>(&self, w: W) -> Result<(), WindowError> {
        let mut e = start(w, self, self.entities.len())?;
        for (key, ent) in self.entities.iter() {
            write_keyed_entity(&mut e, key, ent, &self.plan)?;
        }
        end(e)?.flush()?;
        Ok(())
    }

    /// Rebuilds an engine from a snapshot written with the same configuration.
    pub fn read_snapshot<R: Read>(config: EngineConfig, r: R) -> Result<Engine, WindowError> {
        config.validate()?;
        let mut r = BufReader::with_capacity(1 << 16, r);
        let mut header = [0u8; 20];
        read_exact(&mut r, &mut header)?;
        if &header[..4] != MAGIC {
            return Err(WindowError::BadMagic);
        }
        let version = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        check_version(version)?;
        let hcrc = u32::from_le_bytes(header[16..20].try_into().expect("4 bytes"));
        if crc32fast::hash(&header[..16]) != hcrc {
            return Err(WindowError::corrupt("header checksum mismatch"));
        }
        let found = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
        let expected = config.fingerprint();
        if found != expected {
            return Err(WindowError::ConfigMismatch { expected, found });
        }
        let mut engine = Engine::build(config);
        let mut d = Dec {
            r,
            crc: crc32fast::Hasher::new(),
            scratch: Vec::new(),
        };
        engine.seq = d.u64()?;
        let n = d.u64()?;
        for _ in 0..n {
            let klen = d.u32()? as usize;
            let mut key = Vec::new();
            for _ in 0..klen {
                key.push(d.u8()?);
            }
            let key =
                String::from_utf8(key).map_err(|_| WindowError::corrupt("key is not UTF-8"))?;
            let ent = read_entity(&mut d, &engine, version)?;
            if engine.entities.insert(Key::new(&key), ent).is_some() {
                return Err(WindowError::corrupt("duplicate entity key"));
            }
        }
        let computed = d.crc.clone().finalize();
        let mut trailer = [0u8; 4];
        read_exact(&mut d.r, &mut trailer)?;
        if u32::from_le_bytes(trailer) != computed {
            return Err(WindowError::corrupt("body checksum mismatch"));
        }
        if d.r.read(&mut [0u8; 1])? != 0 {
            return Err(WindowError::corrupt("trailing bytes after the checksum"));
        }
        Ok(engine)
    }
}

pub(crate) fn write_entity<W: Write>(
    e: &mut Enc<W>,
    ent: &Entity,
    plan: &Plan,
) -> Result<(), WindowError> {
    for (i, sp) in plan.sources.iter().enumerate() {
        let s = ent.source(i);
        let newest = s.newest.unwrap_or(0);
        e.u8(s.newest.is_some() as u8)?;
        e.i64(newest)?;
        e.rows(&sp.row, &s.raw, newest)?;
        let tiles = s.tiles.as_deref().unwrap_or(&[]);
        e.len(tiles.len())?;
        for arena in tiles {
            e.words(arena)?;
        }
    }
    Ok(())
}

pub(crate) struct Dec<R: Read> {
    r: BufReader<R>,
    crc: crc32fast::Hasher,
    /// The encoded raw rows of one source.
    scratch: Vec<u8>,
}

fn read_exact<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<(), WindowError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => WindowError::corrupt("truncated"),
        _ => WindowError::Io(e),
    })
}

impl<R: Read> Dec<R> {
    /// An unbuffered decoder (for reading from memory).
    pub(crate) fn new(r: R) -> Dec<R> {
        Dec {
            r: BufReader::with_capacity(0, r),
            crc: crc32fast::Hasher::new(),
            scratch: Vec::new(),
        }
    }
    /// Whether every byte was consumed.
    pub(crate) fn at_end(&mut self) -> Result<bool, WindowError> {
        Ok(self.r.read(&mut [0u8; 1])? == 0)
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], WindowError> {
        let mut b = [0u8; N];
        read_exact(&mut self.r, &mut b)?;
        self.crc.update(&b);
        Ok(b)
    }
    fn u8(&mut self) -> Result<u8, WindowError> {
        Ok(self.arr::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, WindowError> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    fn u64(&mut self) -> Result<u64, WindowError> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
    fn i64(&mut self) -> Result<i64, WindowError> {
        Ok(self.u64()? as i64)
    }
    /// `n` little-endian words, read and checksummed in blocks of 64.
    fn words(&mut self, n: usize) -> Result<Vec<u64>, WindowError> {
        let mut v = Vec::with_capacity(n.min(1 << 12));
        let mut block = [0u8; 8 * 64];
        let mut left = n;
        while left > 0 {
            let k = left.min(64);
            let bytes = &mut block[..8 * k];
            read_exact(&mut self.r, bytes)?;
            self.crc.update(bytes);
            v.extend(
                bytes
                    .chunks_exact(8)
                    .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))),
            );
            left -= k;
        }
        Ok(v)
    }
    /// `n` bytes into the scratch buffer, read in blocks (the length is not trusted for
    /// allocation) and checksummed.
    fn bytes(&mut self, n: usize) -> Result<&[u8], WindowError> {
        self.scratch.clear();
        while self.scratch.len() < n {
            let at = self.scratch.len();
            self.scratch.resize(n.min(at + (1 << 16)), 0);
            read_exact(&mut self.r, &mut self.scratch[at..])?;
        }
        self.crc.update(&self.scratch);
        Ok(&self.scratch)
    }
}

/// Reads one entity's state written in format `version` (checked by the caller).
pub(crate) fn read_entity<R: Read>(
    d: &mut Dec<R>,
    engine: &Engine,
    version: u32,
) -> Result<Entity, WindowError> {
    let plan = &engine.plan;
    let mut ent = Entity::new(plan);
    for (s, sp) in plan.sources.iter().enumerate() {
        let st = ent.source_mut(s);
        let has = d.u8()?;
        let newest = d.i64()?;
        st.newest = match has {
            0 => None,
            1 => Some(newest),
            _ => return Err(WindowError::corrupt("bad newest-time flag")),
        };
        let n = d.u32()? as usize;
        st.raw = match version {
            2 => d.words(n)?,
            _ => rowcodec::decode(&sp.row, d.bytes(n)?, newest)?,
        };
        if !sp.row.is_valid(&st.raw) {
            return Err(WindowError::corrupt("raw rows are invalid"));
        }
        let rows = sp.row.rows(&st.raw);
        st.oldest = st.raw.first().map_or(Millis::MAX, |&t| t as Millis);
        if rows > 0 && (sp.groups.is_empty() || st.newest.is_none()) {
            return Err(WindowError::corrupt(
                "raw rows without a newest time or features",
            ));
        }
        if rows > 0
            && st
                .newest
                .is_some_and(|t| sp.row.time(&st.raw, rows - 1) > t)
        {
            return Err(WindowError::corrupt("raw row newer than the newest time"));
        }
        let nt = d.u32()? as usize;
        if nt != 0 && nt != sp.groups.len() {
            return Err(WindowError::corrupt("wrong number of tile arenas"));
        }
        let mut tiles = Vec::new();
        for &g in sp.groups.iter().take(nt) {
            let n = d.u32()? as usize;
            let words = d.words(n)?;
            if !plan.groups[g].layout.is_valid(&words) {
                return Err(WindowError::corrupt("tile arena structure is invalid"));
            }
            tiles.push(words);
        }
        if nt > 0 {
            st.tiles = Some(tiles.into());
        }
    }
    Ok(ent)
}
