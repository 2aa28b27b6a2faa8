//! `tread migrate`: moves an install's catalog into the database several
//! gateways and daemons share.

use anyhow::Context;
use clap::Args;
use std::path::Path;

/// Where `tread migrate` copies the catalog to.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The new catalog (`postgres://user:password@host:port/dbname`), which
    /// must hold no table yet. The catalog copied is the one every other
    /// command uses: `--database-url`, or the data dir's SQLite file. Stop
    /// `tread up` first: what it writes after the copy began is not copied.
    #[arg(long, value_name = "DATABASE_URL")]
    pub to: String,
}

/// Every part's tables, in the order a copy fills them.
static PARTS: &[&tread_catalog::Part] = &[
    &tread_store::catalog::PART,
    &tread_serve::catalog::PART,
    &tread_pipeline::catalog::PART,
];

/// Copies the catalog into `args.to` and prints each table's rows.
pub fn migrate(data_dir: &Path, args: &MigrateArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let source = super::open_database(data_dir).await?;
        let target = tread_catalog::Target::resolve(Some(&args.to), data_dir)?;
        let shown = target.to_string();
        let target =
            tread_catalog::Database::open(target, tread_catalog::OpenOptions::default()).await?;
        let counts = source
            .copy_into(&target, PARTS)
            .await
            .with_context(|| format!("copying {} into {shown}", source.target()))?;
        println!("copied {} into {shown}:", source.target());
        for (table, rows) in counts {
            println!("  {table:<24} {rows:>8} rows");
        }
        println!(
            "every count checked. Point every gateway and daemon at it: --database-url (or TREAD_DATABASE_URL)"
        );
        Ok(())
    })
}
