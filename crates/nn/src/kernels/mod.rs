//! Compute kernels: the device-specific part of the engine.

pub mod conv;
pub mod matmul;
pub mod winograd;
