//! Max pooling and global average pooling.

use crate::layer::{Layer, Mode, Param};
use crate::tensor::Tensor;
use rayon::prelude::*;

/// MaxPool2d with a square window, stride and padding (padding never wins).
pub struct MaxPool2d {
    kernel: usize,
    stride: usize,
    padding: usize,
    /// For each output value, the index within its input plane of the
    /// maximum, so backward routes the gradient without searching again.
    argmax: Vec<u32>,
}

impl MaxPool2d {
    /// A max pool; `kernel` ≥ 1, `stride` ≥ 1, `padding` < `kernel`.
    pub fn new(kernel: usize, stride: usize, padding: usize) -> Self {
        Self {
            kernel,
            stride: stride.max(1),
            padding,
            argmax: Vec::new(),
        }
    }

    fn out_side(&self, side: usize) -> usize {
        (side + 2 * self.padding).saturating_sub(self.kernel) / self.stride + 1
    }

    /// The inputs `[lo, hi)` along one axis under the window of output `o`
    /// (the rest of the window lies in the padding).
    fn window(&self, o: usize, side: usize) -> (usize, usize) {
        let lo = (o * self.stride).saturating_sub(self.padding);
        let hi = (o * self.stride + self.kernel)
            .saturating_sub(self.padding)
            .min(side);
        (lo, hi)
    }

    /// Max and argmax of every window of one plane. The running maximum stays
    /// in a register and is updated by selects, not branches: comparing each
    /// value with `plane[best]` and branching on it stalled on the load and
    /// mispredicted. The first maximum in row-major order wins ties.
    fn pool_plane(&self, plane: &[f32], (h, w): (usize, usize), out: &mut [f32], arg: &mut [u32]) {
        let ow = self.out_side(w);
        for ((oy, outs), args) in out
            .chunks_exact_mut(ow)
            .enumerate()
            .zip(arg.chunks_exact_mut(ow))
        {
            let (y0, y1) = self.window(oy, h);
            for (ox, (o, a)) in outs.iter_mut().zip(args.iter_mut()).enumerate() {
                let (x0, x1) = self.window(ox, w);
                let mut best = y0 * w + x0;
                let mut best_value = plane[best];
                for y in y0..y1 {
                    let row = &plane[y * w..][x0..x1];
                    for (x, &v) in (x0..).zip(row) {
                        let better = v > best_value;
                        best_value = if better { v } else { best_value };
                        best = if better { y * w + x } else { best };
                    }
                }
                *o = best_value;
                *a = best as u32;
            }
        }
    }
}

impl Layer for MaxPool2d {
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        match *input {
            [n, c, h, w]
                if h + 2 * self.padding >= self.kernel && w + 2 * self.padding >= self.kernel =>
            {
                Ok(vec![n, c, self.out_side(h), self.out_side(w)])
            }
            _ => Err(format!(
                "cannot max-pool {input:?} with a {0}×{0} window",
                self.kernel
            )),
        }
    }

    fn forward(&mut self, input: &Tensor, output: &mut Tensor, _mode: Mode) {
        let (h, w) = (input.shape()[2], input.shape()[3]);
        let (oh, ow) = (self.out_side(h), self.out_side(w));
        let mut argmax = std::mem::take(&mut self.argmax);
        argmax.resize(output.len(), 0);
        output
            .data_mut()
            .par_chunks_mut(oh * ow)
            .zip(argmax.par_chunks_mut(oh * ow))
            .zip(input.data().par_chunks(h * w))
            .for_each(|((out, arg), plane)| self.pool_plane(plane, (h, w), out, arg));
        self.argmax = argmax;
    }

    fn backward(
        &mut self,
        input: &Tensor,
        output: &Tensor,
        grad_output: &Tensor,
        grad_input: Option<&mut Tensor>,
    ) {
        let Some(grad_input) = grad_input else { return };
        let plane = input.shape()[2] * input.shape()[3];
        let out_plane = output.shape()[2] * output.shape()[3];
        grad_input
            .data_mut()
            .par_chunks_mut(plane)
            .zip(grad_output.data().par_chunks(out_plane))
            .zip(self.argmax.par_chunks(out_plane))
            .for_each(|((dx, g), arg)| {
                dx.fill(0.0);
                for (&g, &i) in g.iter().zip(arg) {
                    dx[i as usize] += g;
                }
            });
    }

    fn visit_params(&mut self, _prefix: &str, _visit: &mut dyn FnMut(&str, &mut Param)) {}
}

/// Averages each channel over its whole plane: `[n, c, h, w]` → `[n, c]`.
pub struct GlobalAvgPool;

impl Layer for GlobalAvgPool {
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        match *input {
            [n, c, h, w] if h * w > 0 => Ok(vec![n, c]),
            _ => Err(format!(
                "expects a non-empty [batch, channels, height, width], got {input:?}"
            )),
        }
    }

    fn forward(&mut self, input: &Tensor, output: &mut Tensor, _mode: Mode) {
        let plane = input.shape()[2] * input.shape()[3];
        for (o, p) in output
            .data_mut()
            .iter_mut()
            .zip(input.data().chunks_exact(plane))
        {
            *o = p.iter().sum::<f32>() / plane as f32;
        }
    }

    fn backward(
        &mut self,
        input: &Tensor,
        _output: &Tensor,
        grad_output: &Tensor,
        grad_input: Option<&mut Tensor>,
    ) {
        let Some(grad_input) = grad_input else { return };
        let plane = input.shape()[2] * input.shape()[3];
        for (dx, &g) in grad_input
            .data_mut()
            .chunks_exact_mut(plane)
            .zip(grad_output.data())
        {
            dx.fill(g / plane as f32);
        }
    }

    fn visit_params(&mut self, _prefix: &str, _visit: &mut dyn FnMut(&str, &mut Param)) {}
}
