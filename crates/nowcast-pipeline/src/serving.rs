//! What every serving backend (embedded, Kafka instance, Kafka replica) shares: evaluating an
//! entity in an engine, the `GET /v1/features` answer, and `POST /v1/predict` scoring.

use nowcast_core::{FeatureValue, Millis};
use nowcast_model::ModelHandle;
use nowcast_serve::{
    BackendError, EntityFeatures, FeatureEntry, Health, IngestOutcome, PredictOutput,
};
use nowcast_spec::PipelineSpec;
use nowcast_window::{Aggregation, Engine};

use crate::plan::InputPlan;

/// The state a serving backend reads. [`Served`] turns it into the HTTP API's backend, so the
/// embedded runtime, a Kafka instance and a Kafka replica answer reads the same way and differ
/// only in where an entity's engine lives and in how events are ingested.
pub trait StateView: Send + Sync + 'static {
    /// The pipeline.
    fn spec(&self) -> &PipelineSpec;
    /// Model input layout.
    fn plan(&self) -> &InputPlan;
    /// The model.
    fn model(&self) -> &ModelHandle;
    /// `entity`'s features at `now` (see [`evaluate_in`]); `Ok(None)` when unknown,
    /// [`BackendError::NotOwned`] when its state lives in another instance.
    fn evaluate(&self, entity: &str, now: Millis) -> Result<Option<Evaluated>, BackendError>;
    /// `POST /v1/events`.
    fn ingest(&self, body: &[u8]) -> Result<IngestOutcome, BackendError>;
    /// `GET /healthz` and `GET /readyz` (default: ready, no detail).
    fn health(&self) -> Health {
        Health::default()
    }
}

/// A [`StateView`] served: implements [`nowcast_serve::Backend`].
pub struct Served<S>(pub S);

impl<S: StateView> nowcast_serve::Backend for Served<S> {
    fn features(&self, entity: &str, now: Millis) -> Result<Option<EntityFeatures>, BackendError> {
        let found = self.0.evaluate(entity, now)?;
        Ok(found.map(|found| features_answer(self.0.spec(), entity, now, found)))
    }

    fn predict(
        &self,
        entity: &str,
        fields: &serde_json::Map<String, serde_json::Value>,
        now: Millis,
    ) -> Result<PredictOutput, BackendError> {
        // An entity of another instance's partition is refused, never scored on empty windows.
        let found = self.0.evaluate(entity, now)?.map(|e| e.values);
        let v = &self.0;
        score_request(v.spec(), v.plan(), v.model(), entity, found, fields, now)
    }

    fn ingest(&self, body: &[u8]) -> Result<IngestOutcome, BackendError> {
        self.0.ingest(body)
    }

    fn feature_names(&self) -> Vec<String> {
        feature_names(self.0.spec())
    }

    fn health(&self) -> Health {
        self.0.health()
    }
}

/// An entity's features at a time, with the newest event time per source.
#[derive(Debug, Clone)]
pub struct Evaluated {
    /// One value per feature, spec order.
    pub values: Vec<FeatureValue>,
    /// Newest applied event time per source (None: never seen).
    pub newest: Vec<Option<Millis>>,
}

/// Evaluates `entity` in `engine` at `now`; `None` for an unknown entity.
pub fn evaluate_in(engine: &Engine, entity: &str, now: Millis) -> Option<Evaluated> {
    let mut values = Vec::new();
    if !engine.evaluate(entity, now, &mut values) {
        return None;
    }
    Some(Evaluated {
        values,
        newest: engine.newest_event_times(entity)?,
    })
}

/// The `GET /v1/features/{entity}` answer: every feature with its age.
pub fn features_answer(
    spec: &PipelineSpec,
    entity: &str,
    now: Millis,
    found: Evaluated,
) -> EntityFeatures {
    let features = spec
        .engine
        .features
        .iter()
        .zip(found.values)
        .map(|(f, value)| FeatureEntry {
            name: f.name.clone(),
            value,
            age_ms: found.newest[f.source].map(|t| now - t),
        })
        .collect();
    EntityFeatures {
        entity: entity.to_string(),
        as_of: now,
        features,
    }
}

