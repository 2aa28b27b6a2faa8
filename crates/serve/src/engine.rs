//! What runs a batch of preprocessed images: tread's own networks, or an
//! ONNX graph trained elsewhere.

use thiserror::Error;
use tread_nn::{Mode, Network, Tensor};

/// Why a batch could not be run.
#[derive(Debug, Error)]
pub enum EngineError {
    /// tread's network refused the batch.
    #[error(transparent)]
    Network(#[from] tread_nn::NetworkError),
    /// The ONNX runtime failed.
    #[error("the ONNX model failed: {0}")]
    Onnx(String),
    /// The model answered NaN or infinity.
    #[error("the model's answer holds values that are not numbers")]
    NotFinite,
    /// The model answered with a shape other than `[n, classes]`.
    #[error("the model answered {got} values for {images} images of {classes} classes")]
    OutputShape {
        /// Values answered.
        got: usize,
        /// Images sent.
        images: usize,
        /// Classes expected per image.
        classes: usize,
    },
}

/// A network ready to infer, owned by one batcher thread.
pub enum Engine {
    /// A `model.tar.gz` trained by tread.
    Native(Box<Network>),
    /// An ONNX image classifier.
    #[cfg(feature = "onnx")]
    Onnx(crate::onnx::OnnxEngine),
}

impl Engine {
    /// Class probabilities for each image of `batch` (`[n, 3, s, s]`).
    pub fn probabilities(
        &mut self,
        batch: &Tensor,
        classes: usize,
    ) -> Result<Vec<Vec<f32>>, EngineError> {
        let logits = match self {
            Engine::Native(network) => network.forward(batch, Mode::Infer)?.data().to_vec(),
            #[cfg(feature = "onnx")]
            Engine::Onnx(onnx) => onnx.run(batch)?,
        };
        let images = batch.batch();
        if logits.len() != images * classes {
            return Err(EngineError::OutputShape {
                got: logits.len(),
                images,
                classes,
            });
        }
        let logits =
            Tensor::from_vec(&[images, classes], logits).map_err(|_| EngineError::OutputShape {
                got: images * classes,
                images,
                classes,
            })?;
        Ok(tread_nn::loss::softmax(&logits))
    }
}
