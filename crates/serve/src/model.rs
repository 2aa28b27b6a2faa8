//! A model fetched from a bucket, checked, and ready to serve: tread's own
//! `model.tar.gz`, or an ONNX classifier with a JSON of its classes.

use crate::engine::{Engine, EngineError};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tread_data::Preprocess;
use tread_nn::Tensor;

/// Why a model could not be deployed.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The URI is not `s3://bucket/key` or a file path.
    #[error(
        "model URI {0:?} names no file: give s3://bucket/…/model.tar.gz, …/model.onnx or a path"
    )]
    Uri(String),
    /// The artifact could not be read from the store.
    #[error("cannot fetch {uri}: {reason}")]
    Fetch {
        /// The model URI.
        uri: String,
        /// What the store said.
        reason: String,
    },
    /// The artifact is corrupt, of another format, or its weights do not fit.
    #[error("{uri} is not a usable model: {reason}")]
    Invalid {
        /// The model URI.
        uri: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The test inference before taking traffic failed.
    #[error("{uri} loaded but failed its test inference: {source}")]
    Warmup {
        /// The model URI.
        uri: String,
        /// What the engine said.
        source: EngineError,
    },
}

/// What a deployed model is, as shown to users.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Where the artifact was read from.
    pub uri: String,
    /// The model's own version id (from `model.json`, or the ONNX JSON).
    pub version: String,
    /// `seed-cnn`, `resnet-small`, or `onnx`.
    pub architecture: String,
    /// Class names; a class's index is its position.
    pub classes: Vec<String>,
    /// How images are turned into inputs.
    pub input: Preprocess,
    /// The dataset digest the model was trained on, when known.
    pub dataset_digest: Option<String>,
}

/// A model whose engine has answered a test inference.
pub struct LoadedModel {
    /// What the model is.
    pub info: ModelInfo,
    /// What runs it.
    pub engine: Engine,
}

/// Fetches the artifact at `uri`, checks it, builds its engine and runs a
/// test inference. Blocking work runs off the async threads.
pub async fn fetch_and_load(uri: &str) -> Result<LoadedModel, LoadError> {
    let bytes = fetch(uri).await?;
    let uri_owned = uri.to_string();
    let companion = if is_onnx(uri) {
        Some(fetch(&companion_uri(uri)).await?)
    } else {
        None
    };
    tokio::task::spawn_blocking(move || load(&uri_owned, &bytes, companion.as_deref()))
        .await
        .map_err(|e| LoadError::Invalid {
            uri: uri.to_string(),
            reason: format!("loading stopped: {e}"),
        })?
}

/// Whether `uri` names an ONNX model (its classes in the JSON beside it).
pub fn is_onnx(uri: &str) -> bool {
    uri.ends_with(".onnx")
}

impl LoadedModel {
    /// The model as [`tread_train::evaluate_at`] scores it.
    pub fn into_foreign(self) -> tread_train::ForeignModel {
        let classes = self.info.classes.len();
        tread_train::ForeignModel {
            uri: self.info.uri,
            classes: self.info.classes,
            input: self.info.input,
            classifier: Box::new(Scored {
                engine: self.engine,
                classes,
            }),
        }
    }
}

/// An engine scoring images for an evaluation.
struct Scored {
    engine: Engine,
    classes: usize,
}

impl tread_train::Classifier for Scored {
    fn scores(&mut self, batch: &tread_nn::Tensor) -> Result<Vec<f32>, String> {
        let probabilities = self
            .engine
            .probabilities(batch, self.classes)
            .map_err(|e| e.to_string())?;
        Ok(probabilities.into_iter().flatten().collect())
    }
}

/// An ONNX model's classes and preprocessing sit beside it: `x.onnx` → `x.json`.
pub fn companion_uri(uri: &str) -> String {
    format!("{}.json", uri.trim_end_matches(".onnx"))
}

/// Reads one object (`s3://bucket/key`) or file into memory.
pub async fn fetch(uri: &str) -> Result<bytes::Bytes, LoadError> {
    tread_data::read_uri(uri).await.map_err(|e| match e {
        tread_data::ObjectsError::BadUri(_) => LoadError::Uri(uri.to_string()),
        other => LoadError::Fetch {
            uri: uri.to_string(),
            reason: other.to_string(),
        },
    })
}

fn load(uri: &str, bytes: &[u8], companion: Option<&[u8]>) -> Result<LoadedModel, LoadError> {
    let invalid = |reason: String| LoadError::Invalid {
        uri: uri.to_string(),
        reason,
    };
    let mut model = match companion {
        Some(json) => load_onnx(uri, bytes, json).map_err(invalid)?,
        None => load_native(uri, bytes).map_err(|e| invalid(e.to_string()))?,
    };
    warm_up(&mut model).map_err(|source| LoadError::Warmup {
        uri: uri.to_string(),
        source,
    })?;
    Ok(model)
}

fn load_native(uri: &str, bytes: &[u8]) -> Result<LoadedModel, tread_train::ArtifactError> {
    let model = tread_train::unpack(bytes)?;
    let card = model.card;
    Ok(LoadedModel {
        info: ModelInfo {
            uri: uri.to_string(),
            version: card.version,
            architecture: card.architecture.name().to_string(),
            classes: card.classes,
            input: card.input,
            dataset_digest: Some(card.dataset.digest),
        },
        engine: Engine::Native(Box::new(model.network)),
    })
}

#[cfg(feature = "onnx")]
fn load_onnx(uri: &str, bytes: &[u8], json: &[u8]) -> Result<LoadedModel, String> {
    let meta: crate::onnx::OnnxMeta = serde_json::from_slice(json)
        .map_err(|e| format!("{} is not valid: {e}", companion_uri(uri)))?;
    if meta.classes.len() < 2 {
        return Err(format!(
            "{} must list at least two classes",
            companion_uri(uri)
        ));
    }
    let engine = crate::onnx::OnnxEngine::load(bytes, &meta)?;
    Ok(LoadedModel {
        info: ModelInfo {
            uri: uri.to_string(),
            version: meta.version.clone(),
            architecture: "onnx".to_string(),
            classes: meta.classes,
            input: meta.input,
            dataset_digest: None,
        },
        engine: Engine::Onnx(engine),
    })
}

#[cfg(not(feature = "onnx"))]
fn load_onnx(_uri: &str, _bytes: &[u8], _json: &[u8]) -> Result<LoadedModel, String> {
    Err("this tread was built without ONNX support (cargo feature `onnx`)".to_string())
}

/// One inference on a blank image, so a model that cannot run never takes
/// traffic and the first real request does not pay for allocations.
fn warm_up(model: &mut LoadedModel) -> Result<(), EngineError> {
    let size = model.info.input.size as usize;
    let blank = Tensor::zeros(&[1, 3, size, size]);
    let probabilities = model
        .engine
        .probabilities(&blank, model.info.classes.len())?;
    if probabilities.iter().flatten().any(|p| !p.is_finite()) {
        return Err(EngineError::NotFinite);
    }
    Ok(())
}
