//! `tread data …`: look at datasets and generate the synthetic tyre set.

use crate::cmd::train::{list_dataset, runtime};
use anyhow::Context;
use bytes::Bytes;
use clap::Subcommand;
use futures::StreamExt;
use rayon::prelude::*;
use std::time::Instant;
use tread_data::ObjectDir;
use tread_data::synth::{SynthImage, SynthSpec, TyreClass};

/// Images rendered before they are uploaded together.
const SYNTH_CHUNK: usize = 128;
/// PUT requests in flight while uploading.
const SYNTH_UPLOADS: usize = 16;

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
    /// Draw the synthetic tyre set (classes good and defective) as JPEGs, the
    /// same bytes for the same seed, to s3://bucket/prefix or a directory.
    Synth {
        /// Where to write: s3://bucket/prefix or a directory.
        out: String,
        /// Number of images (the real tyre set has 1856).
        #[arg(long, default_value_t = tread_data::synth::DEFAULT_COUNT)]
        count: usize,
        /// Seed: the same seed draws the same images.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Side of every image in pixels; mixed sizes (180–420) like real photos when not given.
        #[arg(long)]
        size: Option<u32>,
        /// Share of defective tyres (the real set: 1028 of 1856).
        #[arg(long, default_value_t = tread_data::synth::DEFAULT_DEFECTIVE_SHARE)]
        defective_share: f64,
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
        DataCmd::Synth {
            out,
            count,
            seed,
            size,
            defective_share,
        } => synth(
            &out,
            SynthSpec {
                count,
                seed,
                size,
                defective_share,
            },
        ),
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

/// Renders on every core, a chunk at a time, and uploads each chunk with
/// several PUTs in flight.
fn synth(uri: &str, spec: SynthSpec) -> anyhow::Result<()> {
    let started = Instant::now();
    let runtime = runtime()?;
    let dir = runtime.block_on(ObjectDir::open(uri))?;
    let [defective, good] = write_synth(&runtime, &dir, &spec)?;
    println!(
        "wrote {} images ({defective} defective, {good} good) to {} in {:.1} s",
        defective + good,
        dir.uri(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Draws the synthetic set into `dir`; returns the counts written
/// (defective, good).
pub fn write_synth(
    runtime: &tokio::runtime::Runtime,
    dir: &ObjectDir,
    spec: &SynthSpec,
) -> anyhow::Result<[usize; 2]> {
    let plan = spec.plan()?;
    let mut written = [0usize; 2];
    for chunk in plan.chunks(SYNTH_CHUNK) {
        let images = chunk
            .par_iter()
            .map(|item| spec.render(item))
            .collect::<Result<Vec<SynthImage>, _>>()?;
        runtime.block_on(upload(dir, &images))?;
        for image in &images {
            written[usize::from(image.class == TyreClass::Good)] += 1;
        }
    }
    Ok(written)
}

async fn upload(dir: &ObjectDir, images: &[SynthImage]) -> anyhow::Result<()> {
    let mut puts = futures::stream::iter(images)
        .map(|image| async move {
            let body = Bytes::copy_from_slice(&image.jpeg);
            dir.put(&image.key, body)
                .await
                .with_context(|| format!("writing {}", dir.uri_of(&image.key)))
        })
        .buffer_unordered(SYNTH_UPLOADS);
    while let Some(result) = puts.next().await {
        result?;
    }
    Ok(())
}
