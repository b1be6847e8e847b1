//! One source's schema-driven decoding: framing, writer-schema resolution (by registry id,
//! cached; or a local schema), and the compiled reader per writer schema.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apache_avro::Schema;
use arc_swap::ArcSwap;
use nowcast_core::RejectReason;
use parking_lot::Mutex;

use crate::avro::AvroReader;
use crate::proto::{ProtoReader, ProtoSchema};
use crate::registry::{Registry, SchemaType};
use crate::value::{Needs, Val};
use crate::wire::{read_message_indexes, skip_message_indexes, split};
use crate::{DecodeError, SchemaError};

/// A binary format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Apache Avro binary.
    Avro,
    /// Protocol Buffers.
    Protobuf,
}

impl Format {
    fn schema_type(self) -> SchemaType {
        match self {
            Format::Avro => SchemaType::Avro,
            Format::Protobuf => SchemaType::Protobuf,
        }
    }
}

/// What a record's bytes start with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// The Confluent wire format: magic byte, schema id (and Protobuf message indexes).
    Confluent,
    /// The payload alone, written with the source's local schema.
    Bare,
}

/// What to do with a record whose schema cannot be fetched because the registry is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRegistryError {
    /// Stop processing (nothing is committed past the record; it is read again on restart).
    Stop,
    /// Dead-letter the record with reason `registry_unavailable` and go on.
    DeadLetter,
}

/// A schema given locally (a file's text).
#[derive(Debug, Clone)]
pub enum LocalSchema {
    /// Avro schema JSON.
    Avro(Schema),
    /// A compiled `.proto` file and the message the records hold.
    Protobuf {
        /// The file.
        schema: ProtoSchema,
        /// The message's full name.
        message: String,
    },
}

/// A compiled reader for one writer schema (and, for Protobuf, one message).
#[derive(Debug)]
pub enum Compiled {
    /// Avro.
    Avro(AvroReader),
    /// Protobuf.
    Protobuf(ProtoReader),
}

impl Compiled {
    /// Reads `payload` into `vals`.
    pub fn read<'a>(&'a self, payload: &'a [u8], vals: &mut [Val<'a>]) -> Result<(), DecodeError> {
        match self {
            Compiled::Avro(r) => r.read(payload, vals),
            Compiled::Protobuf(r) => r.read(payload, vals),
        }
    }
}

type Reader = Arc<Result<Compiled, DecodeError>>;

/// A writer schema fetched by id: for Avro the compiled reader, for Protobuf the schema and
/// the readers compiled so far per message-index list (keyed by its bytes on the wire).
struct Entry {
    fetched: Instant,
    kind: EntryKind,
}

enum EntryKind {
    Ready(Reader),
    Proto {
        schema: ProtoSchema,
        by_path: ArcSwap<Vec<(Box<[u8]>, Reader)>>,
    },
}

/// How long an unknown schema id is remembered as unknown before the registry is asked again.
const UNKNOWN_ID_TTL: Duration = Duration::from_secs(30);
/// How long, after the retries failed, records fail fast instead of retrying again
/// (`dead_letter` policy).
const UNAVAILABLE_TTL: Duration = Duration::from_secs(1);

/// Settings of a [`SchemaSource`].
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// The format.
    pub format: Format,
    /// The framing.
    pub framing: Framing,
    /// The local schema: the writer schema under `Bare` framing; under `Confluent` framing an
    /// optional Avro reader schema (defaults and aliases for fields writers lack).
    pub local: Option<LocalSchema>,
    /// Registry failure policy.
    pub on_registry_error: OnRegistryError,
}

