//! One module per part of the command line, each with its `run`.

pub mod s3;

use crate::cli::{Cli, Command};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::S3(cmd) => s3::run(&cli.data_dir, cmd),
        Command::Demo => anyhow::bail!(
            "`tread demo` arrives with the pipeline part (issue 5); today tread serves S3: see `tread s3 --help` and the README's S3 quick start"
        ),
    }
}
