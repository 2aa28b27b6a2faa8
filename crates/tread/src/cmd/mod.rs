//! One module per part of the command line, each with its `run`.

pub mod api;
pub mod data;
pub mod demo;
pub mod migrate;
pub mod pipeline;
pub mod s3;
pub mod schedule;
pub mod serve;
pub mod show;
pub mod train;
pub mod up;

use std::sync::OnceLock;

use crate::cli::{Cli, Command};

/// The `--database-url` of this process, set once at start. Every command
/// reaches the catalog through [`open_database`]; a process-wide value spares
/// threading one setting through every command's signature.
static DATABASE_URL: OnceLock<Option<String>> = OnceLock::new();

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    DATABASE_URL.get_or_init(|| cli.database_url.clone());
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
        Command::Migrate(args) => migrate::migrate(&cli.data_dir, &args),
        Command::Schedule(cmd) => schedule::schedule(cmd),
    }
}

/// Opens the catalog database: `--database-url` when given, the SQLite file
/// of `data_dir` otherwise.
pub async fn open_database(data_dir: &std::path::Path) -> anyhow::Result<tread_catalog::Database> {
    let url = DATABASE_URL.get().and_then(Option::as_deref);
    let target = tread_catalog::Target::resolve(url, data_dir)?;
    Ok(tread_catalog::Database::open(target, tread_catalog::OpenOptions::default()).await?)
}

/// Whether this process's catalog is a database server rather than the data
/// dir's SQLite file.
pub fn uses_database_url() -> bool {
    DATABASE_URL.get().is_some_and(Option::is_some)
}
