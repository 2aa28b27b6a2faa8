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
        let items = output
            .data_mut()
            .par_chunks_mut(self.out_features)
            .zip(input.data().par_chunks(n_in));
        // Fewer items than threads (serving one image): split each item's
        // features across the threads instead, or one core streams all the
        // weights alone.
        if input.batch() < rayon::current_num_threads() {
            items.for_each(|(y, x)| split_item(x, weight, bias, y));
        } else {
            items.for_each(|(y, x)| {
                y.copy_from_slice(bias);
                for (start, xs) in (0..).step_by(CHUNK).zip(x.chunks(CHUNK)) {
                    add_chunk(xs, start, weight, n_in, y);
                }
            });
        }
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
/// Adds to `y` each output's dot product of `xs` (the features from
/// `start` on) with its weights.
fn add_chunk(xs: &[f32], start: usize, weight: &[f32], n_in: usize, y: &mut [f32]) {
    for (o, y) in y.iter_mut().enumerate() {
        *y += dot(xs, &weight[o * n_in + start..][..xs.len()]);
    }
}

/// One item's outputs with its features' chunks spread over the threads,
/// their partial sums added at the end.
fn split_item(x: &[f32], weight: &[f32], bias: &[f32], y: &mut [f32]) {
    let n_in = x.len();
    // One partial sum per chunk, added in chunk order: a fold over rayon's
    // splits would add them in an order that depends on thread timing.
    let partials: Vec<Vec<f32>> = x
        .par_chunks(CHUNK)
        .enumerate()
        .map(|(c, xs)| {
            let mut partial = vec![0.0f32; y.len()];
            add_chunk(xs, c * CHUNK, weight, n_in, &mut partial);
            partial
        })
        .collect();
    y.copy_from_slice(bias);
    for partial in partials {
        y.iter_mut().zip(partial).for_each(|(y, s)| *y += s);
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn one_item_split_across_threads_matches_a_batch_and_a_plain_sum() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let n_in = 3 * CHUNK + 123;
        let mut layer = Linear::new(n_in, 3, &mut rng);
        let x: Vec<f32> = (0..n_in)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
            .collect();
        let (w, b) = (layer.weight.value.data(), layer.bias.value.data());
        let expected: Vec<f64> = (0..3)
            .map(|o| {
                let dot: f64 = (0..n_in)
                    .map(|i| f64::from(x[i]) * f64::from(w[o * n_in + i]))
                    .sum();
                f64::from(b[o]) + dot
            })
            .collect();
        let single = Tensor::from_vec(&[1, n_in], x.clone()).expect("shape");
        let batch = Tensor::from_vec(&[8, n_in], x.repeat(8)).expect("shape");
        let (mut one, mut eight) = (Tensor::zeros(&[1, 3]), Tensor::zeros(&[8, 3]));
        layer.forward(&single, &mut one, Mode::Infer);
        layer.forward(&batch, &mut eight, Mode::Infer);
        for (o, want) in expected.iter().enumerate() {
            let got = one.data()[o];
            assert!((f64::from(got) - want).abs() < 1e-3, "{got} vs {want}");
            for item in 0..8 {
                assert!((eight.data()[item * 3 + o] - got).abs() < 1e-4);
            }
        }
    }
}
