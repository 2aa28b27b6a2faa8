//! Weight initialisation, seeded so that a training run can be repeated.

use crate::tensor::Tensor;
use rand::Rng;

/// Uniform in ±1/√fan_in: PyTorch's default for Conv2d and Linear weights
/// (kaiming_uniform with a = √5) and biases.
pub fn uniform_fan_in(shape: &[usize], fan_in: usize, rng: &mut impl Rng) -> Tensor {
    let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
    fill(shape, || rng.random_range(-bound..=bound))
}

fn fill(shape: &[usize], mut value: impl FnMut() -> f32) -> Tensor {
    let mut tensor = Tensor::zeros(shape);
    tensor.data_mut().iter_mut().for_each(|v| *v = value());
    tensor
}
