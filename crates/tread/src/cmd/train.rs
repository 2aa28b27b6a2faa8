//! `tread train` and `tread eval`.

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use std::path::{Path, PathBuf};
use tread_data::{Dataset, LoaderOptions, ObjectDir, Preprocess, Sample, SplitSpec};
use tread_nn::{Architecture, DeviceChoice};
use tread_train::{ConsoleProgress, Model, TrainOptions};

/// Options of `tread train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The dataset: s3://bucket/prefix or a directory, one folder per class.
    pub data: String,
    /// Where to write the model: s3://bucket/prefix or a directory. The
    /// model goes to <OUT>/<version>/model.tar.gz.
    #[arg(long)]
    pub out: String,
    /// The network: resnet-small (default, accurate and cheap) or seed-cnn
    /// (the recipe's network).
    #[arg(long, default_value = "resnet-small")]
    pub model: Architecture,
    /// Passes over the training split.
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    /// Images per step.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Training and held-out sizes: counts (1500,356) or fractions (0.8,0.2).
    #[arg(long, default_value = "0.8,0.2")]
    pub split: SplitSpec,
    /// Seed of the split, the shuffles and the initial weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f32,
    /// Side of the square network input, in pixels.
    #[arg(long, default_value_t = 224)]
    pub size: u32,
    #[command(flatten)]
    pub loading: LoadingArgs,
    /// Fetch and decode the whole training split into memory before the
    /// first epoch (it must fit in --cache-mib).
    #[arg(long)]
    pub preload: bool,
    /// Where to compute: auto, cpu or cuda.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Also write a JSON summary here: the model's URI, version, dataset
    /// digest and held-out evaluation (what a pipeline's train step reads).
    #[arg(long)]
    pub result: Option<PathBuf>,
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
    /// The model: s3://bucket/…/model.tar.gz or a file.
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

/// Trains, evaluates, and writes the model and its metrics under `--out`.
pub fn train(args: TrainArgs) -> anyhow::Result<()> {
    let device = args.device.resolve()?;
    let runtime = runtime()?;
    let dir = runtime.block_on(ObjectDir::open(&args.data))?;
    let out = runtime.block_on(ObjectDir::open(&args.out))?;
    let dataset = runtime.block_on(list_dataset(&dir))?;
    eprintln!(
        "training {} on {} images in {} classes ({}) from {} on {device}",
        args.model,
        dataset.samples.len(),
        dataset.classes.len(),
        dataset.classes.join(", "),
        dir.uri()
    );
    let options = TrainOptions {
        architecture: args.model,
        epochs: args.epochs,
        batch_size: args.batch_size,
        learning_rate: args.lr,
        seed: args.seed,
        split: args.split,
        preprocess: Preprocess {
            size: args.size,
            ..Preprocess::default()
        },
        loader: args.loading.options(),
        preload: args.preload,
    };
    let mut trained = tread_train::train(
        &dir,
        &dataset,
        &options,
        runtime.handle().clone(),
        &mut ConsoleProgress::new(),
    )?;
    let bytes = tread_train::pack(&mut trained.card, &mut trained.network)?;
    let version_dir = out.join(&trained.card.version);
    runtime.block_on(version_dir.put("model.tar.gz", Bytes::from(bytes)))?;
    runtime
        .block_on(version_dir.put("metrics.jsonl", Bytes::from(metrics_lines(&trained.card)?)))?;
    print!("{}", trained.card.evaluation.table());
    report_skipped(&trained.card.dataset.skipped);
    let uri = version_dir.uri_of("model.tar.gz");
    if let Some(path) = &args.result {
        let card = &trained.card;
        write_result(
            path,
            &serde_json::json!({
                "model": uri,
                "version": card.version,
                "dataset_digest": card.dataset.digest,
                "evaluation": card.evaluation,
            }),
        )?;
    }
    println!("model {uri}");
    Ok(())
}

fn write_result(path: &Path, value: &serde_json::Value) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// One JSON line per epoch, then one with the held-out evaluation.
fn metrics_lines(card: &tread_train::ModelCard) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    for epoch in &card.history {
        serde_json::to_writer(&mut out, epoch)?;
        out.push(b'\n');
    }
    serde_json::to_writer(
        &mut out,
        &serde_json::json!({ "evaluation": card.evaluation }),
    )?;
    out.push(b'\n');
    Ok(out)
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
    let Model { card, mut network } = runtime.block_on(read_model(&args.model))?;
    let dir = runtime.block_on(ObjectDir::open(&args.data))?;
    let dataset = runtime.block_on(list_dataset(&dir))?;
    let samples = relabel(&dataset, &card.classes)?;
    let indices = if let Some(other) = &args.split_of {
        let reference = runtime.block_on(read_model(other))?.card;
        if dataset.digest() != reference.dataset.digest {
            anyhow::bail!(
                "--split-of {other}: that model was trained on other data than {}, so its held-out split does not exist here",
                args.data
            );
        }
        eprintln!("evaluating the held-out split of {other}");
        held_out(&reference, samples.len())?
    } else if !args.all && dataset.digest() == card.dataset.digest {
        eprintln!(
            "same data as the model was trained on: evaluating its held-out split ({})",
            card.hyperparameters.split
        );
        held_out(&card, samples.len())?
    } else {
        eprintln!("evaluating all {} images", samples.len());
        (0..samples.len()).collect()
    };
    let loader = tread_data::Loader::new(
        dir,
        samples,
        card.input.clone(),
        args.loading.options(),
        runtime.handle().clone(),
    );
    let evaluation = tread_train::evaluate(
        &mut network,
        &loader,
        indices,
        &card.classes,
        args.batch_size,
    );
    print!("{}", evaluation.table());
    report_skipped(&loader.failures().into_iter().collect::<Vec<_>>());
    if let Some(path) = &args.result {
        write_result(
            path,
            &serde_json::json!({ "model": args.model, "evaluation": evaluation }),
        )?;
    }
    Ok(())
}

/// The indices of a model's held-out split over a dataset of `len` images.
fn held_out(card: &tread_train::ModelCard, len: usize) -> anyhow::Result<Vec<usize>> {
    let split: SplitSpec = card.hyperparameters.split.parse()?;
    Ok(split.split(len, card.hyperparameters.seed)?.1)
}

/// The dataset's samples with class indices of the model, refusing a class
/// the model does not know.
fn relabel(dataset: &Dataset, model_classes: &[String]) -> anyhow::Result<Vec<Sample>> {
    let mapping = dataset
        .classes
        .iter()
        .map(|name| {
            model_classes
                .iter()
                .position(|c| c == name)
                .with_context(|| format!("the dataset has class {name:?}, which the model does not know (it knows {})", model_classes.join(", ")))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(dataset
        .samples
        .iter()
        .map(|s| Sample {
            class: mapping[s.class],
            ..s.clone()
        })
        .collect())
}

/// Fetches and loads a `model.tar.gz` from S3 or a file.
pub async fn read_model(uri: &str) -> anyhow::Result<Model> {
    let bytes = tread_data::read_uri(uri).await?;
    tread_train::unpack(&bytes).with_context(|| format!("loading {uri}"))
}

/// Lists a dataset, telling what was left out.
pub async fn list_dataset(dir: &ObjectDir) -> anyhow::Result<Dataset> {
    let objects = dir.list().await?;
    let dataset = Dataset::from_listing(&dir.uri(), objects)?;
    if !dataset.excluded.is_empty() {
        eprintln!(
            "{} objects are not images in class folders and were left out",
            dataset.excluded.len()
        );
    }
    Ok(dataset)
}

/// A runtime for S3 requests; the training itself runs on rayon's threads.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}
