//! `nowcast validate`, schema part: every field a feature, filter or the model reads must
//! exist with a usable type in each Avro / Protobuf source's schema — the local file, and the
//! latest version registered under the source's subject when there is a registry.

use std::path::Path;

use nowcast_pipeline::decode::Decoder;
use nowcast_pipeline::formats::{local_schema, registry_client};
use nowcast_schema::avro::AvroReader;
use nowcast_schema::proto::{ProtoReader, ProtoSchema};
use nowcast_schema::{LocalSchema, Needs, Registry, SchemaType};
use nowcast_spec::{
    BinaryFormat, Framing, PipelineSpec, SchemaFormat, SourceFormat, SubjectStrategy,
};

/// Problems found, one line each (`file: path: problem (fix: ...)`); prints what it checked.
pub fn check(spec: &PipelineSpec, file: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let registry = match registry_client(spec) {
        Ok(r) => r,
        Err(e) => return vec![format!("{}: registry: {e}", file.display())],
    };
    for (i, src) in spec.sources.iter().enumerate() {
        let SourceFormat::Schema(f) = &src.format else {
            continue;
        };
        let at = format!("{}: sources[{i}] (`{}`)", file.display(), src.name);
        // Builds the decoder: parses the local schema and, for bare framing, compiles it.
        let needs = match Decoder::new(spec, i, registry.clone()) {
            Ok(d) => d.needs(),
            Err(e) => {
                problems.push(format!("{at}: {e}"));
                continue;
            }
        };
        let local = match local_schema(f) {
            Ok(l) => l,
            Err(e) => {
                problems.push(format!("{at}: {e}"));
                continue;
            }
        };
        if let (Some(LocalSchema::Avro(reader)), Framing::Confluent) = (&local, f.framing) {
            // The reader schema must itself carry (or default) every field read.
            if let Err(e) = AvroReader::compile(reader, None, &needs) {
                problems.push(format!(
                    "{at}: schema {}: {} (fix: add the field to the reader schema, with a default if writers may lack it)",
                    f.schema_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
                    e.detail
                ));
            }
        }
        if f.framing == Framing::Bare {
            println!("{at}: local schema ok: {} field(s) read", needs.0.len());
            continue;
        }
        let Some(reg) = &registry else { continue };
        let strategy = spec
            .registry
            .as_ref()
            .map(|r| r.subject_strategy)
            .unwrap_or(SubjectStrategy::Topic);
        let record = match &local {
            Some(LocalSchema::Avro(s)) => s.name().map(|n| n.to_string()),
            _ => None,
        };
        let subject = match (&f.subject, strategy, record) {
            (Some(s), _, _) => s.clone(),
            (None, SubjectStrategy::Topic, _) => strategy.subject(&src.topic, ""),
            (None, _, Some(r)) => strategy.subject(&src.topic, &r),
            (None, _, None) => {
                problems.push(format!(
                    "{at}: the subject strategy needs the record name: set `subject` on the source"
                ));
                continue;
            }
        };
        match check_registered(reg, &subject, f, &local, &needs) {
            Ok(line) => println!("{at}: {line}"),
            Err(p) => problems.push(format!("{at}: {p}")),
        }
    }
    if let (Some(reg), true, Some(k)) = (&registry, spec.avro_predictions, &spec.kafka) {
        let (schema, subject) =
            nowcast_pipeline::formats::prediction_schema(spec, &k.predictions_topic);
        let at = format!("{}: outputs.format", file.display());
        match reg.is_compatible(&subject, SchemaType::Avro, schema.json(), &[]) {
            Ok(true) => println!("{at}: the prediction schema is compatible with `{subject}`"),
            Ok(false) => problems.push(format!(
                "{at}: the prediction schema is not compatible with the latest version under `{subject}` (fix: keep the model inputs, relax the subject's compatibility, or write to a new predictions topic)"
            )),
            Err(e) => problems.push(format!("{at}: {e}")),
        }
    }
    problems
}

/// Checks the latest schema under `subject` against what the pipeline reads.
fn check_registered(
    reg: &Registry,
    subject: &str,
    f: &SchemaFormat,
    local: &Option<LocalSchema>,
    needs: &Needs,
) -> Result<String, String> {
    let latest = reg.version(subject, "latest").map_err(|e| {
        format!("{e} (fix: register the source's schema under `{subject}`, or set `subject`)")
    })?;
    let what = format!(
        "registry subject `{subject}` version {} (id {})",
        latest.version.unwrap_or(0),
        latest
            .id
            .map(|i| i.to_string())
            .unwrap_or_else(|| "?".into())
    );
    let fix = "(fix: change the feature or model input, or evolve the schema)";
    match f.format {
        BinaryFormat::Avro => {
            if latest.schema_type != SchemaType::Avro {
                return Err(format!(
                    "{what} is {}, not Avro",
                    latest.schema_type.as_str()
                ));
            }
            let writer = nowcast_schema::avro::parse(&latest.schema)
                .map_err(|e| format!("{what} does not parse: {e}"))?;
            let reader = match local {
                Some(LocalSchema::Avro(r)) => Some(r),
                _ => None,
            };
            AvroReader::compile(&writer, reader, needs)
                .map_err(|e| format!("{what}: {} {fix}", e.detail))?;
        }
        BinaryFormat::Protobuf => {
            if latest.schema_type != SchemaType::Protobuf {
                return Err(format!(
                    "{what} is {}, not Protobuf",
                    latest.schema_type.as_str()
                ));
            }
            let imports = reg
                .reference_texts(&latest.references)
                .map_err(|e| format!("{what}: {e}"))?;
            let schema = ProtoSchema::compile("latest.proto", &latest.schema, &imports)
                .map_err(|e| format!("{what} does not compile: {e}"))?;
            // Records name their message by index; the schema is usable when one of its
            // top-level messages carries every field read.
            let mut errors = Vec::new();
            for i in 0.. {
                let Ok(msg) = schema.message_at(&[i]) else {
                    break;
                };
                match ProtoReader::compile(&msg, needs) {
                    Ok(_) => {
                        return Ok(format!(
                            "{what}: ok, message `{}` carries the {} field(s) read",
                            msg.full_name(),
                            needs.0.len()
                        ))
                    }
                    Err(e) => errors.push(e.detail),
                }
            }
            return Err(format!(
                "{what}: no message can feed the pipeline: {} {fix}",
                errors.join("; ")
            ));
        }
    }
    Ok(format!(
        "{what}: ok, the {} field(s) read are usable",
        needs.0.len()
    ))
}
