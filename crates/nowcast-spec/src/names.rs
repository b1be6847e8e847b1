//! Names that share one namespace. A model input names a feature or a request field, and a
//! feature wins: a feature named like a request field would silently replace the event's
//! value in the model's input, so a name may be one or the other, never both.

use std::collections::BTreeMap;

use crate::raw::ModelSection;
use crate::validate::{split_element, Validator};

impl Validator {
    /// Each request field is listed once and is not also a feature's name. `features` holds
    /// every declared feature's name by position (empty when it has none).
    pub(crate) fn shared_names(&mut self, m: &ModelSection, features: &[String]) {
        let mut seen = BTreeMap::new();
        for (j, field) in m.request_fields.iter().enumerate() {
            if let Some(first) = seen.insert(field.as_str(), j) {
                self.push(
                    format!("model.request_fields[{j}]"),
                    format!("`{field}` is listed twice (also request_fields[{first}])"),
                    "list each request field once",
                );
                continue;
            }
            let (base, _) = split_element(field);
            let Some(i) = features.iter().position(|f| f == field || f == base) else {
                continue;
            };
            let mut also = format!("model.request_fields[{j}]");
            if let Some(k) = m.inputs.iter().position(|x| x == field) {
                also.push_str(&format!(", model.inputs[{k}]"));
            }
            self.push(
                format!("features[{i}].name"),
                format!(
                    "feature `{}` has the name of request field `{field}` ({also}): the model \
                     input would read the feature instead of the event's field",
                    features[i]
                ),
                "rename the feature, or the request field in `model.request_fields` and \
                 `model.inputs`",
            );
        }
    }
}
