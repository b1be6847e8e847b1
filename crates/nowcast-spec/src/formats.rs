//! Source formats (`format`, `schema`, `message`, `framing`, `subject`, `on_registry_error` in
//! `[[sources]]`) and the schema registry (`[registry]`).

use std::path::PathBuf;

use nowcast_core::Millis;
use serde::Deserialize;

use crate::raw::SourceSection;
use crate::validate::Validator;

/// `[registry]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySection {
    /// Base URL of a Confluent-compatible API (for Apicurio: `…/apis/ccompat/v7`). Optional:
    /// `NOWCAST_REGISTRY` may give it.
    #[serde(default)]
    pub url: Option<String>,
    /// Basic-auth user.
    #[serde(default)]
    pub username: Option<String>,
    /// Name of the environment variable holding the basic-auth password (never the password).
    #[serde(default)]
    pub password_env: Option<String>,
    /// PEM file of CA certificates to trust (relative to the spec file).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Skip TLS verification (tests only). Default false.
    #[serde(default)]
    pub insecure_skip_verify: Option<bool>,
    /// Timeout of one request. Default `5s`.
    #[serde(default, deserialize_with = "crate::raw::opt_duration")]
    pub timeout: Option<String>,
    /// Retries after a failed request (unreachable, 5xx). Default 4.
    #[serde(default)]
    pub retries: Option<u32>,
    /// First pause between retries, doubling. Default `200ms`.
    #[serde(default, deserialize_with = "crate::raw::opt_duration")]
    pub backoff: Option<String>,
    /// Subject naming: `topic` (`<topic>-value`, default), `record` (`<record full name>`) or
    /// `topic_record` (`<topic>-<record full name>`).
    #[serde(default)]
    pub subject_strategy: Option<String>,
}

/// How subjects are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectStrategy {
    /// `<topic>-value`.
    Topic,
    /// `<record full name>`.
    Record,
    /// `<topic>-<record full name>`.
    TopicRecord,
}

impl SubjectStrategy {
    /// The subject of values of `record` written to `topic`.
    pub fn subject(self, topic: &str, record: &str) -> String {
        match self {
            SubjectStrategy::Topic => format!("{topic}-value"),
            SubjectStrategy::Record => record.to_string(),
            SubjectStrategy::TopicRecord => format!("{topic}-{record}"),
        }
    }
}

/// The validated registry settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistrySpec {
    /// Base URL; `None` means `NOWCAST_REGISTRY` at run time.
    pub url: Option<String>,
    /// Basic-auth user.
    pub username: Option<String>,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
    /// CA file, resolved against the spec's directory.
    pub ca_file: Option<PathBuf>,
    /// Skip TLS verification.
    pub insecure_skip_verify: bool,
    /// Request timeout.
    pub timeout: Millis,
    /// Retries.
    pub retries: u32,
    /// First backoff.
    pub backoff: Millis,
    /// Subject naming.
    pub subject_strategy: SubjectStrategy,
}

/// How a source's records are encoded.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceFormat {
    /// JSON objects.
    Json,
    /// Avro or Protobuf, described by a schema.
    Schema(SchemaFormat),
}

/// Binary format of a schema-described source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryFormat {
    /// Apache Avro.
    Avro,
    /// Protocol Buffers.
    Protobuf,
}

/// Framing of binary records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Confluent wire format (magic byte, schema id): writer schemas come from the registry.
    Confluent,
    /// The payload alone, written with the local schema.
    Bare,
}

/// What a registry outage does to a record whose schema is not cached yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryPolicy {
    /// Stop processing; nothing past the record is committed (default).
    Stop,
    /// Dead-letter the record (`registry_unavailable`) and continue.
    DeadLetter,
}

/// A schema-described source's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaFormat {
    /// Avro or Protobuf.
    pub format: BinaryFormat,
    /// Framing.
    pub framing: Framing,
    /// Local schema file (`.avsc` or `.proto`), resolved against the spec's directory: the
    /// writer schema under bare framing; an Avro reader schema under Confluent framing.
    pub schema_file: Option<PathBuf>,
    /// Protobuf message full name (bare framing).
    pub message: Option<String>,
    /// The registry subject holding the source's schemas (for `validate`), when named.
    pub subject: Option<String>,
    /// Registry-outage policy.
    pub on_registry_error: RegistryPolicy,
}

