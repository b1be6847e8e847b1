//! Protobuf decoding straight from the wire format, compiled per writer schema and message:
//! only the fields the pipeline needs are read (by number, found by name in the writer's
//! descriptor); every other field is skipped by its wire type.
//!
//! Fields without presence (proto3 scalars not marked `optional`) read as their default
//! value when the record omits them, as Protobuf defines; the key and the event time never
//! default (an omitted key or time is refused as missing). `google.protobuf.Timestamp`
//! serves as an event time; the wrapper types (`google.protobuf.DoubleValue` …) read as their
//! value, or null when unset.

use std::borrow::Cow;
use std::collections::HashMap;

use nowcast_core::RejectReason;
use prost_reflect::{DescriptorPool, FieldDescriptor, FileDescriptor, Kind, MessageDescriptor};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};

use crate::value::{Needs, Use, Val};
use crate::wire::read_varint;
use crate::DecodeError;

/// A compiled Protobuf schema: the file a registry schema (or a local `.proto`) declares,
/// with its imports.
#[derive(Debug, Clone)]
pub struct ProtoSchema {
    file: FileDescriptor,
}

struct Sources(HashMap<String, String>);

impl FileResolver for Sources {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match self.0.get(name) {
            Some(text) => File::from_source(name, text),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

impl ProtoSchema {
    /// Compiles `text` (file name `name`) with `imports` (file name → text; the
    /// `google/protobuf/*` well-known types are built in).
    pub fn compile(
        name: &str,
        text: &str,
        imports: &HashMap<String, String>,
    ) -> Result<ProtoSchema, String> {
        let mut files = imports.clone();
        files.insert(name.to_string(), text.to_string());
        let mut chain = ChainFileResolver::new();
        chain.add(Sources(files));
        chain.add(GoogleFileResolver::new());
        let mut compiler = protox::Compiler::with_file_resolver(chain);
        compiler.include_imports(true);
        compiler.open_file(name).map_err(|e| e.to_string())?;
        let pool: DescriptorPool = compiler.descriptor_pool();
        let file = pool
            .get_file_by_name(name)
            .ok_or_else(|| format!("the compiled pool lacks `{name}`"))?;
        Ok(ProtoSchema { file })
    }

    /// Compiles a local `.proto` file; imports resolve against its directory (and the
    /// built-in well-known types).
    pub fn from_file(path: &std::path::Path) -> Result<ProtoSchema, String> {
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("{} has no usable file name", path.display()))?;
        let mut chain = ChainFileResolver::new();
        chain.add(protox::file::IncludeFileResolver::new(dir.to_path_buf()));
        chain.add(GoogleFileResolver::new());
        let mut compiler = protox::Compiler::with_file_resolver(chain);
        compiler.include_imports(true);
        compiler.open_file(name).map_err(|e| e.to_string())?;
        let file = compiler
            .descriptor_pool()
            .get_file_by_name(name)
            .ok_or_else(|| format!("the compiled pool lacks `{name}`"))?;
        Ok(ProtoSchema { file })
    }

    /// The message a Confluent message-index path names: the first index picks a top-level
    /// message in declaration order, each further one a nested message of the previous.
    pub fn message_at(&self, path: &[usize]) -> Result<MessageDescriptor, DecodeError> {
        let bad = |detail: String| DecodeError::new(RejectReason::BadMessageIndex, detail);
        let (&first, rest) = path
            .split_first()
            .ok_or_else(|| bad("the message-index list is empty".into()))?;
        let mut msg = self.file.messages().nth(first).ok_or_else(|| {
            bad(format!(
                "message index {first} is out of range: `{}` declares {} top-level messages",
                self.file.name(),
                self.file.messages().len()
            ))
        })?;
        for &i in rest {
            let next = msg.child_messages().nth(i).ok_or_else(|| {
                bad(format!(
                    "nested message index {i} is out of range: `{}` declares {} nested messages",
                    msg.full_name(),
                    msg.child_messages().len()
                ))
            })?;
            msg = next;
        }
        Ok(msg)
    }

    /// The message named `full_name` (e.g. `shop.v1.Transaction`), for local schemas.
    pub fn message_named(&self, full_name: &str) -> Option<MessageDescriptor> {
        self.file.parent_pool().get_message_by_name(full_name)
    }

