//! Names that share one namespace. A model input names a feature or a request field, and a
//! feature wins: a feature named like a request field would silently replace the event's
//! value in the model's input, so a name may be one or the other, never both.

use std::collections::BTreeMap;

use crate::hints::{closest, suggest};
use crate::raw::{ModelSection, SourceSection};
use crate::validate::{split_element, Validator};

/// The source declaring `field` in its `fields`, if any does.
fn event_source<'a>(sources: &'a [Option<SourceSection>], field: &str) -> Option<&'a str> {
    sources
        .iter()
        .flatten()
        .find(|s| s.fields.as_ref().is_some_and(|f| f.contains_key(field)))
        .map(|s| s.name.as_str())
}

/// The fix for model input `name`, neither a feature nor a request field. When it is a field
/// of the events, the typo is on the `model.request_fields` side, not in the input.
pub(crate) fn unknown_input_fix(
    name: &str,
    m: &ModelSection,
    features: &[String],
    sources: &[Option<SourceSection>],
) -> String {
    if let Some(src) = event_source(sources, name) {
        let unmatched = m
            .request_fields
            .iter()
            .map(String::as_str)
            .filter(|r| !m.inputs.iter().any(|i| i == r) && event_source(sources, r).is_none());
        return match closest(name, unmatched) {
            Some(typo) => format!(
                "`{name}` is a field of source `{src}`; `{typo}` in `model.request_fields` \
                 looks like a typo of it: write `{name}` there"
            ),
            None => format!(
                "`{name}` is a field of source `{src}`: add it to `model.request_fields` to \
                 read it from the event"
            ),
        };
    }
    let candidates = features
        .iter()
        .map(String::as_str)
        .filter(|n| !n.is_empty())
        .chain(m.request_fields.iter().map(String::as_str));
    let hint = suggest(name, candidates);
    format!("{hint}; declare request-time fields in `model.request_fields`")
}

/// The fix for request field `field` that no model input names: when a model input naming an
/// event field resembles it, this is the typo.
pub(crate) fn unused_request_field_fix(
    field: &str,
    m: &ModelSection,
    features: &[String],
    sources: &[Option<SourceSection>],
) -> String {
    let unresolved = m.inputs.iter().map(String::as_str).filter(|i| {
        !m.request_fields.iter().any(|r| r == i)
            && !features.iter().any(|f| f == split_element(i).0)
    });
    let event_inputs: Vec<&str> = unresolved
        .filter(|i| event_source(sources, i).is_some())
        .collect();
    match closest(field, event_inputs) {
        Some(input) if event_source(sources, field).is_none() => format!(
            "did you mean `{input}` (a model input and a field of source `{}`)?",
            event_source(sources, input).unwrap_or_default()
        ),
        _ => "add it to `model.inputs` or remove it".to_string(),
    }
}

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
