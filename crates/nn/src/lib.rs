//! tread's training and inference engine: just the layers its image
//! classifiers need, on the CPU.
//!
//! Written for this purpose rather than taken from a framework because
//! training speed is a feature: measured on the project's 2-core machines,
//! burn's CPU backend trained the recipe's network 2.5× slower than PyTorch
//! and candle 8× slower (`bench/RESULTS.md`), both losing in the
//! convolutions, while convolutions written on the `gemm` crate run level
//! with PyTorch. Everything device-specific sits in [`kernels`], the one
//! module a GPU backend would replace.

pub mod adam;
pub mod device;
pub mod fpenv;
mod init;
pub mod kernels;
pub mod layer;
pub mod layers;
pub mod loss;
pub mod network;
pub mod tensor;
pub mod weights;

pub use adam::Adam;
pub use device::{Device, DeviceChoice, DeviceError};
pub use layer::Mode;
pub use network::{Architecture, Network, NetworkError};
pub use tensor::Tensor;
