//! The training loop: seeded split, shuffled epochs, Adam on cross-entropy,
//! then an evaluation on the held-out split.

use crate::artifact::{DatasetRecord, Hyperparameters, ModelCard};
use crate::clock;
use crate::eval::{Confusion, Evaluation};
use crate::history::{EpochMetrics, Progress, StepReport};
use std::time::Instant;
use thiserror::Error;
use tokio::runtime::Handle;
use tread_data::{
    Dataset, Loader, LoaderOptions, ObjectDir, Preprocess, SplitError, SplitSpec, epoch_order,
};
use tread_nn::loss::cross_entropy;
use tread_nn::{Adam, Architecture, Mode, Network, NetworkError, Tensor};

/// Everything a training run is told.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// The network to train.
    pub architecture: Architecture,
    /// Passes over the training split.
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub learning_rate: f32,
    /// Seed of the split, the shuffles and the initial weights.
    pub seed: u64,
    /// How to divide the dataset.
    pub split: SplitSpec,
    /// How images become inputs.
    pub preprocess: Preprocess,
    /// How images are fetched and cached.
    pub loader: LoaderOptions,
    /// Decode the whole training split into memory before the first epoch.
    pub preload: bool,
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
    /// Zero epochs or a zero batch size.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
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

/// Trains on `dataset` (listed from `dir`) and evaluates on its held-out
/// split. Unreadable images are skipped and recorded in the card.
pub fn train(
    dir: &ObjectDir,
    dataset: &Dataset,
    options: &TrainOptions,
    runtime: Handle,
    progress: &mut dyn Progress,
) -> Result<Trained, TrainError> {
    if options.epochs == 0 {
        return Err(TrainError::Zero("--epochs"));
    }
    if options.batch_size == 0 {
        return Err(TrainError::Zero("--batch-size"));
    }
    let started = Instant::now();
    let (train_split, test_split) = options.split.split(dataset.samples.len(), options.seed)?;
    let size = options.preprocess.size as usize;
    let mut network = Network::new(
        options.architecture,
        dataset.classes.len(),
        size,
        options.seed,
    )?;
    let loader = Loader::new(
        dir.clone(),
        dataset.samples.clone(),
        options.preprocess.clone(),
        options.loader.clone(),
        runtime,
    );
    if options.preload {
        loader.preload(train_split.clone(), options.batch_size);
    }
    let mut adam = Adam::new(options.learning_rate);
    let mut history = Vec::new();
    for epoch in 1..=options.epochs {
        let order = epoch_order(&train_split, options.seed, epoch - 1);
        let metrics = train_epoch(
            &mut network,
            &mut adam,
            &loader,
            order,
            epoch,
            options.batch_size,
            progress,
        );
        if metrics.images == 0 {
            let reasons = loader.failures().into_values().next().unwrap_or_default();
            return Err(TrainError::NothingReadable(reasons));
        }
        progress.epoch(&metrics);
        history.push(metrics);
    }
    let evaluation = evaluate(
        &mut network,
        &loader,
        test_split.clone(),
        &dataset.classes,
        options.batch_size,
    );
    let card = ModelCard {
        format: crate::artifact::FORMAT.to_string(),
        version: clock::new_version_id(),
        created: clock::now_rfc3339(),
        architecture: options.architecture,
        classes: dataset.classes.clone(),
        input: options.preprocess.clone(),
        parameters: network.parameter_count(),
        hyperparameters: Hyperparameters {
            epochs: options.epochs,
            batch_size: options.batch_size,
            learning_rate: options.learning_rate,
            seed: options.seed,
            split: options.split.to_string(),
            optimizer: "adam".into(),
            loss: "cross-entropy".into(),
        },
        dataset: DatasetRecord {
            uri: dir.uri(),
            digest: dataset.digest(),
            images: dataset.samples.len(),
            train: train_split.len(),
            test: test_split.len(),
            skipped: loader.failures().into_iter().collect(),
        },
        history,
        evaluation,
        training_seconds: started.elapsed().as_secs_f64(),
        weights_sha256: String::new(),
    };
    Ok(Trained { card, network })
}

fn train_epoch(
    network: &mut Network,
    adam: &mut Adam,
    loader: &Loader,
    order: Vec<usize>,
    epoch: usize,
    batch_size: usize,
    progress: &mut dyn Progress,
) -> EpochMetrics {
    let steps = order.len().div_ceil(batch_size);
    let started = Instant::now();
    let (mut images, mut correct, mut loss_sum) = (0usize, 0usize, 0.0f64);
    let mut grad = Tensor::default();
    for (step, batch) in loader.batches(order, batch_size).enumerate() {
        let Ok(logits) = network.forward(&batch.images, Mode::Train) else {
            continue;
        };
        correct += count_correct(logits, &batch.labels);
        let loss = cross_entropy(logits, &batch.labels, &mut grad);
        network.backward(&batch.images, &grad);
        network.apply(adam);
        images += batch.labels.len();
        loss_sum += f64::from(loss) * batch.labels.len() as f64;
        let images_per_s = images as f64 / started.elapsed().as_secs_f64().max(1e-9);
        progress.step(&StepReport {
            epoch,
            step: step + 1,
            steps,
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
    }
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
pub fn evaluate(
    network: &mut Network,
    loader: &Loader,
    indices: Vec<usize>,
    classes: &[String],
    batch_size: usize,
) -> Evaluation {
    let mut confusion = Confusion::new(classes);
    for batch in loader.batches(indices, batch_size) {
        if let Ok(logits) = network.forward(&batch.images, Mode::Infer) {
            for (predicted, actual) in predictions(logits).into_iter().zip(&batch.labels) {
                confusion.add(*actual, predicted);
            }
        }
    }
    confusion.evaluation()
}
