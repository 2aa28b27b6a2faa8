//! `tread demo`: the recipe's whole world on one machine, end to end —
//! volume `vol1`, NAS bucket `fsxn-ontap`, user `s3user` in `s3group` with
//! `FullAccess`, the tyre set under `dataset/tyre/`, the `tyre-quality`
//! pipeline on `rate(1 day)` run once (train → evaluate → gate → deploy),
//! predictions from the endpoint, and a summary.

use anyhow::{Context, bail};
use clap::Args;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tread_data::synth::SynthSpec;
use tread_data::{ObjectDir, S3Access};
use tread_pipeline::catalog::RunView;
use tread_pipeline::log::{read_from, step_log_path};
use tread_store::FileOwnership;
use tread_store::catalog::{Catalog as StoreCatalog, CatalogError, UserKeys};

use crate::cmd::serve::BatchingArgs;
use crate::cmd::up::{DEFAULT_LISTEN, DEFAULT_S3_LISTEN, Daemon, UpArgs};

/// Options of `tread demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The recipe's full configuration: 1856 images, seed-cnn at 224 px,
    /// split 1500/356, 2 epochs, the recipe's settings.
    #[arg(long)]
    pub full: bool,
    /// Address of the API and endpoints while the demo runs.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Address of the S3 server while the demo runs.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub s3_listen: SocketAddr,
    /// Seed of the training run (its split, shuffles, augmentation and
    /// initial weights); the tyre images are the same for every seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

const BUCKET: &str = "fsxn-ontap";
const DATA: &str = "s3://fsxn-ontap/dataset/tyre";
const PIPELINE: &str = "tyre-quality";
const ENDPOINT: &str = "tyre-quality-classifier";
/// The recipe's ml.g4dn.xlarge notebook instance's price per hour, so the
/// demo's cost compares with the recipe's.
const HOURLY_PRICE: f64 = 0.7364;

/// The demo's dataset and network.
struct Scale {
    images: usize,
    image_size: Option<u32>,
    model: &'static str,
    input: u32,
    /// How the pipeline's train step sets the recipe.
    recipe: &'static str,
    split: &'static str,
    seed: u64,
    /// The gate's bar, and why.
    gate: (f64, &'static str),
}

impl Scale {
    fn of(args: &DemoArgs) -> Self {
        if args.full {
            Scale {
                images: 1856,
                image_size: None,
                model: "seed-cnn",
                input: 224,
                recipe: "epochs = 2                     # the recipe's notebook: Adam 1e-3, no augmentation",
                split: "1500,356",
                seed: args.seed,
                gate: (
                    0.5,
                    "the recipe's network reaches about 0.52 after its 2 epochs: the bar is chance",
                ),
            }
        } else {
            Scale {
                images: 1200,
                image_size: Some(96),
                model: "resnet-small",
                input: 96,
                recipe: "epochs = 30                    # the default recipe otherwise: AdamW, warm-up and cosine,\n                               # augmentation, label smoothing\nval = 0                        # 96 validation images cannot tell epochs apart: keep the last",
                split: "0.8,0.2",
                seed: args.seed,
                gate: (
                    0.85,
                    "the default network reaches 0.90-0.95 here in 30 epochs (seeds 0-4): a model below 0.85 has gone wrong",
                ),
            }
        }
    }

