//! `tread data …`: look at datasets and generate the synthetic tyre set.

use crate::cmd::train::{list_dataset, runtime};
use clap::Subcommand;
use tread_data::ObjectDir;

/// Dataset commands.
#[derive(Debug, Subcommand)]
pub enum DataCmd {
    /// Classes, counts, sizes and unreadable images of a dataset.
    Inspect {
        /// s3://bucket/prefix or a directory, one folder per class.
        data: String,
        /// GET requests in flight at once.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Print JSON instead of a report.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `tread data` command.
pub fn run(cmd: DataCmd) -> anyhow::Result<()> {
    match cmd {
        DataCmd::Inspect {
            data,
            concurrency,
            json,
        } => inspect(&data, concurrency, json),
    }
}

fn inspect(uri: &str, concurrency: usize, json: bool) -> anyhow::Result<()> {
    let runtime = runtime()?;
    runtime.block_on(async {
        let dir = ObjectDir::open(uri).await?;
        let dataset = list_dataset(&dir).await?;
        let inspection = tread_data::inspect::inspect(&dir, &dataset, concurrency).await;
        if json {
            println!("{}", serde_json::to_string_pretty(&inspection)?);
        } else {
            print!("{}", inspection.report());
        }
        Ok(())
    })
}
