//! Batch normalisation over the channels of an image batch.

use crate::kernels::{LANES, lane_sum, lanes_total};
use crate::layer::{Layer, Mode, Param, param_name};
use crate::tensor::Tensor;
use rayon::prelude::*;

const EPSILON: f32 = 1e-5;
const MOMENTUM: f32 = 0.1;

/// BatchNorm2d as in PyTorch (eps 1e-5, momentum 0.1, running variance
/// unbiased), optionally followed by a fused ReLU.
pub struct BatchNorm2d {
    channels: usize,
    relu: bool,
    weight: Param,
    bias: Param,
    running_mean: Param,
    running_var: Param,
    /// Per-channel mean and 1/σ of the last training batch, for backward.
    batch_mean: Vec<f32>,
    batch_inv_std: Vec<f32>,
}

impl BatchNorm2d {
    /// A batch norm with γ = 1, β = 0 and fresh running statistics.
    pub fn new(channels: usize, relu: bool) -> Self {
        let ones = || Tensor::from_vec(&[channels], vec![1.0; channels]).unwrap_or_default();
        Self {
            channels,
            relu,
            weight: Param::trainable(ones()),
            bias: Param::trainable(Tensor::zeros(&[channels])),
            running_mean: Param::state(Tensor::zeros(&[channels])),
            running_var: Param::state(ones()),
            batch_mean: vec![0.0; channels],
            batch_inv_std: vec![1.0; channels],
        }
    }

    /// Computes the batch's statistics and folds them into the running ones:
    /// by momentum while training, as a plain mean over a calibration pass.
    fn update_batch_statistics(&mut self, input: &Tensor, mode: Mode) {
        let momentum = match mode {
            Mode::Calibrate(k) => 1.0 / (k as f32 + 1.0),
            _ => MOMENTUM,
        };
        let plane = plane_len(input);
        let count = input.batch() * plane;
        let stats: Vec<(f64, f64)> = (0..self.channels)
            .into_par_iter()
            .map(|c| channel_mean_var(input, c, self.channels, plane))
            .collect();
        let unbias = count as f64 / (count.saturating_sub(1).max(1)) as f64;
        for (c, (mean, var)) in stats.into_iter().enumerate() {
            self.batch_mean[c] = mean as f32;
            self.batch_inv_std[c] = 1.0 / (var as f32 + EPSILON).sqrt();
            let running_mean = &mut self.running_mean.value.data_mut()[c];
            *running_mean = (1.0 - momentum) * *running_mean + momentum * mean as f32;
            let running_var = &mut self.running_var.value.data_mut()[c];
            *running_var = (1.0 - momentum) * *running_var + momentum * (var * unbias) as f32;
        }
    }

    /// Per-channel scale and shift that the forward pass applies.
    fn affine(&self, mode: Mode) -> Vec<(f32, f32)> {
        let gamma = self.weight.value.data();
        let beta = self.bias.value.data();
        (0..self.channels)
            .map(|c| {
                let (mean, inv_std) = match mode {
                    Mode::Train | Mode::Calibrate(_) => (self.batch_mean[c], self.batch_inv_std[c]),
                    Mode::Infer => (
                        self.running_mean.value.data()[c],
                        1.0 / (self.running_var.value.data()[c] + EPSILON).sqrt(),
                    ),
                };
                let scale = gamma[c] * inv_std;
                (scale, beta[c] - mean * scale)
            })
            .collect()
    }
}

fn plane_len(t: &Tensor) -> usize {
    t.shape().iter().skip(2).product()
}

/// The planes of channel `c`, one per image.
fn channel_planes(
    t: &Tensor,
    c: usize,
    channels: usize,
    plane: usize,
) -> impl Iterator<Item = &[f32]> {
    t.data().chunks_exact(plane).skip(c).step_by(channels)
}

/// Mean and biased variance of one channel: each plane summed in f32 lanes
/// (vectorised, and a plane holds at most a few thousand values), the
/// planes' sums in f64 because a batch of 64 images at 112² sums 800k values.
fn channel_mean_var(input: &Tensor, c: usize, channels: usize, plane: usize) -> (f64, f64) {
    let planes = || channel_planes(input, c, channels, plane);
    let count = (input.batch() * plane).max(1) as f64;
    let mean = planes().map(|p| lane_sum(p, |x| x)).sum::<f64>() / count;
    let centre = mean as f32;
    let var = planes()
        .map(|p| lane_sum(p, |x| (x - centre) * (x - centre)))
        .sum::<f64>()
        / count;
    (mean, var)
}

/// The gradient reaching the batch norm's affine output: `g`, zeroed where
/// the fused ReLU's output is 0. That output is recomputed from `x` exactly
/// as forward computed it (the same product and sum of the same floats)
/// rather than read back: one pass less over a whole activation tensor.
#[inline(always)]
fn through_relu(g: f32, x: f32, (scale, shift): (f32, f32), relu: bool) -> f32 {
    if relu && (x * scale + shift).max(0.0) <= 0.0 {
        0.0
    } else {
        g
    }
}

