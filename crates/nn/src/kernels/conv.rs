//! PLACEHOLDER naive convolution until the gemm kernels land.
#![allow(missing_docs, clippy::too_many_arguments)]

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub batch: usize,
    pub in_channels: usize,
    pub in_height: usize,
    pub in_width: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl ConvGeometry {
    pub fn out_height(&self) -> usize {
        (self.in_height + 2 * self.padding - self.kernel) / self.stride + 1
    }
    pub fn out_width(&self) -> usize {
        (self.in_width + 2 * self.padding - self.kernel) / self.stride + 1
    }
}

fn at(g: &ConvGeometry, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<(usize, usize)> {
    let y = (oy * g.stride + ky).checked_sub(g.padding)?;
    let x = (ox * g.stride + kx).checked_sub(g.padding)?;
    (y < g.in_height && x < g.in_width).then_some((y, x))
}

pub fn conv2d_forward(
    g: &ConvGeometry,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    output: &mut [f32],
) {
    let (oh, ow, k) = (g.out_height(), g.out_width(), g.kernel);
    for n in 0..g.batch {
        for o in 0..g.out_channels {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = bias.map_or(0.0, |b| b[o]);
                    for c in 0..g.in_channels {
                        for ky in 0..k {
                            for kx in 0..k {
                                if let Some((y, x)) = at(g, oy, ox, ky, kx) {
                                    acc += input[((n * g.in_channels + c) * g.in_height + y)
                                        * g.in_width
                                        + x]
                                        * weight[((o * g.in_channels + c) * k + ky) * k + kx];
                                }
                            }
                        }
                    }
                    output[((n * g.out_channels + o) * oh + oy) * ow + ox] =
                        if relu { acc.max(0.0) } else { acc };
                }
            }
        }
    }
}

pub fn conv2d_backward(
    g: &ConvGeometry,
    input: &[f32],
    weight: &[f32],
    grad_output: &[f32],
    relu_output: Option<&[f32]>,
    mut grad_input: Option<&mut [f32]>,
    grad_weight: &mut [f32],
    mut grad_bias: Option<&mut [f32]>,
) {
    let (oh, ow, k) = (g.out_height(), g.out_width(), g.kernel);
    if let Some(gi) = grad_input.as_deref_mut() {
        gi.fill(0.0);
    }
    for n in 0..g.batch {
        for o in 0..g.out_channels {
            for oy in 0..oh {
                for ox in 0..ow {
                    let i = ((n * g.out_channels + o) * oh + oy) * ow + ox;
                    let go = if relu_output.is_some_and(|r| r[i] <= 0.0) {
                        0.0
                    } else {
                        grad_output[i]
                    };
                    if let Some(gb) = grad_bias.as_deref_mut() {
                        gb[o] += go;
                    }
                    for c in 0..g.in_channels {
                        for ky in 0..k {
                            for kx in 0..k {
                                if let Some((y, x)) = at(g, oy, ox, ky, kx) {
                                    let ii = ((n * g.in_channels + c) * g.in_height + y)
                                        * g.in_width
                                        + x;
                                    let wi = ((o * g.in_channels + c) * k + ky) * k + kx;
                                    grad_weight[wi] += go * input[ii];
                                    if let Some(gi) = grad_input.as_deref_mut() {
                                        gi[ii] += go * weight[wi];
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