/// Feature names in spec order.
pub fn feature_names(spec: &PipelineSpec) -> Vec<String> {
    spec.engine
        .features
        .iter()
        .map(|f| f.name.clone())
        .collect()
}

/// Scores `entity` for `POST /v1/predict`: its stream features (`None` for an unknown
/// entity: every feature at its empty-window value) plus the request-time fields.
pub fn score_request(
    spec: &PipelineSpec,
    plan: &InputPlan,
    model: &ModelHandle,
    entity: &str,
    features: Option<Vec<FeatureValue>>,
    fields: &serde_json::Map<String, serde_json::Value>,
    now: Millis,
) -> Result<PredictOutput, BackendError> {
    // A key the model does not take is refused rather than ignored: a typo, or a stream
    // feature sent in the hope of overriding it, would otherwise score on something other
    // than what the caller meant.
    if let Some(extra) = fields.keys().find(|k| !plan.request_fields.contains(*k)) {
        let what = if spec.engine.features.iter().any(|f| &f.name == extra) {
            "is a stream feature, computed from the entity's events; it cannot be set per request"
        } else {
            "is not a request-time input of the model"
        };
        return Err(BackendError::BadRequest(format!(
            "`fields.{extra}` {what}; the request fields are: {}",
            if plan.request_fields.is_empty() {
                "none".to_string()
            } else {
                plan.request_fields.join(", ")
            }
        )));
    }
    let mut request = Vec::with_capacity(plan.request_fields.len());
    for name in &plan.request_fields {
        match fields.get(name) {
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() => request.push(Some(x)),
                _ => {
                    return Err(BackendError::BadRequest(format!(
                        "request field `{name}` is {v}, not a number"
                    )))
                }
            },
            None => {
                return Err(BackendError::BadRequest(format!(
                    "request field `{name}` is missing; the model takes it as an input"
                )))
            }
        }
    }
    let known = features.is_some();
    let values = features.unwrap_or_else(|| {
        spec.engine
            .features
            .iter()
            .map(|f| empty_value(&f.agg))
            .collect()
    });
    let mut row = Vec::with_capacity(plan.len());
    plan.row(&values, &request, &mut row);
    let model = model.current();
    let mut scores = Vec::with_capacity(1);
    model
        .score_batch(&row, 1, &mut scores)
        .map_err(|e| BackendError::Internal(e.to_string()))?;
    Ok(PredictOutput {
        entity: entity.to_string(),
        entity_known: known,
        score: scores[0],
        model: model.name().to_string(),
        model_version: model.version().to_string(),
        features: plan
            .names
            .iter()
            .cloned()
            .zip(row.iter().map(|&v| shortest(v)))
            .collect(),
        as_of: now,
    })
}

/// The model input `v` as the `f64` of its shortest decimal form, as the predictions output
/// writes it (`87.81`, not the widened `87.80999755859375`): both read back as the same
/// `f32`, so the two outputs show the same numbers.
fn shortest(v: f32) -> f64 {
    if v.is_finite() {
        v.to_string().parse().unwrap_or(v as f64)
    } else {
        v as f64
    }
}

/// The value an aggregation has over an empty window.
pub fn empty_value(agg: &Aggregation) -> FeatureValue {
    match agg {
        Aggregation::Count
        | Aggregation::Sum
        | Aggregation::DistinctCount
        | Aggregation::DecayedSum { .. } => FeatureValue::Num(0.0),
        Aggregation::LastN(_) => FeatureValue::List(Vec::new()),
        _ => FeatureValue::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predict_shows_model_inputs_as_the_predictions_output_does_not_widened() {
        assert_eq!(shortest(87.81).to_string(), "87.81");
        assert_eq!(shortest(2681.58).to_string(), "2681.58");
        assert_eq!(shortest(-0.1), -0.1);
        for v in [87.81f32, 1e-40, f32::MAX, 3.0e38, 0.1, 16_777_217.0] {
            assert_eq!((shortest(v) as f32).to_bits(), v.to_bits(), "{v}");
        }
        assert!(shortest(f32::NAN).is_nan());
        assert_eq!(shortest(f32::INFINITY), f64::INFINITY);
    }
}
