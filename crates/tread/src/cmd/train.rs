//! `tread train` and `tread eval`.

use anyhow::Context;
use clap::Args;
use std::path::{Path, PathBuf};
use tread_data::{Dataset, LoaderOptions, ObjectDir, Preprocess, SplitSpec};
use tread_nn::{Architecture, DeviceChoice};
use tread_train::{ConsoleProgress, EvalModel, EvalScope, RecipeOverrides, TrainOptions};

/// Options of `tread train`. Training settings left out take the
/// network's defaults: the recipe's notebook for seed-cnn, the measured
/// recipe for the default network (see `model.json` of any model).
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The dataset: s3://bucket/prefix or a directory, one folder per class.
    pub data: String,
    /// Where to write the model: s3://bucket/prefix or a directory. The
    /// model goes to <OUT>/<version>/model.tar.gz, its per-epoch metrics
    /// to <OUT>/<version>/metrics.jsonl as they come.
    #[arg(long)]
    pub out: String,
    /// The network: resnet-small (default, accurate and cheap) or seed-cnn
    /// (the recipe's network, with the recipe's settings).
    #[arg(long, default_value = "resnet-small")]
    pub model: Architecture,
    /// Training and held-out sizes: counts (1500,356) or fractions (0.8,0.2).
    #[arg(long, default_value = "0.8,0.2")]
    pub split: SplitSpec,
    /// Seed of the split, the shuffles, the augmentation and the initial
    /// weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Side of the square network input, in pixels.
    #[arg(long, default_value_t = 224)]
    pub size: u32,
    #[command(flatten)]
    pub recipe: RecipeArgs,
    #[command(flatten)]
    pub loading: LoadingArgs,
    /// Fetch and decode the whole training split into memory before the
    /// first epoch (it must fit in --cache-mib).
    #[arg(long)]
    pub preload: bool,
    /// Add partial sums in a fixed order, so the same seed, data and
    /// machine give bit-identical weights (a little slower).
    #[arg(long)]
    pub deterministic: bool,
    /// Where to compute: auto, cpu or cuda.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Also write a JSON summary here: the model's URI, version, dataset
    /// digest and held-out evaluation (what a pipeline's train step reads).
    #[arg(long)]
    pub result: Option<PathBuf>,
    /// The model's version, the folder under --out it goes to (a pipeline
    /// names it, to follow its metrics.jsonl); a new one (time and random
    /// digits) when not given.
    #[arg(long, value_parser = parse_version)]
    pub version: Option<String>,
}

/// The training recipe's settings; each replaces the network's default.
#[derive(Debug, Args)]
pub struct RecipeArgs {
    /// Most passes over the training part [default: seed-cnn 2, resnet-small 30].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per step [default: 64].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Peak learning rate [default: seed-cnn 1e-3, resnet-small 2e-3].
    #[arg(long)]
    pub lr: Option<f32>,
    /// AdamW's weight decay; 0 is plain Adam [default: seed-cnn 0, resnet-small 0.05].
    #[arg(long)]
    pub weight_decay: Option<f32>,
    /// Epochs of linear warm-up before the cosine decay [default: resnet-small 1].
    #[arg(long, conflicts_with = "constant_lr")]
    pub warmup_epochs: Option<f32>,
    /// Keep the learning rate fixed (seed-cnn's default).
    #[arg(long)]
    pub constant_lr: bool,
    /// Label smoothing of the loss [default: seed-cnn 0, resnet-small 0.1].
    #[arg(long)]
    pub label_smoothing: Option<f32>,
    /// Random crops, flips, brightness and contrast on training images
    /// (resnet-small's default).
    #[arg(long, overrides_with = "no_augment")]
    pub augment: bool,
    /// Train on the images as they are (seed-cnn's default).
    #[arg(long)]
    pub no_augment: bool,
    /// The smallest share of an image's area a random crop keeps (up to
    /// all of it) [default: 0.5].
    #[arg(long)]
    pub crop_scale: Option<f32>,
    /// Share of the training split held apart to pick the best epoch and
    /// stop early; 0 keeps the last epoch [default: seed-cnn 0, resnet-small 0.1].
    #[arg(long)]
    pub val: Option<f64>,
    /// Stop after this many epochs without a lower validation loss; 0
    /// runs every epoch [default: 0, every epoch].
    #[arg(long)]
    pub patience: Option<usize>,
}

impl RecipeArgs {
    fn overrides(&self) -> RecipeOverrides {
        RecipeOverrides {
            epochs: self.epochs,
            batch_size: self.batch_size,
            learning_rate: self.lr,
            weight_decay: self.weight_decay,
            warmup_epochs: self.warmup_epochs,
            constant_lr: self.constant_lr,
            label_smoothing: self.label_smoothing,
            augment: match (self.augment, self.no_augment) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            },
            crop_scale: self.crop_scale,
            validation: self.val,
            patience: self.patience,
        }
    }
}

/// How images are fetched.
#[derive(Debug, Args)]
pub struct LoadingArgs {
    /// GET requests in flight at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Memory for decoded images kept between epochs, in MiB.
    #[arg(long, default_value_t = 4096)]
    pub cache_mib: u64,
}

impl LoadingArgs {
    fn options(&self) -> LoaderOptions {
        LoaderOptions {
            concurrency: self.concurrency,
            cache_bytes: self.cache_mib << 20,
            ..LoaderOptions::default()
        }
    }
}

