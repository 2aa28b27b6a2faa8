//! A whole training run, as `tread train`, a pipeline's train step and the
//! tests start it: list the dataset, train, pack, and put the model and its
//! metrics under `<out>/<version>/`. `metrics.jsonl` grows while training
//! runs, one line per epoch, so anything reading it sees the curves grow.

use crate::artifact::{ArtifactError, ModelCard, pack};
use crate::history::{EpochMetrics, Progress, StepReport};
use crate::trainer::{TrainError, TrainOptions, train};
use bytes::Bytes;
use thiserror::Error;
use tokio::runtime::Handle;
use tread_data::{Dataset, DatasetError, ObjectDir, ObjectsError};

/// Name of the model archive under the version's prefix.
pub const MODEL_FILE: &str = "model.tar.gz";
/// Name of the per-epoch metrics under the version's prefix.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// Why a training run failed.
#[derive(Debug, Error)]
pub enum JobError {
    /// The data or the output location cannot be read or written.
    #[error(transparent)]
    Objects(#[from] ObjectsError),
    /// The data is not a dataset.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// Training refused or failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// The model could not be packed.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// The metrics could not be written as JSON.
    #[error("writing metrics: {0}")]
    Metrics(#[from] serde_json::Error),
}

/// A finished run: where the model went and its description.
pub struct TrainOutcome {
    /// `<out>/<version>/model.tar.gz`.
    pub model_uri: String,
    /// The model's `model.json`.
    pub card: ModelCard,
}

/// Trains on the dataset at `data` (s3://bucket/prefix or a directory) and
/// writes the model and its metrics under `out`. Requests run on
/// `runtime`; call from a thread outside it.
pub fn train_to(
    data: &str,
    out: &str,
    options: &TrainOptions,
    runtime: &Handle,
    progress: &mut dyn Progress,
) -> Result<TrainOutcome, JobError> {
    let dir = runtime.block_on(ObjectDir::open(data))?;
    let out = runtime.block_on(ObjectDir::open(out))?;
    let dataset = runtime.block_on(list_dataset(&dir, progress))?;
    progress.note(&format!(
        "training {} on {} images in {} classes ({}) from {}",
        options.architecture,
        dataset.samples.len(),
        dataset.classes.len(),
        dataset.classes.join(", "),
        dir.uri()
    ));
    let mut live = LiveMetrics {
        inner: progress,
        out: &out,
        runtime,
        version: String::new(),
        lines: Vec::new(),
    };
    let mut trained = train(&dir, &dataset, options, runtime.clone(), &mut live)?;
    let bytes = pack(&mut trained.card, &mut trained.network)?;
    let version_dir = out.join(&trained.card.version);
    runtime.block_on(version_dir.put(MODEL_FILE, Bytes::from(bytes)))?;
    let metrics = metrics_lines(&trained.card)?;
    runtime.block_on(version_dir.put(METRICS_FILE, Bytes::from(metrics)))?;
    Ok(TrainOutcome {
        model_uri: version_dir.uri_of(MODEL_FILE),
        card: trained.card,
    })
}

/// Lists a dataset, telling `progress` what was left out.
pub async fn list_dataset(
    dir: &ObjectDir,
    progress: &mut dyn Progress,
) -> Result<Dataset, JobError> {
    let objects = dir.list().await?;
    let dataset = Dataset::from_listing(&dir.uri(), objects)?;
    if !dataset.excluded.is_empty() {
        progress.note(&format!(
            "{} objects are not images in class folders and were left out",
            dataset.excluded.len()
        ));
    }
    Ok(dataset)
}

/// One JSON line per epoch, then one with the held-out evaluation.
pub fn metrics_lines(card: &ModelCard) -> Result<Vec<u8>, serde_json::Error> {
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

/// Passes progress on and rewrites `<out>/<version>/metrics.jsonl` after
/// every epoch (S3 has no append, and the file is small).
struct LiveMetrics<'a> {
    inner: &'a mut dyn Progress,
    out: &'a ObjectDir,
    runtime: &'a Handle,
    version: String,
    lines: Vec<u8>,
}

impl Progress for LiveMetrics<'_> {
    fn started(&mut self, version: &str) {
        self.version = version.to_string();
        self.inner.started(version);
    }

    fn step(&mut self, report: &StepReport) {
        self.inner.step(report);
    }

    fn epoch(&mut self, metrics: &EpochMetrics) {
        self.inner.epoch(metrics);
        let written = serde_json::to_writer(&mut self.lines, metrics);
        self.lines.push(b'\n');
        let put = written.map_err(|e| e.to_string()).and_then(|()| {
            let dir = self.out.join(&self.version);
            let body = Bytes::from(self.lines.clone());
            self.runtime
                .block_on(dir.put(METRICS_FILE, body))
                .map_err(|e| e.to_string())
        });
        // The run goes on: the final write at the end must succeed, and a
        // missed live update only delays what a viewer sees.
        if let Err(e) = put {
            self.inner.note(&format!(
                "warning: could not update {METRICS_FILE} after epoch {}: {e}",
                metrics.epoch
            ));
        }
    }

    fn note(&mut self, text: &str) {
        self.inner.note(text);
    }
}
