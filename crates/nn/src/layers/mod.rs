//! The layers tread's networks are built from.

pub mod batchnorm;
pub mod conv;
pub mod linear;
pub mod pool;
pub mod residual;
pub mod sequential;

#[cfg(test)]
mod tests {
    use super::batchnorm::BatchNorm2d;
    use super::conv::{Conv2d, ConvSpec};
    use super::pool::{GlobalAvgPool, MaxPool2d};
    use crate::layer::{Layer, Mode};
    use crate::tensor::Tensor;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random(shape: &[usize], seed: u64) -> Tensor {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = shape.iter().product();
        Tensor::from_vec(shape, (0..n).map(|_| rng.random_range(-1.0..1.0)).collect())
            .unwrap_or_default()
    }

    /// Σ output·weights, the scalar whose input gradient we check.
    fn objective(layer: &mut dyn Layer, input: &Tensor, weights: &Tensor) -> f64 {
        let shape = layer.output_shape(input.shape()).unwrap_or_default();
        let mut out = Tensor::zeros(&shape);
        layer.forward(input, &mut out, Mode::Train);
        out.data()
            .iter()
            .zip(weights.data())
            .map(|(o, w)| f64::from(o * w))
            .sum()
    }

    /// The input gradient from backward, along a random direction, must
    /// match the finite-difference slope of the objective.
    fn check_input_gradient(layer: &mut dyn Layer, shape: &[usize]) {
        let input = random(shape, 1);
        let out_shape = layer.output_shape(shape).unwrap_or_default();
        let weights = random(&out_shape, 2);
        let direction = random(shape, 3);
        let mut out = Tensor::zeros(&out_shape);
        layer.forward(&input, &mut out, Mode::Train);
        let mut grad_in = Tensor::zeros(shape);
        layer.backward(&input, &out, &weights, Some(&mut grad_in));
        let analytic: f64 = grad_in
            .data()
            .iter()
            .zip(direction.data())
            .map(|(g, d)| f64::from(g * d))
            .sum();
        let eps = 1e-3f32;
        let shifted = |s: f32| {
            let data = input
                .data()
                .iter()
                .zip(direction.data())
                .map(|(x, d)| x + s * d)
                .collect();
            Tensor::from_vec(shape, data).unwrap_or_default()
        };
        let plus = objective(layer, &shifted(eps), &weights);
        let minus = objective(layer, &shifted(-eps), &weights);
        let numeric = (plus - minus) / (2.0 * f64::from(eps));
        let error = (numeric - analytic).abs() / analytic.abs().max(1e-3);
        assert!(error < 1e-2, "numeric {numeric} vs backward {analytic}");
    }

    #[test]
    fn batchnorm_input_gradient() {
        check_input_gradient(&mut BatchNorm2d::new(3, false), &[4, 3, 5, 5]);
        check_input_gradient(&mut BatchNorm2d::new(3, true), &[4, 3, 5, 5]);
    }

    #[test]
    fn pooling_input_gradient() {
        check_input_gradient(&mut MaxPool2d::new(3, 2, 1), &[2, 3, 9, 8]);
        check_input_gradient(&mut GlobalAvgPool, &[2, 3, 4, 5]);
    }

    #[test]
    fn strided_padded_conv_input_gradient() {
        let spec = ConvSpec {
            in_channels: 3,
            out_channels: 4,
            kernel: 3,
            stride: 2,
            padding: 1,
            bias: false,
            relu: false,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        check_input_gradient(&mut Conv2d::new(spec, &mut rng), &[2, 3, 9, 8]);
    }
}
