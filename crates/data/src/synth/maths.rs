//! Deterministic numeric helpers. Nothing here calls libm (`floor`, `round`,
//! `sin` and friends can differ between C libraries or compile to library
//! calls), so every machine computes the same pixels.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::f32::consts::{FRAC_PI_2, PI, TAU};
use std::sync::OnceLock;

/// The only random source: portable and seedable.
pub(super) type Rng8 = ChaCha8Rng;
/// Linear-ish colour with channels around 0..1.
pub(super) type Rgb = [f32; 3];
/// A 2-D point or vector.
pub(super) type Pt = [f32; 2];

/// Uniform float in `lo..hi`; never panics, unlike an empty `random_range`.
pub(super) fn pick(rng: &mut Rng8, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * rng.random::<f32>()
}

/// Random sign, for mirrored choices.
pub(super) fn sign(rng: &mut Rng8) -> f32 {
    if rng.random_bool(0.5) { 1.0 } else { -1.0 }
}

/// Grey with a small random tint.
pub(super) fn colour(rng: &mut Rng8, lo: f32, hi: f32, tint: f32) -> Rgb {
    let v = pick(rng, lo, hi);
    [
        v * (1.0 + pick(rng, -tint, tint)),
        v,
        v * (1.0 + pick(rng, -tint, tint)),
    ]
}

/// Adding 1.5 * 2^23 rounds any |x| < 2^22 to an integer (ties to even),
/// exactly and without a library call or a saturating cast.
const MAGIC: f32 = 12_582_912.0;

/// Nearest integer of `x`, for |x| < 2^22 (all coordinates here are far smaller).
pub(super) fn round_i(x: f32) -> i32 {
    (x + MAGIC).to_bits() as i32 - MAGIC.to_bits() as i32
}

pub(super) fn floor_i(x: f32) -> i32 {
    let r = round_i(x);
    r - i32::from(r as f32 > x)
}

pub(super) fn sin_p(x: f32) -> f32 {
    let mut x = x - TAU * round_i(x * (1.0 / TAU)) as f32;
    if x > FRAC_PI_2 {
        x = PI - x;
    } else if x < -FRAC_PI_2 {
        x = -PI - x;
    }
    let x2 = x * x;
    x * (1.0 + x2 * (-1.0 / 6.0 + x2 * (1.0 / 120.0 + x2 * (-1.0 / 5040.0 + x2 / 362_880.0))))
}

pub(super) fn cos_p(x: f32) -> f32 {
    sin_p(x + FRAC_PI_2)
}

pub(super) fn unit_dir(angle: f32) -> Pt {
    [cos_p(angle), sin_p(angle)]
}

/// `atan2` to about 1e-5 rad.
pub(super) fn atan2_p(y: f32, x: f32) -> f32 {
    let (ax, ay) = (x.abs(), y.abs());
    let hi = ax.max(ay);
    if hi == 0.0 {
        return 0.0;
    }
    let q = ax.min(ay) / hi;
    let s = q * q;
    let mut r = ((-0.046_496_473 * s + 0.159_314_22) * s - 0.327_622_77) * s * q + q;
    if ay > ax {
        r = FRAC_PI_2 - r;
    }
    if x < 0.0 {
        r = PI - r;
    }
    if y < 0.0 { -r } else { r }
}

/// Distance from `x` to the nearest integer, for periodic patterns.
pub(super) fn periodic(x: f32) -> f32 {
    (x - ((x + MAGIC) - MAGIC)).abs()
}

/// Anti-aliased coverage of a stripe of half-width `half` at distance `d`,
/// with an edge `soft` wide.
pub(super) fn band(d: f32, half: f32, soft: f32) -> f32 {
    sharp_band(d, half, 1.0 / soft)
}

/// [`band`] with the edge given as its inverse width, for hot loops.
pub(super) fn sharp_band(d: f32, half: f32, sharp: f32) -> f32 {
    ((half - d) * sharp + 0.5).clamp(0.0, 1.0)
}

pub(super) fn mix(a: Rgb, b: Rgb, t: f32) -> Rgb {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

pub(super) fn scale(c: Rgb, k: f32) -> Rgb {
    [c[0] * k, c[1] * k, c[2] * k]
}

pub(super) fn seg_dist(p: Pt, a: Pt, b: Pt) -> f32 {
    let (abx, aby) = (b[0] - a[0], b[1] - a[1]);
    let along = ((p[0] - a[0]) * abx + (p[1] - a[1]) * aby) / (abx * abx + aby * aby).max(1e-6);
    let t = along.clamp(0.0, 1.0);
    let (dx, dy) = (p[0] - a[0] - abx * t, p[1] - a[1] - aby * t);
    (dx * dx + dy * dy).sqrt()
}

/// 256×256 random bytes shared by all noise; a table lookup is several
/// times cheaper than hashing every lattice corner.
/// Indexed as `y << 8 | x` with both wrapped to 0..256; the fixed size lets
/// the compiler drop bounds checks after masking with `LATTICE_MASK`.
fn lattice() -> &'static [u8; 1 << 16] {
    static TABLE: OnceLock<Box<[u8; 1 << 16]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = Box::new([0u8; 1 << 16]);
        for (i, v) in (0u32..).zip(t.iter_mut()) {
            let mut h = i ^ 0x9E37_79B9;
            h = (h ^ (h >> 16)).wrapping_mul(0x7FEB_352D);
            h = (h ^ (h >> 15)).wrapping_mul(0x846C_A68B);
            *v = ((h ^ (h >> 16)) >> 24) as u8;
        }
        t
    })
}

const LATTICE_MASK: usize = (1 << 16) - 1;

/// Smooth value noise in `0..1` with unit lattice spacing; `salt` picks an
/// independent-looking field.
pub(super) fn noise(x: f32, y: f32, salt: u32) -> f32 {
    let t = lattice();
    let (ix, iy) = (floor_i(x), floor_i(y));
    let (fx, fy) = (x - ix as f32, y - iy as f32);
    let (sx, sy) = (fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy));
    let x0 = ix.wrapping_add((salt & 255) as i32) as usize & 255;
    let y0 = iy.wrapping_add((salt >> 8 & 255) as i32) as usize & 255;
    let (x1, y1) = ((x0 + 1) & 255, (y0 + 1) & 255);
    let at = |x: usize, y: usize| f32::from(t[(y << 8 | x) & LATTICE_MASK]);
    let top = at(x0, y0) + sx * (at(x1, y0) - at(x0, y0));
    let bottom = at(x0, y1) + sx * (at(x1, y1) - at(x0, y1));
    (top + sy * (bottom - top)) * (1.0 / 255.0)
}

/// Blocky white noise in `0..1`: one random value per unit cell.
pub(super) fn cell(x: f32, y: f32, salt: u32) -> f32 {
    let ix = floor_i(x).wrapping_add((salt & 255) as i32) as usize & 255;
    let iy = floor_i(y).wrapping_add((salt >> 8 & 255) as i32) as usize & 255;
    f32::from(lattice()[(iy << 8 | ix) & LATTICE_MASK]) * (1.0 / 255.0)
}

/// Per-pixel white noise in `0..1` along image row `y`, for sensor grain.
pub(super) fn speckle_row(y: usize, salt: u32) -> impl Fn(usize) -> f32 {
    let (sx, sy) = ((salt & 255) as usize, (salt >> 8 & 255) as usize);
    let (t, base) = (lattice(), ((y + sy) & 255) << 8);
    move |x| f32::from(t[(base | ((x + sx) & 255)) & LATTICE_MASK]) * (1.0 / 255.0)
}