impl Validator {
    pub(crate) fn registry(&mut self, r: &RegistrySection, dir: &std::path::Path) -> RegistrySpec {
        if let Some(url) = &r.url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                self.push(
                    "registry.url",
                    format!("`{url}` is not an http(s) URL"),
                    "write `http://host:port` (for Apicurio add `/apis/ccompat/v7`)",
                );
            }
        }
        if r.password_env.is_some() && r.username.is_none() {
            self.push(
                "registry.password_env",
                "a password without a username",
                "set `username` too",
            );
        }
        let subject_strategy = match r.subject_strategy.as_deref() {
            None | Some("topic") => SubjectStrategy::Topic,
            Some("record") => SubjectStrategy::Record,
            Some("topic_record") => SubjectStrategy::TopicRecord,
            Some(other) => {
                self.push(
                    "registry.subject_strategy",
                    format!("unknown subject strategy `{other}`"),
                    "use `topic`, `record` or `topic_record`",
                );
                SubjectStrategy::Topic
            }
        };
        RegistrySpec {
            url: r.url.clone(),
            username: r.username.clone(),
            password_env: r.password_env.clone(),
            ca_file: r.ca_file.as_deref().map(|p| dir.join(p)),
            insecure_skip_verify: r.insecure_skip_verify.unwrap_or(false),
            timeout: self.duration("registry.timeout".into(), r.timeout.as_deref(), 5_000, true),
            retries: r.retries.unwrap_or(4),
            backoff: self.duration("registry.backoff".into(), r.backoff.as_deref(), 200, true),
            subject_strategy,
        }
    }

    /// The format of source `s` (at `p`, e.g. `sources[0]`).
    pub(crate) fn source_format(
        &mut self,
        p: &str,
        s: &SourceSection,
        has_registry: bool,
        dir: &std::path::Path,
    ) -> SourceFormat {
        let format = match s.format.as_deref() {
            None | Some("json") => None,
            Some("avro") => Some(BinaryFormat::Avro),
            Some("protobuf") => Some(BinaryFormat::Protobuf),
            Some(other) => {
                self.push(
                    format!("{p}.format"),
                    format!("unknown format `{other}`"),
                    "use `json`, `avro` or `protobuf`",
                );
                None
            }
        };
        let Some(format) = format else {
            for (key, set) in [
                ("schema", s.schema.is_some()),
                ("message", s.message.is_some()),
                ("framing", s.framing.is_some()),
                ("subject", s.subject.is_some()),
                ("on_registry_error", s.on_registry_error.is_some()),
            ] {
                if set && matches!(s.format.as_deref(), None | Some("json")) {
                    self.push(
                        format!("{p}.{key}"),
                        format!("`{key}` applies to Avro and Protobuf sources only"),
                        "remove it, or set `format = \"avro\"` or `\"protobuf\"`",
                    );
                }
            }
            return SourceFormat::Json;
        };
        let framing = match s.framing.as_deref() {
            None if has_registry => Framing::Confluent,
            None => Framing::Bare,
            Some("confluent") => Framing::Confluent,
            Some("bare") => Framing::Bare,
            Some(other) => {
                self.push(
                    format!("{p}.framing"),
                    format!("unknown framing `{other}`"),
                    "use `confluent` (magic byte and schema id) or `bare` (payload only)",
                );
                Framing::Bare
            }
        };
        if framing == Framing::Confluent && !has_registry {
            self.push(
                format!("{p}.framing"),
                "the Confluent framing needs a schema registry to resolve schema ids",
                "add a `[registry]` section, or use `framing = \"bare\"` with a local `schema`",
            );
        }
        let schema_file = s.schema.as_deref().map(|f| dir.join(f));
        let ext = match format {
            BinaryFormat::Avro => "avsc",
            BinaryFormat::Protobuf => "proto",
        };
        match &schema_file {
            None if framing == Framing::Bare => self.push(
                format!("{p}.schema"),
                "a bare source needs its schema",
                format!("set `schema = \"path/to/file.{ext}\"` (relative to the spec file)"),
            ),
            Some(f) if !f.is_file() => self.push(
                format!("{p}.schema"),
                format!("schema file {} does not exist", f.display()),
                format!("point `schema` at a .{ext} file, relative to the spec file"),
            ),
            Some(_) if format == BinaryFormat::Protobuf && framing == Framing::Confluent => self
                .push(
                format!("{p}.schema"),
                "a Protobuf source in the Confluent framing reads its schemas from the registry",
                "remove `schema` (or use `framing = \"bare\"`)",
            ),
            _ => {}
        }
        if format == BinaryFormat::Protobuf && framing == Framing::Bare && s.message.is_none() {
            self.push(
                format!("{p}.message"),
                "a bare Protobuf source must name its message",
                "set `message = \"package.Message\"`",
            );
        }
        if s.message.is_some() && (format == BinaryFormat::Avro || framing == Framing::Confluent) {
            self.push(
                format!("{p}.message"),
                "`message` names the Protobuf message of a bare source; the Confluent framing carries it in each record",
                "remove `message`",
            );
        }
        let on_registry_error = match s.on_registry_error.as_deref() {
            None | Some("stop") => RegistryPolicy::Stop,
            Some("dead_letter") => RegistryPolicy::DeadLetter,
            Some(other) => {
                self.push(
                    format!("{p}.on_registry_error"),
                    format!("unknown policy `{other}`"),
                    "use `stop` (default: nothing is committed past the record) or `dead_letter`",
                );
                RegistryPolicy::Stop
            }
        };
        SourceFormat::Schema(SchemaFormat {
            format,
            framing,
            schema_file,
            message: s.message.clone(),
            subject: s.subject.clone(),
            on_registry_error,
        })
    }
}
