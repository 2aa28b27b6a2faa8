//! `tread pipeline …`, `tread run …`, `tread model …` and `tread instance
//! list`: clients of `tread up`'s API.

use anyhow::Context;
use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cmd::api::{ApiClient, block_on};
use crate::cmd::serve::ServerArgs;
use crate::cmd::show::{self, Table, field};

/// `tread pipeline …`.
#[derive(Debug, Subcommand)]
pub enum PipelineCmd {
    /// Create or update a pipeline from its file (see the README's tour).
    Apply {
        /// The pipeline file (TOML).
        file: PathBuf,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Every pipeline with its schedule, next run and last run.
    List {
        /// Print the API's JSON answer, times at full precision.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// One pipeline, with its file.
    Describe {
        /// The pipeline.
        name: String,
        /// Print the API's JSON answer, times at full precision.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Start a run now.
    Run {
        /// The pipeline.
        name: String,
        /// Wait for the run to end, printing its steps; exit non-zero
        /// unless it succeeded.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Stop the schedule and the data trigger (runs by hand still work).
    Pause {
        /// The pipeline.
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Start the schedule and the data trigger again.
    Resume {
        /// The pipeline.
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// `tread run …`.
#[derive(Debug, Subcommand)]
pub enum RunCmd {
    /// Runs, newest first.
    List {
        /// Only this pipeline's runs.
        #[arg(long)]
        pipeline: Option<String>,
        /// Print the API's JSON answer, times at full precision.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// One run: its steps, instance, model and why it ended.
    Describe {
        /// The run id.
        id: i64,
        /// Print the API's JSON answer, times at full precision.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// A run's step logs.
    Logs {
        /// The run id.
        id: i64,
        /// Only this step (its number, from 1).
        #[arg(long)]
        step: Option<i64>,
        /// Keep printing until the run ends.
        #[arg(long, short)]
        follow: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Cancel a queued or running run; its instance stops at once.
    Cancel {
        /// The run id.
        id: i64,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// `tread model …`.
#[derive(Debug, Subcommand)]
pub enum ModelCmd {
    /// Registered versions, newest first.
    List {
        /// Only this model (a pipeline's name).
        name: Option<String>,
        /// Print the API's JSON answer, times at full precision.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// One version: metrics, run, dataset digest, artifact.
    Describe {
        /// The model.
        name: String,
        /// The version number.
        version: i64,
        /// Print the API's JSON answer, times at full precision.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Make a version production and deploy it to the model's endpoint.
    Promote {
        /// The model.
        name: String,
        /// The version number.
        version: i64,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Where an endpoint's model came from: version, run, dataset digest.
    Lineage {
        /// The endpoint.
        endpoint: String,
        /// Print the API's JSON answer, times at full precision.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// `tread instance …`.
#[derive(Debug, Subcommand)]
pub enum InstanceCmd {
    /// Every instance: state, type, start, stop, queued and billed seconds, cost.
    List {
        /// Print the API's JSON answer, times at full precision.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
}

fn get(client: &ApiClient, path: &str) -> anyhow::Result<Value> {
    block_on(client.call(Method::GET, path, None))
}

fn post(client: &ApiClient, path: &str) -> anyhow::Result<Value> {
    block_on(client.call(Method::POST, path, None))
}

/// Prints `value` as the API's JSON (`--json`) or for a person.
fn print_as(value: &Value, json: bool, human: impl Fn(&Value)) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        human(value);
    }
    Ok(())
}

/// Prints one API object as `key: value` lines.
fn fields(value: &Value) {
    print!("{}", show::describe(value));
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or("-")
}

fn rows(list: &Value) -> impl Iterator<Item = &Value> {
    list.as_array().into_iter().flatten()
}

/// Runs a `pipeline` subcommand.
pub fn pipeline(data_dir: &Path, cmd: PipelineCmd) -> anyhow::Result<()> {
    match cmd {
        PipelineCmd::Apply { file, server } => {
            let source =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let client = ApiClient::new(&server, data_dir);
            let view = block_on(client.send(
                Method::POST,
                "/api/pipelines",
                Some(("application/toml", source)),
            ))?;
            println!(
                "pipeline {} applied: schedule {}, next run {}, steps {}",
                text(&view, "name"),
                text(&view, "schedule"),
                text(&view, "next_run"),
                view["steps"]
                    .as_array()
                    .map(|s| s
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(" → "))
                    .unwrap_or_default()
            );
            if let Some(user) = view["s3_user"].as_str() {
                println!("its steps run as S3 user {user}");
            }
        }
        PipelineCmd::List { json, server } => print_as(
            &get(&ApiClient::new(&server, data_dir), "/api/pipelines")?,
            json,
            print_pipelines,
        )?,
        PipelineCmd::Describe { name, json, server } => print_as(
            &get(
                &ApiClient::new(&server, data_dir),
                &format!("/api/pipelines/{name}"),
            )?,
            json,
            fields,
        )?,
        PipelineCmd::Run { name, wait, server } => {
            let client = ApiClient::new(&server, data_dir);
            let run = post(&client, &format!("/api/pipelines/{name}/runs?via=cli"))?;
            let id = run["id"]
                .as_i64()
                .context("the server answered without a run id")?;
            println!("run {id} of {name} started");
            if wait {
                return wait_for(&client.online_only(), id);
            }
        }
        PipelineCmd::Pause { name, server } => {
            post(
                &ApiClient::new(&server, data_dir),
                &format!("/api/pipelines/{name}/pause"),
            )?;
            println!("pipeline {name} paused");
        }
        PipelineCmd::Resume { name, server } => {
            let view = post(
                &ApiClient::new(&server, data_dir),
                &format!("/api/pipelines/{name}/resume"),
            )?;
            println!(
                "pipeline {name} resumed; next run {}",
                text(&view, "next_run")
            );
        }
    }
    Ok(())
}

fn print_pipelines(list: &Value) {
    let mut table = Table::new(&["NAME", "SCHEDULE", "NEXT RUN", "PAUSED", "LAST RUN"]);
    for p in rows(list) {
        let last = &p["last_run"];
        table.row(vec![
            field(p, "name"),
            field(p, "schedule"),
            field(p, "next_run"),
            p["paused"].as_bool().unwrap_or(false).to_string(),
            if last.is_null() {
                "-".to_string()
            } else {
                format!("#{} {}", last["id"], text(last, "state"))
            },
        ]);
    }
    table.print();
}

/// Prints each step as it ends, until the run ends.
fn wait_for(client: &ApiClient, id: i64) -> anyhow::Result<()> {
    let mut printed = 0;
    loop {
        let run = get(client, &format!("/api/runs/{id}"))?;
        let steps = run["steps"].as_array().cloned().unwrap_or_default();
        for step in steps.iter().skip(printed) {
            if matches!(step["state"].as_str(), Some("pending" | "running")) {
                break;
            }
            println!(
                "  {} {:<9} {:<9} {}",
                step["index"],
                text(step, "kind"),
                text(step, "state"),
                text(step, "message")
            );
            printed += 1;
        }
        let state = text(&run, "state");
        if !matches!(state, "queued" | "running") {
            print_instance(&run["instance"]);
            return match state {
                "succeeded" => {
                    println!("run {id} succeeded");
                    Ok(())
                }
                _ => anyhow::bail!("run {id} {state}: {}", text(&run, "reason")),
            };
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn print_instance(instance: &Value) {
    if !instance.is_null() {
        println!(
            "instance {} ({}, {}) {}: queued {:.1} s (not billed), billed {:.1} s, cost {:.4}, idle after the last step {:.3} s",
            instance["id"],
            text(instance, "type"),
            text(instance, "backend"),
            text(instance, "state"),
            instance["queued_seconds"].as_f64().unwrap_or(0.0),
            instance["billed_seconds"].as_f64().unwrap_or(0.0),
            instance["cost"].as_f64().unwrap_or(0.0),
            instance["idle_seconds"].as_f64().unwrap_or(0.0)
        );
    }
}

/// Runs a `run` subcommand.
pub fn run(data_dir: &Path, cmd: RunCmd) -> anyhow::Result<()> {
    match cmd {
        RunCmd::List {
            pipeline,
            json,
            server,
        } => {
            let path = match &pipeline {
                Some(p) => format!("/api/runs?pipeline={p}"),
                None => "/api/runs".to_string(),
            };
            print_as(
                &get(&ApiClient::new(&server, data_dir), &path)?,
                json,
                print_runs,
            )?;
        }
        RunCmd::Describe { id, json, server } => print_as(
            &get(
                &ApiClient::new(&server, data_dir),
                &format!("/api/runs/{id}"),
            )?,
            json,
            fields,
        )?,
        RunCmd::Logs {
            id,
            step,
            follow,
            server,
        } => {
            let client = ApiClient::new(&server, data_dir);
            let client = if follow { client.online_only() } else { client };
            logs(&client, id, step, follow)?
        }
        RunCmd::Cancel { id, server } => {
            post(
                &ApiClient::new(&server, data_dir),
                &format!("/api/runs/{id}/cancel"),
            )?;
            println!("run {id} cancelled");
        }
    }
    Ok(())
}

fn print_runs(list: &Value) {
    let mut table = Table::new(&["ID>", "PIPELINE", "TRIGGER", "STATE", "CREATED", "MODEL"]);
    for r in rows(list) {
        table.row(vec![
            r["id"].to_string(),
            field(r, "pipeline"),
            field(r, "trigger"),
            field(r, "state"),
            field(r, "created"),
            r["model_version"]
                .as_i64()
                .map_or("-".to_string(), |v| format!("v{v}")),
        ]);
    }
    table.print();
}

/// Prints step logs; with `follow`, keeps reading each step until it ends.
fn logs(client: &ApiClient, id: i64, only: Option<i64>, follow: bool) -> anyhow::Result<()> {
    let run = get(client, &format!("/api/runs/{id}"))?;
    let mut indices: Vec<i64> = run["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["index"].as_i64())
        .collect();
    if run["steps"].as_array().is_some_and(|s| !s.is_empty()) && only.is_none() {
        indices.insert(0, 0);
    }
    if let Some(step) = only {
        indices = vec![step];
    }
    for index in indices {
        let mut offset = 0;
        loop {
            let chunk = get(
                client,
                &format!("/api/runs/{id}/logs?step={index}&offset={offset}"),
            )?;
            print!("{}", chunk["text"].as_str().unwrap_or(""));
            offset = chunk["next_offset"].as_u64().unwrap_or(offset);
            let state = text(&chunk, "step_state");
            let open = matches!(state, "pending" | "running" | "queued");
            if !(follow && open) {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    Ok(())
}

/// Runs a `model` subcommand.
pub fn model(data_dir: &Path, cmd: ModelCmd) -> anyhow::Result<()> {
    match cmd {
        ModelCmd::List { name, json, server } => {
            let path = match &name {
                Some(n) => format!("/api/models?name={n}"),
                None => "/api/models".to_string(),
            };
            print_as(
                &get(&ApiClient::new(&server, data_dir), &path)?,
                json,
                print_models,
            )?;
        }
        ModelCmd::Describe {
            name,
            version,
            json,
            server,
        } => print_as(
            &get(
                &ApiClient::new(&server, data_dir),
                &format!("/api/models/{name}/{version}"),
            )?,
            json,
            fields,
        )?,
        ModelCmd::Promote {
            name,
            version,
            server,
        } => {
            let m = post(
                &ApiClient::new(&server, data_dir),
                &format!("/api/models/{name}/{version}/promote"),
            )?;
            println!(
                "{name} version {version} is production, served by endpoint {}",
                text(&m, "endpoint")
            );
        }
        ModelCmd::Lineage {
            endpoint,
            json,
            server,
        } => print_as(
            &get(
                &ApiClient::new(&server, data_dir),
                &format!("/api/lineage/{endpoint}"),
            )?,
            json,
            fields,
        )?,
    }
    Ok(())
}

fn print_models(list: &Value) {
    let mut table = Table::new(&[
        "NAME",
        "VERSION>",
        "ACCURACY>",
        "RUN>",
        "PRODUCTION",
        "ENDPOINT",
        "URI",
    ]);
    for m in rows(list) {
        table.row(vec![
            field(m, "name"),
            m["version"].to_string(),
            format!("{:.4}", m["accuracy"].as_f64().unwrap_or(0.0)),
            m["run_id"].to_string(),
            if m["production"].as_bool().unwrap_or(false) {
                "yes".to_string()
            } else {
                String::new()
            },
            field(m, "endpoint"),
            field(m, "uri"),
        ]);
    }
    table.print();
}

/// Runs an `instance` subcommand.
pub fn instance(data_dir: &Path, cmd: InstanceCmd) -> anyhow::Result<()> {
    let InstanceCmd::List { json, server } = cmd;
    print_as(
        &get(&ApiClient::new(&server, data_dir), "/api/instances")?,
        json,
        print_instances,
    )
}

fn print_instances(list: &Value) {
    let mut table = Table::new(&[
        "ID>",
        "RUN>",
        "TYPE",
        "STATE",
        "STARTED",
        "STOPPED",
        "QUEUED s>",
        "BILLED s>",
        "COST>",
        "IDLE s>",
    ]);
    for i in rows(list) {
        table.row(vec![
            i["id"].to_string(),
            i["run_id"].to_string(),
            field(i, "type"),
            field(i, "state"),
            field(i, "started"),
            field(i, "stopped"),
            format!("{:.1}", i["queued_seconds"].as_f64().unwrap_or(0.0)),
            format!("{:.1}", i["billed_seconds"].as_f64().unwrap_or(0.0)),
            format!("{:.4}", i["cost"].as_f64().unwrap_or(0.0)),
            format!("{:.3}", i["idle_seconds"].as_f64().unwrap_or(0.0)),
        ]);
    }
    table.print();
}
