//! 2-D convolution with an optional fused ReLU.

use crate::init;
use crate::kernels::conv::{ConvGeometry, conv2d_backward, conv2d_forward};
use crate::kernels::winograd;
use crate::layer::{Layer, Mode, Param, param_name};
use crate::tensor::Tensor;
use rand::Rng;

/// Conv2d as in PyTorch (square kernel, zero padding), weights
/// `[out, in, k, k]`, optionally followed by a ReLU computed in the same
/// pass: fusing it saves a full read and write of the activation each way.
pub struct Conv2d {
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    relu: bool,
    weight: Param,
    bias: Option<Param>,
}

/// How a [`Conv2d`] is shaped.
#[derive(Clone, Copy, Debug)]
pub struct ConvSpec {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel side.
    pub kernel: usize,
    /// Step between kernel positions.
    pub stride: usize,
    /// Zeros added on each border.
    pub padding: usize,
    /// Whether the layer has a bias (not before a batch norm).
    pub bias: bool,
    /// Whether a ReLU follows, fused into the convolution.
    pub relu: bool,
}

impl Conv2d {
    /// A convolution initialised as PyTorch's default (uniform in
    /// ±1/√fan_in for weight and bias), so losses compare with the recipe's.
    pub fn new(spec: ConvSpec, rng: &mut impl Rng) -> Self {
        let fan_in = spec.in_channels * spec.kernel * spec.kernel;
        let shape = [
            spec.out_channels,
            spec.in_channels,
            spec.kernel,
            spec.kernel,
        ];
        let weight = Param::trainable(init::uniform_fan_in(&shape, fan_in, rng));
        let bias = spec
            .bias
            .then(|| Param::trainable(init::uniform_fan_in(&[spec.out_channels], fan_in, rng)));
        Self {
            in_channels: spec.in_channels,
            out_channels: spec.out_channels,
            kernel: spec.kernel,
            stride: spec.stride,
            padding: spec.padding,
            relu: spec.relu,
            weight,
            bias,
        }
    }

    fn geometry(&self, input: &[usize]) -> Result<ConvGeometry, String> {
        let [batch, channels, height, width] = *input else {
            return Err(format!(
                "expects [batch, channels, height, width], got {input:?}"
            ));
        };
        if channels != self.in_channels {
            return Err(format!(
                "expects {} channels, got {channels}",
                self.in_channels
            ));
        }
        if height + 2 * self.padding < self.kernel || width + 2 * self.padding < self.kernel {
            return Err(format!(
                "input {height}×{width} is smaller than the {}×{0} kernel",
                self.kernel
            ));
        }
        Ok(ConvGeometry {
            batch,
            in_channels: channels,
            in_height: height,
            in_width: width,
            out_channels: self.out_channels,
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
        })
    }
}

impl Layer for Conv2d {
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        let g = self.geometry(input)?;
        Ok(vec![g.batch, g.out_channels, g.out_height(), g.out_width()])
    }

    fn forward(&mut self, input: &Tensor, output: &mut Tensor, mode: Mode) {
        if let Ok(g) = self.geometry(input.shape()) {
            let bias = self.bias.as_ref().map(|b| b.value.data());
            // Training keeps the exact path the backward pass mirrors.
            let forward = if mode == Mode::Infer && winograd::applies(&g) {
                winograd::forward
            } else {
                conv2d_forward
            };
            forward(
                &g,
                input.data(),
                self.weight.value.data(),
                bias,
                self.relu,
                output.data_mut(),
            );
        }
    }

    fn backward(
        &mut self,
        input: &Tensor,
        output: &Tensor,
        grad_output: &Tensor,
        grad_input: Option<&mut Tensor>,
    ) {
        if let Ok(g) = self.geometry(input.shape()) {
            conv2d_backward(
                &g,
                input.data(),
                self.weight.value.data(),
                grad_output.data(),
                self.relu.then(|| output.data()),
                grad_input.map(|t| t.data_mut()),
                self.weight.grad.data_mut(),
                self.bias.as_mut().map(|b| b.grad.data_mut()),
            );
        }
    }

    fn visit_params(&mut self, prefix: &str, visit: &mut dyn FnMut(&str, &mut Param)) {
        visit(&param_name(prefix, "weight"), &mut self.weight);
        if let Some(bias) = &mut self.bias {
            visit(&param_name(prefix, "bias"), bias);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn inference_takes_the_winograd_path_and_agrees_with_training() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let spec = ConvSpec {
            in_channels: 16,
            out_channels: 8,
            kernel: 3,
            stride: 1,
            padding: 1,
            bias: true,
            relu: true,
        };
        let mut conv = Conv2d::new(spec, &mut rng);
        let shape = [1, 16, 30, 30];
        let values = (0..shape.iter().product::<usize>())
            .map(|i| ((i * 7919 % 211) as f32 - 105.0) / 105.0)
            .collect();
        let input = Tensor::from_vec(&shape, values).expect("shape");
        let geometry = conv.geometry(input.shape()).expect("geometry");
        assert!(
            winograd::applies(&geometry),
            "this case must exercise the Winograd path"
        );
        let (mut trained, mut inferred) = (
            Tensor::zeros(&[1, 8, 30, 30]),
            Tensor::zeros(&[1, 8, 30, 30]),
        );
        conv.forward(&input, &mut trained, Mode::Train);
        conv.forward(&input, &mut inferred, Mode::Infer);
        for (a, b) in trained.data().iter().zip(inferred.data()) {
            assert!((a - b).abs() <= 1e-4 * (1.0 + a.abs()), "{a} vs {b}");
        }
        assert!(trained.data().iter().any(|&v| v > 0.0));
    }
}
