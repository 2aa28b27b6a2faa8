//! Writes what `tread train` draws from its seed: the split, each epoch's
//! order of the training images and the network's initial weights, so that
//! `bench/train/pytorch_recipe.py --draws` trains PyTorch on the very same
//! ones (`bench/train-quality.sh`'s seedcnn part). Two frameworks on one
//! draw differ only in their arithmetic; on their own draws, two epochs of
//! the recipe swing by several points from the draw alone.

use anyhow::Context;
use clap::Parser;
use tread_data::{ObjectDir, SplitSpec};
use tread_nn::{Architecture, Network};
use tread_train::job::list_dataset;
use tread_train::{ConsoleProgress, Parts};

/// The draws of one training run.
#[derive(Parser)]
struct Args {
    /// The dataset, as `tread train` takes it.
    data: String,
    /// Where draws.json and init.safetensors go.
    #[arg(long)]
    out: std::path::PathBuf,
    /// As `tread train --model`.
    #[arg(long, default_value = "seed-cnn")]
    model: Architecture,
    /// As `tread train --seed`.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// As `tread train --split`.
    #[arg(long, default_value = "0.8,0.2")]
    split: SplitSpec,
    /// As `tread train --val`.
    #[arg(long, default_value_t = 0.0)]
    val: f64,
    /// As `tread train --epochs`.
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    /// As `tread train --size`.
    #[arg(long, default_value_t = 224)]
    size: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    // Listed as `tread train` lists it, so sample i is the same image.
    let dataset = runtime.block_on(async {
        let dir = ObjectDir::open(&args.data).await?;
        anyhow::Ok(list_dataset(&dir, &mut ConsoleProgress::new()).await?)
    })?;
    let parts = Parts::new(dataset.samples.len(), &args.split, args.val, args.seed)?;
    let orders: Vec<Vec<usize>> = (1..=args.epochs)
        .map(|epoch| parts.epoch_order(args.seed, epoch))
        .collect();
    let draws = serde_json::json!({
        "seed": args.seed,
        "classes": dataset.classes,
        "keys": dataset.samples.iter().map(|s| &s.key).collect::<Vec<_>>(),
        "labels": dataset.samples.iter().map(|s| s.class).collect::<Vec<_>>(),
        "train": parts.train,
        "validation": parts.validation,
        "test": parts.test,
        "orders": orders,
    });
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(args.out.join("draws.json"), draws.to_string())?;
    let mut network = Network::new(args.model, dataset.classes.len(), args.size, args.seed)?;
    let weights = tread_nn::weights::save(&mut network)?;
    std::fs::write(args.out.join("init.safetensors"), weights)
        .with_context(|| format!("writing {}", args.out.display()))?;
    Ok(())
}