/// Decodes one source's records to slot values.
pub struct SchemaSource {
    format: Format,
    needs: Needs,
    reader_schema: Option<Schema>,
    bare: Option<Reader>,
    registry: Option<Arc<Registry>>,
    policy: OnRegistryError,
    cache: ArcSwap<HashMap<u32, Arc<Entry>>>,
    fetch: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for SchemaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaSource")
            .field("format", &self.format)
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

/// A refusal that must stop processing rather than dead-letter the record.
#[derive(Debug, Clone)]
pub struct Stop(pub DecodeError);

impl SchemaSource {
    /// Builds the decoder. Under `Bare` framing the local schema is compiled now, so a schema
    /// that cannot feed `needs` is an error here (with the reason), not a stream of dead
    /// letters.
    pub fn new(
        config: SourceConfig,
        needs: Needs,
        registry: Option<Arc<Registry>>,
    ) -> Result<SchemaSource, SchemaError> {
        let origin = "the local schema".to_string();
        let unusable = |e: DecodeError| SchemaError::Unusable {
            origin: origin.clone(),
            reason: e.reason,
            detail: e.detail,
        };
        let mut bare = None;
        let mut reader_schema = None;
        match (&config.local, config.framing) {
            (Some(LocalSchema::Avro(s)), Framing::Bare) => {
                bare = Some(Arc::new(Ok(Compiled::Avro(
                    AvroReader::compile(s, None, &needs).map_err(unusable)?,
                ))));
            }
            (Some(LocalSchema::Protobuf { schema, message }), Framing::Bare) => {
                let msg = schema
                    .message_named(message)
                    .ok_or_else(|| SchemaError::Unusable {
                        origin: origin.clone(),
                        reason: RejectReason::BadSchema,
                        detail: format!("it declares no message `{message}`"),
                    })?;
                bare = Some(Arc::new(Ok(Compiled::Protobuf(
                    ProtoReader::compile(&msg, &needs).map_err(unusable)?,
                ))));
            }
            (None, Framing::Bare) => {
                return Err(SchemaError::Config(
                    "bare framing needs a local schema".into(),
                ))
            }
            (Some(LocalSchema::Avro(s)), Framing::Confluent) => reader_schema = Some(s.clone()),
            (_, Framing::Confluent) => {}
        }
        if config.framing == Framing::Confluent && registry.is_none() {
            return Err(SchemaError::Config(
                "the Confluent framing resolves schema ids in a registry: configure [registry]"
                    .into(),
            ));
        }
        Ok(SchemaSource {
            format: config.format,
            needs,
            reader_schema,
            bare,
            registry,
            policy: config.on_registry_error,
            cache: ArcSwap::from_pointee(HashMap::new()),
            fetch: Mutex::new(None),
        })
    }

    /// The format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Finds the reader for `bytes` and the payload it reads. `Err(Ok(_))` is a dead letter,
    /// `Err(Err(Stop))` must stop processing (the registry is down under the `stop` policy).
    /// A cached schema costs two lock-free lookups and no allocation.
    #[allow(clippy::type_complexity)]
    pub fn resolve<'b>(
        &self,
        bytes: &'b [u8],
    ) -> Result<(Reader, &'b [u8]), Result<DecodeError, Stop>> {
        if let Some(r) = &self.bare {
            return Ok((r.clone(), bytes));
        }
        let (header, mut rest) = split(bytes).map_err(Ok)?;
        let id = header.schema_id;
        let indexes = match self.format {
            Format::Protobuf => skip_message_indexes(&mut rest).map_err(Ok)?,
            Format::Avro => &[],
        };
        let entry = match self.cache.load().get(&id) {
            Some(e) if !self.expired(e) => e.clone(),
            _ => self.fetch(id)?,
        };
        let reader = match &entry.kind {
            EntryKind::Ready(r) => r.clone(),
            EntryKind::Proto { schema, by_path } => {
                match by_path.load().iter().find(|(k, _)| **k == *indexes) {
                    Some((_, r)) => r.clone(),
                    None => {
                        let mut path = Vec::new();
                        let compiled = read_message_indexes(&mut &indexes[..], &mut path)
                            .and_then(|()| schema.message_at(&path))
                            .and_then(|m| ProtoReader::compile(&m, &self.needs))
                            .map(Compiled::Protobuf)
                            .map_err(|e| with_id(e, id));
                        let r: Reader = Arc::new(compiled);
                        let added = (Box::<[u8]>::from(indexes), r.clone());
                        by_path.rcu(|v| {
                            let mut v = (**v).clone();
                            if v.len() < 64 {
                                v.push(added.clone());
                            }
                            v
                        });
                        r
                    }
                }
            }
        };
        Ok((reader, rest))
    }

