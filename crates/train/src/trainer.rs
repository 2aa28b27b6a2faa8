//! The training loop: seeded split, a validation part carved from the
//! training split, shuffled and augmented epochs, AdamW on (smoothed)
//! cross-entropy under a learning-rate schedule, batch norm re-estimated
//! before every evaluation, the best epoch kept, and one evaluation on the
//! held-out split at the end.

use crate::artifact::{DatasetRecord, Hyperparameters, ModelCard};
use crate::clock;
use crate::eval::{Confusion, Evaluation};
use crate::history::{EpochMetrics, Progress, StepReport};
use crate::recipe::{Recipe, RecipeError};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::time::Instant;
use thiserror::Error;
use tokio::runtime::Handle;
use tread_data::augment::image_seed;
use tread_data::{
    Batch, Dataset, Loader, LoaderOptions, ObjectDir, Preprocess, SplitError, SplitSpec,
    epoch_order,
};
use tread_nn::loss::smoothed_cross_entropy;
use tread_nn::{Adam, Architecture, Mode, Network, NetworkError, Tensor};

/// Training images whose batch statistics re-estimate batch norm for the
/// weights that are kept: enough for stable means (PyTorch's precise-BN
/// recipes use a few hundred to a few thousand), few enough to cost about a
/// tenth of an epoch of the recipe's 1500 images, once per run.
const CALIBRATION_IMAGES: usize = 512;

/// Everything a training run is told.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// The network to train.
    pub architecture: Architecture,
    /// Optimiser, schedule, loss, augmentation, early stopping.
    pub recipe: Recipe,
    /// Seed of the split, the shuffles, the augmentation and the weights.
    pub seed: u64,
    /// How to divide the dataset.
    pub split: SplitSpec,
    /// How images become inputs.
    pub preprocess: Preprocess,
    /// How images are fetched and cached.
    pub loader: LoaderOptions,
    /// Decode the whole training split into memory before the first epoch.
    pub preload: bool,
    /// Add partial sums in a fixed order, so that the same seed, data and
    /// machine give bit-identical weights.
    pub deterministic: bool,
    /// The model's version (the folder under the output it goes to), when
    /// the caller names it; a new one (time and random digits) otherwise.
    pub version: Option<String>,
}

/// Why training could not run.
#[derive(Debug, Error)]
pub enum TrainError {
    /// The split does not fit the dataset.
    #[error(transparent)]
    Split(#[from] SplitError),
    /// The network cannot be built.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// The recipe's settings cannot train.
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    /// No image of an epoch could be read.
    #[error("no image of the training split could be read: {0}")]
    NothingReadable(String),
}

/// A trained network and its description, ready to pack.
pub struct Trained {
    /// `model.json` (weights checksum filled in when packed).
    pub card: ModelCard,
    /// The trained network.
    pub network: Network,
}

/// The parts of the dataset a run uses, as indices into the dataset's
/// samples: what a run draws from its seed, so that a benchmark can hand
/// another framework the very same split and order.
pub struct Parts {
    /// The images trained on.
    pub train: Vec<usize>,
    /// The images that pick the best epoch.
    pub validation: Vec<usize>,
    /// The held-out images, seen once at the end.
    pub test: Vec<usize>,
    /// Training images, unaugmented, that re-estimate batch norm.
    pub calibration: Vec<usize>,
}

impl Parts {
    /// The order in which `epoch` (from 1) visits the training images.
    pub fn epoch_order(&self, seed: u64, epoch: usize) -> Vec<usize> {
        epoch_order(&self.train, seed, epoch.saturating_sub(1))
    }

