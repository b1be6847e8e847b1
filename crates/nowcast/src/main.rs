//! `nowcast`: the command-line entry point. Each subcommand lives in its own module.

mod demo;
mod generate;
mod kafka;
mod run;
mod schemas;
mod serve;
mod telemetry;
mod topics;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Fresh ML features from event streams.
#[derive(Parser)]
#[command(name = "nowcast", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a pipeline spec and report every problem with its field path and fix.
    Validate {
        /// The spec file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Write a seeded synthetic card-transaction stream: JSON lines, an Avro container file, or records produced to Kafka.
    Generate(generate::GenerateArgs),
    /// Append events from a file (or `-` for stdin) to a stopped pipeline's embedded input log: JSON lines, or an Avro object container file.
    Ingest(run::IngestArgs),
    /// Run a pipeline: process, score, serve — on the embedded log, or on Apache Kafka when
    /// the spec has a `[kafka]` section.
    Run(run::RunArgs),
    /// Everything in one process: generate, compute features, score, serve, report.
    Demo(demo::DemoArgs),
    /// Serve every entity's features from a Kafka pipeline's feature store (a serving replica).
    Serve(serve::ServeArgs),
    /// Check (`plan`) or create and configure (`apply`) the pipeline's Kafka topics.
    Topics(topics::TopicsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate { config } => validate(&config),
        Command::Generate(args) => generate::main(args),
        Command::Ingest(args) => run::ingest(args),
        Command::Run(args) => run::main(args),
        Command::Demo(args) => demo::main(args),
        Command::Serve(args) => serve::main(args),
        Command::Topics(args) => topics::main(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("nowcast: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Checks the spec, then what `run` would find at start: the schemas, the model and the
/// librdkafka properties. `ok` is printed only when all of it passed.
fn validate(config: &std::path::Path) -> anyhow::Result<ExitCode> {
    let spec = match nowcast_spec::read_spec(config) {
        Ok(spec) => spec,
        Err(e) => {
            eprint!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let mut problems = schemas::check(&spec, config);
    let missing = match &spec.model.kind {
        nowcast_spec::ModelKindDef::Onnx { path } if !path.exists() => Some(path),
        _ => None,
    };
    if let Some(path) = missing {
        problems.push(format!(
            "{}: model.path: {} does not exist (fix: train it with models/train.py or correct the path)",
            config.display(),
            path.display()
        ));
    } else {
        // Load the model as `run` will: its input width against `model.inputs`, its output,
        // and which engine scores it.
        match nowcast_model::LoadedModel::load_with(
            &nowcast_pipeline::runtime::model_spec(&spec),
            &nowcast_pipeline::runtime::model_options(&spec),
        ) {
            Ok(model) => println!(
                "{}: model `{}` version {}: scored by {}",
                config.display(),
                model.name(),
                model.version(),
                model.engine()
            ),
            Err(e) => problems.push(format!("{}: model: {e}", config.display())),
        }
    }
    if let Some(kafka) = &spec.kafka {
        problems.extend(
            nowcast_kafka::client::property_problems(kafka, &config.display().to_string())
                .iter()
                .map(ToString::to_string),
        );
    }
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("{p}");
        }
        return Ok(ExitCode::from(2));
    }
    println!(
        "{}: ok: pipeline `{}`, {} source(s), {} feature(s), model `{}` with {} inputs",
        config.display(),
        spec.name,
        spec.sources.len(),
        spec.engine.features.len(),
        spec.model.name,
        spec.model.inputs.len()
    );
    Ok(ExitCode::SUCCESS)
}
