//! The image classifiers tread trains: the recipe's seed CNN and a small
//! residual network.

use crate::adam::Adam;
use crate::layer::{Layer, Mode, Param};
use crate::layers::batchnorm::BatchNorm2d;
use crate::layers::conv::{Conv2d, ConvSpec};
use crate::layers::linear::Linear;
use crate::layers::pool::{GlobalAvgPool, MaxPool2d};
use crate::layers::residual::Residual;
use crate::layers::sequential::Sequential;
use crate::tensor::Tensor;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// Which network to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Architecture {
    /// The recipe's network: Conv(3,32,3) ReLU Conv(32,32,3) ReLU
    /// Conv(32,64,3) ReLU Flatten Linear(64·(s−6)², classes).
    SeedCnn,
    /// A ResNet-style network: a strided stem, four basic blocks with batch
    /// norm, global average pooling. Far less compute than the seed CNN.
    ResnetSmall,
}

impl Architecture {
    /// Every architecture, for help texts and errors.
    pub const ALL: [Architecture; 2] = [Architecture::SeedCnn, Architecture::ResnetSmall];

    /// The name used on the command line and in `model.json`.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::SeedCnn => "seed-cnn",
            Architecture::ResnetSmall => "resnet-small",
        }
    }

    /// The smallest input side the architecture accepts.
    pub fn min_input_size(self) -> usize {
        match self {
            Architecture::SeedCnn => 7,
            Architecture::ResnetSmall => 32,
        }
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Architecture {
    type Err = NetworkError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| NetworkError::UnknownArchitecture(s.to_string()))
    }
}

/// Why a network cannot be built or cannot take an input.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum NetworkError {
    /// The architecture name is not one tread knows.
    #[error("unknown network {0:?}: choose seed-cnn or resnet-small")]
    UnknownArchitecture(String),
    /// Fewer than two classes, or an input too small for the architecture.
    #[error("cannot build {arch} for {classes} classes at {size}×{size}: {reason}")]
    BadShape {
        /// The architecture.
        arch: Architecture,
        /// Classes asked for.
        classes: usize,
        /// Input side asked for.
        size: usize,
        /// What is wrong.
        reason: String,
    },
    /// A batch whose shape is not `[n, 3, size, size]`.
    #[error("network expects a batch [n, 3, {size}, {size}], got {got:?}")]
    BadInput {
        /// The network's input side.
        size: usize,
        /// The shape given.
        got: Vec<usize>,
    },
}

/// A classifier: an architecture built for a number of classes and an
/// input size, with the buffers of its last forward pass.
pub struct Network {
    arch: Architecture,
    classes: usize,
    input_size: usize,
    layers: Sequential,
    logits: Tensor,
}