    /// The message-index path of `msg` in this file (for writing the wire format).
    pub fn path_of(&self, msg: &MessageDescriptor) -> Option<Vec<usize>> {
        fn find(list: Vec<MessageDescriptor>, target: &str, path: &mut Vec<usize>) -> bool {
            for (i, m) in list.into_iter().enumerate() {
                path.push(i);
                if m.full_name() == target || find(m.child_messages().collect(), target, path) {
                    return true;
                }
                path.pop();
            }
            false
        }
        let mut path = Vec::new();
        find(self.file.messages().collect(), msg.full_name(), &mut path).then_some(path)
    }
}

/// How a needed field is read.
#[derive(Debug, Clone)]
enum Read {
    /// varint as signed 64 (int64, uint64 within i64, enums without names).
    Varint,
    /// varint as int32 (sign-extended 10-byte negatives fold back).
    Int32,
    /// varint as uint64 (may exceed i64: read as a float then).
    Uint64,
    Zigzag,
    Bool,
    Fixed32 {
        signed: bool,
    },
    Fixed64 {
        signed: bool,
    },
    Float,
    Double,
    Str,
    Enum(HashMap<i32, String>),
    Timestamp,
    /// A wrapper message: field 1 read as the inner kind.
    Wrapper(Box<Read>),
}

impl Read {
    fn wire_type(&self) -> u8 {
        match self {
            Read::Varint
            | Read::Int32
            | Read::Uint64
            | Read::Zigzag
            | Read::Bool
            | Read::Enum(_) => 0,
            Read::Fixed64 { .. } | Read::Double => 1,
            Read::Str | Read::Timestamp | Read::Wrapper(_) => 2,
            Read::Fixed32 { .. } | Read::Float => 5,
        }
    }
}

#[derive(Debug, Clone)]
struct FieldRead {
    number: u32,
    slot: usize,
    read: Read,
    name: String,
}

/// A compiled reader for one writer message.
#[derive(Debug, Clone)]
pub struct ProtoReader {
    fields: Vec<FieldRead>,
    /// Values for fields without presence, written before each record is read: the slot,
    /// and the default (an enum's first value borrows its name from `enum_defaults`).
    defaults: Vec<(usize, Val<'static>)>,
    /// Enum fields without presence: (slot, the name of the enum's value 0).
    enum_defaults: Vec<(usize, String)>,
}

fn kind_name(f: &FieldDescriptor) -> String {
    let base = match f.kind() {
        Kind::Message(m) => format!("message `{}`", m.full_name()),
        Kind::Enum(e) => format!("enum `{}`", e.full_name()),
        k => format!("{k:?}").to_lowercase(),
    };
    if f.is_map() {
        "a map".into()
    } else if f.is_list() {
        format!("repeated {base}")
    } else {
        base
    }
}

fn read_for(f: &FieldDescriptor, usage: Use) -> Option<Read> {
    if f.is_list() || f.is_map() {
        return None;
    }
    let number_ok = matches!(usage, Use::Number | Use::Scalar);
    Some(match f.kind() {
        Kind::Int64 | Kind::Uint32 => Read::Varint,
        Kind::Int32 => Read::Int32,
        Kind::Uint64 => Read::Uint64,
        Kind::Sint32 | Kind::Sint64 => Read::Zigzag,
        Kind::Fixed32 => Read::Fixed32 { signed: false },
        Kind::Sfixed32 => Read::Fixed32 { signed: true },
        Kind::Fixed64 => Read::Fixed64 { signed: false },
        Kind::Sfixed64 => Read::Fixed64 { signed: true },
        Kind::Float if number_ok => Read::Float,
        Kind::Double if number_ok => Read::Double,
        Kind::Bool if usage == Use::Scalar => Read::Bool,
        Kind::String if usage != Use::Number => Read::Str,
        Kind::Enum(e) if matches!(usage, Use::Key | Use::Scalar) => Read::Enum(
            e.values()
                .map(|v| (v.number(), v.name().to_string()))
                .collect(),
        ),
        Kind::Message(m) if m.full_name() == "google.protobuf.Timestamp" && usage == Use::Time => {
            Read::Timestamp
        }
        Kind::Message(m) => {
            let inner = match m.full_name() {
                "google.protobuf.DoubleValue" if number_ok => Read::Double,
                "google.protobuf.FloatValue" if number_ok => Read::Float,
                "google.protobuf.Int64Value" => Read::Varint,
                "google.protobuf.UInt64Value" => Read::Uint64,
                "google.protobuf.Int32Value" => Read::Int32,
                "google.protobuf.UInt32Value" => Read::Varint,
                "google.protobuf.StringValue" if usage != Use::Number => Read::Str,
                "google.protobuf.BoolValue" if usage == Use::Scalar => Read::Bool,
                _ => return None,
            };
            Read::Wrapper(Box::new(inner))
        }
        _ => return None,
    })
}

fn default_for(f: &FieldDescriptor, read: &Read) -> Option<Val<'static>> {
    if f.supports_presence() {
        return None; // unset reads as absent
    }
    Some(match read {
        Read::Varint
        | Read::Int32
        | Read::Uint64
        | Read::Zigzag
        | Read::Fixed32 { .. }
        | Read::Fixed64 { .. } => Val::Int(0),
        Read::Float | Read::Double => Val::Num(0.0),
        Read::Bool => Val::Bool(false),
        Read::Str => Val::Str(Cow::Borrowed("")),
        Read::Enum(names) => match names.get(&0) {
            Some(_) => return None, // borrowed from the reader at read time
            None => Val::Int(0),
        },
        Read::Timestamp | Read::Wrapper(_) => return None,
    })
}

impl ProtoReader {
    /// Compiles the reader of `msg` records for `needs`. Errors carry the dead-letter reason
    /// every record of this writer message gets.
    pub fn compile(msg: &MessageDescriptor, needs: &Needs) -> Result<ProtoReader, DecodeError> {
        let mut fields = Vec::new();
        let mut defaults = Vec::new();
        let mut enum_defaults = Vec::new();
        for (slot, need) in needs.0.iter().enumerate() {
            let Some(f) = msg.get_field_by_name(&need.name) else {
                if need.required {
                    return Err(DecodeError::new(
                        RejectReason::MissingField,
                        format!(
                            "the writer message `{}` lacks field `{}`",
                            msg.full_name(),
                            need.name
                        ),
                    ));
                }
                continue;
            };
            let read = read_for(&f, need.usage).ok_or_else(|| {
                DecodeError::new(
                    RejectReason::TypeMismatch,
                    format!(
                        "field `{}` of `{}` is {}; nowcast reads it as {}",
                        need.name,
                        msg.full_name(),
                        kind_name(&f),
                        need.usage.wants()
                    ),
                )
            })?;
            if !matches!(need.usage, Use::Key | Use::Time) {
                if let Some(d) = default_for(&f, &read) {
                    defaults.push((slot, d));
                } else if let (false, Read::Enum(names)) = (f.supports_presence(), &read) {
                    if let Some(first) = names.get(&0) {
                        enum_defaults.push((slot, first.clone()));
                    }
                }
            }
            fields.push(FieldRead {
                number: f.number(),
                slot,
                read,
                name: need.name.clone(),
            });
        }
        fields.sort_by_key(|f| f.number);
        Ok(ProtoReader {
            fields,
            defaults,
            enum_defaults,
        })
    }

