//! Adam, and AdamW (Adam with decoupled weight decay).

use crate::layer::Param;
use rayon::prelude::*;

/// Adam as in PyTorch (β = 0.9, 0.999; ε = 1e-8), one pair of moment
/// buffers per trainable parameter in visiting order. With a weight decay it
/// is PyTorch's AdamW: every weight shrinks by `lr · decay` before the Adam
/// update, apart from the gradient.
pub struct Adam {
    lr: f32,
    weight_decay: f32,
    beta1: f32,
    beta2: f32,
    epsilon: f32,
    steps: i32,
    moments: Vec<(Vec<f32>, Vec<f32>)>,
}

impl Adam {
    /// Plain Adam with learning rate `lr`.
    pub fn new(lr: f32) -> Self {
        Self::with_weight_decay(lr, 0.0)
    }

    /// AdamW with learning rate `lr` and decoupled weight decay `decay`.
    pub fn with_weight_decay(lr: f32, decay: f32) -> Self {
        Self {
            lr,
            weight_decay: decay,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            steps: 0,
            moments: Vec::new(),
        }
    }

    /// Sets the learning rate of the next steps (a schedule's value).
    pub fn set_learning_rate(&mut self, lr: f32) {
        self.lr = lr;
    }

    /// The learning rate of the next step.
    pub fn learning_rate(&self) -> f32 {
        self.lr
    }

    /// Starts an update: call [`AdamStep::update`] for every parameter, in the
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
        let keep = 1.0 - adam.lr * adam.weight_decay;
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
                *w = *w * keep - step_size * *m / ((*v).sqrt() / bias2 + eps);
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
    fn weight_decay_shrinks_weights_apart_from_the_gradient() {
        let mut param =
            Param::trainable(Tensor::from_vec(&[2], vec![1.0, -2.0]).unwrap_or_default());
        let mut adamw = Adam::with_weight_decay(0.1, 0.5);
        adamw.begin_step().update(&mut param);
        // No gradient: Adam's update is 0, so only the decay moves them.
        assert_eq!(param.value.data(), &[0.95, -1.9]);
        adamw.set_learning_rate(0.0);
        adamw.begin_step().update(&mut param);
        assert_eq!(param.value.data(), &[0.95, -1.9]);
    }

    #[test]
    fn state_is_left_alone() {
        let mut param = Param::state(Tensor::zeros(&[2]));
        Adam::new(0.1).begin_step().update(&mut param);
        assert_eq!(param.value.data(), &[0.0, 0.0]);
    }
}
