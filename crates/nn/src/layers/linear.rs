//! Fully connected layer over the flattened features of each item.

use crate::init;
use crate::layer::{Layer, Mode, Param, param_name};
use crate::tensor::Tensor;
use rand::Rng;
use rayon::prelude::*;

/// Inputs per pass over the weights: 16 KiB of features stays in L1 while
/// every output's weights stream past it.
const CHUNK: usize = 4096;

/// Linear as in PyTorch (`y = x Wᵀ + b`, weight `[out, in]`). Any input
/// `[n, …]` is read as `[n, in]`, so no flatten layer copies the activation.
pub struct Linear {
    in_features: usize,
    out_features: usize,
    weight: Param,
    bias: Param,
}

impl Linear {
    /// A linear layer initialised as PyTorch's default.
    pub fn new(in_features: usize, out_features: usize, rng: &mut impl Rng) -> Self {
        let weight = init::uniform_fan_in(&[out_features, in_features], in_features, rng);
        let bias = init::uniform_fan_in(&[out_features], in_features, rng);
        Self {
            in_features,
            out_features,
            weight: Param::trainable(weight),
            bias: Param::trainable(bias),
        }
    }
}

impl Layer for Linear {
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        let features: usize = input.iter().skip(1).product();
        match input.first() {
            Some(&n) if features == self.in_features => Ok(vec![n, self.out_features]),
            _ => Err(format!(
                "expects {} features per item, got {input:?}",
                self.in_features
            )),
        }
    }

    fn forward(&mut self, input: &Tensor, output: &mut Tensor, _mode: Mode) {
        let (weight, bias) = (self.weight.value.data(), self.bias.value.data());
        let n_in = self.in_features;
        output
            .data_mut()
            .par_chunks_mut(self.out_features)
            .zip(input.data().par_chunks(n_in))
            .for_each(|(y, x)| {
                y.copy_from_slice(bias);
                for start in (0..n_in).step_by(CHUNK) {
                    let xs = &x[start..(start + CHUNK).min(n_in)];
                    for (o, y) in y.iter_mut().enumerate() {
                        let row = &weight[o * n_in + start..][..xs.len()];
                        *y += dot(xs, row);
                    }
                }
            });
    }

    fn backward(
        &mut self,
        input: &Tensor,
        _output: &Tensor,
        grad_output: &Tensor,
        grad_input: Option<&mut Tensor>,
    ) {
        let (n_in, n_out) = (self.in_features, self.out_features);
        let g = grad_output.data();
        let x = input.data();
        for (o, db) in self.bias.grad.data_mut().iter_mut().enumerate() {
            *db += g.iter().skip(o).step_by(n_out).sum::<f32>();
        }
        self.weight
            .grad
            .data_mut()
            .par_chunks_mut(n_in)
            .enumerate()
            .for_each(|(o, row)| {
                row.par_chunks_mut(CHUNK).enumerate().for_each(|(ci, seg)| {
                    for (item, x_item) in x.chunks_exact(n_in).enumerate() {
                        let scale = g[item * n_out + o];
                        axpy(seg, scale, &x_item[ci * CHUNK..][..seg.len()]);
                    }
                });
            });
        let Some(grad_input) = grad_input else { return };
        let weight = self.weight.value.data();
        grad_input
            .data_mut()
            .par_chunks_mut(n_in)
            .zip(g.par_chunks(n_out))
            .for_each(|(dx, g)| {
                dx.fill(0.0);
                for (o, &scale) in g.iter().enumerate() {
                    axpy(dx, scale, &weight[o * n_in..][..n_in]);
                }
            });
    }

    fn visit_params(&mut self, prefix: &str, visit: &mut dyn FnMut(&str, &mut Param)) {
        visit(&param_name(prefix, "weight"), &mut self.weight);
        visit(&param_name(prefix, "bias"), &mut self.bias);
    }
}

/// Dot product in eight lanes so the compiler vectorises it.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a8, a_rest) = a.split_at(a.len() - a.len() % 8);
    let (b8, b_rest) = b.split_at(a8.len());
    for (a, b) in a8.chunks_exact(8).zip(b8.chunks_exact(8)) {
        for i in 0..8 {
            lanes[i] += a[i] * b[i];
        }
    }
    let tail: f32 = a_rest.iter().zip(b_rest).map(|(a, b)| a * b).sum();
    lanes.iter().sum::<f32>() + tail
}

/// `y += a·x`.
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}
