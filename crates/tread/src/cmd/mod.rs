//! One module per part of the command line, each with its `run`.

pub mod api;
pub mod data;
pub mod demo;
pub mod pipeline;
pub mod s3;
pub mod serve;
pub mod show;
pub mod train;
pub mod up;

use crate::cli::{Cli, Command};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::S3(cmd) => s3::run(&cli.data_dir, cmd),
        Command::Data(cmd) => data::run(cmd),
        Command::Train(args) => train::train(*args),
        Command::Eval(args) => train::eval(args),
        Command::Serve(args) => serve::serve(&cli.data_dir, args),
        Command::Deploy(args) => serve::deploy(&cli.data_dir, args),
        Command::Predict(args) => serve::predict(&cli.data_dir, args),
        Command::Endpoint(cmd) => serve::endpoint(&cli.data_dir, cmd),
        Command::Up(args) => up::up(&cli.data_dir, args),
        Command::Pipeline(cmd) => pipeline::pipeline(&cli.data_dir, cmd),
        Command::Run(cmd) => pipeline::run(&cli.data_dir, cmd),
        Command::Model(cmd) => pipeline::model(&cli.data_dir, cmd),
        Command::Instance(cmd) => pipeline::instance(&cli.data_dir, cmd),
        Command::Demo(args) => demo::demo(&cli.data_dir, args),
    }
}

/// Opens the catalog database of `data_dir` (its SQLite file).
pub async fn open_database(data_dir: &std::path::Path) -> anyhow::Result<tread_catalog::Database> {
    let target = tread_catalog::Target::resolve(None, data_dir)?;
    Ok(tread_catalog::Database::open(target, tread_catalog::OpenOptions::default()).await?)
}
