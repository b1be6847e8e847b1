//! The model's input plan: how to build one model row from an entity's feature vector and
//! the request-time fields.

use nowcast_core::FeatureValue;
use nowcast_spec::{ModelInput, PipelineSpec};

#[derive(Debug, Clone)]
enum Slot {
    Feature {
        feature: usize,
        element: usize,
        default: f64,
    },
    Request {
        index: usize,
        default: f64,
    },
}

/// Row layout for the model, in `model.inputs` order.
#[derive(Debug, Clone)]
pub struct InputPlan {
    slots: Vec<Slot>,
    /// Input names, in order.
    pub names: Vec<String>,
    /// Request-time field names, in the order `request` values are given.
    pub request_fields: Vec<String>,
    /// Each input's JSON object key, pre-rendered (`"name":`), for the output writers.
    pub json_keys: Vec<Vec<u8>>,
}

impl InputPlan {
    /// The plan for `spec`'s model.
    pub fn new(spec: &PipelineSpec) -> InputPlan {
        let request_fields = spec.model.request_fields.clone();
        let slots = spec
            .model
            .inputs
            .iter()
            .map(|i| match i {
                ModelInput::Feature {
                    feature,
                    element,
                    default,
                    ..
                } => Slot::Feature {
                    feature: *feature,
                    element: *element,
                    default: *default,
                },
                ModelInput::Request { name, default } => Slot::Request {
                    index: request_fields
                        .iter()
                        .position(|f| f == name)
                        .expect("validated"),
                    default: *default,
                },
            })
            .collect();
        let names: Vec<String> = spec
            .model
            .inputs
            .iter()
            .map(|i| i.name().to_string())
            .collect();
        let json_keys = names.iter().map(|n| crate::json::object_key(n)).collect();
        InputPlan {
            slots,
            names,
            request_fields,
            json_keys,
        }
    }

    /// Number of model inputs.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when the model takes no inputs (never for a validated spec).
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Appends one row to `rows`.
    pub fn row(&self, features: &[FeatureValue], request: &[Option<f64>], rows: &mut Vec<f32>) {
        for slot in &self.slots {
            let v = match slot {
                Slot::Feature {
                    feature,
                    element,
                    default,
                } => features[*feature].as_model_input(*element, *default),
                Slot::Request { index, default } => request[*index].unwrap_or(*default),
            };
            rows.push(v as f32);
        }
    }
}
