//! The contract every layer keeps, and the parameters it exposes.

use crate::tensor::Tensor;

/// Whether a forward pass trains (batch statistics, state for backward),
/// only infers (running statistics), or re-estimates batch norm's running
/// statistics for the weights as they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Training: batch norm uses batch statistics and moves its running
    /// statistics towards them (momentum 0.1).
    Train,
    /// Inference: batch norm uses its running statistics.
    Infer,
    /// The `k`-th batch (from 0) of a calibration pass: batch norm uses batch
    /// statistics and sets its running statistics to the mean over the
    /// pass's batches so far ("precise BN"), so that after the pass they
    /// describe the final weights rather than an average over past ones.
    Calibrate(usize),
}

/// A named tensor of a layer: trainable weights with their gradient, or
/// state such as batch norm's running statistics (no gradient).
#[derive(Debug)]
pub struct Param {
    /// The values.
    pub value: Tensor,
    /// The gradient accumulated by backward passes; empty for state.
    pub grad: Tensor,
    /// Whether the optimiser updates this tensor.
    pub trainable: bool,
}

impl Param {
    /// A trainable parameter with a zeroed gradient of the same shape.
    pub fn trainable(value: Tensor) -> Self {
        let grad = Tensor::zeros(value.shape());
        Self {
            value,
            grad,
            trainable: true,
        }
    }

    /// A state tensor that is saved with the weights but not trained.
    pub fn state(value: Tensor) -> Self {
        Self {
            value,
            grad: Tensor::default(),
            trainable: false,
        }
    }
}

/// One step of a network.
///
/// Activations live outside the layer, in buffers the caller keeps across
/// steps: forward reads `input` and overwrites `output`; backward gets both
/// back, so most layers need no saved state of their own.
pub trait Layer: Send {
    /// The output shape for an input shape, or why the input does not fit.
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String>;

    /// Computes `output` (already resized to [`Layer::output_shape`]).
    fn forward(&mut self, input: &Tensor, output: &mut Tensor, mode: Mode);

    /// Accumulates parameter gradients and, when asked, overwrites
    /// `grad_input` (already resized to the input's shape).
    fn backward(
        &mut self,
        input: &Tensor,
        output: &Tensor,
        grad_output: &Tensor,
        grad_input: Option<&mut Tensor>,
    );

    /// Calls `visit` with each parameter's name (PyTorch `state_dict` style,
    /// under `prefix`) and the parameter.
    fn visit_params(&mut self, prefix: &str, visit: &mut dyn FnMut(&str, &mut Param));
}

/// Joins a parameter path the way PyTorch names `state_dict` entries.
pub fn param_name(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}
