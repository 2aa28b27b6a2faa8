//! Compute kernels: the device-specific part of the engine.

pub mod conv;
pub mod matmul;
pub mod winograd;

use std::sync::atomic::{AtomicBool, Ordering};

/// Partial sums kept apart so that the compiler can hold them in one vector
/// register; their order is fixed, so a sum does not depend on threads.
pub(crate) const LANES: usize = 16;

/// `Σ term(x)` over `xs`, accumulated in [`LANES`] f32 lanes (a plane or a
/// tile holds at most a few thousand values), the lanes added in f64.
pub(crate) fn lane_sum(xs: &[f32], term: impl Fn(f32) -> f32) -> f64 {
    let mut lanes = [0.0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|&x| term(x)).sum();
    for chunk in chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane += term(x);
        }
    }
    lanes_total(lanes, tail)
}

/// The lanes and the tail of a lane sum, added in f64.
pub(crate) fn lanes_total(lanes: [f32; LANES], tail: f32) -> f64 {
    lanes.iter().map(|&v| f64::from(v)).sum::<f64>() + f64::from(tail)
}

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
