//! A residual block: `relu(body(x) + shortcut(x))`.

use crate::layer::{Layer, Mode, Param, param_name};
use crate::layers::sequential::Sequential;
use crate::tensor::Tensor;
use rayon::prelude::*;

/// ResNet's basic block. The shortcut is the identity, or a projection
/// (1×1 convolution + batch norm) where the body changes the shape.
pub struct Residual {
    body: Sequential,
    shortcut: Option<Sequential>,
    body_out: Tensor,
    shortcut_out: Tensor,
    grad_sum: Tensor,
    grad_body_in: Tensor,
    grad_shortcut_in: Tensor,
}

impl Residual {
    /// A block over `body`, with `shortcut` when the shapes differ.
    pub fn new(body: Sequential, shortcut: Option<Sequential>) -> Self {
        Self {
            body,
            shortcut,
            body_out: Tensor::default(),
            shortcut_out: Tensor::default(),
            grad_sum: Tensor::default(),
            grad_body_in: Tensor::default(),
            grad_shortcut_in: Tensor::default(),
        }
    }
}

impl Layer for Residual {
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        let body = self.body.output_shape(input)?;
        let shortcut = match &self.shortcut {
            Some(s) => s.output_shape(input)?,
            None => input.to_vec(),
        };
        if body == shortcut {
            Ok(body)
        } else {
            Err(format!(
                "body gives {body:?} but the shortcut gives {shortcut:?}"
            ))
        }
    }

    fn forward(&mut self, input: &Tensor, output: &mut Tensor, mode: Mode) {
        self.body_out.resize(output.shape());
        self.body.forward(input, &mut self.body_out, mode);
        let skip = match &mut self.shortcut {
            Some(shortcut) => {
                self.shortcut_out.resize(output.shape());
                shortcut.forward(input, &mut self.shortcut_out, mode);
                &self.shortcut_out
            }
            None => input,
        };
        output
            .data_mut()
            .par_iter_mut()
            .zip(self.body_out.data().par_iter().zip(skip.data().par_iter()))
            .for_each(|(o, (b, s))| *o = (b + s).max(0.0));
    }

    fn backward(
        &mut self,
        input: &Tensor,
        output: &Tensor,
        grad_output: &Tensor,
        grad_input: Option<&mut Tensor>,
    ) {
        self.grad_sum.resize(output.shape());
        self.grad_sum
            .data_mut()
            .par_iter_mut()
            .zip(grad_output.data().par_iter().zip(output.data().par_iter()))
            .for_each(|(d, (g, o))| *d = if *o > 0.0 { *g } else { 0.0 });
        let want_input = grad_input.is_some();
        self.grad_body_in.resize(input.shape());
        let body_grad = want_input.then_some(&mut self.grad_body_in);
        self.body
            .backward(input, &self.body_out, &self.grad_sum, body_grad);
        let skip_grad = match &mut self.shortcut {
            Some(shortcut) => {
                self.grad_shortcut_in.resize(input.shape());
                let grad = want_input.then_some(&mut self.grad_shortcut_in);
                shortcut.backward(input, &self.shortcut_out, &self.grad_sum, grad);
                &self.grad_shortcut_in
            }
            None => &self.grad_sum,
        };
        if let Some(grad_input) = grad_input {
            grad_input
                .data_mut()
                .par_iter_mut()
                .zip(
                    self.grad_body_in
                        .data()
                        .par_iter()
                        .zip(skip_grad.data().par_iter()),
                )
                .for_each(|(d, (b, s))| *d = b + s);
        }
    }

    fn visit_params(&mut self, prefix: &str, visit: &mut dyn FnMut(&str, &mut Param)) {
        self.body.visit_params(prefix, visit);
        if let Some(shortcut) = &mut self.shortcut {
            shortcut.visit_params(&param_name(prefix, "downsample"), visit);
        }
    }
}
