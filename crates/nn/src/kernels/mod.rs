//! Compute kernels: the device-specific part of the engine.

pub mod conv;
pub mod matmul;
pub mod winograd;

use std::sync::atomic::{AtomicBool, Ordering};

/// Whether kernels must add in a fixed order: see [`set_deterministic`].
static DETERMINISTIC: AtomicBool = AtomicBool::new(false);

/// Makes every later kernel call add its partial sums in an order that does
/// not depend on thread timing, so that training the same seed on the same
/// data and machine gives bit-identical weights (as PyTorch's
/// `use_deterministic_algorithms`). It is process-wide because the kernels
/// run deep below any per-call option; it costs one weight-gradient buffer
/// per image in each convolution's backward pass instead of one per thread.
pub fn set_deterministic(on: bool) {
    DETERMINISTIC.store(on, Ordering::Relaxed);
}

/// Whether [`set_deterministic`] is on.
pub fn deterministic() -> bool {
    DETERMINISTIC.load(Ordering::Relaxed)
}
