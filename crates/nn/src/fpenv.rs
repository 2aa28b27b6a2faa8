//! The floating-point environment training and inference need.

/// Makes denormal floats count as zero on this thread and every thread it
/// spawns afterwards. After a few Adam updates many gradients are denormal,
/// and each operation on one traps into microcode: a step ran 7× slower
/// without this. Call it first thing in `main`, before any thread pool
/// starts, because threads inherit the environment of their creator.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code, deprecated)]
pub fn flush_denormals_to_zero() {
    use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
    /// MXCSR flush-to-zero (bit 15) and denormals-are-zero (bit 6).
    const FTZ_DAZ: u32 = 0x8040;
    // SAFETY: reading and writing MXCSR only changes how this thread rounds
    // tiny results; SSE is always present on x86_64.
    unsafe { _mm_setcsr(_mm_getcsr() | FTZ_DAZ) }
}

/// Makes denormal floats count as zero (no-op where the CPU has no cheap
/// switch for it).
#[cfg(not(target_arch = "x86_64"))]
pub fn flush_denormals_to_zero() {}
