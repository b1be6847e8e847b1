//! The crate's error type.

/// Everything that can go wrong talking to Kafka or processing from it.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// No bootstrap servers anywhere.
    #[error("no Kafka bootstrap servers: set `kafka.bootstrap` in {spec}, pass --bootstrap, or set NOWCAST_KAFKA")]
    NoBootstrap {
        /// The spec file.
        spec: String,
    },
    /// The spec has no `[kafka]` section.
    #[error("{spec} has no [kafka] section: add one (see examples/kafka/pipeline.toml)")]
    NotKafka {
        /// The spec file.
        spec: String,
    },
    /// librdkafka refuses a property given in the spec.
    #[error("{spec}: [{table}] \"{key}\" = \"{value}\": {reason}; fix: change or remove it (see https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md)")]
    Property {
        /// The spec file.
        spec: String,
        /// The table it is in (`kafka.properties`, `kafka.consumer`, `kafka.producer`).
        table: &'static str,
        /// The property.
        key: String,
        /// Its value.
        value: String,
        /// librdkafka's reason.
        reason: String,
    },
    /// A client call failed.
    #[error("{context}: {source}")]
    Client {
        /// What was being done.
        context: String,
        /// librdkafka's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// The broker did not answer in time.
    #[error("{0}")]
    Unreachable(String),
    /// Topics do not match the spec.
    #[error("{0}")]
    Topics(String),
    /// State could not be restored or encoded.
    #[error("state: {0}")]
    State(String),
    /// The model failed.
    #[error("model: {0}")]
    Model(String),
    /// A record's schema could not be fetched (the registry is down) under the source's
    /// `on_registry_error = "stop"` policy: the member is rebuilt from its last commit and
    /// retries, with backoff, until the registry answers.
    #[error("schema registry: {0}")]
    Registry(String),
    /// Another process runs the same instance on this machine: it holds the local state
    /// store's lock.
    #[error(
        "local state store {dir} of instance `{instance}` is in use by another process{} (fix: stop it first, or start this one with another --instance)",
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    StoreInUse {
        /// The store directory.
        dir: String,
        /// The instance id.
        instance: String,
        /// The holder's process id, when known.
        pid: Option<u32>,
    },
    /// Building the pipeline failed.
    #[error(transparent)]
    Pipeline(#[from] nowcast_pipeline::PipelineError),
}

impl KafkaError {
    /// Wraps a librdkafka error with what was being done.
    pub fn client(context: impl Into<String>, source: rdkafka::error::KafkaError) -> KafkaError {
        KafkaError::Client {
            context: context.into(),
            source,
        }
    }
}