/// `(Σg, Σg·(x − mean))` over one plane, `g` through the fused ReLU; in
/// [`LANES`] f32 lanes.
fn plane_grad_sums(x: &[f32], g: &[f32], affine: (f32, f32), mean: f32, relu: bool) -> (f64, f64) {
    let (mut sum_g, mut sum_gx) = ([0.0f32; LANES], [0.0f32; LANES]);
    let whole = x.len() / LANES * LANES;
    for (x, g) in x[..whole]
        .chunks_exact(LANES)
        .zip(g[..whole].chunks_exact(LANES))
    {
        for l in 0..LANES {
            let g = through_relu(g[l], x[l], affine, relu);
            sum_g[l] += g;
            sum_gx[l] += g * (x[l] - mean);
        }
    }
    let (mut tail_g, mut tail_gx) = (0.0f32, 0.0f32);
    for (&x, &g) in x[whole..].iter().zip(&g[whole..]) {
        let g = through_relu(g, x, affine, relu);
        tail_g += g;
        tail_gx += g * (x - mean);
    }
    (lanes_total(sum_g, tail_g), lanes_total(sum_gx, tail_gx))
}

/// One plane of the input gradient, `dx = a·g + b·x + c` with `g` through
/// the fused ReLU: the batch-norm gradient
/// `γ/σ/n · (n·g − Σg − x̂·Σg·x̂)` with its per-channel terms gathered.
fn plane_input_grad(
    dx: &mut [f32],
    x: &[f32],
    g: &[f32],
    affine: (f32, f32),
    [a, b, c]: [f32; 3],
    relu: bool,
) {
    for ((dx, &x), &g) in dx.iter_mut().zip(x).zip(g) {
        *dx = a * through_relu(g, x, affine, relu) + (b * x + c);
    }
}

impl Layer for BatchNorm2d {
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        match input {
            [_, c, _, _] if *c == self.channels => Ok(input.to_vec()),
            _ => Err(format!(
                "expects [batch, {}, height, width], got {input:?}",
                self.channels
            )),
        }
    }

    fn forward(&mut self, input: &Tensor, output: &mut Tensor, mode: Mode) {
        if mode != Mode::Infer {
            self.update_batch_statistics(input, mode);
        }
        let affine = self.affine(mode);
        let plane = plane_len(input);
        let relu = self.relu;
        output
            .data_mut()
            .par_chunks_mut(plane)
            .zip(input.data().par_chunks(plane))
            .enumerate()
            .for_each(|(p, (out, inp))| {
                let (scale, shift) = affine[p % affine.len()];
                for (o, &x) in out.iter_mut().zip(inp) {
                    let y = x * scale + shift;
                    *o = if relu { y.max(0.0) } else { y };
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
        let plane = plane_len(input);
        let channels = self.channels;
        let relu = self.relu;
        let affine = self.affine(Mode::Train);
        let (mean, inv_std) = (&self.batch_mean, &self.batch_inv_std);
        // Σg and Σg·x̂ per channel, g through the fused ReLU.
        let sums: Vec<(f64, f64)> = (0..channels)
            .into_par_iter()
            .map(|c| {
                let planes = |t| channel_planes(t, c, channels, plane);
                let (sum_g, sum_gx) = planes(input)
                    .zip(planes(grad_output))
                    .map(|(x, g)| plane_grad_sums(x, g, affine[c], mean[c], relu))
                    .fold((0.0, 0.0), |(a, b), (g, gx)| (a + g, b + gx));
                (sum_g, sum_gx * f64::from(inv_std[c]))
            })
            .collect();
        for (c, (sum_g, sum_gx)) in sums.iter().enumerate() {
            self.bias.grad.data_mut()[c] += *sum_g as f32;
            self.weight.grad.data_mut()[c] += *sum_gx as f32;
        }
        let Some(grad_input) = grad_input else { return };
        let count = (input.batch() * plane) as f32;
        let gamma = self.weight.value.data();
        let terms: Vec<[f32; 3]> = (0..channels)
            .map(|c| {
                let k = gamma[c] * inv_std[c] / count;
                let (sum_g, sum_gx) = (sums[c].0 as f32, sums[c].1 as f32);
                let b = -k * sum_gx * inv_std[c];
                [k * count, b, -k * sum_g - b * mean[c]]
            })
            .collect();
        grad_input
            .data_mut()
            .par_chunks_mut(plane)
            .zip(input.data().par_chunks(plane))
            .zip(grad_output.data().par_chunks(plane))
            .enumerate()
            .for_each(|(p, ((dx, x), g))| {
                let c = p % channels;
                plane_input_grad(dx, x, g, affine[c], terms[c], relu);
            });
    }

    fn visit_params(&mut self, prefix: &str, visit: &mut dyn FnMut(&str, &mut Param)) {
        visit(&param_name(prefix, "weight"), &mut self.weight);
        visit(&param_name(prefix, "bias"), &mut self.bias);
        visit(&param_name(prefix, "running_mean"), &mut self.running_mean);
        visit(&param_name(prefix, "running_var"), &mut self.running_var);
    }
}