    fn expired(&self, e: &Entry) -> bool {
        matches!(&e.kind, EntryKind::Ready(r) if matches!(&**r, Err(d) if d.reason == RejectReason::UnknownSchema))
            && e.fetched.elapsed() > UNKNOWN_ID_TTL
    }

    /// Fetches and compiles schema `id`, one fetch at a time.
    fn fetch(&self, id: u32) -> Result<Arc<Entry>, Result<DecodeError, Stop>> {
        let mut down_since = self.fetch.lock();
        if let Some(e) = self.cache.load().get(&id) {
            if !self.expired(e) {
                return Ok(e.clone()); // fetched while this thread waited
            }
        }
        let registry = self.registry.as_ref().expect("checked in new");
        if let Some(t) = *down_since {
            if t.elapsed() < UNAVAILABLE_TTL && self.policy == OnRegistryError::DeadLetter {
                return Err(Ok(DecodeError::new(
                    RejectReason::RegistryUnavailable,
                    format!(
                        "schema id {id}: the registry {} is unavailable",
                        registry.url()
                    ),
                )));
            }
        }
        let kind = match registry.schema_by_id(id) {
            Ok(reg) if reg.schema_type != self.format.schema_type() => {
                EntryKind::Ready(Arc::new(Err(DecodeError::new(
                    RejectReason::BadSchema,
                    format!(
                        "schema id {id} is a {} schema; the source reads {}",
                        reg.schema_type.as_str(),
                        self.format.schema_type().as_str()
                    ),
                ))))
            }
            Ok(reg) => match self.format {
                Format::Avro => EntryKind::Ready(Arc::new(
                    crate::avro::parse(&reg.schema)
                        .map_err(|e| {
                            DecodeError::new(
                                RejectReason::BadSchema,
                                format!("schema id {id} does not parse: {e}"),
                            )
                        })
                        .and_then(|w| {
                            AvroReader::compile(&w, self.reader_schema.as_ref(), &self.needs)
                        })
                        .map(Compiled::Avro)
                        .map_err(|e| with_id(e, id)),
                )),
                Format::Protobuf => {
                    let compiled = registry
                        .reference_texts(&reg.references)
                        .map_err(|e| DecodeError::new(e.reason(), e.to_string()))
                        .and_then(|imports| {
                            ProtoSchema::compile(
                                &format!("schema-{id}.proto"),
                                &reg.schema,
                                &imports,
                            )
                            .map_err(|e| {
                                DecodeError::new(
                                    RejectReason::BadSchema,
                                    format!("schema id {id} does not compile: {e}"),
                                )
                            })
                        });
                    match compiled {
                        Ok(schema) => EntryKind::Proto {
                            schema,
                            by_path: ArcSwap::from_pointee(Vec::new()),
                        },
                        Err(e) if e.reason == RejectReason::RegistryUnavailable => {
                            return Err(self.unavailable(&mut down_since, e))
                        }
                        Err(e) => EntryKind::Ready(Arc::new(Err(e))),
                    }
                }
            },
            Err(e @ SchemaError::NotFound { .. }) => {
                EntryKind::Ready(Arc::new(Err(DecodeError::new(
                    RejectReason::UnknownSchema,
                    format!("schema id {id} is not in the registry ({e})"),
                ))))
            }
            Err(e) => {
                let err = DecodeError::new(
                    RejectReason::RegistryUnavailable,
                    format!("schema id {id}: {e}"),
                );
                return Err(self.unavailable(&mut down_since, err));
            }
        };
        *down_since = None;
        let entry = Arc::new(Entry {
            fetched: Instant::now(),
            kind,
        });
        self.cache.rcu(|m| {
            let mut m = (**m).clone();
            m.insert(id, entry.clone());
            m
        });
        Ok(entry)
    }

    fn unavailable(
        &self,
        down_since: &mut Option<Instant>,
        e: DecodeError,
    ) -> Result<DecodeError, Stop> {
        *down_since = Some(Instant::now());
        match self.policy {
            OnRegistryError::DeadLetter => Ok(e),
            OnRegistryError::Stop => Err(Stop(e)),
        }
    }
}

fn with_id(e: DecodeError, id: u32) -> DecodeError {
    DecodeError::new(e.reason, format!("schema id {id}: {}", e.detail))
}
