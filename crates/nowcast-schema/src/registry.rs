//! A client for the Confluent schema-registry REST API (also served by Apicurio Registry at
//! `/apis/ccompat/v7`): schemas by id, subjects and versions, registration and compatibility
//! checks, with basic auth, TLS options, timeouts and retries with backoff.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::SchemaError;

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// How to reach a registry.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryConfig {
    /// Base URL, e.g. `http://127.0.0.1:8081` or `http://host/apis/ccompat/v7`.
    pub url: String,
    /// Basic-auth user.
    pub username: Option<String>,
    /// Basic-auth password.
    pub password: Option<String>,
    /// PEM file of the CA certificates to trust instead of the built-in web roots.
    pub ca_file: Option<PathBuf>,
    /// Skip TLS certificate verification (tests only).
    pub insecure_skip_verify: bool,
    /// Timeout of one request, connection included.
    pub timeout: Duration,
    /// Attempts after the first when the registry is unreachable or answers 5xx/429.
    pub retries: u32,
    /// First pause between attempts; doubles each time, capped at 5 s.
    pub backoff: Duration,
}

impl RegistryConfig {
    /// Settings for `url` with the defaults: 5 s timeout, 4 retries from 200 ms.
    pub fn new(url: impl Into<String>) -> RegistryConfig {
        RegistryConfig {
            url: url.into(),
            username: None,
            password: None,
            ca_file: None,
            insecure_skip_verify: false,
            timeout: Duration::from_secs(5),
            retries: 4,
            backoff: Duration::from_millis(200),
        }
    }
}

/// A schema's format as the registry names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SchemaType {
    /// Avro (the registry's default when `schemaType` is absent).
    Avro,
    /// Protobuf.
    Protobuf,
    /// JSON Schema.
    Json,
}

impl SchemaType {
    /// The name the registry uses.
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Protobuf => "PROTOBUF",
            SchemaType::Json => "JSON",
        }
    }
}

/// A reference from one schema to another (a Protobuf import).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    /// The import name (the file name a Protobuf schema imports).
    pub name: String,
    /// Subject of the referenced schema.
    pub subject: String,
    /// Its version.
    pub version: i64,
}

/// A schema as the registry returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// Global id, when known.
    pub id: Option<u32>,
    /// Subject and version, when asked by subject.
    pub version: Option<i64>,
    /// Format.
    pub schema_type: SchemaType,
    /// Schema text.
    pub schema: String,
    /// Referenced schemas.
    pub references: Vec<Reference>,
}

#[derive(Deserialize)]
struct Wire {
    #[serde(default)]
    id: Option<u32>,
    #[serde(default)]
    version: Option<i64>,
    #[serde(default, rename = "schemaType")]
    schema_type: Option<SchemaType>,
    schema: String,
    #[serde(default)]
    references: Vec<Reference>,
}

impl From<Wire> for Registered {
    fn from(w: Wire) -> Registered {
        Registered {
            id: w.id,
            version: w.version,
            schema_type: w.schema_type.unwrap_or(SchemaType::Avro),
            schema: w.schema,
            references: w.references,
        }
    }
}

/// A registry client. Cheap to share behind an `Arc`; calls block.
pub struct Registry {
    base: String,
    agent: ureq::Agent,
    auth: Option<String>,
    retries: u32,
    backoff: Duration,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("url", &self.base).finish()
    }
}

enum Outcome {
    Ok(String),
    Status(u16, String),
}

fn url_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The registry's error body: `{"error_code": 40403, "message": "..."}`.
fn error_message(body: &str) -> String {
    #[derive(Deserialize)]
    struct E {
        #[serde(default)]
        error_code: Option<i64>,
        #[serde(default)]
        message: Option<String>,
    }
    match serde_json::from_str::<E>(body) {
        Ok(E {
            error_code,
            message: Some(m),
        }) => match error_code {
            Some(c) => format!("{m} (error code {c})"),
            None => m,
        },
        _ => body.chars().take(300).collect(),
    }
}

