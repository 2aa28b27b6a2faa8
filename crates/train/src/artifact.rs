//! `model.tar.gz`: the weights (safetensors) and `model.json`, which says
//! everything needed to use the weights and where they came from.

use crate::eval::Evaluation;
use crate::history::EpochMetrics;
use crate::recipe::Schedule;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Read;
use thiserror::Error;
use tread_data::{Augment, Preprocess};
use tread_nn::weights::WeightsError;
use tread_nn::{Architecture, Network, NetworkError};

/// The `format` value this version writes and reads.
pub const FORMAT: &str = "tread-model/1";
/// Name of the description inside the archive.
pub const CARD_FILE: &str = "model.json";
/// Name of the weights inside the archive.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Largest member accepted when unpacking: well above any model tread
/// trains (the seed CNN's weights are 24 MB), far below a zip bomb.
const MAX_MEMBER_BYTES: u64 = 2 << 30;

/// `model.json`: what the weights are and where they came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// Always [`FORMAT`].
    pub format: String,
    /// Version id, time-sortable (`20261125T184012Z-3f2a`).
    pub version: String,
    /// RFC 3339 time the model was written.
    pub created: String,
    /// The network.
    pub architecture: Architecture,
    /// Class names; a class's index is its position.
    pub classes: Vec<String>,
    /// How images are turned into inputs.
    pub input: Preprocess,
    /// Trainable values in the network.
    pub parameters: usize,
    /// The training settings.
    pub hyperparameters: Hyperparameters,
    /// The data the model saw.
    pub dataset: DatasetRecord,
    /// Per-epoch training figures.
    pub history: Vec<EpochMetrics>,
    /// Figures on the held-out split.
    pub evaluation: Evaluation,
    /// Wall time of training and evaluation, in seconds.
    pub training_seconds: f64,
    /// SHA-256 of the weights file, checked on load.
    pub weights_sha256: String,
}

impl ModelCard {
    /// The card of `network` as built, before any training: for tests and
    /// tools that pack a network whose weights came from elsewhere.
    pub fn untrained(
        network: &mut Network,
        classes: &[String],
        input: Preprocess,
        version: &str,
    ) -> Self {
        Self {
            format: FORMAT.into(),
            version: version.into(),
            created: crate::clock::now_rfc3339(),
            architecture: network.architecture(),
            classes: classes.to_vec(),
            input,
            parameters: network.parameter_count(),
            hyperparameters: Hyperparameters::default(),
            dataset: DatasetRecord {
                uri: String::new(),
                digest: String::new(),
                images: 0,
                train: 0,
                test: 0,
                skipped: vec![],
            },
            history: vec![],
            evaluation: crate::eval::Confusion::new(classes).evaluation(),
            training_seconds: 0.0,
            weights_sha256: String::new(),
        }
    }

    /// How the model was made, as a registry keeps it beside the model's
    /// figures: the network, its input side, the parameter count and every
    /// training setting, in one flat JSON object.
    pub fn settings(&self) -> serde_json::Value {
        let mut settings = serde_json::to_value(&self.hyperparameters).unwrap_or_default();
        if let Some(fields) = settings.as_object_mut() {
            fields.insert("architecture".into(), self.architecture.name().into());
            fields.insert("size".into(), self.input.size.into());
            fields.insert("parameters".into(), self.parameters.into());
        }
        settings
    }
}

/// Settings a training run used. Fields after `loss` were added with the
/// training recipe; models written before read them as their defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Hyperparameters {
    /// Most passes over the training part.
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Peak learning rate.
    pub learning_rate: f32,
    /// Seed of the split, the shuffles, the augmentation and the initial
    /// weights.
    pub seed: u64,
    /// The split, as given (`1500,356`).
    pub split: String,
    /// `adam` or `adamw`.
    pub optimizer: String,
    /// Always `cross-entropy`.
    pub loss: String,
    /// AdamW's decoupled weight decay (0 for Adam).
    #[serde(default)]
    pub weight_decay: f32,
    /// The learning-rate schedule.
    #[serde(default)]
    pub schedule: Schedule,
    /// Label smoothing of the loss.
    #[serde(default)]
    pub label_smoothing: f32,
    /// Random changes to training images, if any.
    #[serde(default)]
    pub augment: Option<Augment>,
    /// Share of the training split held apart as the validation part.
    #[serde(default)]
    pub validation: f64,
    /// Early-stopping patience in epochs, if any.
    #[serde(default)]
    pub patience: Option<usize>,
    /// Epochs actually run.
    #[serde(default)]
    pub epochs_run: usize,
    /// The epoch whose weights were kept (the best on validation, or the last).
    #[serde(default)]
    pub best_epoch: usize,
    /// Whether batch norm's statistics were re-estimated over training
    /// images for the kept weights before evaluating and packing.
    #[serde(default)]
    pub precise_batch_norm: bool,
    /// Whether the run was bit-reproducible (`--deterministic`).
    #[serde(default)]
    pub deterministic: bool,
}

