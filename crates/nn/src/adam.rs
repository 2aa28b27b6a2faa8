//! The Adam optimiser.

use crate::layer::Param;
use rayon::prelude::*;

/// Adam as in PyTorch (β = 0.9, 0.999; ε = 1e-8; no weight decay), one pair
/// of moment buffers per trainable parameter in visiting order.
pub struct Adam {
    lr: f32,
    beta1: f32,
    beta2: f32,
    epsilon: f32,
    steps: i32,
    moments: Vec<(Vec<f32>, Vec<f32>)>,
}

impl Adam {
    /// An optimiser with learning rate `lr`.
    pub fn new(lr: f32) -> Self {
        Self {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            steps: 0,
            moments: Vec::new(),
        }
    }

    /// Starts an update: call [`Adam::update`] for every parameter, in the
    /// same order each step.
    pub fn begin_step(&mut self) -> AdamStep<'_> {
        self.steps = self.steps.saturating_add(1);
        AdamStep {
            adam: self,
            index: 0,
        }
    }
}

/// One optimiser step in progress.
pub struct AdamStep<'a> {
    adam: &'a mut Adam,
    index: usize,
}

impl AdamStep<'_> {
    /// Updates one parameter from its gradient and clears the gradient.
    pub fn update(&mut self, param: &mut Param) {
        if !param.trainable {
            return;
        }
        let adam = &mut *self.adam;
        if adam.moments.len() == self.index {
            let n = param.value.len();
            adam.moments.push((vec![0.0; n], vec![0.0; n]));
        }
        let (m, v) = &mut adam.moments[self.index];
        self.index += 1;
        let (b1, b2, eps) = (adam.beta1, adam.beta2, adam.epsilon);
        let step_size = adam.lr / (1.0 - b1.powi(adam.steps));
        let bias2 = (1.0 - b2.powi(adam.steps)).sqrt();
        param
            .value
            .data_mut()
            .par_iter_mut()
            .zip(param.grad.data_mut().par_iter_mut())
            .zip(m.par_iter_mut().zip(v.par_iter_mut()))
            .with_min_len(4096)
            .for_each(|((w, g), (m, v))| {
                *m = b1 * *m + (1.0 - b1) * *g;
                *v = b2 * *v + (1.0 - b2) * *g * *g;
                *w -= step_size * *m / ((*v).sqrt() / bias2 + eps);
                *g = 0.0;
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Tensor;

    #[test]
    fn first_step_moves_each_weight_by_lr_against_its_gradient() {
        let mut param = Param::trainable(Tensor::zeros(&[3]));
        param.grad.data_mut().copy_from_slice(&[2.0, -0.5, 0.0]);
        let mut adam = Adam::new(0.1);
        adam.begin_step().update(&mut param);
        let w = param.value.data();
        assert!(
            (w[0] + 0.1).abs() < 1e-5 && (w[1] - 0.1).abs() < 1e-5 && w[2] == 0.0,
            "{w:?}"
        );
        assert!(param.grad.data().iter().all(|&g| g == 0.0));
    }

    #[test]
    fn state_is_left_alone() {
        let mut param = Param::state(Tensor::zeros(&[2]));
        Adam::new(0.1).begin_step().update(&mut param);
        assert_eq!(param.value.data(), &[0.0, 0.0]);
    }
}
