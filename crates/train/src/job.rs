//! A whole training run, as `tread train`, a pipeline's train step and the
//! tests start it: list the dataset, train, pack, and put the model and its
//! metrics under `<out>/<version>/`. `metrics.jsonl` grows while training
//! runs, one line per epoch, so anything reading it sees the curves grow.
//!
//! And a later evaluation of a packed model, as `tread eval` and a
//! pipeline's evaluate step start it: on the model's own held-out split, on
//! another model's, or on every image.

use crate::artifact::{ArtifactError, Model, ModelCard, pack, unpack};
use crate::eval::{Confusion, Evaluation};
use crate::history::{EpochMetrics, Progress, StepReport};
use crate::trainer::{TrainError, TrainOptions, evaluate, train};
use bytes::Bytes;
use thiserror::Error;
use tokio::runtime::Handle;
use tread_data::{
    Dataset, DatasetError, Loader, LoaderOptions, ObjectDir, ObjectsError, Preprocess, Sample,
    SplitError, SplitSpec,
};
use tread_nn::Tensor;

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
    /// A model to evaluate could not be loaded.
    #[error("loading {uri}: {source}")]
    Model {
        /// Where the model was read from.
        uri: String,
        /// What is wrong with it.
        source: ArtifactError,
    },
    /// A model trained elsewhere failed on the images.
    #[error("{uri}: {problem}")]
    Foreign {
        /// Where the model was read from.
        uri: String,
        /// What went wrong.
        problem: String,
    },
    /// The dataset has a class the model was not trained on.
    #[error("the dataset has class {class:?}, which the model does not know (it knows {known})")]
    UnknownClass {
        /// The dataset's class.
        class: String,
        /// The model's classes, comma-separated.
        known: String,
    },
    /// A held-out split was asked of a model trained on other data.
    #[error(
        "{model} was trained on other data than {data}, so its held-out split does not exist there: evaluate all images instead"
    )]
    OtherData {
        /// The model whose split was asked for.
        model: String,
        /// The dataset evaluated.
        data: String,
    },
    /// The model's recorded split does not fit the dataset.
    #[error("the model's held-out split: {0}")]
    Split(#[from] SplitError),
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

/// Which images of a dataset [`evaluate_at`] scores.
#[derive(Clone, Debug, PartialEq)]
pub enum EvalScope {
    /// The model's own held-out split when the data is what it was trained
    /// on, every image otherwise.
    Auto,
    /// Every image, even of the data the model was trained on.
    All,
    /// The held-out split of the model at this URI (trained on the same
    /// data), to compare two models on the same images.
    HeldOutOf(String),
}

/// A finished evaluation.
pub struct EvalOutcome {
    /// Accuracy, per-class figures and confusion.
    pub evaluation: Evaluation,
    /// Images that could not be read, with why; left out of `evaluation`.
    pub skipped: Vec<(String, String)>,
}

/// A classifier [`evaluate_at`] scores: one trained elsewhere (an ONNX
/// graph, loaded by the serve crate), as opposed to a `model.tar.gz`.
pub trait Classifier {
    /// Per-class scores for each image of `batch` (`[n, 3, s, s]`), `n ×
    /// classes` values; the highest is the prediction.
    fn scores(&mut self, batch: &Tensor) -> Result<Vec<f32>, String>;
}

/// A model trained elsewhere: its classes and preprocessing, and what runs it.
pub struct ForeignModel {
    /// Where it was read from, for messages.
    pub uri: String,
    /// Class names in the order of its output.
    pub classes: Vec<String>,
    /// How images become its input.
    pub input: Preprocess,
    /// What runs it.
    pub classifier: Box<dyn Classifier>,
}

/// What [`evaluate_at`] scores.
pub enum EvalModel {
    /// A `model.tar.gz` at this URI (s3:// or a file).
    Packed(String),
    /// A model trained elsewhere, loaded by the caller. It has no held-out
    /// split of its own: `Auto` scores every image, and `HeldOutOf`
    /// another model's split compares the two on the same images.
    Foreign(ForeignModel),
}

/// Scores `model` on the dataset at `data`, over the images `scope`
/// selects. Requests run on `runtime`; call from a thread outside it.
pub fn evaluate_at(
    model: EvalModel,
    data: &str,
    scope: &EvalScope,
    batch_size: usize,
    loading: LoaderOptions,
    runtime: &Handle,
    progress: &mut dyn Progress,
) -> Result<EvalOutcome, JobError> {
    // The model first: a broken one is refused before any listing.
    let (mut scorer, classes, input, card) = match model {
        EvalModel::Packed(uri) => {
            let Model { card, network } = runtime.block_on(read_model(&uri))?;
            let (classes, input) = (card.classes.clone(), card.input.clone());
            (Scorer::Native(network), classes, input, Some(card))
        }
        EvalModel::Foreign(foreign) => {
            let (classes, input) = (foreign.classes.clone(), foreign.input.clone());
            (Scorer::Foreign(foreign), classes, input, None)
        }
    };
    let dir = runtime.block_on(ObjectDir::open(data))?;
    let dataset = runtime.block_on(list_dataset(&dir, progress))?;
    let samples = relabel(&dataset, &classes)?;
    let own = card
        .as_ref()
        .filter(|c| dataset.digest() == c.dataset.digest);
    let indices = scored(own, scope, data, &dataset, samples.len(), runtime, progress)?;
    let loader = Loader::new(dir, samples, input, loading, runtime.clone());
    let evaluation = scorer.evaluate(&loader, indices, &classes, batch_size)?;
    Ok(EvalOutcome {
        evaluation,
        skipped: loader.failures().into_iter().collect(),
    })
}

/// What runs the evaluated model.
enum Scorer {
    Native(tread_nn::Network),
    Foreign(ForeignModel),
}

impl Scorer {
    fn evaluate(
        &mut self,
        loader: &Loader,
        indices: Vec<usize>,
        classes: &[String],
        batch_size: usize,
    ) -> Result<Evaluation, JobError> {
        let foreign = match self {
            Scorer::Native(network) => {
                return Ok(evaluate(network, loader, indices, classes, batch_size)
                    .map_err(TrainError::from)?);
            }
            Scorer::Foreign(foreign) => foreign,
        };
        let mut confusion = Confusion::new(classes);
        for batch in loader.batches(indices, batch_size) {
            let failed = |problem: String| JobError::Foreign {
                uri: foreign.uri.clone(),
                problem,
            };
            let scores = foreign.classifier.scores(&batch.images).map_err(failed)?;
            let images = batch.labels.len();
            let scores = Tensor::from_vec(&[images, classes.len()], scores).map_err(|_| {
                failed(format!(
                    "it did not answer {} scores for each of {images} images",
                    classes.len()
                ))
            })?;
            confusion.add_predictions(&scores, &batch.labels);
        }
        Ok(confusion.evaluation())
    }
}

/// The indices of `dataset`'s samples that `scope` scores; `own` is the
/// evaluated model's card when it was trained on this very data.
fn scored(
    own: Option<&ModelCard>,
    scope: &EvalScope,
    data: &str,
    dataset: &Dataset,
    len: usize,
    runtime: &Handle,
    progress: &mut dyn Progress,
) -> Result<Vec<usize>, JobError> {
    match (scope, own) {
        (EvalScope::HeldOutOf(other), _) => {
            let reference = runtime.block_on(read_model(other))?.card;
            if dataset.digest() != reference.dataset.digest {
                return Err(JobError::OtherData {
                    model: other.clone(),
                    data: data.to_string(),
                });
            }
            progress.note(&format!("evaluating the held-out split of {other}"));
            Ok(held_out(&reference, len)?)
        }
        (EvalScope::Auto, Some(card)) => {
            progress.note(&format!(
                "same data as the model was trained on: evaluating its held-out split ({})",
                card.hyperparameters.split
            ));
            Ok(held_out(card, len)?)
        }
        (EvalScope::Auto | EvalScope::All, _) => {
            progress.note(&format!("evaluating all {len} images"));
            Ok((0..len).collect())
        }
    }
}

/// Fetches and loads a `model.tar.gz` from S3 or a file.
pub async fn read_model(uri: &str) -> Result<Model, JobError> {
    let bytes = tread_data::read_uri(uri).await?;
    unpack(&bytes).map_err(|source| JobError::Model {
        uri: uri.to_string(),
        source,
    })
}

/// The indices of a model's held-out split over a dataset of `len` images:
/// the same seeded draw its training made.
fn held_out(card: &ModelCard, len: usize) -> Result<Vec<usize>, SplitError> {
    let split: SplitSpec = card.hyperparameters.split.parse()?;
    Ok(split.split(len, card.hyperparameters.seed)?.1)
}

/// The dataset's samples with the model's class indices, refusing a class
/// the model does not know.
fn relabel(dataset: &Dataset, model_classes: &[String]) -> Result<Vec<Sample>, JobError> {
    let mapping = dataset
        .classes
        .iter()
        .map(|name| {
            model_classes
                .iter()
                .position(|c| c == name)
                .ok_or_else(|| JobError::UnknownClass {
                    class: name.clone(),
                    known: model_classes.join(", "),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(dataset
        .samples
        .iter()
        .map(|s| Sample {
            class: mapping[s.class],
            ..s.clone()
        })
        .collect())
}
