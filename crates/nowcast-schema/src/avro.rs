//! Avro binary decoding, compiled per writer schema into a flat program that reads only the
//! fields the pipeline needs and skips the rest without allocating.
//!
//! Resolution follows the Avro specification where nowcast reads: a reader field matches the
//! writer field of the same name or of one of the reader field's aliases; a reader field the
//! writer lacks takes the reader's default; numbers promote (int → long → float → double);
//! a union in the writer is resolved per record by its branch. Records, arrays and maps are
//! skipped (they are `Composite` to the pipeline).

use std::borrow::Cow;
use std::collections::HashMap;

use apache_avro::schema::{InnerDecimalSchema, Name, RecordSchema, UuidSchema};
use apache_avro::Schema;
use nowcast_core::RejectReason;

use crate::value::{Needs, Use, Val};
use crate::wire::read_zigzag;
use crate::DecodeError;

/// Deepest nesting of records, arrays, maps and unions compiled (a recursive schema hits it).
const MAX_DEPTH: usize = 64;
/// Most operations one writer schema may compile into. Named types are expanded where they
/// are used, so a small schema that refers to a type twice at every level would otherwise
/// expand exponentially.
const MAX_NODES: usize = 100_000;

/// Parses Avro schema JSON text.
pub fn parse(text: &str) -> Result<Schema, String> {
    Schema::parse_str(text).map_err(|e| e.to_string())
}

/// How to skip a value the pipeline does not read.
#[derive(Debug, Clone)]
enum Skip {
    Nothing,
    Byte,
    Varint,
    Fixed(usize),
    /// A length-prefixed string or bytes.
    Len,
    Array(Box<Skip>),
    Map(Box<Skip>),
    Record(Box<[Skip]>),
    Union(Box<[Skip]>),
}

impl Skip {
    /// Whether values of this type take no bytes (so an array of them needs no iteration).
    fn zero_sized(&self) -> bool {
        match self {
            Skip::Nothing => true,
            Skip::Fixed(0) => true,
            Skip::Record(fs) => fs.iter().all(Skip::zero_sized),
            _ => false,
        }
    }
}

/// How to read a value the pipeline uses.
#[derive(Debug, Clone)]
enum Leaf {
    Null,
    Bool,
    /// int or long, as they are.
    Int,
    /// int or long scaled down to milliseconds (timestamp-micros: 1000, -nanos: 1 000 000,
    /// date: days to milliseconds is a multiplication, see `DateDays`).
    IntDiv(i64),
    DateDays,
    Float,
    Double,
    Str,
    Enum(Box<[String]>),
    Decimal {
        scale: u32,
        fixed: Option<usize>,
    },
    /// Present but not a scalar: skipped, reads as `Composite`.
    Composite(Skip),
    /// A union branch the use cannot take: records that pick it are refused.
    Refuse(String),
}

#[derive(Debug, Clone)]
enum Read {
    Leaf(Leaf),
    Union(Box<[Leaf]>),
}

#[derive(Debug, Clone)]
enum Op {
    Read { slot: usize, read: Read },
    Skip(Skip),
}

/// A compiled reader for records of one writer schema.
#[derive(Debug, Clone)]
pub struct AvroReader {
    ops: Vec<Op>,
    /// Reader defaults for fields the writer lacks, written into their slots every record.
    defaults: Vec<(usize, Val<'static>)>,
}

struct Compiler<'s> {
    names: HashMap<String, &'s Schema>,
    nodes: std::cell::Cell<usize>,
}

fn unusable(reason: RejectReason, detail: String) -> DecodeError {
    DecodeError::new(reason, detail)
}

