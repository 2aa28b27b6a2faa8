//! Random changes to training images (never to evaluation images), drawn
//! from a seed so that a run repeats: torchvision's `RandomResizedCrop`,
//! `RandomHorizontalFlip` and the brightness and contrast of `ColorJitter`.
//!
//! They work on the preprocessed tensor (CHW, normalised) that the loader
//! caches, so an epoch costs no extra decoding. The crop therefore samples
//! the image at the network's input size rather than at its original size:
//! the same picture torchvision gives whenever the source is no larger than
//! the input (the demo's tyres, small photos), slightly softer otherwise.

use crate::transform::Preprocess;
use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Which random changes a training image gets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Augment {
    /// Range of the share of the image's area a random crop keeps (then
    /// resized back to the input size); `[1, 1]` turns cropping off.
    pub crop_scale: [f32; 2],
    /// Range of the crop's aspect ratio (width / height).
    pub crop_ratio: [f32; 2],
    /// Mirror left-right with probability ½.
    pub flip: bool,
    /// Brightness factor drawn from `[1 − b, 1 + b]`.
    pub brightness: f32,
    /// Contrast factor drawn from `[1 − c, 1 + c]`.
    pub contrast: f32,
}

impl Default for Augment {
    /// The default network's recipe: crops keeping 50–100 % of the area at
    /// aspect ratios 3:4 to 4:3, flips, ±20 % brightness and contrast.
    fn default() -> Self {
        Self {
            crop_scale: [0.5, 1.0],
            crop_ratio: [3.0 / 4.0, 4.0 / 3.0],
            flip: true,
            brightness: 0.2,
            contrast: 0.2,
        }
    }
}

/// Why augmentation settings are refused.
#[derive(Debug, Error, PartialEq)]
#[error("augmentation: {0}")]
pub struct AugmentError(String);

impl Augment {
    /// Refuses ranges that cannot be drawn from.
    pub fn check(&self) -> Result<(), AugmentError> {
        let [lo, hi] = self.crop_scale;
        if !(0.0 < lo && lo <= hi && hi <= 1.0) {
            return Err(AugmentError(format!(
                "the crop scale (--crop-scale) must satisfy 0 < low ≤ high ≤ 1, got {lo}–{hi}"
            )));
        }
        let [lo, hi] = self.crop_ratio;
        if !(0.0 < lo && lo <= hi) {
            return Err(AugmentError(format!(
                "the crop ratio must satisfy 0 < low ≤ high, got {lo}–{hi}"
            )));
        }
        for (name, v) in [("brightness", self.brightness), ("contrast", self.contrast)] {
            if !(0.0..1.0).contains(&v) {
                return Err(AugmentError(format!(
                    "{name} jitter must be in [0, 1), got {v}"
                )));
            }
        }
        Ok(())
    }

    /// Changes one preprocessed image (`3 × side × side`, normalised with
    /// `preprocess`) in place, drawing from `seed`.
    pub fn apply(&self, image: &mut [f32], preprocess: &Preprocess, seed: u64) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let side = preprocess.size as usize;
        let plane = side * side;
        if image.len() != 3 * plane {
            return;
        }
        if let Some(crop) = self.crop_box(side, &mut rng) {
            for channel in image.chunks_exact_mut(plane) {
                resize_crop(channel, side, crop);
            }
        }
        if self.flip && rng.random_bool(0.5) {
            image.chunks_exact_mut(side).for_each(|row| row.reverse());
        }
        let brightness = jitter(self.brightness, &mut rng);
        let contrast = jitter(self.contrast, &mut rng);
        if brightness != 1.0 || contrast != 1.0 {
            jitter_light(image, plane, preprocess, brightness, contrast);
        }
    }

    /// torchvision's `RandomResizedCrop.get_params`: up to ten draws of an
    /// area and a log-uniform aspect ratio that fit, else the whole image.
    /// `None` when the crop is the whole image.
    fn crop_box(&self, side: usize, rng: &mut ChaCha8Rng) -> Option<[f64; 4]> {
        let area = (side * side) as f32;
        let [log_lo, log_hi] = self.crop_ratio.map(f32::ln);
        for _ in 0..10 {
            let target = area * draw(self.crop_scale, rng);
            let ratio = draw([log_lo, log_hi], rng).exp();
            let w = (target * ratio).sqrt().round() as usize;
            let h = (target / ratio).sqrt().round() as usize;
            if (1..=side).contains(&w) && (1..=side).contains(&h) {
                if (w, h) == (side, side) {
                    return None;
                }
                let left = rng.random_range(0..=side - w);
                let top = rng.random_range(0..=side - h);
                return Some([left as f64, top as f64, w as f64, h as f64]);
            }
        }
        None
    }
}

fn draw([lo, hi]: [f32; 2], rng: &mut ChaCha8Rng) -> f32 {
    if lo < hi {
        rng.random_range(lo..hi)
    } else {
        lo
    }
}

fn jitter(amount: f32, rng: &mut ChaCha8Rng) -> f32 {
    if amount > 0.0 {
        rng.random_range(1.0 - amount..1.0 + amount)
    } else {
        1.0
    }
}