/// The data a model was trained on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetRecord {
    /// Where it was read from.
    pub uri: String,
    /// [`tread_data::Dataset::digest`] of the images listed.
    pub digest: String,
    /// Images listed.
    pub images: usize,
    /// Images in the training split.
    pub train: usize,
    /// Images in the held-out split.
    pub test: usize,
    /// Keys that could not be read or decoded, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// Why an artifact could not be written or read.
#[derive(Debug, Error)]
pub enum ArtifactError {
    /// Not a gzip tar, or damaged.
    #[error("not a valid model.tar.gz: {0}")]
    Archive(#[source] std::io::Error),
    /// A member is missing.
    #[error("model.tar.gz has no {0}")]
    Missing(&'static str),
    /// `model.json` is not valid.
    #[error("model.json is not valid: {0}")]
    Card(#[from] serde_json::Error),
    /// Another format or a newer version.
    #[error("model format {0:?} is not {FORMAT}: this tread cannot read it")]
    Format(String),
    /// The weights file does not hash to the value in model.json.
    #[error("model.safetensors does not match the checksum in model.json: the file is corrupt")]
    Checksum,
    /// The described network cannot be built.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// The weights do not fit the described network.
    #[error(transparent)]
    Weights(#[from] WeightsError),
}

/// A loaded model: its card and its network, ready to infer.
pub struct Model {
    /// What the model is.
    pub card: ModelCard,
    /// The network with its trained weights.
    pub network: Network,
}

/// Packs `card` (whose `weights_sha256` is filled in here) and the
/// network's weights into `model.tar.gz` bytes.
pub fn pack(card: &mut ModelCard, network: &mut Network) -> Result<Vec<u8>, ArtifactError> {
    let weights = tread_nn::weights::save(network)?;
    card.weights_sha256 = hex::encode(Sha256::digest(&weights));
    let json = serde_json::to_vec_pretty(card)?;
    let mut archive = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    append(&mut archive, CARD_FILE, &json)?;
    append(&mut archive, WEIGHTS_FILE, &weights)?;
    archive
        .into_inner()
        .and_then(|gz| gz.finish())
        .map_err(ArtifactError::Archive)
}

fn append(
    archive: &mut tar::Builder<GzEncoder<Vec<u8>>>,
    name: &str,
    data: &[u8],
) -> Result<(), ArtifactError> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    archive
        .append_data(&mut header, name, data)
        .map_err(ArtifactError::Archive)
}

/// Reads `model.tar.gz` bytes, checks the format, the weights' checksum and
/// their shapes against the described network, and builds it.
pub fn unpack(bytes: &[u8]) -> Result<Model, ArtifactError> {
    let (card_bytes, weights) = members(bytes)?;
    let card: ModelCard =
        serde_json::from_slice(&card_bytes.ok_or(ArtifactError::Missing(CARD_FILE))?)?;
    if card.format != FORMAT {
        return Err(ArtifactError::Format(card.format));
    }
    let weights = weights.ok_or(ArtifactError::Missing(WEIGHTS_FILE))?;
    if hex::encode(Sha256::digest(&weights)) != card.weights_sha256 {
        return Err(ArtifactError::Checksum);
    }
    let mut network = Network::new(
        card.architecture,
        card.classes.len(),
        card.input.size as usize,
        0,
    )?;
    tread_nn::weights::load(&mut network, &weights)?;
    Ok(Model { card, network })
}

type Members = (Option<Vec<u8>>, Option<Vec<u8>>);

fn members(bytes: &[u8]) -> Result<Members, ArtifactError> {
    let mut archive = tar::Archive::new(GzDecoder::new(bytes));
    let (mut card, mut weights) = (None, None);
    for entry in archive.entries().map_err(ArtifactError::Archive)? {
        let entry = entry.map_err(ArtifactError::Archive)?;
        let name = entry
            .path()
            .map_err(ArtifactError::Archive)?
            .to_string_lossy()
            .into_owned();
        let slot = match name.trim_start_matches("./") {
            CARD_FILE => &mut card,
            WEIGHTS_FILE => &mut weights,
            _ => continue,
        };
        let mut data = Vec::new();
        entry
            .take(MAX_MEMBER_BYTES)
            .read_to_end(&mut data)
            .map_err(ArtifactError::Archive)?;
        *slot = Some(data);
    }
    Ok((card, weights))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::Confusion;

    fn card(architecture: Architecture, classes: &[&str], size: u32) -> ModelCard {
        let classes: Vec<String> = classes.iter().map(|c| c.to_string()).collect();
        ModelCard {
            format: FORMAT.into(),
            version: "20261125T000000Z-0000".into(),
            created: "2026-11-25T00:00:00Z".into(),
            architecture,
            input: Preprocess {
                size,
                ..Preprocess::default()
            },
            parameters: 0,
            hyperparameters: Hyperparameters {
                epochs: 1,
                batch_size: 2,
                learning_rate: 1e-3,
                seed: 1,
                split: "0.5,0.5".into(),
                optimizer: "adam".into(),
                loss: "cross-entropy".into(),
                ..Hyperparameters::default()
            },
            dataset: DatasetRecord {
                uri: "s3://b/d/".into(),
                digest: "sha256:00".into(),
                images: 4,
                train: 2,
                test: 2,
                skipped: vec![("good/bad.jpg".into(), "not an image".into())],
            },
            history: vec![],
            evaluation: Confusion::new(&classes).evaluation(),
            classes,
            training_seconds: 1.5,
            weights_sha256: String::new(),
        }
    }

    fn packed(
        architecture: Architecture,
        classes: &[&str],
        size: u32,
    ) -> Result<(ModelCard, Vec<u8>), ArtifactError> {
        let mut card = card(architecture, classes, size);
        let mut network = Network::new(architecture, classes.len(), size as usize, 3)?;
        let bytes = pack(&mut card, &mut network)?;
        Ok((card, bytes))
    }

    #[test]
    fn artifact_round_trips_card_and_weights() -> Result<(), ArtifactError> {
        let (card, bytes) = packed(Architecture::ResnetSmall, &["a", "b", "c"], 48)?;
        let mut model = unpack(&bytes)?;
        assert_eq!(model.card, card);
        let mut original = Network::new(Architecture::ResnetSmall, 3, 48, 3)?;
        let mut a = Vec::new();
        original.visit_params(&mut |_, p| a.extend_from_slice(p.value.data()));
        let mut b = Vec::new();
        model
            .network
            .visit_params(&mut |_, p| b.extend_from_slice(p.value.data()));
        assert_eq!(a, b);
        Ok(())
    }

    #[test]
    fn truncated_archive_is_refused() -> Result<(), ArtifactError> {
        let (_, bytes) = packed(Architecture::SeedCnn, &["a", "b"], 16)?;
        let err = unpack(&bytes[..bytes.len() / 2]).err();
        assert!(matches!(err, Some(ArtifactError::Archive(_))), "{err:?}");
        assert!(matches!(
            unpack(b"not a tarball").err(),
            Some(ArtifactError::Archive(_))
        ));
        Ok(())
    }

    /// Repacks an archive with one member replaced.
    fn repack(bytes: &[u8], name: &str, data: &[u8]) -> Result<Vec<u8>, ArtifactError> {
        let (card, weights) = members(bytes)?;
        let mut archive = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        for (member, original) in [(CARD_FILE, card), (WEIGHTS_FILE, weights)] {
            let content = if member == name {
                data.to_vec()
            } else {
                original.unwrap_or_default()
            };
            append(&mut archive, member, &content)?;
        }
        archive
            .into_inner()
            .and_then(|gz| gz.finish())
            .map_err(ArtifactError::Archive)
    }

    #[test]
    fn flipped_weight_byte_is_refused() -> Result<(), ArtifactError> {
        let (_, bytes) = packed(Architecture::SeedCnn, &["a", "b"], 16)?;
        let (_, weights) = members(&bytes)?;
        let mut weights = weights.unwrap_or_default();
        let last = weights.len() - 1;
        weights[last] ^= 1;
        let err = unpack(&repack(&bytes, WEIGHTS_FILE, &weights)?).err();
        assert!(matches!(err, Some(ArtifactError::Checksum)), "{err:?}");
        Ok(())
    }

    #[test]
    fn card_that_disagrees_with_weights_is_refused() -> Result<(), ArtifactError> {
        let (mut card, bytes) = packed(Architecture::SeedCnn, &["a", "b"], 16)?;
        card.classes.push("c".into());
        let err = unpack(&repack(&bytes, CARD_FILE, &serde_json::to_vec(&card)?)?).err();
        assert!(matches!(err, Some(ArtifactError::Weights(_))), "{err:?}");
        card.format = "tread-model/9".into();
        let err = unpack(&repack(&bytes, CARD_FILE, &serde_json::to_vec(&card)?)?).err();
        assert!(matches!(err, Some(ArtifactError::Format(_))), "{err:?}");
        Ok(())
    }
}