impl<'s> Compiler<'s> {
    fn new(schema: &'s Schema) -> Compiler<'s> {
        let mut names = HashMap::new();
        collect_names(schema, &mut names, 0);
        Compiler {
            names,
            nodes: std::cell::Cell::new(0),
        }
    }

    fn deref(&self, s: &'s Schema) -> Result<&'s Schema, DecodeError> {
        match s {
            Schema::Ref { name } => self.names.get(&name.to_string()).copied().ok_or_else(|| {
                unusable(
                    RejectReason::BadSchema,
                    format!("the schema refers to `{name}`, which it does not define"),
                )
            }),
            s => Ok(s),
        }
    }

    fn skip(&self, s: &'s Schema, depth: usize) -> Result<Skip, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(too_deep());
        }
        self.nodes.set(self.nodes.get() + 1);
        if self.nodes.get() > MAX_NODES {
            return Err(unusable(
                RejectReason::BadSchema,
                format!("the schema expands to more than {MAX_NODES} operations (named types referenced many times over)"),
            ));
        }
        let s = self.deref(s)?;
        Ok(match s {
            Schema::Null => Skip::Nothing,
            Schema::Boolean => Skip::Byte,
            Schema::Int
            | Schema::Long
            | Schema::Date
            | Schema::TimeMillis
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos
            | Schema::Enum(_) => Skip::Varint,
            Schema::Float => Skip::Fixed(4),
            Schema::Double => Skip::Fixed(8),
            Schema::Bytes | Schema::String | Schema::BigDecimal => Skip::Len,
            Schema::Uuid(UuidSchema::Bytes | UuidSchema::String) => Skip::Len,
            Schema::Uuid(UuidSchema::Fixed(f)) | Schema::Fixed(f) | Schema::Duration(f) => {
                Skip::Fixed(f.size)
            }
            Schema::Decimal(d) => match &d.inner {
                InnerDecimalSchema::Bytes => Skip::Len,
                InnerDecimalSchema::Fixed(f) => Skip::Fixed(f.size),
            },
            Schema::Array(a) => Skip::Array(Box::new(self.skip(&a.items, depth + 1)?)),
            Schema::Map(m) => Skip::Map(Box::new(self.skip(&m.types, depth + 1)?)),
            Schema::Record(r) => Skip::Record(
                r.fields
                    .iter()
                    .map(|f| self.skip(&f.schema, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            Schema::Union(u) => Skip::Union(
                u.variants()
                    .iter()
                    .map(|v| self.skip(v, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            Schema::Ref { .. } => unreachable!("dereferenced above"),
        })
    }

    /// The leaf reading a non-union writer type for `usage`, or why it cannot.
    fn leaf(&self, s: &'s Schema, usage: Use, depth: usize) -> Result<Leaf, String> {
        let s = self.deref(s).map_err(|e| e.detail)?;
        let numeric = matches!(usage, Use::Number);
        let leaf = match s {
            Schema::Null => Leaf::Null,
            Schema::Boolean if !numeric && usage != Use::Time && usage != Use::Key => Leaf::Bool,
            Schema::Int | Schema::Long => Leaf::Int,
            Schema::TimestampMillis | Schema::LocalTimestampMillis if usage == Use::Time => {
                Leaf::Int
            }
            Schema::TimestampMicros | Schema::LocalTimestampMicros if usage == Use::Time => {
                Leaf::IntDiv(1_000)
            }
            Schema::TimestampNanos | Schema::LocalTimestampNanos if usage == Use::Time => {
                Leaf::IntDiv(1_000_000)
            }
            Schema::Date if usage == Use::Time => Leaf::DateDays,
            Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos
            | Schema::Date
            | Schema::TimeMillis
            | Schema::TimeMicros
                if usage == Use::Scalar =>
            {
                Leaf::Int
            }
            Schema::Float if usage == Use::Number || usage == Use::Scalar => Leaf::Float,
            Schema::Double if usage == Use::Number || usage == Use::Scalar => Leaf::Double,
            Schema::String | Schema::Uuid(UuidSchema::String) if !numeric => Leaf::Str,
            Schema::Enum(e) if usage == Use::Key || usage == Use::Scalar => {
                Leaf::Enum(e.symbols.clone().into_boxed_slice())
            }
            Schema::Decimal(d) if numeric || usage == Use::Scalar => Leaf::Decimal {
                scale: u32::try_from(d.scale).unwrap_or(u32::MAX),
                fixed: match &d.inner {
                    InnerDecimalSchema::Bytes => None,
                    InnerDecimalSchema::Fixed(f) => Some(f.size),
                },
            },
            Schema::Array(_) | Schema::Map(_) | Schema::Record(_) | Schema::Union(_)
                if usage == Use::Scalar =>
            {
                Leaf::Composite(self.skip(s, depth + 1).map_err(|e| e.detail)?)
            }
            other => return Err(type_name(other)),
        };
        Ok(leaf)
    }

    fn read(&self, s: &'s Schema, usage: Use, name: &str) -> Result<Read, DecodeError> {
        let mismatch = |got: String| {
            unusable(
                RejectReason::TypeMismatch,
                format!(
                    "field `{name}` is {got}; nowcast reads it as {}",
                    usage.wants()
                ),
            )
        };
        match self.deref(s)? {
            Schema::Union(u) => {
                let leaves: Vec<Leaf> = u
                    .variants()
                    .iter()
                    .map(|v| match self.leaf(v, usage, 1) {
                        Ok(l) => l,
                        Err(got) => Leaf::Refuse(format!(
                            "field `{name}` holds the union branch {got}; nowcast reads it as {}",
                            usage.wants()
                        )),
                    })
                    .collect();
                if leaves
                    .iter()
                    .all(|l| matches!(l, Leaf::Refuse(_) | Leaf::Null))
                {
                    return Err(mismatch(format!(
                        "a union of {}",
                        u.variants()
                            .iter()
                            .map(|v| self.deref(v).map(type_name).unwrap_or_default())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                Ok(Read::Union(leaves.into_boxed_slice()))
            }
            other => self.leaf(other, usage, 0).map(Read::Leaf).map_err(mismatch),
        }
    }
}

fn too_deep() -> DecodeError {
    unusable(
        RejectReason::BadSchema,
        format!("the schema nests deeper than {MAX_DEPTH} levels (is it recursive?)"),
    )
}

fn collect_names<'s>(s: &'s Schema, out: &mut HashMap<String, &'s Schema>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    let mut add = |n: &Name| {
        out.insert(n.to_string(), s);
    };
    match s {
        Schema::Record(r) => {
            add(&r.name);
            for f in &r.fields {
                collect_names(&f.schema, out, depth + 1);
            }
        }
        Schema::Enum(e) => add(&e.name),
        Schema::Fixed(f) => add(&f.name),
        Schema::Array(a) => collect_names(&a.items, out, depth + 1),
        Schema::Map(m) => collect_names(&m.types, out, depth + 1),
        Schema::Union(u) => {
            for v in u.variants() {
                collect_names(v, out, depth + 1);
            }
        }
        _ => {}
    }
}

fn type_name(s: &Schema) -> String {
    match s {
        Schema::Record(r) => format!("the record `{}`", r.name),
        Schema::Enum(e) => format!("the enum `{}`", e.name),
        Schema::Fixed(f) => format!("the fixed `{}`", f.name),
        Schema::Ref { name } => format!("`{name}`"),
        other => {
            let kind = format!("{:?}", apache_avro::schema::SchemaKind::from(other));
            kind.to_lowercase()
        }
    }
}

fn top_record<'s>(
    c: &Compiler<'s>,
    s: &'s Schema,
    which: &str,
) -> Result<&'s RecordSchema, DecodeError> {
    match c.deref(s)? {
        Schema::Record(r) => Ok(r),
        other => Err(unusable(
            RejectReason::BadSchema,
            format!("the {which} schema is {}, not a record", type_name(other)),
        )),
    }
}

fn default_val(v: &serde_json::Value) -> Val<'static> {
    match v {
        serde_json::Value::Null => Val::Null,
        serde_json::Value::Bool(b) => Val::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Val::Int(i),
            None => Val::Num(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Val::Str(Cow::Owned(s.clone())),
        _ => Val::Composite,
    }
}

impl AvroReader {
    /// Compiles the reader for `writer` records, resolved against the optional `reader`
    /// schema, reading `needs` into their slots. Errors carry the dead-letter reason
    /// (`missing_field`, `type_mismatch`, `bad_schema`) every record of this writer gets.
    pub fn compile(
        writer: &Schema,
        reader: Option<&Schema>,
        needs: &Needs,
    ) -> Result<AvroReader, DecodeError> {
        let c = Compiler::new(writer);
        let wrec = top_record(&c, writer, "writer")?;
        let rc = reader.map(Compiler::new);
        let rrec = match (&rc, reader) {
            (Some(rc), Some(r)) => Some(top_record(rc, r, "reader")?),
            _ => None,
        };
        // Need slot → the writer field names that feed it (its name and its reader aliases).
        let mut by_writer_name: HashMap<&str, usize> = HashMap::new();
        for (slot, need) in needs.0.iter().enumerate() {
            by_writer_name.insert(&need.name, slot);
            if let Some(rf) = rrec.and_then(|r| r.fields.iter().find(|f| f.name == need.name)) {
                for a in &rf.aliases {
                    by_writer_name.entry(a).or_insert(slot);
                }
            }
        }
        let mut found = vec![false; needs.0.len()];
        let mut ops = Vec::with_capacity(wrec.fields.len());
        for f in &wrec.fields {
            match by_writer_name.get(f.name.as_str()) {
                Some(&slot) if !found[slot] => {
                    found[slot] = true;
                    let need = &needs.0[slot];
                    let read = c.read(&f.schema, need.usage, &need.name)?;
                    ops.push(Op::Read { slot, read });
                }
                _ => ops.push(Op::Skip(c.skip(&f.schema, 1)?)),
            }
        }
        // Merge consecutive fixed-size skips? Kept simple: one op per writer field.
        let mut defaults = Vec::new();
        for (slot, need) in needs.0.iter().enumerate() {
            if found[slot] {
                continue;
            }
            let default = rrec
                .and_then(|r| r.fields.iter().find(|f| f.name == need.name))
                .and_then(|f| f.default.as_ref());
            match default {
                Some(d) => defaults.push((slot, default_val(d))),
                None if !need.required => {}
                None => {
                    return Err(unusable(
                        RejectReason::MissingField,
                        format!(
                            "the writer schema `{}` lacks field `{}`{}",
                            wrec.name,
                            need.name,
                            if rrec.is_some() {
                                " and the reader schema gives it no default"
                            } else {
                                ""
                            }
                        ),
                    ))
                }
            }
        }
        Ok(AvroReader { ops, defaults })
    }

    /// Decodes one Avro binary datum into `vals` (slots the writer does not carry are left
    /// as they are, normally `Absent`). Trailing bytes are refused: they mean the record was
    /// written with another schema.
    pub fn read<'a>(&'a self, payload: &'a [u8], vals: &mut [Val<'a>]) -> Result<(), DecodeError> {
        let mut buf = payload;
        for op in &self.ops {
            match op {
                Op::Skip(s) => skip(&mut buf, s)?,
                Op::Read { slot, read } => {
                    let leaf = match read {
                        Read::Leaf(l) => l,
                        Read::Union(branches) => {
                            let i = read_zigzag(&mut buf)
                                .ok_or_else(|| DecodeError::corrupt("truncated union index"))?;
                            usize::try_from(i)
                                .ok()
                                .and_then(|i| branches.get(i))
                                .ok_or_else(|| {
                                    DecodeError::corrupt(format!(
                                        "union index {i} is out of range (the union has {} branches)",
                                        branches.len()
                                    ))
                                })?
                        }
                    };
                    vals[*slot] = read_leaf(&mut buf, leaf)?;
                }
            }
        }
        if !buf.is_empty() {
            return Err(DecodeError::corrupt(format!(
                "{} bytes follow the end of the record: it was not written with this schema",
                buf.len()
            )));
        }
        for (slot, v) in &self.defaults {
            vals[*slot] = v.clone();
        }
        Ok(())
    }
}

fn truncated() -> DecodeError {
    DecodeError::corrupt("the payload is truncated")
}

#[inline]
fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], DecodeError> {
    if buf.len() < n {
        return Err(truncated());
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

#[inline]
fn long(buf: &mut &[u8]) -> Result<i64, DecodeError> {
    read_zigzag(buf).ok_or_else(|| DecodeError::corrupt("truncated or overlong varint"))
}

#[inline]
fn len(buf: &mut &[u8]) -> Result<usize, DecodeError> {
    let n = long(buf)?;
    usize::try_from(n).map_err(|_| DecodeError::corrupt(format!("negative length {n}")))
}

fn read_leaf<'a>(buf: &mut &'a [u8], leaf: &'a Leaf) -> Result<Val<'a>, DecodeError> {
    Ok(match leaf {
        Leaf::Null => Val::Null,
        Leaf::Bool => match take(buf, 1)?[0] {
            0 => Val::Bool(false),
            1 => Val::Bool(true),
            b => return Err(DecodeError::corrupt(format!("boolean byte is {b}"))),
        },
        Leaf::Int => Val::Int(long(buf)?),
        Leaf::IntDiv(d) => Val::Int(long(buf)?.div_euclid(*d)),
        Leaf::DateDays => Val::Int(long(buf)?.saturating_mul(86_400_000)),
        Leaf::Float => {
            Val::Num(f32::from_le_bytes(take(buf, 4)?.try_into().expect("4 bytes")) as f64)
        }
        Leaf::Double => Val::Num(f64::from_le_bytes(
            take(buf, 8)?.try_into().expect("8 bytes"),
        )),
        Leaf::Str => {
            let n = len(buf)?;
            let bytes = take(buf, n)?;
            Val::Str(Cow::Borrowed(std::str::from_utf8(bytes).map_err(|e| {
                DecodeError::corrupt(format!("a string is not valid UTF-8: {e}"))
            })?))
        }
        Leaf::Enum(symbols) => {
            let i = long(buf)?;
            let s = usize::try_from(i)
                .ok()
                .and_then(|i| symbols.get(i))
                .ok_or_else(|| {
                    DecodeError::corrupt(format!(
                        "enum index {i} is out of range ({} symbols)",
                        symbols.len()
                    ))
                })?;
            Val::Str(Cow::Borrowed(s))
        }
        Leaf::Decimal { scale, fixed } => {
            let n = match fixed {
                Some(n) => *n,
                None => len(buf)?,
            };
            let bytes = take(buf, n)?;
            Val::Num(decimal(bytes, *scale)?)
        }
        Leaf::Composite(s) => {
            skip(buf, s)?;
            Val::Composite
        }
        Leaf::Refuse(why) => return Err(DecodeError::new(RejectReason::TypeMismatch, why.clone())),
    })
}

/// A two's-complement big-endian unscaled integer over 10^scale, as f64.
fn decimal(bytes: &[u8], scale: u32) -> Result<f64, DecodeError> {
    if bytes.is_empty() {
        return Ok(0.0);
    }
    if bytes.len() > 16 {
        return Err(DecodeError::new(
            RejectReason::TypeMismatch,
            format!("a decimal of {} bytes is beyond 128 bits", bytes.len()),
        ));
    }
    let fill = if bytes[0] & 0x80 != 0 { 0xff } else { 0 };
    let mut be = [fill; 16];
    be[16 - bytes.len()..].copy_from_slice(bytes);
    let unscaled = i128::from_be_bytes(be) as f64;
    Ok(unscaled / 10f64.powi(scale.min(400) as i32))
}

fn skip(buf: &mut &[u8], s: &Skip) -> Result<(), DecodeError> {
    match s {
        Skip::Nothing => {}
        Skip::Byte => {
            take(buf, 1)?;
        }
        Skip::Varint => {
            long(buf)?;
        }
        Skip::Fixed(n) => {
            take(buf, *n)?;
        }
        Skip::Len => {
            let n = len(buf)?;
            take(buf, n)?;
        }
        Skip::Array(item) => skip_blocks(buf, |b| skip(b, item), item.zero_sized())?,
        Skip::Map(value) => skip_blocks(
            buf,
            |b| {
                let n = len(b)?;
                take(b, n)?;
                skip(b, value)
            },
            false,
        )?,
        Skip::Record(fields) => {
            for f in fields.iter() {
                skip(buf, f)?;
            }
        }
        Skip::Union(branches) => {
            let i = long(buf)?;
            let branch = usize::try_from(i)
                .ok()
                .and_then(|i| branches.get(i))
                .ok_or_else(|| DecodeError::corrupt(format!("union index {i} is out of range")))?;
            skip(buf, branch)?;
        }
    }
    Ok(())
}

/// Skips an array's or map's blocks: a count, then the items; a negative count is followed
/// by the block's size in bytes, which is skipped at once.
fn skip_blocks(
    buf: &mut &[u8],
    mut item: impl FnMut(&mut &[u8]) -> Result<(), DecodeError>,
    zero_sized: bool,
) -> Result<(), DecodeError> {
    loop {
        let count = long(buf)?;
        if count == 0 {
            return Ok(());
        }
        if count < 0 {
            let size = len(buf)?;
            take(buf, size)?;
            continue;
        }
        if zero_sized {
            continue;
        }
        // Every item takes at least one byte: a count beyond the bytes left is corrupt (and
        // would otherwise spin).
        if count as u64 > buf.len() as u64 {
            return Err(truncated());
        }
        for _ in 0..count {
            item(buf)?;
        }
    }
}