    fn pipeline_file(&self) -> String {
        format!(
            r#"# The recipe's daily retrain-and-redeploy, as a tread pipeline.
name = "{PIPELINE}"
data = "{DATA}"
schedule = "rate(1 day)"

[instance]
type = "local-2cpu"
# Priced like the recipe's ml.g4dn.xlarge notebook instance, to compare.
hourly_price = {HOURLY_PRICE}
max_runtime_minutes = 60

[[steps]]
kind = "train"
model = "{model}"
size = {input}
seed = {seed}
{recipe}
split = "{split}"
out = "s3://{BUCKET}/models/{PIPELINE}/"

[[steps]]
kind = "evaluate"

# {gate_why}; every later model must also beat the one in production.
[[steps]]
kind = "gate"
min_accuracy = {gate}
beat_production = true

[[steps]]
kind = "deploy"
endpoint = "{ENDPOINT}"
"#,
            model = self.model,
            input = self.input,
            recipe = self.recipe,
            seed = self.seed,
            gate = self.gate.0,
            gate_why = self.gate.1,
            split = self.split,
        )
    }
}

/// Runs the demo in `data_dir`.
pub fn demo(data_dir: &Path, args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let scale = Scale::of(&args);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    // Runs are spawned on this runtime from the demo's own thread.
    let _entered = runtime.enter();
    println!("tread demo in {}", data_dir.display());
    let keys = runtime.block_on(build_world(data_dir))?;
    let shutdown = CancellationToken::new();
    let daemon = runtime.block_on(Daemon::start(
        data_dir,
        &UpArgs {
            listen: args.listen,
            s3_listen: args.s3_listen,
            step_s3_url: None,
            batching: BatchingArgs {
                max_batch: 16,
                max_wait_ms: 0,
            },
            public_inference: false,
        },
        shutdown.clone(),
    ))?;
    let (s3_url, api_url, pipelines) = (
        daemon.s3_url.clone(),
        daemon.api_url.clone(),
        daemon.pipelines(),
    );
    println!("S3 endpoint {s3_url}, API and endpoints {api_url}");
    let served = runtime.spawn(daemon.run());
    let interrupted = shutdown.clone();
    runtime.spawn(async move {
        crate::cmd::s3::shutdown_signal().await;
        // The daemon cancels the run, which stops its instance, then exits.
        interrupted.cancel();
    });
    let outcome = (|| {
        let access = S3Access {
            endpoint: s3_url.clone(),
            access_key_id: keys.access_key_id.clone(),
            secret_access_key: keys.secret_access_key.clone(),
        };
        let data = runtime.block_on(ObjectDir::open_as(DATA, &access))?;
        synthesise(&runtime, &data, &scale)?;
        println!(
            "pipeline {PIPELINE}: {} at {} px, split {}, seed {} (the recipe's full configuration: tread demo --full)",
            scale.model, scale.input, scale.split, scale.seed
        );
        runtime.block_on(pipelines.apply(&scale.pipeline_file()))?;
        let run = runtime.block_on(pipelines.trigger(PIPELINE, "manual"))?;
        println!("run {} started: train → evaluate → gate → deploy", run.id);
        let run = runtime.block_on(follow(&pipelines, run.id))?;
        let production = runtime.block_on(pipelines.catalog().model_production(PIPELINE))?;
        let Some(production) = production else {
            bail!(
                "run {} {}: {}; nothing is deployed",
                run.id,
                run.state.as_str(),
                run.reason.as_deref().unwrap_or("")
            );
        };
        println!("\npredictions of {api_url}/endpoints/{ENDPOINT}/invocations:");
        runtime.block_on(predict(&data, &api_url))?;
        summary(&run, &production, &keys, data_dir, &api_url, started);
        Ok(())
    })();
    shutdown.cancel();
    let _ = runtime.block_on(served);
    outcome
}

/// Volume, bucket, user and group, reusing what a previous demo made.
async fn build_world(data_dir: &Path) -> anyhow::Result<UserKeys> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let store = StoreCatalog::new(super::open_database(data_dir).await?, data_dir).await?;
    let existing = |r: Result<_, CatalogError>| match r {
        Ok(_) | Err(CatalogError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    };
    existing(
        store
            .volume_create("vol1", &data_dir.join("vol1"))
            .await
            .map(drop),
    )?;
    existing(
        store
            .bucket_create(BUCKET, "vol1", BUCKET, FileOwnership::default(), None)
            .await
            .map(drop),
    )?;
    // A user made before was shown its secret then; the demo itself works
    // with new keys of its own for this run.
    let member = store
        .ensure_member(
            "s3user",
            "s3group",
            &["FullAccess".to_string()],
            tread_store::catalog::KeepKeys::None,
        )
        .await?;
    if member.created {
        println!("user s3user created; its keys are shown this once:");
    } else {
        println!("user s3user exists; it has new keys now, shown this once:");
    }
    let keys = member.keys;
    println!("  access key id     {}", keys.access_key_id);
    println!("  secret access key {}", keys.secret_access_key);
    println!("volume vol1, NAS bucket {BUCKET}, user s3user in group s3group (FullAccess)");
    Ok(keys)
}

fn synthesise(
    runtime: &tokio::runtime::Runtime,
    data: &ObjectDir,
    scale: &Scale,
) -> anyhow::Result<()> {
    let present = runtime.block_on(data.list())?.len();
    if present >= scale.images {
        println!("{present} tyre images already under {DATA}/");
        return Ok(());
    }
    let started = Instant::now();
    let spec = SynthSpec {
        count: scale.images,
        seed: 0,
        size: scale.image_size,
        defective_share: tread_data::synth::DEFAULT_DEFECTIVE_SHARE,
    };
    let [defective, good] = crate::cmd::data::write_synth(runtime, data, &spec)?;
    println!(
        "synthesised {} tyre images ({defective} defective, {good} good) under {DATA}/ in {:.1} s",
        defective + good,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Prints each step as it ends, and the train step's progress while it
/// runs; returns the ended run.
async fn follow(pipelines: &tread_pipeline::Pipelines, id: i64) -> anyhow::Result<RunView> {
    let mut printed = 0;
    let mut progress = TrainProgress::default();
    loop {
        let run = pipelines
            .catalog()
            .run(id)
            .await?
            .context("the run vanished")?;
        if let Some(step) = run.steps.get(printed)
            && step.kind == "train"
        {
            let log = step_log_path(pipelines.runs_dir(), id, step.index, &step.kind);
            progress.show(&log)?;
        }
        for step in run.steps.iter().skip(printed) {
            if matches!(step.state.as_str(), "pending" | "running") {
                break;
            }
            println!(
                "  {} {:<9} {:<9} {}",
                step.index,
                step.kind,
                step.state,
                step.message.as_deref().unwrap_or("")
            );
            printed += 1;
        }
        if run.state.is_final() {
            return Ok(run);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How often a train step's per-step progress line is shown; its start
/// and every epoch's summary are always shown.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Follows a train step's log, so the minutes of training are not silent.
#[derive(Default)]
struct TrainProgress {
    offset: u64,
    last_step_line: Option<Instant>,
}

impl TrainProgress {
    /// Prints what is new in the log at `path` and worth a person's eye.
    fn show(&mut self, path: &Path) -> anyhow::Result<()> {
        let (text, next) = read_from(path, self.offset)
            .with_context(|| format!("reading the train step's log {}", path.display()))?;
        self.offset = next;
        for line in text.lines() {
            if let Some(line) = self.pick(line, Instant::now()) {
                println!("      {line}");
            }
        }
        Ok(())
    }

    /// The part of `line` to print at `now`, if any: the start line, each
    /// epoch's summary, and a step line (without its timestamp) at most
    /// every [`PROGRESS_EVERY`].
    fn pick(&mut self, line: &str, now: Instant) -> Option<String> {
        if ["training ", "epoch ", "stopping early"]
            .iter()
            .any(|start| line.starts_with(start))
        {
            return Some(line.to_string());
        }
        let step = &line[line.find("[epoch ")?..];
        if self
            .last_step_line
            .is_some_and(|t| now.duration_since(t) < PROGRESS_EVERY)
        {
            return None;
        }
        self.last_step_line = Some(now);
        Some(step.to_string())
    }
}

/// Sends two images of each class from the bucket to the endpoint over HTTP.
async fn predict(data: &ObjectDir, api_url: &str) -> anyhow::Result<()> {
    let objects = data.list().await?;
    let http = reqwest::Client::new();
    for class in ["defective", "good"] {
        for object in objects
            .iter()
            .filter(|o| o.key.starts_with(&format!("{class}/")))
            .take(2)
        {
            let bytes = data.get(&object.key).await?;
            let answer = http
                .post(format!("{api_url}/endpoints/{ENDPOINT}/invocations"))
                .header("content-type", "image/jpeg")
                .body(bytes)
                .send()
                .await?
                .error_for_status()?
                .text()
                .await?;
            let answer: serde_json::Value = serde_json::from_str(&answer)?;
            println!(
                "  {:<40} is {:<9} predicted {:<9} (p = {:.3})",
                object.key,
                class,
                answer["class"].as_str().unwrap_or("?"),
                answer["probabilities"][answer["class"].as_str().unwrap_or("")]
                    .as_f64()
                    .unwrap_or(0.0)
            );
        }
    }
    Ok(())
}

fn summary(
    run: &RunView,
    production: &tread_pipeline::catalog::ModelVersion,
    keys: &UserKeys,
    data_dir: &Path,
    api_url: &str,
    started: Instant,
) {
    println!("\nsummary");
    println!(
        "  run               {} ({}{})",
        run.id,
        run.state.as_str(),
        run.reason
            .as_ref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default()
    );
    println!(
        "  model             {PIPELINE} version {} (production), held-out accuracy {:.4} on {} images",
        production.version, production.accuracy, production.metrics["images"]
    );
    println!("  artifact          {}", production.uri);
    println!("  dataset digest    {}", production.dataset_digest);
    println!("  endpoint          {api_url}/endpoints/{ENDPOINT}/invocations");
    if let Some(i) = &run.instance {
        println!(
            "  instance          {} ({}): {:.1} s billed, cost {:.4} at {}/h; stopped {:.3} s after the last step",
            i.id,
            i.kind,
            i.billed_seconds.unwrap_or(0.0),
            i.cost.unwrap_or(0.0),
            HOURLY_PRICE,
            i.idle_seconds.unwrap_or(0.0)
        );
    }
    println!(
        "  wall time         {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // The demo's own ports may be any (`--s3-listen 127.0.0.1:0`); the
    // hints are for the `tread up` a person starts next, on its defaults.
    let dir = data_dir.display();
    println!(
        "\nkeep the pipeline retraining on rate(1 day), with S3 on http://{DEFAULT_S3_LISTEN} and the API on http://{DEFAULT_LISTEN}:"
    );
    println!("  tread up --data-dir {dir}");
    println!(
        "then `tread run list --data-dir {dir}` shows its runs, and boto3 reaches the bucket:"
    );
    println!("  import boto3");
    println!(
        "  s3 = boto3.client('s3', endpoint_url='http://{DEFAULT_S3_LISTEN}', aws_access_key_id='{}', aws_secret_access_key='{}')",
        keys.access_key_id, keys.secret_access_key
    );
    println!("  s3.list_objects_v2(Bucket='{BUCKET}', Prefix='dataset/tyre/')");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 17: `tread demo --full` was silent for minutes while it
    /// trained; the train step's start, its epochs and a step line every
    /// ten seconds are shown.
    #[test]
    fn r17_demo_shows_the_train_steps_progress() {
        let mut progress = TrainProgress::default();
        let t0 = Instant::now();
        let step = |n: u32| {
            format!("2026-12-04T20:00:0{n}.1Z [epoch 1, step {n}/24] loss 0.69 (12.0 img/s)")
        };
        let shown: Vec<Option<String>> = vec![
            progress.pick("training seed-cnn on 1856 images in 2 classes", t0),
            progress.pick(&step(1), t0),
            progress.pick(&step(2), t0 + Duration::from_secs(3)),
            progress.pick(&step(3), t0 + PROGRESS_EVERY),
            progress.pick(
                "epoch 1: loss 0.6900, accuracy 51.00 %",
                t0 + PROGRESS_EVERY,
            ),
            progress.pick("WARN aws_config: no region", t0 + PROGRESS_EVERY),
        ];
        assert_eq!(
            shown,
            [
                Some("training seed-cnn on 1856 images in 2 classes".to_string()),
                Some("[epoch 1, step 1/24] loss 0.69 (12.0 img/s)".to_string()),
                None,
                Some("[epoch 1, step 3/24] loss 0.69 (12.0 img/s)".to_string()),
                Some("epoch 1: loss 0.6900, accuracy 51.00 %".to_string()),
                None,
            ]
        );
    }
}
