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
        // Planes longer than the 16 summing lanes, with a remainder.
        check_input_gradient(&mut BatchNorm2d::new(2, true), &[3, 2, 7, 9]);
    }

    #[test]
    fn batchnorm_output_has_zero_mean_and_unit_variance() {
        let input = random(&[3, 2, 7, 9], 5);
        let mut out = Tensor::zeros(input.shape());
        BatchNorm2d::new(2, false).forward(&input, &mut out, Mode::Train);
        for c in 0..2 {
            let values: Vec<f64> = out
                .data()
                .chunks_exact(63)
                .skip(c)
                .step_by(2)
                .flatten()
                .map(|&v| f64::from(v))
                .collect();
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
            assert!(mean.abs() < 1e-5, "channel {c}: mean {mean}");
            assert!((var - 1.0).abs() < 1e-3, "channel {c}: variance {var}");
        }
    }

    /// Max pooling by scanning each window, the first maximum winning: the
    /// output and, as a gradient of ones, where each window's maximum was.
    fn max_pool_by_scan(input: &Tensor, k: usize, s: usize, p: usize) -> (Vec<f32>, Vec<f32>) {
        let [n, c, h, w] = input.shape().try_into().unwrap_or([0; 4]);
        let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
        let (mut out, mut grad) = (Vec::new(), vec![0.0; input.len()]);
        for (q, plane) in input.data().chunks_exact(h * w).enumerate().take(n * c) {
            for (oy, ox) in (0..oh).flat_map(|oy| (0..ow).map(move |ox| (oy, ox))) {
                let window = (0..k * k).filter_map(|i| {
                    let (y, x) = (
                        (oy * s + i / k).checked_sub(p)?,
                        (ox * s + i % k).checked_sub(p)?,
                    );
                    (y < h && x < w).then_some(y * w + x)
                });
                let best = window.reduce(|b, i| if plane[i] > plane[b] { i } else { b });
                let best = best.unwrap_or_default();
                out.push(plane[best]);
                grad[q * h * w + best] += 1.0;
            }
        }
        (out, grad)
    }

    #[test]
    fn max_pool_matches_a_scan_of_each_window_ties_included() {
        // Values of -1, 0 and 1 only, so most windows hold ties.
        let input = random(&[2, 3, 13, 12], 6);
        let rounded = input.data().iter().map(|v| v.round()).collect();
        let input = Tensor::from_vec(input.shape(), rounded).unwrap_or_default();
        for (k, s, p) in [(3, 2, 1), (2, 2, 0), (3, 1, 1), (3, 3, 1)] {
            let mut pool = MaxPool2d::new(k, s, p);
            let shape = pool.output_shape(input.shape()).unwrap_or_default();
            let mut out = Tensor::zeros(&shape);
            pool.forward(&input, &mut out, Mode::Train);
            let ones = Tensor::from_vec(&shape, vec![1.0; out.len()]).unwrap_or_default();
            let mut grad = Tensor::zeros(input.shape());
            pool.backward(&input, &out, &ones, Some(&mut grad));
            let (want_out, want_grad) = max_pool_by_scan(&input, k, s, p);
            assert_eq!(
                out.data(),
                &want_out[..],
                "output, window {k} stride {s} pad {p}"
            );
            assert_eq!(
                grad.data(),
                &want_grad[..],
                "argmax, window {k} stride {s} pad {p}"
            );
        }
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