/// Replaces one channel plane by its crop `[left, top, width, height]`
/// resized back to `side × side` with fast_image_resize's bilinear filter.
/// Resizing is linear, so it commutes with the normalisation.
fn resize_crop(channel: &mut [f32], side: usize, [left, top, width, height]: [f64; 4]) {
    let side32 = side as u32;
    let Ok(source) = ImageRef::new(
        side32,
        side32,
        bytemuck::cast_slice(channel),
        PixelType::F32,
    ) else {
        return;
    };
    let mut resized = vec![0.0f32; side * side];
    let Ok(mut target) = Image::from_slice_u8(
        side32,
        side32,
        bytemuck::cast_slice_mut(&mut resized),
        PixelType::F32,
    ) else {
        return;
    };
    let options = ResizeOptions::new()
        .crop(left, top, width, height)
        .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    // A refused geometry leaves the image uncropped, which is only less
    // augmentation; the box is drawn inside the image, so it is not expected.
    if Resizer::new()
        .resize(&source, &mut target, &options)
        .is_ok()
    {
        channel.copy_from_slice(&resized);
    }
}

/// Brightness then contrast, as torchvision's `adjust_brightness` and
/// `adjust_contrast` on an image in [0, 1]: `x·b`, then `(x − m)·c + m`
/// with `m` the mean of the grey image, each clamped to [0, 1].
fn jitter_light(image: &mut [f32], plane: usize, p: &Preprocess, brightness: f32, contrast: f32) {
    const GREY: [f32; 3] = [0.299, 0.587, 0.114];
    let mut grey_sum = 0.0f64;
    for (c, channel) in image.chunks_exact_mut(plane).enumerate() {
        for v in channel.iter_mut() {
            let x = ((*v * p.std[c] + p.mean[c]) * brightness).clamp(0.0, 1.0);
            grey_sum += f64::from(GREY[c] * x);
            *v = x;
        }
    }
    let mean = (grey_sum / plane as f64) as f32;
    for (c, channel) in image.chunks_exact_mut(plane).enumerate() {
        for v in channel.iter_mut() {
            let x = ((*v - mean) * contrast + mean).clamp(0.0, 1.0);
            *v = (x - p.mean[c]) / p.std[c];
        }
    }
}

/// The seed of one image's changes in one epoch: the same for the same
/// run seed, epoch and image, whatever batch or thread it lands in.
pub fn image_seed(run_seed: u64, epoch: usize, index: usize) -> u64 {
    let mut z = run_seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z ^= (index as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preprocess(size: u32) -> Preprocess {
        Preprocess {
            size,
            ..Preprocess::default()
        }
    }

    /// A normalised image that brightens from left to right.
    fn gradient(side: usize) -> Vec<f32> {
        let p = preprocess(side as u32);
        let mut image = vec![0.0; 3 * side * side];
        for (c, channel) in image.chunks_exact_mut(side * side).enumerate() {
            for (i, v) in channel.iter_mut().enumerate() {
                let x01 = (i % side) as f32 / side as f32;
                *v = (x01 - p.mean[c]) / p.std[c];
            }
        }
        image
    }

    #[test]
    fn same_seed_same_result_other_seed_other_result() {
        let p = preprocess(32);
        let augment = Augment::default();
        let (mut a, mut b, mut c) = (gradient(32), gradient(32), gradient(32));
        augment.apply(&mut a, &p, 7);
        augment.apply(&mut b, &p, 7);
        augment.apply(&mut c, &p, 8);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn flip_alone_mirrors_rows() {
        let p = preprocess(8);
        let flip_only = Augment {
            crop_scale: [1.0, 1.0],
            crop_ratio: [1.0, 1.0],
            flip: true,
            brightness: 0.0,
            contrast: 0.0,
        };
        let original = gradient(8);
        let mirrored: Vec<f32> = original
            .chunks_exact(8)
            .flat_map(|row| row.iter().rev().copied())
            .collect();
        let outcomes: Vec<bool> = (0..32)
            .map(|seed| {
                let mut image = original.clone();
                flip_only.apply(&mut image, &p, seed);
                assert!(image == original || image == mirrored);
                image == mirrored
            })
            .collect();
        assert!(outcomes.contains(&true) && outcomes.contains(&false));
    }

    #[test]
    fn crops_zoom_in_and_light_stays_in_range() {
        let p = preprocess(32);
        let augment = Augment {
            flip: false,
            crop_scale: [0.25, 0.25],
            ..Augment::default()
        };
        let mut image = gradient(32);
        augment.apply(&mut image, &p, 3);
        // A quarter of the area spread over the whole width: neighbouring
        // columns differ by about half a column step of the original.
        let row = &image[16 * 32..17 * 32];
        let step = (row[20] - row[19]).abs();
        let original_step = 1.0 / 32.0 / p.std[0];
        assert!(step < 0.8 * original_step, "{step} vs {original_step}");
        for (c, channel) in image.chunks_exact(32 * 32).enumerate() {
            for v in channel {
                let x01 = v * p.std[c] + p.mean[c];
                assert!((-1e-5..=1.0 + 1e-5).contains(&x01), "{x01}");
            }
        }
    }

    #[test]
    fn impossible_ranges_are_refused() {
        let bad = |a: Augment| a.check().is_err();
        let base = Augment::default;
        assert!(Augment::default().check().is_ok());
        assert!(bad(Augment {
            crop_scale: [0.0, 1.0],
            ..base()
        }));
        assert!(bad(Augment {
            crop_scale: [0.8, 0.5],
            ..base()
        }));
        assert!(bad(Augment {
            crop_scale: [0.5, 1.5],
            ..base()
        }));
        assert!(bad(Augment {
            brightness: 1.0,
            ..base()
        }));
        assert!(bad(Augment {
            contrast: -0.1,
            ..base()
        }));
    }
}