impl Registry {
    /// A client for `config`. Fails only on unusable TLS settings.
    pub fn new(config: &RegistryConfig) -> Result<Registry, SchemaError> {
        use ureq::tls::{RootCerts, TlsConfig};
        let mut tls = TlsConfig::builder().disable_verification(config.insecure_skip_verify);
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                SchemaError::Config(format!("cannot read ca_file {}: {e}", path.display()))
            })?;
            let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c.to_owned())),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<_, _>>()
                .map_err(|e| {
                    SchemaError::Config(format!("ca_file {} is not PEM: {e}", path.display()))
                })?;
            if certs.is_empty() {
                return Err(SchemaError::Config(format!(
                    "ca_file {} holds no certificate",
                    path.display()
                )));
            }
            tls = tls.root_certs(RootCerts::new_with_certs(&certs));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .tls_config(tls.build())
            .build()
            .into();
        let auth = config.username.as_ref().map(|u| {
            use base64::Engine;
            let pair = format!("{u}:{}", config.password.as_deref().unwrap_or(""));
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        });
        Ok(Registry {
            base: config.url.trim_end_matches('/').to_string(),
            agent,
            auth,
            retries: config.retries,
            backoff: config.backoff,
        })
    }

    /// The base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn call(&self, method: &str, path: &str, body: Option<&str>) -> Result<Outcome, SchemaError> {
        let url = format!("{}{}", self.base, path);
        let mut pause = self.backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = match (method, body) {
                ("GET", _) => {
                    let mut r = self.agent.get(&url).header("Accept", CONTENT_TYPE);
                    if let Some(a) = &self.auth {
                        r = r.header("Authorization", a);
                    }
                    r.call()
                }
                (m, body) => {
                    let mut r = match m {
                        "PUT" => self.agent.put(&url),
                        _ => self.agent.post(&url),
                    }
                    .header("Accept", CONTENT_TYPE)
                    .header("Content-Type", CONTENT_TYPE);
                    if let Some(a) = &self.auth {
                        r = r.header("Authorization", a);
                    }
                    r.send(body.unwrap_or("{}"))
                }
            };
            let retryable = match result {
                Ok(mut resp) => {
                    let status = resp.status().as_u16();
                    let text = resp.body_mut().read_to_string().unwrap_or_default();
                    if (200..300).contains(&status) {
                        return Ok(Outcome::Ok(text));
                    }
                    if status >= 500 || status == 429 {
                        format!("HTTP {status}: {}", error_message(&text))
                    } else {
                        return Ok(Outcome::Status(status, text));
                    }
                }
                Err(e) => e.to_string(),
            };
            if attempt > self.retries {
                return Err(SchemaError::Unavailable {
                    url: url.clone(),
                    attempts: attempt,
                    detail: retryable,
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }

    fn get_json<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        what: &str,
    ) -> Result<T, SchemaError> {
        match self.call("GET", path, None)? {
            Outcome::Ok(text) => serde_json::from_str(&text).map_err(|e| SchemaError::Refused {
                url: self.base.clone(),
                what: what.into(),
                status: 200,
                detail: format!(
                    "unexpected answer ({e}): {}",
                    text.chars().take(200).collect::<String>()
                ),
            }),
            Outcome::Status(404, _) => Err(SchemaError::NotFound {
                url: self.base.clone(),
                what: what.into(),
            }),
            Outcome::Status(status, text) => Err(SchemaError::Refused {
                url: self.base.clone(),
                what: what.into(),
                status,
                detail: error_message(&text),
            }),
        }
    }

    /// The schema with global id `id`.
    pub fn schema_by_id(&self, id: u32) -> Result<Registered, SchemaError> {
        let w: Wire = self.get_json(&format!("/schemas/ids/{id}"), &format!("schema id {id}"))?;
        let mut r = Registered::from(w);
        r.id = Some(id);
        Ok(r)
    }

    /// Version `version` (a number or `latest`) of `subject`.
    pub fn version(&self, subject: &str, version: &str) -> Result<Registered, SchemaError> {
        let w: Wire = self.get_json(
            &format!(
                "/subjects/{}/versions/{}",
                url_escape(subject),
                url_escape(version)
            ),
            &format!("subject `{subject}` version {version}"),
        )?;
        Ok(w.into())
    }

    /// The subjects.
    pub fn subjects(&self) -> Result<Vec<String>, SchemaError> {
        self.get_json("/subjects", "the subject list")
    }

    /// Registers `schema` under `subject` (or finds it registered) and returns its id.
    pub fn register(
        &self,
        subject: &str,
        schema_type: SchemaType,
        schema: &str,
        references: &[Reference],
    ) -> Result<u32, SchemaError> {
        #[derive(Deserialize)]
        struct Id {
            id: u32,
        }
        let body = serde_json::json!({
            "schema": schema,
            "schemaType": schema_type.as_str(),
            "references": references,
        })
        .to_string();
        let what = format!("registering a schema under `{subject}`");
        match self.call(
            "POST",
            &format!("/subjects/{}/versions", url_escape(subject)),
            Some(&body),
        )? {
            Outcome::Ok(text) => serde_json::from_str::<Id>(&text)
                .map(|i| i.id)
                .map_err(|e| SchemaError::Refused {
                    url: self.base.clone(),
                    what,
                    status: 200,
                    detail: format!("unexpected answer ({e})"),
                }),
            Outcome::Status(status, text) => Err(SchemaError::Refused {
                url: self.base.clone(),
                what,
                status,
                detail: error_message(&text),
            }),
        }
    }

    /// Whether `schema` is compatible with the latest version of `subject` under the
    /// subject's compatibility level. A subject with no versions accepts anything.
    pub fn is_compatible(
        &self,
        subject: &str,
        schema_type: SchemaType,
        schema: &str,
        references: &[Reference],
    ) -> Result<bool, SchemaError> {
        #[derive(Deserialize)]
        struct Compat {
            is_compatible: bool,
        }
        let body = serde_json::json!({
            "schema": schema,
            "schemaType": schema_type.as_str(),
            "references": references,
        })
        .to_string();
        let what = format!("the compatibility check against `{subject}`");
        match self.call(
            "POST",
            &format!(
                "/compatibility/subjects/{}/versions/latest",
                url_escape(subject)
            ),
            Some(&body),
        )? {
            Outcome::Ok(text) => serde_json::from_str::<Compat>(&text)
                .map(|c| c.is_compatible)
                .map_err(|e| SchemaError::Refused {
                    url: self.base.clone(),
                    what,
                    status: 200,
                    detail: format!("unexpected answer ({e})"),
                }),
            Outcome::Status(404, _) => Ok(true),
            Outcome::Status(status, text) => Err(SchemaError::Refused {
                url: self.base.clone(),
                what,
                status,
                detail: error_message(&text),
            }),
        }
    }

    /// The compatibility level that applies to `subject`: its own, else the global one, else
    /// `None` (a registry may have none until one is set).
    pub fn compatibility(&self, subject: &str) -> Result<Option<String>, SchemaError> {
        #[derive(Deserialize)]
        struct Level {
            #[serde(alias = "compatibilityLevel", alias = "compatibility")]
            level: Option<String>,
        }
        // `defaultToGlobal`: Apicurio otherwise answers NONE for a subject without its own
        // level, whatever the global one is (Confluent accepts the parameter too).
        for path in [
            format!("/config/{}?defaultToGlobal=true", url_escape(subject)),
            "/config".into(),
        ] {
            match self.get_json::<Level>(&path, "the compatibility level") {
                Ok(Level { level: Some(l) }) => return Ok(Some(l)),
                Ok(Level { level: None }) | Err(SchemaError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Sets `subject`'s compatibility level (`BACKWARD`, `FULL`, …).
    pub fn set_compatibility(&self, subject: &str, level: &str) -> Result<(), SchemaError> {
        let body = serde_json::json!({ "compatibility": level }).to_string();
        match self.call(
            "PUT",
            &format!("/config/{}", url_escape(subject)),
            Some(&body),
        )? {
            Outcome::Ok(_) => Ok(()),
            Outcome::Status(status, text) => Err(SchemaError::Refused {
                url: self.base.clone(),
                what: format!("setting the compatibility of `{subject}`"),
                status,
                detail: error_message(&text),
            }),
        }
    }

    /// The texts of `refs` and of everything they reference in turn, by import name.
    pub fn reference_texts(
        &self,
        refs: &[Reference],
    ) -> Result<HashMap<String, String>, SchemaError> {
        let mut out = HashMap::new();
        let mut todo: Vec<Reference> = refs.to_vec();
        while let Some(r) = todo.pop() {
            if out.contains_key(&r.name) || out.len() > 256 {
                continue;
            }
            let s = self.version(&r.subject, &r.version.to_string())?;
            todo.extend(s.references.iter().cloned());
            out.insert(r.name, s.schema);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_escaped_in_paths() {
        assert_eq!(url_escape("a.b-value"), "a.b-value");
        assert_eq!(url_escape("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn error_bodies_are_read() {
        assert_eq!(
            error_message(r#"{"error_code":40403,"message":"Schema not found"}"#),
            "Schema not found (error code 40403)"
        );
        assert_eq!(error_message("plain"), "plain");
    }

    #[test]
    fn an_unreachable_registry_is_reported_after_the_retries() {
        let mut cfg = RegistryConfig::new("http://127.0.0.1:9");
        cfg.retries = 2;
        cfg.backoff = Duration::from_millis(1);
        cfg.timeout = Duration::from_millis(500);
        let err = Registry::new(&cfg).unwrap().schema_by_id(1).unwrap_err();
        match err {
            SchemaError::Unavailable { attempts, .. } => assert_eq!(attempts, 3),
            other => panic!("{other}"),
        }
    }
}
