//! ONNX image classifiers trained elsewhere (e.g. exported from PyTorch with
//! `torch.onnx.export`), run by tract, a pure-Rust ONNX runtime, so tread
//! stays one binary.

use crate::engine::EngineError;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::dims;
use tread_data::Preprocess;

/// The JSON beside `model.onnx` (`model.json`): what the graph's input and
/// output mean.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnnxMeta {
    /// Class names in the order of the graph's output.
    pub classes: Vec<String>,
    /// How images are turned into the graph's `[n, 3, size, size]` input.
    #[serde(default)]
    pub input: Preprocess,
    /// A version label shown by `endpoint describe`.
    #[serde(default = "unversioned")]
    pub version: String,
    /// Whether the graph's output is already softmaxed.
    #[serde(default)]
    pub output: OnnxOutput,
}

fn unversioned() -> String {
    "onnx".to_string()
}

/// What the graph's single output holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnnxOutput {
    /// Scores before softmax (what `torch.onnx.export` of a classifier gives).
    #[default]
    Logits,
    /// Probabilities that sum to one.
    Probabilities,
}

/// An optimised ONNX plan with a free batch dimension.
pub struct OnnxEngine {
    plan: Arc<TypedRunnableModel>,
    output: OnnxOutput,
}

impl OnnxEngine {
    /// Parses and optimises the graph for `[N, 3, size, size]` inputs.
    pub fn load(bytes: &[u8], meta: &OnnxMeta) -> Result<Self, String> {
        let size = meta.input.size as usize;
        let plan = (|| -> TractResult<Arc<TypedRunnableModel>> {
            let model = tract_onnx::onnx().model_for_read(&mut std::io::Cursor::new(bytes))?;
            let batch = model.sym("N");
            model
                .with_input_fact(0, f32::fact(dims!(batch, 3, size, size)).into())?
                .into_optimized()?
                .into_runnable()
        })()
        .map_err(|e| format!("not a loadable ONNX image classifier: {e:#}"))?;
        Ok(Self {
            plan,
            output: meta.output,
        })
    }

    /// Runs a batch and returns logits, row-major `[n, classes]`.
    pub fn run(&self, batch: &tread_nn::Tensor) -> Result<Vec<f32>, EngineError> {
        let onnx_error = |e: TractError| EngineError::Onnx(format!("{e:#}"));
        let input = Tensor::from_shape(batch.shape(), batch.data()).map_err(onnx_error)?;
        let outputs = self.plan.run(tvec!(input.into())).map_err(onnx_error)?;
        let first = outputs
            .first()
            .ok_or_else(|| EngineError::Onnx("the graph has no output".to_string()))?;
        let view = first.to_plain_array_view::<f32>().map_err(onnx_error)?;
        let values: Vec<f32> = view.iter().copied().collect();
        Ok(match self.output {
            OnnxOutput::Logits => values,
            // softmax(ln p) = p / Σp: the engine's one softmax keeps them.
            OnnxOutput::Probabilities => values
                .iter()
                .map(|p| p.max(f32::MIN_POSITIVE).ln())
                .collect(),
        })
    }
}