    /// Decodes one message payload into `vals`. Unknown fields are skipped; a needed field
    /// on the wire with another wire type than its schema declares is refused.
    pub fn read<'a>(&'a self, payload: &'a [u8], vals: &mut [Val<'a>]) -> Result<(), DecodeError> {
        for (slot, v) in &self.defaults {
            vals[*slot] = v.clone();
        }
        for (slot, name) in &self.enum_defaults {
            vals[*slot] = Val::Str(Cow::Borrowed(name));
        }
        let mut buf = payload;
        while !buf.is_empty() {
            let tag = read_varint(&mut buf).ok_or_else(|| DecodeError::corrupt("truncated tag"))?;
            let number = tag >> 3;
            let wire = (tag & 7) as u8;
            if number == 0 || number > u64::from(u32::MAX >> 3) {
                return Err(DecodeError::corrupt(format!(
                    "field number {number} is invalid"
                )));
            }
            match self.fields.iter().find(|f| u64::from(f.number) == number) {
                Some(f) => {
                    if wire != f.read.wire_type() {
                        return Err(DecodeError::corrupt(format!(
                            "field `{}` (number {number}) has wire type {wire}; its schema declares wire type {}",
                            f.name,
                            f.read.wire_type()
                        )));
                    }
                    vals[f.slot] = read_value(&mut buf, &f.read)?;
                }
                None => skip_field(&mut buf, wire)?,
            }
        }
        Ok(())
    }
}