impl Network {
    /// Builds a network with weights drawn from `seed`.
    pub fn new(
        arch: Architecture,
        classes: usize,
        input_size: usize,
        seed: u64,
    ) -> Result<Self, NetworkError> {
        let bad = |reason: &str| NetworkError::BadShape {
            arch,
            classes,
            size: input_size,
            reason: reason.to_string(),
        };
        if classes < 2 {
            return Err(bad("a classifier needs at least two classes"));
        }
        if input_size < arch.min_input_size() {
            return Err(bad(&format!(
                "the input side must be at least {}",
                arch.min_input_size()
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let layers = match arch {
            Architecture::SeedCnn => seed_cnn(classes, input_size, &mut rng),
            Architecture::ResnetSmall => resnet_small(classes, &mut rng),
        };
        Ok(Self {
            arch,
            classes,
            input_size,
            layers,
            logits: Tensor::default(),
        })
    }

    /// The architecture.
    pub fn architecture(&self) -> Architecture {
        self.arch
    }

    /// The number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The input side in pixels.
    pub fn input_size(&self) -> usize {
        self.input_size
    }

    /// Runs a batch `[n, 3, size, size]` and returns the logits `[n, classes]`.
    pub fn forward(&mut self, batch: &Tensor, mode: Mode) -> Result<&Tensor, NetworkError> {
        let s = self.input_size;
        if !matches!(batch.shape(), [_, 3, h, w] if *h == s && *w == s) {
            return Err(NetworkError::BadInput {
                size: s,
                got: batch.shape().to_vec(),
            });
        }
        self.logits.resize(&[batch.batch(), self.classes]);
        self.layers.forward(batch, &mut self.logits, mode);
        Ok(&self.logits)
    }

    /// Back-propagates d(loss)/d(logits) of the last training forward pass of
    /// `batch`, accumulating parameter gradients.
    pub fn backward(&mut self, batch: &Tensor, grad_logits: &Tensor) {
        self.layers.backward(batch, &self.logits, grad_logits, None);
    }

    /// Re-estimates every batch norm's running statistics for the weights
    /// as they are, from `batches` (images of the training split without
    /// augmentation): "precise BN". The momentum averages gathered during
    /// training describe weights of many steps ago, and after few steps at a
    /// high learning rate they can be far enough off that the evaluated
    /// network answers one class for everything. Returns the batches used.
    pub fn calibrate<B: std::borrow::Borrow<Tensor>>(
        &mut self,
        batches: impl IntoIterator<Item = B>,
    ) -> Result<usize, NetworkError> {
        let mut used = 0;
        for batch in batches {
            self.forward(batch.borrow(), Mode::Calibrate(used))?;
            used += 1;
        }
        Ok(used)
    }

    /// Applies one optimiser step to every trainable parameter and clears
    /// the gradients.
    pub fn apply(&mut self, adam: &mut Adam) {
        let mut step = adam.begin_step();
        self.layers.visit_params("", &mut |_, p| step.update(p));
    }

    /// Calls `visit` with every parameter and state tensor by name.
    pub fn visit_params(&mut self, visit: &mut dyn FnMut(&str, &mut Param)) {
        self.layers.visit_params("", visit);
    }

    /// Whether the network has batch norm layers (whose running statistics
    /// [`Network::calibrate`] re-estimates).
    pub fn has_batch_norm(&mut self) -> bool {
        let mut found = false;
        self.visit_params(&mut |name, _| found |= name.ends_with("running_mean"));
        found
    }

    /// The number of trainable values.
    pub fn parameter_count(&mut self) -> usize {
        let mut count = 0;
        self.visit_params(&mut |_, p| {
            if p.trainable {
                count += p.value.len();
            }
        });
        count
    }
}

fn conv(
    in_c: usize,
    out_c: usize,
    kernel: usize,
    stride: usize,
    relu: bool,
    rng: &mut ChaCha8Rng,
) -> Box<dyn Layer> {
    Box::new(Conv2d::new(
        ConvSpec {
            in_channels: in_c,
            out_channels: out_c,
            kernel,
            stride,
            padding: 0,
            bias: true,
            relu,
        },
        rng,
    ))
}

fn seed_cnn(classes: usize, size: usize, rng: &mut ChaCha8Rng) -> Sequential {
    let side = size - 6;
    Sequential::new(vec![
        ("0".into(), conv(3, 32, 3, 1, true, rng)),
        ("2".into(), conv(32, 32, 3, 1, true, rng)),
        ("4".into(), conv(32, 64, 3, 1, true, rng)),
        (
            "7".into(),
            Box::new(Linear::new(64 * side * side, classes, rng)),
        ),
    ])
}

/// Channels of the stem and the four stages.
const RESNET_WIDTHS: [usize; 5] = [24, 24, 48, 96, 192];

/// A convolution without bias followed by batch norm (and ReLU).
fn conv_bn(
    in_c: usize,
    out_c: usize,
    kernel: usize,
    stride: usize,
    relu: bool,
    rng: &mut ChaCha8Rng,
) -> Sequential {
    let conv = Conv2d::new(
        ConvSpec {
            in_channels: in_c,
            out_channels: out_c,
            kernel,
            stride,
            padding: kernel / 2,
            bias: false,
            relu: false,
        },
        rng,
    );
    Sequential::new(vec![
        ("conv".into(), Box::new(conv)),
        ("bn".into(), Box::new(BatchNorm2d::new(out_c, relu))),
    ])
}

fn basic_block(in_c: usize, out_c: usize, stride: usize, rng: &mut ChaCha8Rng) -> Box<dyn Layer> {
    let body = Sequential::new(vec![
        (
            "0".into(),
            Box::new(conv_bn(in_c, out_c, 3, stride, true, rng)) as Box<dyn Layer>,
        ),
        (
            "1".into(),
            Box::new(conv_bn(out_c, out_c, 3, 1, false, rng)),
        ),
    ]);
    let shortcut =
        (stride != 1 || in_c != out_c).then(|| conv_bn(in_c, out_c, 1, stride, false, rng));
    Box::new(Residual::new(body, shortcut))
}

fn resnet_small(classes: usize, rng: &mut ChaCha8Rng) -> Sequential {
    let [stem, w1, w2, w3, w4] = RESNET_WIDTHS;
    Sequential::new(vec![
        (
            "stem".into(),
            Box::new(conv_bn(3, stem, 3, 2, true, rng)) as Box<dyn Layer>,
        ),
        ("pool".into(), Box::new(MaxPool2d::new(3, 2, 1))),
        ("layer1".into(), basic_block(stem, w1, 1, rng)),
        ("layer2".into(), basic_block(w1, w2, 2, rng)),
        ("layer3".into(), basic_block(w2, w3, 2, rng)),
        ("layer4".into(), basic_block(w3, w4, 2, rng)),
        ("avgpool".into(), Box::new(GlobalAvgPool)),
        ("fc".into(), Box::new(Linear::new(w4, classes, rng))),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::cross_entropy;
    use rand::Rng;

    fn random_batch(n: usize, size: usize, seed: u64) -> Tensor {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let data = (0..n * 3 * size * size)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        Tensor::from_vec(&[n, 3, size, size], data).unwrap_or_default()
    }

    fn loss(net: &mut Network, batch: &Tensor, labels: &[usize]) -> f64 {
        let mut grad = Tensor::default();
        let logits = net.forward(batch, Mode::Train).cloned().unwrap_or_default();
        f64::from(cross_entropy(&logits, labels, &mut grad))
    }

    /// Takes `steps` optimiser steps on one batch.
    fn train_steps(
        net: &mut Network,
        batch: &Tensor,
        labels: &[usize],
        adam: &mut Adam,
        steps: usize,
    ) {
        let mut grad = Tensor::default();
        for _ in 0..steps {
            let logits = net.forward(batch, Mode::Train).cloned().unwrap_or_default();
            cross_entropy(&logits, labels, &mut grad);
            net.backward(batch, &grad);
            net.apply(adam);
        }
    }

    /// Moves every trainable value by `step` times a fixed pseudo-random direction.
    fn nudge(net: &mut Network, step: f32) {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        net.visit_params(&mut |_, p| {
            if p.trainable {
                p.value
                    .data_mut()
                    .iter_mut()
                    .for_each(|v| *v += step * rng.random_range(-1.0f32..1.0));
            }
        });
    }

    /// Backward's gradient, projected on a random direction, must equal
    /// the loss's finite-difference slope along it.
    fn check_gradient(arch: Architecture, size: usize) {
        let (batch, labels) = (random_batch(3, size, 1), [0, 1, 1]);
        let Ok(mut net) = Network::new(arch, 2, size, 5) else {
            panic!("network builds")
        };
        let mut grad = Tensor::default();
        let logits = net
            .forward(&batch, Mode::Train)
            .cloned()
            .unwrap_or_default();
        cross_entropy(&logits, &labels, &mut grad);
        net.backward(&batch, &grad);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut analytic = 0.0f64;
        net.visit_params(&mut |_, p| {
            if p.trainable {
                for g in p.grad.data() {
                    analytic += f64::from(*g) * f64::from(rng.random_range(-1.0f32..1.0));
                }
            }
        });
        let eps = 3e-5;
        nudge(&mut net, eps);
        let plus = loss(&mut net, &batch, &labels);
        nudge(&mut net, -2.0 * eps);
        let minus = loss(&mut net, &batch, &labels);
        let numeric = (plus - minus) / (2.0 * f64::from(eps));
        let error = (numeric - analytic).abs() / analytic.abs().max(1e-3);
        assert!(
            error < 2e-2,
            "{arch}: numeric {numeric} vs backward {analytic}"
        );
    }

    #[test]
    fn seed_cnn_gradient_matches_finite_difference() {
        check_gradient(Architecture::SeedCnn, 10);
    }

    #[test]
    fn resnet_gradient_matches_finite_difference() {
        check_gradient(Architecture::ResnetSmall, 64);
    }

    #[test]
    fn wrong_input_shape_is_refused() {
        let Ok(mut net) = Network::new(Architecture::SeedCnn, 2, 16, 0) else {
            panic!("network builds")
        };
        let err = net
            .forward(&Tensor::zeros(&[1, 3, 15, 16]), Mode::Infer)
            .err();
        assert!(matches!(err, Some(NetworkError::BadInput { size: 16, .. })));
    }

    #[test]
    fn too_few_classes_or_pixels_are_refused() {
        assert!(Network::new(Architecture::ResnetSmall, 1, 64, 0).is_err());
        assert!(Network::new(Architecture::ResnetSmall, 2, 16, 0).is_err());
    }

    #[test]
    fn calibration_makes_inference_answer_as_training_did() {
        let labels = [0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1];
        let batch = random_batch(labels.len(), 64, 4);
        let Ok(mut net) = Network::new(Architecture::ResnetSmall, 2, 64, 2) else {
            panic!("network builds")
        };
        // A few steps at a high rate: the momentum averages lag the weights.
        train_steps(&mut net, &batch, &labels, &mut Adam::new(5e-2), 6);
        let trained = net
            .forward(&batch, Mode::Train)
            .cloned()
            .unwrap_or_default();
        assert_eq!(net.calibrate([&batch]), Ok(1));
        let inferred = net
            .forward(&batch, Mode::Infer)
            .cloned()
            .unwrap_or_default();
        // Equal up to the running variance being unbiased (n / (n − 1)).
        let scale = trained.data().iter().fold(0.0f32, |m, v| m.max(v.abs()));
        for (t, i) in trained.data().iter().zip(inferred.data()) {
            assert!((t - i).abs() < 0.1 * scale.max(1.0), "{t} vs {i}");
        }
        assert!(net.has_batch_norm());
    }

    #[test]
    fn training_steps_fit_a_small_batch() {
        let (batch, labels) = (random_batch(4, 32, 3), [0, 1, 0, 1]);
        let Ok(mut net) = Network::new(Architecture::ResnetSmall, 2, 32, 1) else {
            panic!("network builds")
        };
        let first = loss(&mut net, &batch, &labels);
        train_steps(&mut net, &batch, &labels, &mut Adam::new(1e-2), 20);
        let last = loss(&mut net, &batch, &labels);
        assert!(last < first / 4.0, "loss {first} → {last}");
    }
}
