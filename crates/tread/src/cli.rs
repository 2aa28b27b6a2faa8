//! The command-line grammar. Doc comments are the help text.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::cmd::data::DataCmd;
use crate::cmd::s3::S3Cmd;
use crate::cmd::serve::{DeployArgs, EndpointCmd, PredictArgs, ServeArgs};
use crate::cmd::train::{EvalArgs, TrainArgs};

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
    /// Score a model.tar.gz on a dataset: accuracy, per-class precision/recall/F1, confusion.
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
    /// Build the recipe's whole world end to end (not built yet: see the README).
    Demo,
}