    /// The held-out split of `total` samples as [`SplitSpec::split`] makes
    /// it (so `tread eval` finds it again from the card), then the
    /// validation part, a `share` of the rest, carved with the same seed.
    pub fn new(total: usize, split: &SplitSpec, share: f64, seed: u64) -> Result<Self, TrainError> {
        let (mut train, test) = split.split(total, seed)?;
        let count = (train.len() as f64 * share).round() as usize;
        if share > 0.0 && (count == 0 || count >= train.len()) {
            return Err(RecipeError::new(format!(
                "--val {share} of a training split of {} images leaves {} for validation and {} for training: give a --val that leaves both some images, or --val 0",
                train.len(),
                count,
                train.len().saturating_sub(count)
            ))
            .into());
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7A11_DA7E);
        train.shuffle(&mut rng);
        let mut validation = train.split_off(train.len() - count);
        let calibration = train.iter().take(CALIBRATION_IMAGES).copied().collect();
        train.sort_unstable();
        validation.sort_unstable();
        Ok(Self {
            train,
            validation,
            test,
            calibration,
        })
    }
}

/// The weights of the best epoch so far, by validation loss (ties go to
/// the higher accuracy). The loss, not the accuracy: on a validation part of
/// a hundred images accuracy jumps by whole points between epochs, and the
/// highest of such jumps is luck, while the loss moves with the model.
struct Best {
    epoch: usize,
    accuracy: f64,
    loss: f64,
    weights: Vec<Tensor>,
}

/// Trains on `dataset` (listed from `dir`) and evaluates on its held-out
/// split. Unreadable images are skipped and recorded in the card.
pub fn train(
    dir: &ObjectDir,
    dataset: &Dataset,
    options: &TrainOptions,
    runtime: Handle,
    progress: &mut dyn Progress,
) -> Result<Trained, TrainError> {
    let recipe = &options.recipe;
    recipe.check()?;
    let started = Instant::now();
    let version = options
        .version
        .clone()
        .unwrap_or_else(clock::new_version_id);
    progress.started(&version);
    let parts = Parts::new(
        dataset.samples.len(),
        &options.split,
        recipe.validation,
        options.seed,
    )?;
    let size = options.preprocess.size as usize;
    let mut network = Network::new(
        options.architecture,
        dataset.classes.len(),
        size,
        options.seed,
    )?;
    tread_nn::kernels::set_deterministic(options.deterministic);
    let loader = Loader::new(
        dir.clone(),
        dataset.samples.clone(),
        options.preprocess.clone(),
        options.loader.clone(),
        runtime,
    );
    if options.preload {
        loader.preload(parts.train.clone(), recipe.batch_size);
    }
    let mut run = Run {
        network: &mut network,
        adam: Adam::with_weight_decay(recipe.learning_rate, recipe.weight_decay),
        loader: &loader,
        options,
        steps_per_epoch: parts.train.len().div_ceil(recipe.batch_size),
        step: 0,
    };
    let mut history: Vec<EpochMetrics> = Vec::new();
    let mut best: Option<Best> = None;
    for epoch in 1..=recipe.epochs {
        let mut metrics = run.epoch(&parts, epoch, progress);
        if metrics.images == 0 {
            let reasons = loader.failures().into_values().next().unwrap_or_default();
            return Err(TrainError::NothingReadable(reasons));
        }
        // Validation reads batch norm's momentum statistics, as PyTorch's
        // recipes do: they trail the weights by a few steps, which matters
        // to the first epoch's loss and not to which epoch is best.
        // Re-estimating them before every validation cost a tenth of each
        // epoch; the weights that are kept get it once, below.
        if !parts.validation.is_empty() {
            let (accuracy, loss) = run.validate(&parts.validation, &dataset.classes)?;
            metrics.validation_accuracy = Some(accuracy);
            metrics.validation_loss = Some(loss);
            let better = best
                .as_ref()
                .is_none_or(|b| loss < b.loss || (loss == b.loss && accuracy > b.accuracy));
            if better {
                best = Some(Best {
                    epoch,
                    accuracy,
                    loss,
                    weights: snapshot(run.network),
                });
            }
        }
        progress.epoch(&metrics);
        history.push(metrics);
        if let (Some(b), Some(patience)) = (&best, recipe.patience)
            && epoch - b.epoch >= patience
            && epoch < recipe.epochs
        {
            progress.note(&format!(
                "stopping early: no lower validation loss for {patience} epochs since epoch {} (loss {:.4}, accuracy {:.2} %)",
                b.epoch,
                b.loss,
                b.accuracy * 100.0
            ));
            break;
        }
    }
    let epochs_run = history.len();
    let best_epoch = match best {
        Some(b) => {
            restore(&mut network, b.weights);
            b.epoch
        }
        None => epochs_run,
    };
    calibrate(&mut network, &loader, &parts.calibration, recipe.batch_size)?;
    let precise = network.has_batch_norm();
    let evaluation = evaluate(
        &mut network,
        &loader,
        parts.test.clone(),
        &dataset.classes,
        recipe.batch_size,
    )?;
    let card = ModelCard {
        format: crate::artifact::FORMAT.to_string(),
        version,
        created: clock::now_rfc3339(),
        architecture: options.architecture,
        classes: dataset.classes.clone(),
        input: options.preprocess.clone(),
        parameters: network.parameter_count(),
        hyperparameters: hyperparameters(options, epochs_run, best_epoch, precise),
        dataset: DatasetRecord {
            uri: dir.uri(),
            digest: dataset.digest(),
            images: dataset.samples.len(),
            train: parts.train.len() + parts.validation.len(),
            test: parts.test.len(),
            skipped: loader.failures().into_iter().collect(),
        },
        history,
        evaluation,
        training_seconds: started.elapsed().as_secs_f64(),
        weights_sha256: String::new(),
    };
    Ok(Trained { card, network })
}

fn hyperparameters(
    options: &TrainOptions,
    epochs_run: usize,
    best_epoch: usize,
    precise_batch_norm: bool,
) -> Hyperparameters {
    let r = &options.recipe;
    Hyperparameters {
        epochs: r.epochs,
        batch_size: r.batch_size,
        learning_rate: r.learning_rate,
        seed: options.seed,
        split: options.split.to_string(),
        optimizer: r.optimizer_name().into(),
        loss: "cross-entropy".into(),
        weight_decay: r.weight_decay,
        schedule: r.schedule,
        label_smoothing: r.label_smoothing,
        augment: r.augment.clone(),
        validation: r.validation,
        patience: r.patience,
        epochs_run,
        best_epoch,
        precise_batch_norm,
        deterministic: options.deterministic,
    }
}

/// Copies of every parameter and state tensor, in visiting order.
fn snapshot(network: &mut Network) -> Vec<Tensor> {
    let mut weights = Vec::new();
    network.visit_params(&mut |_, p| weights.push(p.value.clone()));
    weights
}

fn restore(network: &mut Network, weights: Vec<Tensor>) {
    let mut saved = weights.into_iter();
    network.visit_params(&mut |_, p| {
        if let Some(value) = saved.next() {
            p.value = value;
        }
    });
}

/// The state of a run between epochs.
struct Run<'a> {
    network: &'a mut Network,
    adam: Adam,
    loader: &'a Loader,
    options: &'a TrainOptions,
    steps_per_epoch: usize,
    /// Steps taken so far, over all epochs: the schedule's clock.
    step: usize,
}

