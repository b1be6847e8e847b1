//! `nowcast topics plan|apply`: the Kafka topics a spec declares, compared with the broker and
//! created or reconfigured (see `nowcast_kafka::topics`).

use std::path::PathBuf;
use std::process::ExitCode;

use nowcast_kafka::topics::{self, Admin, Change, TopicPlan};
use nowcast_kafka::KafkaError;

/// Arguments of `nowcast topics`.
#[derive(clap::Args)]
pub struct TopicsArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Show what `apply` would create or change; exit 2 if the topics cannot be brought in line.
    Plan(Target),
    /// Create missing topics and set differing configs, then confirm with the broker.
    Apply(Target),
}

#[derive(clap::Args)]
struct Target {
    /// The spec file (needs a `[kafka]` section).
    #[arg(long)]
    config: PathBuf,
    /// Bootstrap servers `host:port[,host:port]` (default: `kafka.bootstrap`, then
    /// NOWCAST_KAFKA).
    #[arg(long)]
    bootstrap: Option<String>,
}

pub fn main(args: TopicsArgs) -> anyhow::Result<ExitCode> {
    let (target, apply) = match args.action {
        Action::Plan(t) => (t, false),
        Action::Apply(t) => (t, true),
    };
    let file = target.config.display().to_string();
    let spec = match nowcast_spec::read_spec(&target.config) {
        Ok(spec) => spec,
        Err(e) => {
            eprint!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let kafka = spec
        .kafka
        .as_ref()
        .ok_or_else(|| KafkaError::NotKafka { spec: file.clone() })?;
    let bootstrap = nowcast_kafka::client::bootstrap(kafka, target.bootstrap.as_deref(), &file)?;
    let plan = TopicPlan::new(&spec, &file)?;
    let admin = Admin::connect(kafka, &bootstrap, &file)?;
    let changes = topics::plan(&admin, &plan)?;
    println!(
        "{file}: {} topic(s) on Kafka at {bootstrap}",
        plan.topics.len()
    );
    for c in &changes {
        println!("{c}");
    }
    let actions = changes.iter().filter(|c| c.is_action()).count();
    if topics::has_errors(&changes) {
        eprintln!(
            "{file}: the topics cannot be brought in line by `nowcast topics apply`; nothing \
             was changed (fix: see the `x error` lines above)"
        );
        return Ok(ExitCode::from(2));
    }
    if !apply {
        if actions > 0 {
            println!(
                "{actions} change(s); run `nowcast topics apply --config {file}` to make them"
            );
        } else {
            println!("nothing to change");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if actions == 0 {
        println!("nothing to change");
        return Ok(ExitCode::SUCCESS);
    }
    topics::apply(&admin, &plan, &changes)?;
    let created = changes
        .iter()
        .filter(|c| matches!(c, Change::Create(_)))
        .count();
    println!(
        "applied: {created} topic(s) created, {} config value(s) set; the broker confirms the \
         spec",
        actions - created
    );
    Ok(ExitCode::SUCCESS)
}
