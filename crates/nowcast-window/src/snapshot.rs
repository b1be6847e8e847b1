//! Snapshots: the whole engine state as bytes, through any `Write`/`Read`.
//!
//! Layout (all integers little-endian):
//! - header: magic `NCWS`, format version `u32`, configuration fingerprint `u64`, CRC-32 of
//!   those 16 bytes;
//! - body: arrival seq, entity count, then per entity its key, per source its newest time and
//!   pending rows, per window group its tiles and one column of partial aggregates per feature;
//! - trailer: CRC-32 of the body.
//!
//! Reading checks magic, version, header CRC, fingerprint (in that order), then decodes the
//! body defensively (every length is read, never trusted for allocation; structure is checked)
//! and finally the body CRC. Bad bytes give an error, never a panic.

use std::io::{BufReader, BufWriter, Read, Write};

use crate::column::{Cell, Column};
use crate::ddsketch::Bin;
use crate::eval::PendingRow;
use crate::segmented::Segmented;
use crate::state::{Entity, Tiles};
use crate::{Engine, EngineConfig, Input, WindowError};

const MAGIC: &[u8; 4] = b"NCWS";
/// The snapshot format version this build reads and writes.
pub(crate) const VERSION: u32 = 1;

struct Enc<W: Write> {
    w: BufWriter<W>,
    crc: crc32fast::Hasher,
}

impl<W: Write> Enc<W> {
    fn bytes(&mut self, b: &[u8]) -> Result<(), WindowError> {
        self.crc.update(b);
        self.w.write_all(b)?;
        Ok(())
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
    fn f64(&mut self, v: f64) -> Result<(), WindowError> {
        self.u64(v.to_bits())
    }
    fn len(&mut self, n: usize) -> Result<(), WindowError> {
        let n = u32::try_from(n).map_err(|_| WindowError::corrupt("length exceeds u32"))?;
        self.u32(n)
    }
    fn cell(&mut self, c: &Cell) -> Result<(), WindowError> {
        self.i64(c.time)?;
        self.u64(c.seq)?;
        self.f64(c.value)
    }
    fn seg<T: Copy>(
        &mut self,
        s: &Segmented<T>,
        mut each: impl FnMut(&mut Self, &T) -> Result<(), WindowError>,
    ) -> Result<(), WindowError> {
        for &e in &s.ends {
            self.u32(e)?;
        }
        s.data.iter().try_for_each(|x| each(self, x))
    }
}

impl Engine {
    /// Writes the engine's whole state (see the `snapshot` module docs for the format).
    pub fn write_snapshot<W: Write>(&self, w: W) -> Result<(), WindowError> {
        let mut header = Vec::with_capacity(20);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&VERSION.to_le_bytes());
        header.extend_from_slice(&self.config.fingerprint().to_le_bytes());
        let hcrc = crc32fast::hash(&header);
        header.extend_from_slice(&hcrc.to_le_bytes());
        let mut w = BufWriter::with_capacity(1 << 16, w);
        w.write_all(&header)?;
        let mut e = Enc {
            w,
            crc: crc32fast::Hasher::new(),
        };
        e.u64(self.seq)?;
        e.u64(self.entities.len() as u64)?;
        for (key, ent) in &self.entities {
            e.len(key.len())?;
            e.bytes(key.as_bytes())?;
            write_entity(&mut e, ent)?;
        }
        let crc = e.crc.finalize();
        e.w.write_all(&crc.to_le_bytes())?;
        e.w.flush()?;
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
        if version != VERSION {
            return Err(WindowError::UnsupportedVersion {
                found: version,
                supported: VERSION,
            });
        }
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
            let ent = read_entity(&mut d, &engine)?;
            if engine.entities.insert(key.into(), ent).is_some() {
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

fn write_entity<W: Write>(e: &mut Enc<W>, ent: &Entity) -> Result<(), WindowError> {
    for s in ent.sources.iter() {
        e.u8(s.newest.is_some() as u8)?;
        e.i64(s.newest.unwrap_or(0))?;
        e.len(s.pending.len())?;
        for r in &s.pending {
            e.i64(r.time)?;
            e.u64(r.seq)?;
        }
        e.len(s.inputs.len())?;
        for i in &s.inputs {
            let (tag, v) = match *i {
                Input::Skip => (0, 0),
                Input::Num(x) => (1, x.to_bits()),
                Input::Hash(h) => (2, h),
            };
            e.u8(tag)?;
            e.u64(v)?;
        }
    }
    for g in ent.groups.iter() {
        let Some(t) = g else {
            e.u8(0)?;
            continue;
        };
        e.u8(1)?;
        e.len(t.ks.len())?;
        t.ks.iter().try_for_each(|&k| e.i64(k))?;
        for c in t.cols.iter() {
            write_column(e, c)?;
        }
    }
    Ok(())
}

fn write_column<W: Write>(e: &mut Enc<W>, c: &Column) -> Result<(), WindowError> {
    match c {
        Column::Count(v) | Column::Sum(v) | Column::Min(v) | Column::Max(v) => {
            v.iter().try_for_each(|&x| e.f64(x))
        }
        Column::Mean(v) => v.iter().flatten().try_for_each(|&x| e.f64(x)),
        Column::StdDev(v) => v.iter().flatten().try_for_each(|&x| e.f64(x)),
        Column::Last(v) => v.iter().try_for_each(|c| e.cell(c)),
        Column::TimeSinceLast(v) => v.iter().try_for_each(|&x| e.i64(x)),
        Column::Decayed(v) => v.iter().try_for_each(|&(m, s)| {
            e.i64(m)?;
            e.f64(s)
        }),
        Column::Distinct(s) => e.seg(s, |e, &h| e.u64(h)),
        Column::LastN(s) => e.seg(s, |e, c| e.cell(c)),
        Column::Quantile(s) => e.seg(s, |e, b| {
            e.i64(b.code)?;
            e.u64(b.count)
        }),
    }
}

struct Dec<R: Read> {
    r: BufReader<R>,
    crc: crc32fast::Hasher,
}

fn read_exact<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<(), WindowError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => WindowError::corrupt("truncated"),
        _ => WindowError::Io(e),
    })
}

