//! One module per part of the command line, each with its `run`.

pub mod data;
pub mod s3;
pub mod serve;
pub mod train;

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
        Command::Demo => anyhow::bail!(
            "`tread demo` arrives with the pipeline part (issue 5); today tread serves S3: see `tread s3 --help` and the README's S3 quick start"
        ),
    }
}