impl Run<'_> {
    fn epoch(&mut self, parts: &Parts, epoch: usize, progress: &mut dyn Progress) -> EpochMetrics {
        let recipe = &self.options.recipe;
        let order = parts.epoch_order(self.options.seed, epoch);
        let started = Instant::now();
        let (mut images, mut correct, mut loss_sum) = (0usize, 0usize, 0.0f64);
        let mut grad = Tensor::default();
        for (step, mut batch) in self.loader.batches(order, recipe.batch_size).enumerate() {
            self.augment(&mut batch, epoch);
            let lr = recipe.learning_rate_at(self.step, self.steps_per_epoch);
            self.adam.set_learning_rate(lr);
            self.step += 1;
            let Ok(logits) = self.network.forward(&batch.images, Mode::Train) else {
                continue;
            };
            correct += count_correct(logits, &batch.labels);
            let loss =
                smoothed_cross_entropy(logits, &batch.labels, recipe.label_smoothing, &mut grad);
            self.network.backward(&batch.images, &grad);
            self.network.apply(&mut self.adam);
            images += batch.labels.len();
            loss_sum += f64::from(loss) * batch.labels.len() as f64;
            let images_per_s = images as f64 / started.elapsed().as_secs_f64().max(1e-9);
            progress.step(&StepReport {
                epoch,
                step: step + 1,
                steps: self.steps_per_epoch,
                loss,
                images: batch.labels.len(),
                images_per_s,
            });
        }
        let seconds = started.elapsed().as_secs_f64();
        EpochMetrics {
            epoch,
            loss: loss_sum / images.max(1) as f64,
            accuracy: correct as f64 / images.max(1) as f64,
            images,
            seconds,
            images_per_s: images as f64 / seconds.max(1e-9),
            learning_rate: f64::from(self.adam.learning_rate()),
            validation_loss: None,
            validation_accuracy: None,
        }
    }

    /// Applies the recipe's random changes to each image of a training
    /// batch, seeded by run, epoch and image so a run repeats.
    fn augment(&self, batch: &mut Batch, epoch: usize) {
        let Some(augment) = &self.options.recipe.augment else {
            return;
        };
        let preprocess = &self.options.preprocess;
        let len = preprocess.tensor_len();
        let seed = self.options.seed;
        batch
            .images
            .data_mut()
            .par_chunks_exact_mut(len)
            .zip(batch.indices.par_iter())
            .for_each(|(image, &index)| {
                augment.apply(image, preprocess, image_seed(seed, epoch, index));
            });
    }

    /// Accuracy and mean loss on the validation part.
    fn validate(
        &mut self,
        images: &[usize],
        classes: &[String],
    ) -> Result<(f64, f64), NetworkError> {
        let mut confusion = Confusion::new(classes);
        let (mut loss_sum, mut count) = (0.0f64, 0usize);
        let mut grad = Tensor::default();
        let smoothing = self.options.recipe.label_smoothing;
        let batch_size = self.options.recipe.batch_size;
        infer_batches(
            self.network,
            self.loader,
            images.to_vec(),
            batch_size,
            |logits, labels| {
                let loss = smoothed_cross_entropy(logits, labels, smoothing, &mut grad);
                loss_sum += f64::from(loss) * labels.len() as f64;
                count += labels.len();
                confusion.add_predictions(logits, labels);
            },
        )?;
        Ok((
            confusion.evaluation().accuracy,
            loss_sum / count.max(1) as f64,
        ))
    }
}