/// Options of `tread eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The model: s3://bucket/…/model.tar.gz, …/model.onnx (with model.json
    /// beside it) or a file.
    pub model: String,
    /// The dataset to evaluate on.
    pub data: String,
    /// Evaluate every image, even when the dataset is the one the model
    /// was trained on (by default only its held-out split then).
    #[arg(long)]
    pub all: bool,
    /// Images per forward pass.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Evaluate on the held-out split of this other model (trained on the
    /// same data), to compare two models on the same images.
    #[arg(long, value_name = "MODEL")]
    pub split_of: Option<String>,
    /// Also write the evaluation as JSON here.
    #[arg(long)]
    pub result: Option<PathBuf>,
    #[command(flatten)]
    pub loading: LoadingArgs,
}

fn parse_version(text: &str) -> Result<String, String> {
    tread_train::clock::check_version(text).map(|()| text.to_owned())
}

/// Trains, evaluates, and writes the model and its metrics under `--out`.
pub fn train(args: TrainArgs) -> anyhow::Result<()> {
    let device = args.device.resolve()?;
    let runtime = runtime()?;
    let options = TrainOptions {
        architecture: args.model,
        recipe: args.recipe.overrides().apply(args.model),
        seed: args.seed,
        split: args.split,
        preprocess: Preprocess {
            size: args.size,
            ..Preprocess::default()
        },
        loader: args.loading.options(),
        preload: args.preload,
        deterministic: args.deterministic,
        version: args.version,
    };
    eprintln!("computing on {device}");
    let outcome = tread_train::train_to(
        &args.data,
        &args.out,
        &options,
        runtime.handle(),
        &mut ConsoleProgress::new(),
    )?;
    let card = &outcome.card;
    print!("{}", card.evaluation.table());
    report_skipped(&card.dataset.skipped);
    if let Some(path) = &args.result {
        write_result(
            path,
            &serde_json::json!({
                "model": outcome.model_uri,
                "version": card.version,
                "dataset_digest": card.dataset.digest,
                "evaluation": card.evaluation,
                "settings": card.settings(),
            }),
        )?;
    }
    println!("model {}", outcome.model_uri);
    Ok(())
}

fn write_result(path: &Path, value: &serde_json::Value) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("writing {}", path.display()))
}

fn report_skipped(skipped: &[(String, String)]) {
    if !skipped.is_empty() {
        eprintln!("skipped {} unreadable images:", skipped.len());
        for (key, reason) in skipped {
            eprintln!("  {key}: {reason}");
        }
    }
}

/// Loads a model and scores it on a dataset.
pub fn eval(args: EvalArgs) -> anyhow::Result<()> {
    let runtime = runtime()?;
    let scope = match (&args.split_of, args.all) {
        (Some(other), _) => EvalScope::HeldOutOf(other.clone()),
        (None, true) => EvalScope::All,
        (None, false) => EvalScope::Auto,
    };
    let model = if tread_serve::model::is_onnx(&args.model) {
        let loaded = runtime.block_on(tread_serve::model::fetch_and_load(&args.model))?;
        EvalModel::Foreign(loaded.into_foreign())
    } else {
        EvalModel::Packed(args.model.clone())
    };
    let outcome = tread_train::evaluate_at(
        model,
        &args.data,
        &scope,
        args.batch_size,
        args.loading.options(),
        runtime.handle(),
        &mut ConsoleProgress::new(),
    )?;
    print!("{}", outcome.evaluation.table());
    report_skipped(&outcome.skipped);
    if let Some(path) = &args.result {
        write_result(
            path,
            &serde_json::json!({ "model": args.model, "evaluation": outcome.evaluation }),
        )?;
    }
    Ok(())
}

/// Lists a dataset, telling what was left out.
pub async fn list_dataset(dir: &ObjectDir) -> anyhow::Result<Dataset> {
    Ok(tread_train::job::list_dataset(dir, &mut ConsoleProgress::new()).await?)
}

/// A runtime for S3 requests; the training itself runs on rayon's threads.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Recipe {
        #[command(flatten)]
        recipe: RecipeArgs,
    }

    fn parsed(flags: &[String]) -> RecipeOverrides {
        let argv = std::iter::once("tread".to_string()).chain(flags.iter().cloned());
        Recipe::parse_from(argv).recipe.overrides()
    }

    /// A pipeline's train step passes its settings to `tread train` as the
    /// flags `RecipeOverrides::flags` writes: every setting must come back.
    #[test]
    fn recipe_flags_parse_back_to_the_same_settings() {
        let every = RecipeOverrides {
            epochs: Some(7),
            batch_size: Some(32),
            learning_rate: Some(3e-4),
            weight_decay: Some(0.01),
            warmup_epochs: Some(0.5),
            constant_lr: false,
            label_smoothing: Some(0.05),
            augment: Some(true),
            crop_scale: Some(0.7),
            validation: Some(0.15),
            patience: Some(4),
        };
        assert_eq!(parsed(&every.flags()), every);
        let switches = RecipeOverrides {
            constant_lr: true,
            augment: Some(false),
            ..RecipeOverrides::default()
        };
        assert_eq!(parsed(&switches.flags()), switches);
        assert_eq!(parsed(&[]), RecipeOverrides::default());
    }
}