impl<R: Read> Dec<R> {
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
    fn f64(&mut self) -> Result<f64, WindowError> {
        Ok(f64::from_bits(self.u64()?))
    }
    fn cell(&mut self) -> Result<Cell, WindowError> {
        Ok(Cell {
            time: self.i64()?,
            seq: self.u64()?,
            value: self.f64()?,
        })
    }
    fn vec<T>(
        &mut self,
        n: usize,
        mut each: impl FnMut(&mut Self) -> Result<T, WindowError>,
    ) -> Result<Vec<T>, WindowError> {
        let mut v = Vec::with_capacity(n.min(1 << 12));
        for _ in 0..n {
            v.push(each(self)?);
        }
        Ok(v)
    }
    fn seg<T: Copy>(
        &mut self,
        n: usize,
        each: impl FnMut(&mut Self) -> Result<T, WindowError>,
    ) -> Result<Segmented<T>, WindowError> {
        let ends = self.vec(n, |d| d.u32())?;
        if ends.windows(2).any(|w| w[0] > w[1]) {
            return Err(WindowError::corrupt("segment ends decrease"));
        }
        let len = ends.last().map_or(0, |&e| e as usize);
        let data = self.vec(len, each)?;
        let s = Segmented { ends, data };
        debug_assert!(s.is_consistent());
        Ok(s)
    }
}

fn read_entity<R: Read>(d: &mut Dec<R>, engine: &Engine) -> Result<Entity, WindowError> {
    let plan = &engine.plan;
    let mut ent = Entity::new(plan);
    for (s, st) in ent.sources.iter_mut().enumerate() {
        let has = d.u8()?;
        let newest = d.i64()?;
        st.newest = match has {
            0 => None,
            1 => Some(newest),
            _ => return Err(WindowError::corrupt("bad newest-time flag")),
        };
        let n = d.u32()? as usize;
        st.pending = d.vec(n, |d| {
            Ok(PendingRow {
                time: d.i64()?,
                seq: d.u64()?,
            })
        })?;
        let ni = d.u32()? as usize;
        if ni != n * plan.source_features[s].len() {
            return Err(WindowError::corrupt(
                "pending inputs do not match pending rows",
            ));
        }
        st.inputs = d.vec(ni, |d| {
            let tag = d.u8()?;
            let v = d.u64()?;
            match tag {
                0 => Ok(Input::Skip),
                1 => Ok(Input::Num(f64::from_bits(v))),
                2 => Ok(Input::Hash(v)),
                _ => Err(WindowError::corrupt("bad input tag")),
            }
        })?;
        if n > 0 && st.newest.is_none() {
            return Err(WindowError::corrupt("pending rows without a newest time"));
        }
    }
    for (g, slot) in ent.groups.iter_mut().enumerate() {
        match d.u8()? {
            0 => continue,
            1 => {}
            _ => return Err(WindowError::corrupt("bad group flag")),
        }
        let n = d.u32()? as usize;
        let ks = d.vec(n, |d| d.i64())?;
        if n == 0 || ks.windows(2).any(|w| w[0] >= w[1]) {
            return Err(WindowError::corrupt("tile indices empty or not increasing"));
        }
        let group = &plan.groups[g];
        let mut cols = Vec::with_capacity(group.features.len());
        for &f in &group.features {
            cols.push(read_column(
                d,
                Column::new(&engine.config.features[f].agg),
                n,
            )?);
        }
        *slot = Some(Box::new(Tiles {
            ks,
            cols: cols.into(),
        }));
    }
    Ok(ent)
}

fn read_column<R: Read>(d: &mut Dec<R>, c: Column, n: usize) -> Result<Column, WindowError> {
    Ok(match c {
        Column::Count(_) => Column::Count(d.vec(n, |d| d.f64())?),
        Column::Sum(_) => Column::Sum(d.vec(n, |d| d.f64())?),
        Column::Min(_) => Column::Min(d.vec(n, |d| d.f64())?),
        Column::Max(_) => Column::Max(d.vec(n, |d| d.f64())?),
        Column::Mean(_) => Column::Mean(d.vec(n, |d| Ok([d.f64()?, d.f64()?]))?),
        Column::StdDev(_) => Column::StdDev(d.vec(n, |d| Ok([d.f64()?, d.f64()?, d.f64()?]))?),
        Column::Last(_) => Column::Last(d.vec(n, |d| d.cell())?),
        Column::TimeSinceLast(_) => Column::TimeSinceLast(d.vec(n, |d| d.i64())?),
        Column::Decayed(_) => Column::Decayed(d.vec(n, |d| Ok((d.i64()?, d.f64()?)))?),
        Column::Distinct(_) => Column::Distinct(d.seg(n, |d| d.u64())?),
        Column::LastN(_) => Column::LastN(d.seg(n, |d| d.cell())?),
        Column::Quantile(_) => Column::Quantile(d.seg(n, |d| {
            Ok(Bin {
                code: d.i64()?,
                count: d.u64()?,
            })
        })?),
    })
}
