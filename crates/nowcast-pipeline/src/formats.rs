//! From the spec's formats to `nowcast-schema`: local schema files and the registry client.

use std::sync::Arc;
use std::time::Duration;

use nowcast_schema::proto::ProtoSchema;
use nowcast_schema::{LocalSchema, Registry, RegistryConfig};
use nowcast_spec::{BinaryFormat, PipelineSpec, RegistrySpec, SchemaFormat};

use crate::PipelineError;

/// The registry's URL: the spec's, else `NOWCAST_REGISTRY`.
pub fn registry_url(r: &RegistrySpec) -> Result<String, PipelineError> {
    r.url
        .clone()
        .or_else(|| {
            std::env::var("NOWCAST_REGISTRY")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .ok_or_else(|| {
            PipelineError::Schema(
                "[registry] has no `url` and NOWCAST_REGISTRY is unset: set one of them".into(),
            )
        })
}

/// The registry client of `spec`, when it has `[registry]`.
pub fn registry_client(spec: &PipelineSpec) -> Result<Option<Arc<Registry>>, PipelineError> {
    let Some(r) = &spec.registry else {
        return Ok(None);
    };
    let password = match &r.password_env {
        Some(var) => Some(std::env::var(var).map_err(|_| {
            PipelineError::Schema(format!(
                "[registry] password_env names `{var}`, which is not set in the environment"
            ))
        })?),
        None => None,
    };
    let config = RegistryConfig {
        url: registry_url(r)?,
        username: r.username.clone(),
        password,
        ca_file: r.ca_file.clone(),
        insecure_skip_verify: r.insecure_skip_verify,
        timeout: Duration::from_millis(r.timeout as u64),
        retries: r.retries,
        backoff: Duration::from_millis(r.backoff as u64),
    };
    Registry::new(&config)
        .map(|r| Some(Arc::new(r)))
        .map_err(|e| PipelineError::Schema(e.to_string()))
}

/// Reads and compiles a source's local schema file, if it names one.
pub fn local_schema(f: &SchemaFormat) -> Result<Option<LocalSchema>, PipelineError> {
    let Some(path) = &f.schema_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|e| PipelineError::io(path, e))?;
    let shown = path.display();
    Ok(Some(match f.format {
        BinaryFormat::Avro => LocalSchema::Avro(
            nowcast_schema::avro::parse(&text)
                .map_err(|e| PipelineError::Schema(format!("{shown}: not an Avro schema: {e}")))?,
        ),
        BinaryFormat::Protobuf => {
            let schema = ProtoSchema::from_file(path)
                .map_err(|e| PipelineError::Schema(format!("{shown}: {e}")))?;
            LocalSchema::Protobuf {
                schema,
                message: f.message.clone().unwrap_or_default(),
            }
        }
    }))
}

/// The Avro schema of `spec`'s predictions and the subject it is registered under.
pub fn prediction_schema(
    spec: &PipelineSpec,
    predictions_topic: &str,
) -> (nowcast_schema::prediction::PredictionSchema, String) {
    let inputs: Vec<String> = spec
        .model
        .inputs
        .iter()
        .map(|i| i.name().to_string())
        .collect();
    let schema = nowcast_schema::prediction::PredictionSchema::new(&spec.name, &inputs);
    let strategy = spec
        .registry
        .as_ref()
        .map(|r| r.subject_strategy)
        .unwrap_or(nowcast_spec::SubjectStrategy::Topic);
    let subject = strategy.subject(predictions_topic, schema.full_name());
    (schema, subject)
}

/// Registers the predictions' Avro schema (after checking it is compatible with what the
/// subject holds) and returns its id.
pub fn register_predictions(
    spec: &PipelineSpec,
    registry: &Registry,
    predictions_topic: &str,
) -> Result<u32, PipelineError> {
    let (schema, subject) = prediction_schema(spec, predictions_topic);
    let compatible = registry
        .is_compatible(
            &subject,
            nowcast_schema::SchemaType::Avro,
            schema.json(),
            &[],
        )
        .map_err(|e| PipelineError::Schema(e.to_string()))?;
    if !compatible {
        return Err(PipelineError::Schema(format!(
            "the prediction schema (model inputs {:?}) is not compatible with the latest version under `{subject}` (fix: keep the model inputs, relax the subject's compatibility, or write to a new predictions topic)",
            spec.model.inputs.iter().map(|i| i.name()).collect::<Vec<_>>()
        )));
    }
    registry
        .register(
            &subject,
            nowcast_schema::SchemaType::Avro,
            schema.json(),
            &[],
        )
        .map_err(|e| PipelineError::Schema(e.to_string()))
}
