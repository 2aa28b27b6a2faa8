//! The command-line grammar. Doc comments are the help text.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::cmd::data::DataCmd;
use crate::cmd::demo::DemoArgs;
use crate::cmd::migrate::MigrateArgs;
use crate::cmd::pipeline::{InstanceCmd, ModelCmd, PipelineCmd, RunCmd};
use crate::cmd::s3::S3Cmd;
use crate::cmd::schedule::ScheduleCmd;
use crate::cmd::serve::{DeployArgs, EndpointCmd, PredictArgs, ServeArgs};
use crate::cmd::train::{EvalArgs, TrainArgs};
use crate::cmd::up::UpArgs;

/// tread: a private S3 bucket on plain directories, image classifiers trained
/// from it, served over HTTP, retrained on a schedule.
#[derive(Debug, Parser)]
#[command(name = "tread", version, about)]
pub struct Cli {
    /// Directory holding tread's state (the SQLite catalog, the default volume).
    #[arg(
        long,
        global = true,
        env = "TREAD_DATA_DIR",
        default_value = "./tread-data"
    )]
    pub data_dir: PathBuf,

    /// The catalog database shared by several gateways and daemons
    /// (`postgres://user:password@host:port/dbname`); without it, the SQLite
    /// file in the data dir.
    #[arg(
        long,
        global = true,
        env = "TREAD_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The parts of tread.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// S3 over NAS: volumes, buckets, users, groups, policies, and the S3 server.
    #[command(subcommand)]
    S3(S3Cmd),
    /// Datasets: inspect one, or generate the synthetic tyre set.
    #[command(subcommand)]
    Data(DataCmd),
    /// Train an image classifier from a bucket or a directory and write model.tar.gz.
    Train(Box<TrainArgs>),
    /// Score a model.tar.gz (or an ONNX classifier with its JSON) on a dataset: accuracy,
    /// per-class precision/recall/F1, confusion.
    Eval(EvalArgs),
    /// Run the endpoint server: predictions over HTTP (SageMaker-style and
    /// KServe v2), the management API, and /metrics.
    Serve(ServeArgs),
    /// Deploy a model to an endpoint, creating it or swapping its model
    /// without downtime.
    Deploy(DeployArgs),
    /// Send images (files or s3:// keys) to an endpoint and print its answers.
    Predict(PredictArgs),
    /// List, describe, roll back or delete endpoints.
    #[command(subcommand)]
    Endpoint(EndpointCmd),
    /// Run everything in one process: the S3 store (:9000), the endpoints,
    /// the API and /metrics (:8080), and the pipeline scheduler.
    Up(UpArgs),
    /// Pipelines: apply a pipeline file, list, describe, run, pause, resume.
    #[command(subcommand)]
    Pipeline(PipelineCmd),
    /// Runs of pipelines: list, describe, logs, cancel.
    #[command(subcommand)]
    Run(RunCmd),
    /// The model registry: versions, promotion, lineage.
    #[command(subcommand)]
    Model(ModelCmd),
    /// Instances runs held, with their billed seconds and cost.
    #[command(subcommand)]
    Instance(InstanceCmd),
    /// Build the recipe's whole world end to end in a fresh data dir:
    /// store, bucket, user, tyre images, a pipeline run, a deployed endpoint,
    /// predictions and a summary.
    Demo(DemoArgs),
    /// Copy this install's catalog (volumes, buckets, users and keys,
    /// groups, policies, pipelines, runs, registry, endpoints) into a new
    /// PostgreSQL database, checking every table's count.
    Migrate(MigrateArgs),
    /// Schedule expressions: the next fire times of any expression.
    #[command(subcommand)]
    Schedule(ScheduleCmd),
}
