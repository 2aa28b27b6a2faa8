//! Layers applied one after another, with their activations kept between steps.

use crate::layer::{Layer, Mode, Param, param_name};
use crate::tensor::Tensor;

/// A chain of layers. It owns the activations between its layers and their
/// gradients, so a step allocates nothing once the buffers have grown.
pub struct Sequential {
    layers: Vec<(String, Box<dyn Layer>)>,
    /// Output of layer `i` for `i < len - 1`; the last layer writes straight
    /// into the caller's output.
    activations: Vec<Tensor>,
    /// Gradient with respect to `activations[i]`.
    gradients: Vec<Tensor>,
}

impl Sequential {
    /// A chain of named layers (names become parameter path segments).
    pub fn new(layers: Vec<(String, Box<dyn Layer>)>) -> Self {
        let inner = layers.len().saturating_sub(1);
        Self {
            layers,
            activations: (0..inner).map(|_| Tensor::default()).collect(),
            gradients: (0..inner).map(|_| Tensor::default()).collect(),
        }
    }
}

impl Layer for Sequential {
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        let mut shape = input.to_vec();
        for (name, layer) in &self.layers {
            shape = layer
                .output_shape(&shape)
                .map_err(|e| format!("{name}: {e}"))?;
        }
        Ok(shape)
    }

    fn forward(&mut self, input: &Tensor, output: &mut Tensor, mode: Mode) {
        let last = self.layers.len().saturating_sub(1);
        for i in 0..self.layers.len() {
            let (before, after) = self.activations.split_at_mut(i);
            let layer_input = if i == 0 { input } else { &before[i - 1] };
            let layer_output = if i == last {
                &mut *output
            } else {
                &mut after[0]
            };
            let layer = &mut self.layers[i].1;
            if let Ok(shape) = layer.output_shape(layer_input.shape()) {
                layer_output.resize(&shape);
            }
            layer.forward(layer_input, layer_output, mode);
        }
    }

    fn backward(
        &mut self,
        input: &Tensor,
        output: &Tensor,
        grad_output: &Tensor,
        mut grad_input: Option<&mut Tensor>,
    ) {
        let last = self.layers.len().saturating_sub(1);
        for i in (0..self.layers.len()).rev() {
            let layer_input = if i == 0 {
                input
            } else {
                &self.activations[i - 1]
            };
            let layer_output = if i == last {
                output
            } else {
                &self.activations[i]
            };
            let (before, after) = self.gradients.split_at_mut(i);
            let layer_grad_output = if i == last { grad_output } else { &after[0] };
            let layer_grad_input = if i == 0 {
                grad_input.as_deref_mut()
            } else {
                let g = &mut before[i - 1];
                g.resize(layer_input.shape());
                Some(g)
            };
            self.layers[i].1.backward(
                layer_input,
                layer_output,
                layer_grad_output,
                layer_grad_input,
            );
        }
    }

    fn visit_params(&mut self, prefix: &str, visit: &mut dyn FnMut(&str, &mut Param)) {
        for (name, layer) in &mut self.layers {
            layer.visit_params(&param_name(prefix, name), visit);
        }
    }
}