/// Re-estimates batch norm's statistics for the network's weights over the
/// clean `images` ("precise BN"), so that evaluation sees the network that
/// trained.
fn calibrate(
    network: &mut Network,
    loader: &Loader,
    images: &[usize],
    batch_size: usize,
) -> Result<(), TrainError> {
    if !network.has_batch_norm() {
        return Ok(());
    }
    network.calibrate(
        loader
            .batches(images.to_vec(), batch_size)
            .map(|b| b.images),
    )?;
    Ok(())
}

/// Index of the largest logit in each row.
pub fn predictions(logits: &Tensor) -> Vec<usize> {
    let classes = logits.item_len().max(1);
    logits
        .data()
        .chunks_exact(classes)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                    if v > best.1 { (i, v) } else { best }
                })
                .0
        })
        .collect()
}

fn count_correct(logits: &Tensor, labels: &[usize]) -> usize {
    predictions(logits)
        .iter()
        .zip(labels)
        .filter(|(p, l)| p == l)
        .count()
}

/// Classifies the samples at `indices` and scores the predictions.
/// Unreadable images are left out (the loader lists them); a network that
/// cannot take the images is an error, never a smaller evaluation.
pub fn evaluate(
    network: &mut Network,
    loader: &Loader,
    indices: Vec<usize>,
    classes: &[String],
    batch_size: usize,
) -> Result<Evaluation, NetworkError> {
    let mut confusion = Confusion::new(classes);
    infer_batches(network, loader, indices, batch_size, |logits, labels| {
        confusion.add_predictions(logits, labels);
    })?;
    Ok(confusion.evaluation())
}

/// Runs the network in inference mode over the samples at `indices`,
/// handing each batch's logits and labels to `score`.
fn infer_batches(
    network: &mut Network,
    loader: &Loader,
    indices: Vec<usize>,
    batch_size: usize,
    mut score: impl FnMut(&Tensor, &[usize]),
) -> Result<(), NetworkError> {
    for batch in loader.batches(indices, batch_size) {
        score(network.forward(&batch.images, Mode::Infer)?, &batch.labels);
    }
    Ok(())
}