fn truncated() -> DecodeError {
    DecodeError::corrupt("the payload is truncated")
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], DecodeError> {
    if buf.len() < n {
        return Err(truncated());
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

fn varint(buf: &mut &[u8]) -> Result<u64, DecodeError> {
    read_varint(buf).ok_or_else(|| DecodeError::corrupt("truncated or overlong varint"))
}

fn length_delimited<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], DecodeError> {
    let n = varint(buf)?;
    let n = usize::try_from(n).map_err(|_| truncated())?;
    take(buf, n)
}

fn skip_field(buf: &mut &[u8], wire: u8) -> Result<(), DecodeError> {
    match wire {
        0 => {
            varint(buf)?;
        }
        1 => {
            take(buf, 8)?;
        }
        2 => {
            length_delimited(buf)?;
        }
        5 => {
            take(buf, 4)?;
        }
        3 | 4 => {
            return Err(DecodeError::corrupt(
                "group wire types (3, 4) are not supported",
            ))
        }
        w => {
            return Err(DecodeError::corrupt(format!(
                "wire type {w} does not exist"
            )))
        }
    }
    Ok(())
}

fn read_value<'a>(buf: &mut &'a [u8], read: &'a Read) -> Result<Val<'a>, DecodeError> {
    Ok(match read {
        Read::Varint => Val::Int(varint(buf)? as i64),
        Read::Int32 => Val::Int(varint(buf)? as i32 as i64),
        Read::Uint64 => {
            let v = varint(buf)?;
            i64::try_from(v).map(Val::Int).unwrap_or(Val::Num(v as f64))
        }
        Read::Zigzag => {
            let v = varint(buf)?;
            Val::Int(((v >> 1) as i64) ^ -((v & 1) as i64))
        }
        Read::Bool => Val::Bool(varint(buf)? != 0),
        Read::Fixed32 { signed } => {
            let b: [u8; 4] = take(buf, 4)?.try_into().expect("4 bytes");
            Val::Int(if *signed {
                i32::from_le_bytes(b) as i64
            } else {
                u32::from_le_bytes(b) as i64
            })
        }
        Read::Fixed64 { signed } => {
            let b: [u8; 8] = take(buf, 8)?.try_into().expect("8 bytes");
            if *signed {
                Val::Int(i64::from_le_bytes(b))
            } else {
                let v = u64::from_le_bytes(b);
                i64::try_from(v).map(Val::Int).unwrap_or(Val::Num(v as f64))
            }
        }
        Read::Float => Val::Num(f32::from_le_bytes(take(buf, 4)?.try_into().expect("4")) as f64),
        Read::Double => Val::Num(f64::from_le_bytes(take(buf, 8)?.try_into().expect("8"))),
        Read::Str => Val::Str(Cow::Borrowed(
            std::str::from_utf8(length_delimited(buf)?)
                .map_err(|e| DecodeError::corrupt(format!("a string is not valid UTF-8: {e}")))?,
        )),
        Read::Enum(names) => {
            let n = varint(buf)? as i32;
            match names.get(&n) {
                Some(s) => Val::Str(Cow::Borrowed(s)),
                None => Val::Int(n as i64),
            }
        }
        Read::Timestamp => {
            let mut inner = length_delimited(buf)?;
            let (mut secs, mut nanos) = (0i64, 0i64);
            while !inner.is_empty() {
                let tag = varint(&mut inner)?;
                match (tag >> 3, tag & 7) {
                    (1, 0) => secs = varint(&mut inner)? as i64,
                    (2, 0) => nanos = varint(&mut inner)? as i32 as i64,
                    (_, w) => skip_field(&mut inner, w as u8)?,
                }
            }
            Val::Int(
                secs.saturating_mul(1000)
                    .saturating_add(nanos.div_euclid(1_000_000)),
            )
        }
        Read::Wrapper(inner_read) => {
            let mut inner = length_delimited(buf)?;
            let mut v = match default_wrapped(inner_read) {
                Some(d) => d,
                None => Val::Null,
            };
            while !inner.is_empty() {
                let tag = varint(&mut inner)?;
                let (num, wire) = (tag >> 3, (tag & 7) as u8);
                if num == 1 && wire == inner_read.wire_type() {
                    v = read_value(&mut inner, inner_read)?;
                } else {
                    skip_field(&mut inner, wire)?;
                }
            }
            v
        }
    })
}

/// A present wrapper whose value field is omitted holds the default value.
fn default_wrapped(read: &Read) -> Option<Val<'static>> {
    Some(match read {
        Read::Float | Read::Double => Val::Num(0.0),
        Read::Bool => Val::Bool(false),
        Read::Str => Val::Str(Cow::Borrowed("")),
        _ => Val::Int(0),
    })
}
